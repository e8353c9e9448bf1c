// A TensorSource over a Map of tensors in memory: what a new source takes (one module,
// the interface of src/io/source.ts and nothing else), for test/format-boundary.test.ts.
// No readBytes: the conversions fall back to read() for the quant_state blobs.
import { BnbError, safetensorsDTypeOf } from '../../src/index.js';
import type { StoredTensor, TensorInfo, TensorSource } from '../../src/io/source.js';

export class MapSource implements TensorSource {
  readonly #infos = new Map<string, TensorInfo>();
  closed = false;

  constructor(
    readonly tensors: Map<string, StoredTensor>,
    readonly metadata: Record<string, string> | null = null,
  ) {
    let offset = 0; // the tensors end to end, so that end - start is each one's size
    for (const [name, t] of tensors) {
      this.#infos.set(name, { name, dtype: safetensorsDTypeOf(t), shape: [...t.shape], start: offset, end: (offset += t.data.byteLength) });
    }
  }

  names(): string[] {
    return [...this.#infos.keys()];
  }

  info(name: string): TensorInfo {
    const i = this.#infos.get(name);
    if (i === undefined) throw new BnbError('E_ST_MISSING', `tensor ${JSON.stringify(name)} is not in the map`);
    return { ...i, shape: [...i.shape] };
  }

  async read(name: string): Promise<StoredTensor> {
    this.info(name);
    return this.tensors.get(name)!;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
