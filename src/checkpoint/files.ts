// Where a checkpoint conversion reads and writes: a single .safetensors file, or a
// Hugging Face folder (config.json, sharded or single weights, tokenizer files).
import { copyFile, lstat, mkdir, readdir, realpath, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { BnbError, show } from '../errors.js';
import { readString } from '../args.js';
import { outputError } from '../io/files.js';
import { removeStaleTemporaries, temporaryName, trackTemporary, untrackTemporary } from '../io/temp.js';
import { PlannedTensor } from '../io/safetensors-file.js';
import { PyJson } from '../pyjson.js';
import { writeConfig } from './config.js';
import { CheckpointWriter } from './shards.js';

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

export async function isDirectory(path: string): Promise<boolean> {
  readString('input', path, 'a path to a .safetensors file or a model folder');
  try {
    return (await stat(path)).isDirectory();
  } catch {
    throw new BnbError('E_IO', `input = ${show(path)} does not exist: expected a .safetensors file or a model folder`);
  }
}

/** `path` with symbolic links resolved as far as it exists (the rest appended as given). */
async function resolvedPath(path: string): Promise<string> {
  const abs = resolve(path);
  try {
    return await realpath(abs);
  } catch {
    const parent = dirname(abs);
    return parent === abs ? abs : join(await resolvedPath(parent), basename(abs));
  }
}

const within = (inner: string, outer: string) => inner === outer || inner.startsWith(outer.endsWith(sep) ? outer : outer + sep);

/** Refuses an output that is, contains, or is inside the input: replacing it would destroy the input. */
async function checkApart(input: string, output: string): Promise<void> {
  const i = await resolvedPath(input);
  for (const o of new Set([await resolvedPath(output), join(await resolvedPath(dirname(resolve(output))), basename(resolve(output)))])) {
    if (within(o, i) || within(i, o)) {
      const how = o === i ? 'is' : within(o, i) ? 'is inside' : 'contains';
      throw new BnbError('E_ARGUMENT', `output = ${show(output)} ${how} the input ${show(input)}${o === resolve(output) ? '' : ` (${show(o)} after following symbolic links)`}: choose an output outside it`);
    }
  }
}

/**
 * Creates the missing folders above `path` one level at a time. (mkdir's recursive
 * mode loops forever where a parent cannot be created, as under /proc.)
 */
async function makeParents(path: string): Promise<void> {
  const parent = dirname(resolve(path));
  try {
    if ((await stat(parent)).isDirectory()) return;
  } catch (e) {
    if ((e as { code?: string }).code !== 'ENOENT') throw e;
    if (await exists(parent)) throw Object.assign(new Error(`ENOENT: ${basename(parent)} is a symbolic link to nothing, mkdir`), { code: 'ENOENT' });
    if (dirname(parent) !== parent) await makeParents(parent);
    await mkdir(parent);
    return;
  }
  throw Object.assign(new Error(`ENOTDIR: ${basename(parent)} is not a directory, mkdir`), { code: 'ENOTDIR' });
}

/**
 * Where a conversion writes: for a folder input a temporary folder beside `output`,
 * renamed into place by commit(); for a file input the file itself (its writer uses a
 * temporary name). Every OS error while writing is E_IO naming `output` as given.
 */
export class Target {
  private constructor(readonly output: string, readonly dir: string | null, readonly force: boolean) {}

  /** Refuses an existing output unless `force`, and an output that overlaps the input. */
  static async prepare(input: string, output: string, folder: boolean, force: boolean): Promise<Target> {
    if (typeof output !== 'string' || output.length === 0) throw new BnbError('E_ARGUMENT', `output = ${show(output)} is not accepted: expected a path`);
    await checkApart(input, output);
    if ((await exists(output)) && !force) {
      throw new BnbError('E_EXISTS', `output = ${show(output)} exists: pass force (--force) to replace it`);
    }
    try {
      await makeParents(output);
      if (!folder) return new Target(output, null, force);
      await removeStaleTemporaries(output);
      const tmp = temporaryName(output);
      await mkdir(tmp);
      trackTemporary(tmp);
      return new Target(output, tmp, force);
    } catch (e) {
      throw outputError(e, output);
    }
  }

  /** The writer of the output's tensors (shards in the folder, or the single file). */
  writer(plan: PlannedTensor[], metadata: Record<string, string> | null, maxShardSize: number): CheckpointWriter {
    return CheckpointWriter.create(this.dir === null ? { file: this.output } : { dir: this.dir }, plan, {
      output: this.output, metadata, maxShardSize, force: this.force,
    });
  }

  /** The folder's own files: config.json (if any) and the input folder's companions. */
  async complete(input: string, config: Map<string, PyJson> | null): Promise<void> {
    if (this.dir === null) return;
    try {
      await copyCompanions(input, this.dir);
      if (config) await writeConfig(this.dir, config);
    } catch (e) {
      throw outputError(e, this.output);
    }
  }

  /**
   * Moves the finished folder into place. A replaced folder is first moved aside, so
   * that at every moment `output` is either the old output or the new one, complete.
   */
  async commit(): Promise<void> {
    const tmp = this.dir;
    if (tmp === null) return;
    try {
      if (await exists(this.output)) {
        if (!this.force) throw new BnbError('E_EXISTS', `output = ${show(this.output)} appeared while converting: pass force (--force) to replace it`);
        const old = temporaryName(this.output);
        await rename(this.output, old);
        trackTemporary(old);
        await rename(tmp, this.output);
        untrackTemporary(tmp);
        await rm(old, { recursive: true, force: true });
        untrackTemporary(old);
        return;
      }
      await rename(tmp, this.output);
      untrackTemporary(tmp);
    } catch (e) {
      throw outputError(e, this.output);
    }
  }

  /** Removes whatever was written. */
  async abort(): Promise<void> {
    if (this.dir === null) return;
    await rm(this.dir, { recursive: true, force: true }).catch(() => {});
    untrackTemporary(this.dir);
  }
}

/**
 * Copies the files a model folder carries besides its weights and config (tokenizer,
 * generation config, ...). Symbolic links are followed, as in a Hugging Face cache
 * snapshot whose files all link into ../../blobs; what is not a regular file is skipped.
 */
export async function copyCompanions(from: string, to: string): Promise<void> {
  for (const name of await readdir(from)) {
    if (name === 'config.json' || name.endsWith('.safetensors') || name.endsWith('.safetensors.index.json')) continue;
    const st = await stat(join(from, name)).catch(() => null);
    if (st?.isFile()) await copyFile(join(from, name), join(to, name));
  }
}
