// Where a checkpoint conversion reads and writes: a single .safetensors file, or a
// Hugging Face folder (config.json, sharded or single weights, tokenizer files).
import { lstat, mkdir, readdir, realpath, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { BnbError, show } from '../errors.js';
import { readString } from '../args.js';
import { copyRegularFile, outputError, readError } from '../io/files.js';
import { dropTemporary, newTemporary, trackTemporary, untrackTemporary } from '../io/temp.js';
import { recoverOutput, swapIntoPlace } from '../io/swap.js';
import { createSink } from '../io/open.js';
import type { ShardedSink } from '../io/safetensors/sharded-sink.js';
import { PyJson } from '../json/dumps.js';
import { writeConfig } from './config.js';

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** Whether the input `path` is a folder. A missing one may be an output a run died replacing: put back first. */
export async function isDirectory(path: string): Promise<boolean> {
  readString('input', path, 'a path to a .safetensors file or a model folder');
  const missing = (e: unknown) => (e as { code?: string }).code === 'ENOENT';
  const look = () =>
    stat(path).catch((e) => {
      if (missing(e)) return null;
      throw readError(e, `input = ${show(path)}`);
    });
  let st = await look();
  if (st === null) {
    await recoverOutput(path).catch(() => {});
    st = await look();
  }
  if (st === null) throw new BnbError('E_IO', `input = ${show(path)} does not exist: expected a .safetensors file or a model folder`);
  return st.isDirectory();
}

/**
 * `path` as the kernel resolves it, as far as it exists (the rest appended as given).
 * No lexical step comes first: in `link/../x` the `..` is the parent of where `link`
 * points, which is where a write to that path lands (path.resolve would drop `link/..`).
 */
async function resolvedPath(path: string): Promise<string> {
  try {
    return await realpath(path);
  } catch {
    const parent = dirname(path);
    if (parent === path) return resolve(path);
    const base = basename(path),
      above = await resolvedPath(parent);
    return base === '..' ? dirname(above) : base === '.' ? above : join(above, base);
  }
}

const within = (inner: string, outer: string) => inner === outer || inner.startsWith(outer.endsWith(sep) ? outer : outer + sep);

/**
 * Refuses an output that is, contains, or is inside the input: replacing it would
 * destroy the input. Each path is taken both as the kernel resolves it and after
 * path.resolve (which drops `link/..` before following `link`): some files are reached
 * by the one and some by the other (join() is lexical), so neither may overlap.
 */
async function checkApart(input: string, output: string): Promise<void> {
  const inputs = new Set([await resolvedPath(input), await resolvedPath(resolve(input))]);
  const outputs = new Set<string>();
  for (const out of [output, resolve(output)]) {
    // the output itself if it exists (a link to the input is the input), and the name in its folder (what a rename replaces)
    outputs.add(await resolvedPath(out));
    outputs.add(join(await resolvedPath(dirname(out)), basename(out)));
  }
  for (const i of inputs) {
    for (const o of outputs) {
      if (!within(o, i) && !within(i, o)) continue;
      const how = o === i ? 'is' : within(o, i) ? 'is inside' : 'contains';
      throw new BnbError(
        'E_ARGUMENT',
        `output = ${show(output)} ${how} the input ${show(input)}${o === resolve(output) ? '' : ` (${show(o)} after following symbolic links)`}: choose an output outside it`,
      );
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
    if (await exists(parent))
      throw Object.assign(new Error(`ENOENT: ${basename(parent)} is a symbolic link to nothing, mkdir`), { code: 'ENOENT' });
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
  private constructor(
    readonly output: string,
    readonly dir: string | null,
    readonly force: boolean,
  ) {}

  /** Refuses an existing output unless `force`, and an output that overlaps the input. */
  static async prepare(input: string, output: string, folder: boolean, force: boolean): Promise<Target> {
    if (typeof output !== 'string' || output.length === 0)
      throw new BnbError('E_ARGUMENT', `output = ${show(output)} is not accepted: expected a path`);
    await checkApart(input, output);
    try {
      await recoverOutput(output); // a run killed while replacing it: its old output comes back first
    } catch (e) {
      throw outputError(e, output);
    }
    if ((await exists(output)) && !force) {
      throw new BnbError('E_EXISTS', `output = ${show(output)} exists: pass force (--force) to replace it`);
    }
    const last = basename(output);
    if (last === '.' || last === '..') {
      throw new BnbError(
        'E_IO',
        `cannot write output = ${show(output)}: a path ending in ${show(last)} cannot be renamed or replaced (the system answers EBUSY): name the folder itself, as ${show(resolve(output))}`,
      );
    }
    try {
      await makeParents(output);
      if (!folder) return new Target(output, null, force);
      const tmp = await newTemporary(output);
      try {
        await mkdir(tmp);
      } catch (e) {
        dropTemporary(tmp);
        throw e;
      }
      return new Target(output, tmp, force);
    } catch (e) {
      throw outputError(e, output);
    }
  }

  /** The sink of the output's tensors (shards in the folder, or the single file), to be planned. */
  sink(maxShardSize: number): ShardedSink {
    return createSink(this.dir === null ? { file: this.output } : { dir: this.dir }, {
      output: this.output,
      maxShardSize,
      force: this.force,
    });
  }

  /** The folder's own files: config.json (if any) and the input folder's companions. */
  async complete(input: string, config: Map<string, PyJson> | null): Promise<void> {
    if (this.dir === null) return;
    await copyCompanions(input, this.dir, this.output); // read errors name the input's file, write errors the output
    try {
      if (config) await writeConfig(this.dir, config);
    } catch (e) {
      throw outputError(e, this.output);
    }
  }

  /**
   * Moves the finished folder into place (src/io/swap.ts): at every moment `output` is
   * either the old output or the new one, complete, even if the process dies meanwhile.
   */
  async commit(): Promise<void> {
    const tmp = this.dir;
    if (tmp === null) return;
    let old: string | null;
    try {
      old = swapIntoPlace(tmp, this.output, this.force);
    } catch (e) {
      throw outputError(e, this.output);
    }
    if (old !== null) {
      // the new output is in place: the old one may go (interrupted, the CLI removes it)
      trackTemporary(old);
      await rm(old, { recursive: true, force: true }).catch(() => {}); // else recoverOutput removes it later
      untrackTemporary(old);
    }
    dropTemporary(tmp);
  }

  /** Removes whatever was written. */
  async abort(): Promise<void> {
    if (this.dir === null) return;
    await rm(this.dir, { recursive: true, force: true }).catch(() => {});
    dropTemporary(this.dir);
  }
}

/**
 * Copies the files a model folder carries besides its weights and config (tokenizer,
 * generation config, ...) into `to`, as regular files with the same bytes. Symbolic
 * links are followed, as in a Hugging Face cache snapshot whose files all link into
 * ../../blobs. Sub-folders are not copied; anything else that is not a regular file (a
 * FIFO, a device, a link to nothing) is E_IO naming it, rather than waited on or lost.
 */
export async function copyCompanions(from: string, to: string, output: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(from);
  } catch (e) {
    throw readError(e, from, 'list');
  }
  for (const name of names) {
    if (name === 'config.json' || name.endsWith('.safetensors') || name.endsWith('.safetensors.index.json')) continue;
    const st = await stat(join(from, name)).catch(() => null);
    if (st?.isDirectory()) continue;
    await copyRegularFile(join(from, name), join(to, name), output);
  }
}
