// The one place that turns a path into a TensorSource, or an output into a TensorSink:
// what the path is (a folder, an index, a file) picks the implementation. A new
// format or location plugs in here, beside the module that implements it.
import { stat } from 'node:fs/promises';
import { BnbError, fail } from '../errors.js';
import { kernelPath } from './files.js';
import { recoverOutput } from './swap.js';
import type { CheckpointReader } from './source.js';
import { checkPath, errno, ioError } from './safetensors/file-io.js';
import { openSafetensors } from './safetensors/file-source.js';
import { CHECKPOINT, ShardedReader, openIndex, resolveFolder } from './safetensors/sharded-source.js';
import { ShardedSink, ShardedSinkOptions } from './safetensors/sharded-sink.js';

export interface OpenCheckpointOptions {
  /**
   * Read only the tensors the index's weight_map lists (an empty one opens as an empty
   * checkpoint). By default a shard tensor the weight_map omits, or that two shards
   * hold, is an E_ST_INDEX error, as is an empty weight_map: nothing is dropped unseen.
   */
  trustIndex?: boolean;
}

/** The options, checked (undefined: the defaults). */
export function checkOpenOptions(opts: unknown): Required<OpenCheckpointOptions> {
  if (opts === undefined) return { trustIndex: false };
  if (typeof opts !== 'object' || opts === null) fail('E_ARGUMENT', 'opts', opts, '{ trustIndex?: boolean } or undefined');
  const t = (opts as OpenCheckpointOptions).trustIndex;
  if (t !== undefined && typeof t !== 'boolean') fail('E_ARGUMENT', 'trustIndex', t, 'true, false or undefined');
  return { trustIndex: t ?? false };
}

/**
 * Opens a checkpoint: a .safetensors file, an index.json ({ metadata, weight_map })
 * or a folder holding either (model.safetensors.index.json first). Headers are read
 * and validated up front; tensors are read on demand, shard by shard. Every file is
 * opened only if it is a regular file (a FIFO or a device is E_IO, never waited on).
 */
export async function openSource(path: string, opts?: OpenCheckpointOptions): Promise<CheckpointReader> {
  checkPath('path', path);
  const { trustIndex } = checkOpenOptions(opts);
  path = await kernelPath(path); // link/.. as open() resolves it: the index's shards and the folder's files are joined to it
  let isDir: boolean;
  try {
    isDir = (await stat(path)).isDirectory();
  } catch (e) {
    if (errno(e) !== 'ENOENT') throw ioError(e, `cannot open ${path}`);
    // missing: perhaps a run died while replacing it, its old output moved aside
    await recoverOutput(path).catch(() => {});
    try {
      isDir = (await stat(path)).isDirectory();
    } catch (e) {
      throw ioError(e, `cannot open ${path}`);
    }
  }
  const target = isDir ? await resolveFolder(path) : path;
  if (target.endsWith('.json')) return openIndex(target, trustIndex);
  try {
    return new ShardedReader([await openSafetensors(target)], null, null);
  } catch (e) {
    // a file given by a name that is not a checkpoint's (README.md, config.json): say what one is
    if (isDir || target.endsWith('.safetensors') || !(e instanceof BnbError) || !e.code.startsWith('E_ST_')) throw e;
    throw new BnbError('E_CKPT_FORMAT', `${path} is not a checkpoint (not in the safetensors format): ${CHECKPOINT}`);
  }
}

/** The public name of openSource (bnbjs/node). */
export const openCheckpoint = openSource;

/**
 * The sink a conversion writes its tensors to: a folder (shards and their index, as
 * transformers writes them) or a single .safetensors file.
 */
export function createSink(target: { dir: string } | { file: string }, opts: ShardedSinkOptions): ShardedSink {
  return new ShardedSink(target, opts);
}
