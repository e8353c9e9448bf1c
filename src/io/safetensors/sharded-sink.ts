// A sharded safetensors output as one TensorSink, as transformers writes it (huggingface_hub's split_torch_state_dict_into_shards):
// tensors in order fill a shard until the next would pass max_shard_size (a tensor larger
// than that gets a shard of its own, and no tensor is ever split); one shard is
// `model.safetensors`, N shards are `model-0000i-of-0000N.safetensors` with a
// `model.safetensors.index.json` holding metadata.total_size and the weight_map.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { BnbError, show } from '../../errors.js';
import { PyJson, pyJsonDumps } from '../../json/dumps.js';
import { outputError, writeTextFile } from '../files.js';
import type { PlannedTensor, TensorSink } from '../sink.js';
import { safetensorsItemsize } from './dtypes.js';
import type { StoredTensor } from './tensors.js';
import { SafetensorsFileSink } from './file-sink.js';

/** transformers' default max_shard_size, "50GB". */
export const DEFAULT_MAX_SHARD_SIZE = 50_000_000_000;

const UNITS: Record<string, number> = {
  '': 1,
  B: 1,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
  KIB: 2 ** 10,
  MIB: 2 ** 20,
  GIB: 2 ** 30,
  TIB: 2 ** 40,
};

/** A shard size as transformers takes it: bytes, or "5GB", "500MB", "1.5GB" (powers of 10), "2GiB" (powers of 2). */
export function parseShardSize(value: string | number): number {
  const m = typeof value === 'string' ? /^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$/.exec(value) : null;
  const unit = m ? m[2]!.toUpperCase() : '';
  const bytes = typeof value === 'number' ? value : m && Object.hasOwn(UNITS, unit) ? Math.floor(Number(m[1]) * UNITS[unit]!) : NaN;
  if (!Number.isSafeInteger(bytes) || bytes < 1) {
    throw new BnbError(
      'E_ARGUMENT',
      `maxShardSize = ${show(value)} is not accepted: expected a positive number of bytes, or a size such as "5GB", "500MB" or "2GiB"`,
    );
  }
  return bytes;
}

/** Bytes a planned tensor takes at most (a maxElements tensor: its maximum). */
export function plannedBytes(p: PlannedTensor): number {
  const k = safetensorsItemsize(p.dtype);
  return p.shape ? p.shape.reduce((a, d) => a * d, k) : p.maxElements! * k;
}

/** The tensors of each shard, in plan order (split_torch_state_dict_into_shards' rule). */
export function planShards(plan: readonly PlannedTensor[], maxShardSize: number): PlannedTensor[][] {
  const shards: PlannedTensor[][] = [];
  let current: PlannedTensor[] = [],
    size = 0;
  for (const p of plan) {
    const bytes = plannedBytes(p);
    if (bytes > maxShardSize) {
      shards.push([p]);
      continue;
    }
    if (size + bytes > maxShardSize && current.length) {
      shards.push(current);
      current = [];
      size = 0;
    }
    current.push(p);
    size += bytes;
  }
  if (current.length || shards.length === 0) shards.push(current);
  return shards;
}

export function shardName(i: number, count: number): string {
  return count === 1 ? 'model.safetensors' : `model-${String(i + 1).padStart(5, '0')}-of-${String(count).padStart(5, '0')}.safetensors`;
}

export const INDEX_NAME = 'model.safetensors.index.json';

export interface ShardedSinkOptions {
  /** the output as the user named it (errors name it, not the temporary) */
  output: string;
  maxShardSize: number;
  /** a single-file output replaces what appeared meanwhile only with force */
  force: boolean;
}

/**
 * Writes a checkpoint's tensors into a folder (sharded as planned) or a single file.
 * Each shard's file sink opens at its first tensor and finishes at its last, so memory
 * stays at one tensor; the folder is a temporary one that the caller renames into
 * place once finish() has written every shard and the index.
 */
export class ShardedSink implements TensorSink {
  readonly dir: string | null;
  readonly #file: string | null;
  #files: string[] = [];
  #shards: PlannedTensor[][] = [];
  #metadata: Record<string, string> | null = null;
  readonly #shardOf = new Map<string, number>();
  #left: number[] = [];
  readonly #open = new Map<number, SafetensorsFileSink>();
  readonly #finished = new Set<number>();
  #bytes = 0;

  /** `target`: a folder to write shards into, or { file } for a single .safetensors output. */
  constructor(
    target: { dir: string } | { file: string },
    readonly opts: ShardedSinkOptions,
  ) {
    this.dir = 'file' in target ? null : target.dir;
    this.#file = 'file' in target ? target.file : null;
  }

  /** The .safetensors files (the shards, in order), once planned. */
  get files(): string[] {
    return this.#files;
  }

  async plan(plan: PlannedTensor[], metadata: Record<string, string> | null): Promise<void> {
    if (this.#shards.length > 0) throw new BnbError('E_ARGUMENT', `plan(): the output ${show(this.opts.output)} has its plan already`);
    const shards = planShards(plan, this.opts.maxShardSize);
    if (this.dir === null) {
      if (shards.length > 1) {
        throw new BnbError(
          'E_ARGUMENT',
          `maxShardSize = ${this.opts.maxShardSize} would split the output into ${shards.length} shards: a sharded output needs a model folder as input and output (a .safetensors file input gives a file output)`,
        );
      }
      this.#files = [this.#file!];
    } else {
      const dir = this.dir;
      this.#files = shards.map((_, i) => join(dir, shardName(i, shards.length)));
    }
    this.#shards = shards;
    this.#metadata = metadata;
    shards.forEach((s, i) => s.forEach((p) => this.#shardOf.set(p.name, i)));
    this.#left = shards.map((s) => s.length);
  }

  /** Total bytes of the tensors written so far (the index's total_size once finished). */
  get totalSize(): number {
    return this.#bytes;
  }

  async #writer(i: number): Promise<SafetensorsFileSink> {
    let w = this.#open.get(i);
    if (w === undefined) {
      const sink = new SafetensorsFileSink(this.#files[i]!, this.dir !== null || this.opts.force);
      await sink.plan(this.#shards[i]!, this.#metadata);
      this.#open.set(i, (w = sink));
    }
    return w;
  }

  async #finishShard(i: number): Promise<void> {
    const w = await this.#writer(i);
    this.#open.delete(i);
    this.#finished.add(i);
    await w.finish(); // E_ST_INCOMPLETE naming what was not written
  }

  async write(name: string, t: StoredTensor): Promise<void> {
    const i = this.#shardOf.get(name);
    if (i === undefined) throw new BnbError('E_ST_MISSING', `write(${show(name)}): the tensor is not in the checkpoint's plan`);
    try {
      await (await this.#writer(i)).write(name, t);
      this.#bytes += t.data.byteLength;
      if (--this.#left[i]! === 0) await this.#finishShard(i);
    } catch (e) {
      throw outputError(e, this.opts.output);
    }
  }

  /** Finishes the shards (an empty checkpoint gets an empty file) and writes the index of a sharded folder. */
  async finish(): Promise<void> {
    try {
      await this.#finishAll();
    } catch (e) {
      throw outputError(e, this.opts.output);
    }
  }

  async #finishAll(): Promise<void> {
    for (let i = 0; i < this.#shards.length; i++) if (!this.#finished.has(i)) await this.#finishShard(i);
    if (this.dir !== null && this.#shards.length > 1) {
      const n = this.#shards.length;
      const weightMap = new Map<string, PyJson>(
        this.#shards.flatMap((s, i) => s.map((p) => [p.name, shardName(i, n)] as [string, string])),
      );
      const index = new Map<string, PyJson>([
        ['metadata', new Map([['total_size', this.#bytes]])],
        ['weight_map', weightMap],
      ]);
      await writeTextFile(join(this.dir, INDEX_NAME), `${pyJsonDumps(index, { indent: 2, sortKeys: true })}\n`);
    }
  }

  /**
   * Removes the shards being written and, in a folder, the shards already finished. (A
   * single-file output is finished by its last write: from then on it stays.)
   */
  async abort(): Promise<void> {
    for (const w of this.#open.values()) await w.abort();
    this.#open.clear();
    if (this.dir !== null) for (const i of this.#finished) await rm(this.#files[i]!, { force: true }).catch(() => {});
  }
}
