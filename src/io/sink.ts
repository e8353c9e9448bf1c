// Where a conversion writes tensors: the TensorSink interface. A safetensors file, a
// sharded folder and bytes in memory implement it (src/io/safetensors/); another
// destination or format is one more module implementing it.
import type { SafetensorsDType } from './safetensors/dtypes.js';
import type { StoredTensor } from './safetensors/tensors.js';

export type { StoredTensor };

/** A tensor the sink will receive: a fixed shape, or maxElements for a 1-D tensor whose length is known later. */
export interface PlannedTensor {
  name: string;
  dtype: SafetensorsDType;
  shape?: number[];
  maxElements?: number;
}

/**
 * Tensors written one at a time (memory bounded by one tensor where the sink writes
 * files). Nothing partial is ever in place: abort(), or a failed write or finish(),
 * removes what was written (a sharded sink's single-file output, completed by its
 * last write, stays).
 */
export interface TensorSink {
  /** Declares every tensor to come, once, before the first write: a sink may reserve space or split shards by it. */
  plan(tensors: PlannedTensor[], metadata: Record<string, string> | null): Promise<void>;
  /** One planned tensor, in any order; its dtype and shape as planned. */
  write(name: string, t: StoredTensor): Promise<void>;
  /** Completes the output; E_ST_INCOMPLETE naming what was planned but not written. */
  finish(): Promise<void>;
  /** Removes what was written. */
  abort(): Promise<void>;
}
