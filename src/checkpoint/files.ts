// Where a checkpoint conversion reads and writes: a single .safetensors file, or a
// Hugging Face folder (config.json, sharded or single weights, tokenizer files).
import { copyFile, mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BnbError, show } from '../errors.js';
import { removeStaleTemporaries, temporaryName, trackTemporary, untrackTemporary } from '../io/temp.js';

export interface Target {
  /** the folder being written (a temporary name until commit), or null for a single file */
  dir: string | null;
  /** the .safetensors file to write */
  weights: string;
  /** moves the finished folder into place (no-op for a single file) */
  commit(): Promise<void>;
  /** removes whatever was written */
  abort(): Promise<void>;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

export async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    throw new BnbError('E_IO', `input = ${show(path)} does not exist: expected a .safetensors file or a model folder`);
  }
}

/** Real config.json files are a few KB; a larger one is not read into memory. */
export const MAX_CONFIG_BYTES = 16 << 20;

/** The folder's config.json (a JSON object), or null. */
export async function readConfig(dir: string): Promise<Record<string, unknown> | null> {
  const path = join(dir, 'config.json');
  let config: unknown;
  try {
    const size = (await stat(path)).size;
    if (size > MAX_CONFIG_BYTES) throw new BnbError('E_CKPT_FORMAT', `${path} has ${size} bytes: expected a config.json of at most ${MAX_CONFIG_BYTES}`);
    config = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    if (e instanceof BnbError) throw e;
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new BnbError('E_IO', `${path} is not readable JSON: ${(e as Error).message}`);
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new BnbError('E_CKPT_FORMAT', `${path} holds ${JSON.stringify(config)?.slice(0, 40)}: expected a JSON object`);
  }
  return config as Record<string, unknown>;
}

/**
 * Prepares the output: for a folder input a temporary folder beside `output`,
 * renamed into place by commit(); for a file input the file itself (its writer
 * uses a temporary name). Refuses an existing output unless `force`. A replaced
 * folder is first moved aside, so that at every moment `output` is either the old
 * output or the new one, complete.
 */
export async function prepareTarget(output: string, folder: boolean, force: boolean): Promise<Target> {
  if ((await exists(output)) && !force) {
    throw new BnbError('E_EXISTS', `output = ${show(output)} exists: pass force (--force) to replace it`);
  }
  if (!folder) {
    return { dir: null, weights: output, commit: async () => {}, abort: async () => {} };
  }
  await removeStaleTemporaries(output);
  const tmp = temporaryName(output);
  await mkdir(tmp, { recursive: true });
  trackTemporary(tmp);
  return {
    dir: tmp,
    weights: join(tmp, 'model.safetensors'),
    async commit() {
      if (await exists(output)) {
        if (!force) throw new BnbError('E_EXISTS', `output = ${show(output)} appeared while converting: pass force (--force) to replace it`);
        const old = temporaryName(output);
        await rename(output, old);
        trackTemporary(old);
        await rename(tmp, output);
        untrackTemporary(tmp);
        await rm(old, { recursive: true, force: true });
        untrackTemporary(old);
        return;
      }
      await rename(tmp, output);
      untrackTemporary(tmp);
    },
    async abort() {
      await rm(tmp, { recursive: true, force: true });
      untrackTemporary(tmp);
    },
  };
}

/** Copies the files a model folder carries besides its weights and config (tokenizer, generation config, ...). */
export async function copyCompanions(from: string, to: string): Promise<void> {
  for (const f of await readdir(from, { withFileTypes: true })) {
    if (!f.isFile() || f.name === 'config.json' || f.name.endsWith('.safetensors') || f.name.endsWith('.safetensors.index.json')) continue;
    await copyFile(join(from, f.name), join(to, f.name));
  }
}

/** Writes config.json the way transformers does (2-space indent, sorted keys). */
export async function writeConfig(dir: string, config: Record<string, unknown>): Promise<void> {
  const sorted = (v: unknown): unknown =>
    Array.isArray(v) ? v.map(sorted)
      : v !== null && typeof v === 'object'
        ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sorted((v as Record<string, unknown>)[k])]))
        : v;
  await writeFile(join(dir, 'config.json'), `${JSON.stringify(sorted(config), null, 2)}\n`);
}
