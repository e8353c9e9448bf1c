// Model folders for tests of what a conversion reads and writes: copies of the tiny
// models in ../shared/models, the same split into shards with an index, and a snapshot
// of every entry below a folder (bytes, link targets, kinds) to prove nothing changed.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseSafetensors, serializeSafetensors } from '../../src/index.js';
import { SHARED } from './golden.js';

export const MODELS = `${SHARED}/models`;

/** A writable copy of ../shared/models/`name` at `dir`. */
export function copyModel(name: string, dir: string): string {
  mkdirSync(dir, { recursive: true });
  for (const f of readdirSync(`${MODELS}/${name}`)) writeFileSync(join(dir, f), readFileSync(`${MODELS}/${name}/${f}`));
  return dir;
}

/**
 * The files of a sharded copy of ../shared/models/`name`: its config and companions,
 * `model-0000i-of-0000N.safetensors` holding its tensors in turn, and the index's
 * content (`weight_map` every tensor to its shard), which the caller may edit.
 */
export function shardedFiles(
  name: string,
  shards: number,
): { files: Map<string, Buffer>; index: { metadata: { total_size: number }; weight_map: Record<string, string> } } {
  const files = new Map<string, Buffer>();
  for (const f of readdirSync(`${MODELS}/${name}`)) if (!f.endsWith('.safetensors')) files.set(f, readFileSync(`${MODELS}/${name}/${f}`));
  const { tensors, metadata } = parseSafetensors(readFileSync(`${MODELS}/${name}/model.safetensors`));
  const names = Object.keys(tensors);
  const weightMap: Record<string, string> = {};
  let total = 0;
  for (let s = 0; s < shards; s++) {
    const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    const part = names.filter((_, i) => i % shards === s);
    for (const n of part) {
      weightMap[n] = file;
      total += tensors[n]!.data.byteLength;
    }
    files.set(file, Buffer.from(serializeSafetensors(Object.fromEntries(part.map((n) => [n, tensors[n]!])), { metadata })));
  }
  return { files, index: { metadata: { total_size: total }, weight_map: weightMap } };
}

/** Writes shardedFiles(name, shards) (with `edit` applied to the index) into `dir`. */
export function shardedModel(name: string, dir: string, shards: number, edit?: (weightMap: Record<string, string>) => void): string {
  const { files, index } = shardedFiles(name, shards);
  edit?.(index.weight_map);
  mkdirSync(dir, { recursive: true });
  for (const [f, data] of files) writeFileSync(join(dir, f), data);
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify(index, null, 2));
  return dir;
}

export type Entry =
  { kind: 'file'; size: number; sha256: string } | { kind: 'link'; target: string } | { kind: 'folder' } | { kind: string };

export const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

/**
 * Every entry below `dir` (links not followed): files with their size and SHA-256 (a
 * digest compares fast; comparing megabytes of Buffers element by element does not),
 * links with their targets.
 */
export function snapshot(dir: string): Record<string, Entry> {
  const out: Record<string, Entry> = {};
  const walk = (rel: string) => {
    for (const name of readdirSync(join(dir, rel)).sort()) {
      const r = rel ? join(rel, name) : name,
        p = join(dir, r),
        st = lstatSync(p);
      if (st.isSymbolicLink()) out[r] = { kind: 'link', target: readlinkSync(p) };
      else if (st.isDirectory()) {
        out[r] = { kind: 'folder' };
        walk(r);
      } else if (st.isFile()) {
        const data = readFileSync(p);
        out[r] = { kind: 'file', size: data.length, sha256: sha256(data) };
      } else out[r] = { kind: st.isFIFO() ? 'fifo' : 'other' };
    }
  };
  walk('');
  return out;
}

/** Makes a FIFO at `path` (mkfifo(1)); null, or why it could not. */
export function mkfifo(path: string): string | null {
  const r = spawnSync('mkfifo', [path], { encoding: 'utf8' });
  return r.status === 0 ? null : `mkfifo failed: ${r.error?.message ?? r.stderr.trim()}`;
}

/** Whether this platform can make FIFOs here (mkfifo on a scratch path), with the reason if not. */
export function fifoSupport(scratch: string): string | null {
  if (process.platform === 'win32') return 'no FIFOs on Windows';
  return mkfifo(scratch);
}
