// A safetensors file assembled in memory as a TensorSink: the same plan, checks and
// layout as the file sink (./plan.ts), so bytes() is what the file sink would have
// written. For browsers, Workers, tests, or a file to be uploaded rather than saved.
import { BnbError, show } from '../../errors.js';
import type { PlannedTensor, TensorSink } from '../sink.js';
import { checkMetadata } from './encode.js';
import type { StoredTensor } from './tensors.js';
import { Layout, checkComplete, checkPlan, checkWrite, finalHeader, layOut } from './plan.js';

const WHERE = 'the in-memory output';

function allocate(size: number, what: string): Uint8Array {
  try {
    return new Uint8Array(size);
  } catch (e) {
    throw new BnbError(
      'E_ST_SIZE',
      `${what}: ${size} bytes are more than one Uint8Array holds in this runtime (${(e as Error).message}): write to a file instead`,
    );
  }
}

export class MemorySink implements TensorSink {
  #state: 'new' | 'open' | 'done' | 'aborted' = 'new';
  #layout!: Layout;
  #metadata: [string, string][] | null = null;
  /** each tensor's little-endian bytes, copied when written */
  readonly #data = new Map<string, Uint8Array>();
  #bytes: Uint8Array | null = null;

  async plan(plan: PlannedTensor[], metadata: Record<string, string> | null): Promise<void> {
    if (this.#state !== 'new') throw new BnbError('E_ARGUMENT', `plan(): ${WHERE} has its plan already`);
    const meta = checkMetadata(metadata);
    this.#layout = layOut(checkPlan(plan), meta);
    this.#metadata = meta;
    this.#state = 'open';
  }

  #checkOpen(what: string): void {
    if (this.#state !== 'open') {
      throw new BnbError(
        'E_ARGUMENT',
        `${what}: ${WHERE} ${this.#state === 'new' ? 'has no plan yet: call plan() first' : this.#state === 'done' ? 'is finished' : 'is aborted'}`,
      );
    }
  }

  async write(name: string, given: StoredTensor): Promise<void> {
    this.#checkOpen(`write(${show(name)})`);
    const slot = typeof name === 'string' ? this.#layout.slots.get(name) : undefined;
    if (slot === undefined) throw new BnbError('E_ST_MISSING', `write(${show(name)}): the tensor is not in the plan of ${WHERE}`);
    if (slot.written) throw new BnbError('E_ARGUMENT', `write(${show(name)}): the tensor has already been written`);
    const { bytes, shape } = checkWrite(slot, name, given);
    const copy = allocate(bytes.byteLength, `write(${JSON.stringify(name)})`);
    copy.set(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    if (slot.maxElements !== null) slot.shape = shape;
    slot.written = true;
    this.#data.set(name, copy);
  }

  async finish(): Promise<void> {
    this.#checkOpen('finish()');
    try {
      checkComplete(this.#layout, WHERE);
      // the maxElements tensors after the fixed ones, in reference order, as the file sink puts them
      let end = this.#layout.fixedEnd;
      for (const s of this.#layout.variable) {
        s.start = end;
        end += this.#data.get(s.name)!.byteLength;
        s.end = end;
      }
      const header = finalHeader(this.#layout, this.#metadata);
      const out = allocate(header.byteLength + end, 'finish()');
      out.set(header);
      for (const s of [...this.#layout.fixed, ...this.#layout.variable]) out.set(this.#data.get(s.name)!, header.byteLength + s.start);
      this.#bytes = out;
      this.#state = 'done';
    } catch (e) {
      this.#state = 'aborted';
      throw e;
    } finally {
      this.#data.clear();
    }
  }

  async abort(): Promise<void> {
    if (this.#state === 'done') return;
    this.#state = 'aborted';
    this.#data.clear();
  }

  /** The finished file's bytes. */
  bytes(): Uint8Array {
    if (this.#bytes === null) throw new BnbError('E_ARGUMENT', `bytes(): ${WHERE} is not finished`);
    return this.#bytes;
  }
}
