// A sharded safetensors checkpoint as one TensorSource: a *.safetensors.index.json
// ({ metadata, weight_map: { tensor: shard file } }) and the shards it names, or a
// single file; and which of a folder's files is the checkpoint.
import { readdir } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { BnbError, fail, show } from '../../errors.js';
import { readSmallFile } from '../files.js';
import { CheckpointReader, missing } from '../source.js';
import { compareNames } from './dtypes.js';
import type { TensorInfo } from './header.js';
import type { StoredTensor } from './tensors.js';
import { ioError } from './file-io.js';
import { SafetensorsReader, openSafetensors } from './file-source.js';

const INDEX_SUFFIX = '.safetensors.index.json';
const MAX_INDEX_BYTES = 100_000_000;

function badIndex(path: string, what: string): never {
  throw new BnbError('E_ST_INDEX', `${path}: ${what}`);
}

/** Resolves a folder to the index or single file it holds. */
export async function resolveFolder(dir: string): Promise<string> {
  let entries: string[];
  try {
    // not only regular files: a FIFO or device named model.safetensors is refused by name, not passed over
    entries = (await readdir(dir, { withFileTypes: true })).filter((d) => !d.isDirectory()).map((d) => d.name);
  } catch (e) {
    throw ioError(e, `cannot list ${dir}`);
  }
  entries.sort(compareNames);
  if (entries.includes('model' + INDEX_SUFFIX)) return join(dir, 'model' + INDEX_SUFFIX);
  const indexes = entries.filter((n) => n.endsWith(INDEX_SUFFIX));
  if (indexes.length === 1) return join(dir, indexes[0]!);
  if (indexes.length > 1)
    fail('E_ARGUMENT', 'path', dir, `a folder with one *${INDEX_SUFFIX} (it holds ${indexes.join(', ')}): pass the index to open`);
  if (entries.includes('model.safetensors')) return join(dir, 'model.safetensors');
  const files = entries.filter((n) => n.endsWith('.safetensors'));
  if (files.length === 1) return join(dir, files[0]!);
  if (files.length > 1)
    fail(
      'E_ARGUMENT',
      'path',
      dir,
      `a folder with an index or one .safetensors file (it holds ${files.length} and no index: ${files.slice(0, 4).join(', ')}${files.length > 4 ? ', ...' : ''})`,
    );
  throw new BnbError('E_IO', `cannot open ${dir}: the folder holds no .safetensors file and no *${INDEX_SUFFIX}`);
}

/**
 * Shards read as one source: `wanted` (an index's weight_map) picks the shard each
 * tensor is read from; null takes every tensor of every reader (a single file).
 */
export class ShardedReader implements CheckpointReader {
  readonly files: string[];
  metadata: Record<string, string> | null;
  readonly #readers: SafetensorsReader[];
  readonly #where = new Map<string, SafetensorsReader>();
  readonly #names: string[] = [];

  constructor(
    readers: SafetensorsReader[],
    readonly indexMetadata: Record<string, unknown> | null,
    wanted: Map<string, string> | null,
  ) {
    this.#readers = readers;
    this.files = readers.map((r) => r.path);
    this.metadata = readers[0]?.metadata ?? null;
    for (const r of readers) {
      for (const n of r.names()) {
        if (wanted !== null && wanted.get(n) !== r.path) continue;
        this.#where.set(n, r);
        this.#names.push(n);
      }
    }
  }

  names(): string[] {
    return [...this.#names];
  }

  #reader(name: string): SafetensorsReader {
    const r = this.#where.get(name);
    if (r === undefined)
      missing(name, this.files.length === 1 ? this.files[0]! : `the checkpoint (${this.files.length} files)`, this.#names);
    return r;
  }

  info(name: string): TensorInfo {
    return this.#reader(name).info(name);
  }

  read(name: string): Promise<StoredTensor> {
    return this.#reader(name).read(name);
  }

  readBytes(name: string): Promise<Uint8Array> {
    return this.#reader(name).readBytes(name);
  }

  async close(): Promise<void> {
    await Promise.all(this.#readers.map((r) => r.close()));
  }
}

/** Every tensor of shard `r` is in the weight_map, and mapped to `r`. */
function checkListed(indexPath: string, r: SafetensorsReader, wanted: Map<string, string>): void {
  for (const name of r.names()) {
    const listed = wanted.get(name);
    if (listed === r.path) continue;
    badIndex(
      indexPath,
      listed === undefined
        ? `weight_map omits ${JSON.stringify(name)}, which ${basename(r.path)} holds: list every tensor of every shard (or pass trustIndex, --trust-index, to read only what the index lists)`
        : `${basename(r.path)} also holds ${JSON.stringify(name)}, which weight_map maps to ${basename(listed)}: a tensor must be in one shard (or pass trustIndex, --trust-index, to read the copy the index names)`,
    );
  }
}

/** Opens an index.json and the shards it names, each shard checked against its weight_map. */
export async function openIndex(indexPath: string, trustIndex: boolean): Promise<CheckpointReader> {
  const bytes = await readSmallFile(indexPath, MAX_INDEX_BYTES, 'E_ST_INDEX', `a *${INDEX_SUFFIX} (${MAX_INDEX_BYTES} bytes at most)`);
  if (bytes === null) throw new BnbError('E_IO', `cannot open ${indexPath}: no such file`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    badIndex(indexPath, 'not valid UTF-8');
  }
  let index: unknown;
  try {
    index = JSON.parse(text);
  } catch (e) {
    badIndex(indexPath, `not valid JSON (${(e as Error).message}): expected { "metadata": {...}, "weight_map": { tensor: shard file } }`);
  }
  if (typeof index !== 'object' || index === null || Array.isArray(index)) badIndex(indexPath, 'expected a JSON object with a weight_map');
  const { weight_map: map, metadata } = index as { weight_map?: unknown; metadata?: unknown };
  if (!('weight_map' in (index as object))) {
    // config.json, tokenizer.json...: given where a checkpoint was expected
    throw new BnbError('E_CKPT_FORMAT', `${indexPath} is not a checkpoint (a JSON file without a weight_map): ${CHECKPOINT}`);
  }
  if (typeof map !== 'object' || map === null || Array.isArray(map)) {
    badIndex(indexPath, `weight_map = ${show(map)} is not accepted: expected an object { tensor name: shard file }`);
  }
  if (metadata !== undefined && metadata !== null && (typeof metadata !== 'object' || Array.isArray(metadata))) {
    badIndex(indexPath, `metadata = ${show(metadata)} is not accepted: expected an object or null`);
  }
  const dir = dirname(resolve(indexPath));
  const wanted = new Map<string, string>();
  const shardPaths = new Set<string>();
  for (const [name, file] of Object.entries(map as object)) {
    if (typeof file !== 'string' || file.length === 0 || isAbsolute(file) || file.split(/[\\/]/).includes('..')) {
      badIndex(indexPath, `weight_map[${JSON.stringify(name)}] = ${show(file)} is not accepted: expected a shard file name inside ${dir}`);
    }
    const full = join(dir, file);
    if (!full.startsWith(dir + sep)) badIndex(indexPath, `weight_map[${JSON.stringify(name)}] = ${show(file)} is outside ${dir}`);
    shardPaths.add(full);
    wanted.set(name, full);
  }
  if (wanted.size === 0 && !trustIndex) {
    badIndex(
      indexPath,
      `weight_map is empty: it names no tensor and no shard (pass trustIndex, --trust-index, to open it as an empty checkpoint)`,
    );
  }
  const shards = [...shardPaths].sort(compareNames);
  const readers: SafetensorsReader[] = [];
  try {
    for (const shard of shards) readers.push(await openSafetensors(shard));
    const byPath = new Map(readers.map((r) => [r.path, r]));
    for (const [name, shard] of wanted) {
      try {
        byPath.get(shard)!.info(name);
      } catch {
        badIndex(indexPath, `weight_map maps ${JSON.stringify(name)} to ${basename(shard)}, which does not hold it`);
      }
    }
    // what a shard holds beyond the weight_map would be dropped without a word
    if (!trustIndex) for (const r of readers) checkListed(indexPath, r, wanted);
  } catch (e) {
    await Promise.all(readers.map((r) => r.close()));
    throw e;
  }
  return new ShardedReader(readers, (metadata as Record<string, unknown> | null | undefined) ?? null, wanted);
}

/** What the functions taking a checkpoint accept. */
export const CHECKPOINT = `a checkpoint is a .safetensors file, a *${INDEX_SUFFIX} naming its shards, or a model folder holding either`;
