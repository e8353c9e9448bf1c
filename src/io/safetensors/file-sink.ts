// A .safetensors file as a TensorSink, written with memory bounded by one tensor and
// never left partial: a temporary name in the same folder, fsync, then a rename (or,
// without force, a link that fails if the path appeared meanwhile).
import { link, lstat, open, rename, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { BnbError, show } from '../../errors.js';
import { dropTemporary, newTemporary } from '../temp.js';
import { recoverOutput } from '../swap.js';
import type { PlannedTensor, TensorSink } from '../sink.js';
import { PreparedEntry, checkMetadata, checkWriteOptions } from './encode.js';
import type { StoredTensor } from './tensors.js';
import { Layout, checkComplete, checkPlan, checkWrite, finalHeader, layOut } from './plan.js';
import { checkPath, errno, ioError, readFully, writeFully } from './file-io.js';

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (e) {
    if (errno(e) === 'ENOENT') return false;
    throw ioError(e, `cannot check ${path}`);
  }
}

function existsError(path: string): BnbError {
  return new BnbError('E_EXISTS', `path = ${show(path)} exists: pass force: true to replace it`);
}

/** A temporary file in the same folder as `path`, created exclusively. */
async function createTemp(path: string, force: boolean): Promise<{ tmp: string; fh: FileHandle }> {
  try {
    await recoverOutput(path); // a run killed while replacing it: its old output comes back first
  } catch (e) {
    throw ioError(e, `cannot check ${path}`);
  }
  if (!force && (await exists(path))) throw existsError(path);
  const tmp = await newTemporary(path);
  try {
    const fh = await open(tmp, 'wx+'); // read too: finish() may move data within the file
    return { tmp, fh };
  } catch (e) {
    dropTemporary(tmp);
    throw ioError(e, `cannot create ${tmp}`);
  }
}

async function removeQuietly(tmp: string): Promise<void> {
  await unlink(tmp).catch(() => {});
  dropTemporary(tmp);
}

/** Moves the finished temporary file to `path`: rename, or without force a link that fails if `path` exists. */
async function commit(tmp: string, path: string, force: boolean): Promise<void> {
  try {
    if (force) {
      await rename(tmp, path); // atomic: `path` holds the old file or the new one, never neither
      dropTemporary(tmp);
    } else {
      try {
        await link(tmp, path); // atomic: fails with EEXIST rather than replacing
        await removeQuietly(tmp);
      } catch (e) {
        if (errno(e) === 'EEXIST') throw existsError(path);
        // file systems without hard links: check, then rename
        if (await exists(path)) throw existsError(path);
        await rename(tmp, path);
        dropTemporary(tmp);
      }
    }
  } catch (e) {
    await removeQuietly(tmp);
    throw ioError(e, `cannot write ${path}`);
  }
  // make the rename durable; folders cannot be opened for this everywhere (Windows)
  try {
    const d = await open(dirname(path), 'r');
    await d.sync().catch(() => {});
    await d.close();
  } catch {
    // best effort
  }
}

/** Writes what prepareSafetensors laid out: byte for byte serializeSafetensors' output. */
export async function writePreparedFile(
  path: string,
  prepared: { header: Uint8Array; entries: PreparedEntry[]; dataLength: number },
  force: boolean,
): Promise<void> {
  const { tmp, fh } = await createTemp(path, force);
  try {
    try {
      await writeFully(fh, prepared.header, 0);
      let p = prepared.header.byteLength;
      for (const e of prepared.entries) {
        await writeFully(fh, e.bytes, p);
        p += e.bytes.byteLength;
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch (e) {
    await removeQuietly(tmp);
    throw ioError(e, `cannot write ${tmp}`);
  }
  await commit(tmp, path, force);
}

/** The streaming writer createSafetensorsWriter returns (a TensorSink already planned). */
export interface SafetensorsFileWriter {
  write(name: string, t: StoredTensor): Promise<void>;
  finish(): Promise<void>;
  abort(): Promise<void>;
}

/**
 * One .safetensors file, written tensor by tensor: plan() reserves the header and
 * creates the temporary file; tensors then come in any order; finish() writes the
 * header into the space reserved for it (numbers at their widest, padded with spaces),
 * fsyncs and renames the temporary file to `path`. abort() removes the temporary file.
 */
export class SafetensorsFileSink implements TensorSink, SafetensorsFileWriter {
  #state: 'new' | 'open' | 'finishing' | 'done' | 'aborted' = 'new';
  #failure: unknown = null;
  #layout!: Layout;
  #metadata: [string, string][] | null = null;
  #tmp = '';
  #fh: FileHandle | null = null;
  /** variable-length tensors in the order written (they are appended after the fixed ones) */
  readonly #varWritten: Layout['variable'] = [];
  #varEnd = 0;
  readonly #pending = new Set<Promise<void>>();

  /** `force`: replace a file at `path` (else E_EXISTS, checked at plan() and again at the final link) */
  constructor(
    readonly path: string,
    readonly force: boolean,
  ) {}

  get #dataStart(): number {
    return 8 + this.#layout.headerSize;
  }

  async plan(plan: PlannedTensor[], metadata: Record<string, string> | null): Promise<void> {
    if (this.#state !== 'new') throw new BnbError('E_ARGUMENT', `plan(): the writer for ${this.path} has its plan already`);
    const meta = checkMetadata(metadata);
    const layout = layOut(checkPlan(plan), meta);
    const { tmp, fh } = await createTemp(this.path, this.force);
    this.#layout = layout;
    this.#metadata = meta;
    this.#varEnd = layout.fixedEnd;
    this.#tmp = tmp;
    this.#fh = fh;
    this.#state = 'open';
  }

  #checkOpen(what: string): void {
    if (this.#state === 'new') throw new BnbError('E_ARGUMENT', `${what}: the writer for ${this.path} has no plan yet: call plan() first`);
    if (this.#state !== 'open') {
      throw new BnbError(
        'E_ARGUMENT',
        `${what}: the writer for ${this.path} is ${this.#state === 'finishing' ? 'finishing' : this.#state === 'done' ? 'finished' : 'aborted'}`,
      );
    }
  }

  async write(name: string, given: StoredTensor): Promise<void> {
    this.#checkOpen(`write(${show(name)})`);
    const slot = typeof name === 'string' ? this.#layout.slots.get(name) : undefined;
    if (slot === undefined) {
      throw new BnbError(
        'E_ST_MISSING',
        `write(${show(name)}): the tensor is not in the writer's plan for ${this.path} (declare every tensor in createSafetensorsWriter's plan)`,
      );
    }
    if (slot.written) throw new BnbError('E_ARGUMENT', `write(${show(name)}): the tensor has already been written`);
    const { bytes, shape } = checkWrite(slot, name, given);
    if (slot.maxElements !== null) {
      slot.shape = shape;
      slot.start = this.#varEnd;
      slot.end = slot.start + bytes.byteLength;
      this.#varEnd = slot.end;
      this.#varWritten.push(slot);
    }
    slot.written = true;
    const fh = this.#fh!;
    const p = writeFully(fh, bytes, this.#dataStart + slot.start);
    this.#pending.add(p);
    try {
      await p;
    } catch (e) {
      const err = ioError(e, `cannot write ${this.#tmp}`);
      this.#failure ??= err;
      await this.#discard();
      throw err;
    } finally {
      this.#pending.delete(p);
    }
  }

  /** Puts the variable-length tensors in the reference order (dtype, name) whatever the order they came in. */
  async #orderVariable(fh: FileHandle): Promise<void> {
    const inOrder = this.#layout.variable;
    if (inOrder.every((s, i) => this.#varWritten[i] === s)) return;
    const base = this.#dataStart + this.#layout.fixedEnd;
    const total = this.#varEnd - this.#layout.fixedEnd;
    const buf = new Uint8Array(Math.max(1, Math.min(total, 8 << 20)));
    const copy = async (from: number, to: number, length: number): Promise<void> => {
      for (let done = 0; done < length; done += buf.length) {
        const n = Math.min(buf.length, length - done);
        await readFully(fh, buf.subarray(0, n), from + done, this.#tmp);
        await writeFully(fh, buf.subarray(0, n), to + done);
      }
    };
    // copy each tensor, in order, past the current end; then move that block back
    let offset = this.#layout.fixedEnd;
    const placed = inOrder.map((s) => {
      const start = offset;
      offset += s.end - s.start;
      return start;
    });
    for (let i = 0; i < inOrder.length; i++) {
      const s = inOrder[i]!;
      await copy(this.#dataStart + s.start, base + total + (placed[i]! - this.#layout.fixedEnd), s.end - s.start);
    }
    await copy(base + total, base, total);
    await fh.truncate(base + total);
    inOrder.forEach((s, i) => {
      const len = s.end - s.start;
      s.start = placed[i]!;
      s.end = s.start + len;
    });
  }

  async finish(): Promise<void> {
    this.#checkOpen('finish()');
    this.#state = 'finishing';
    await Promise.allSettled([...this.#pending]);
    if (this.#failure !== null) throw this.#failure;
    const fh = this.#fh!;
    try {
      checkComplete(this.#layout, this.path);
      try {
        await this.#orderVariable(fh);
        await writeFully(fh, finalHeader(this.#layout, this.#metadata), 0);
        await fh.truncate(this.#dataStart + this.#varEnd);
        await fh.sync();
        this.#fh = null;
        await fh.close();
      } catch (e) {
        throw ioError(e, `cannot write ${this.#tmp}`);
      }
      await commit(this.#tmp, this.path, this.force);
      this.#state = 'done';
    } catch (e) {
      this.#failure = e;
      await this.#discard();
      throw e;
    }
  }

  async #discard(): Promise<void> {
    if (this.#state === 'done') return;
    const planned = this.#state !== 'new';
    this.#state = 'aborted';
    const fh = this.#fh;
    this.#fh = null;
    if (fh !== null) await fh.close().catch(() => {});
    if (planned) await removeQuietly(this.#tmp);
  }

  async abort(): Promise<void> {
    if (this.#state === 'done') return;
    const planned = this.#state !== 'new';
    this.#state = 'aborted';
    await Promise.allSettled([...this.#pending]);
    if (planned) await this.#discard();
  }
}

/**
 * Streaming writer with memory bounded by one tensor (a SafetensorsFileSink with its
 * plan). Every output tensor is declared up front (name, dtype, and shape, or
 * maxElements for a 1-D tensor whose length is known only later).
 *
 * Layout: the fixed-shape tensors in the reference writer's order (descending dtype,
 * then name), then the maxElements tensors in that order. With no maxElements tensor
 * the file is byte for byte serializeSafetensors' output.
 */
export async function createSafetensorsWriter(
  path: string,
  plan: PlannedTensor[],
  opts?: { metadata?: Record<string, string> | null; force?: boolean },
): Promise<SafetensorsFileWriter> {
  checkPath('path', path);
  const o = checkWriteOptions(opts);
  const sink = new SafetensorsFileSink(path, o.force);
  await sink.plan(plan, o.metadata);
  return sink;
}
