// The op registry, in the spirit of bitsandbytes' torch.library ops and
// register_kernel(op, device): each op is declared once (defineOp, in its file under
// src/ops/), each backend registers the kernels it has, and a call dispatches on the
// device of its tensors. The dispatcher runs the op's check before any kernel and
// hands the kernel the checked, normalised arguments, so no backend can skip it.
import { BnbError, fail, show } from '../errors.js';
import { guard, isPlainObject, readOptions } from '../args.js';
import { DeviceType, commonDevice, deviceType, forcedBackend } from '../devices.js';
import { stateTensors } from './state.js';

/**
 * What an option is: a tensor that decides the device with the inputs ('tensor'), a
 * tensor every backend reads on the host ('host tensor': a code table), or a value.
 */
export type AttrKind = 'tensor' | 'host tensor' | 'value';

/** An op's results by name, with their type: `outputs<[Tensor, QuantState]>('packed', 'state')`. */
export interface Outputs<R> {
  readonly names: readonly string[];
  /** type only */
  readonly type?: R;
}

export function outputs<R>(...names: string[]): Outputs<R> {
  return { names };
}

/**
 * An op's declaration. Its arguments are the `inputs` (tensors), then a QuantState
 * where `state` says so, then the options object where it has `attrs`.
 */
export interface OpSpec<N extends string = string, A extends unknown[] = never[], C = unknown, R = unknown> {
  readonly name: N;
  /** the leading tensor arguments by name: named in messages and device errors; a host adapter uploads them */
  readonly inputs: readonly string[];
  /** a QuantState follows the inputs (the dequantize ops take its fields as an object too): its statistics decide the device as well */
  readonly state?: boolean;
  /** the options (the last argument), each name with what it is; any other name is E_ARGUMENT */
  readonly attrs?: Readonly<Record<string, AttrKind>>;
  /**
   * The shared argument rules: the op's arguments (the options as a copy, each name read
   * once) checked and normalised. Every kernel receives this, on every backend.
   */
  readonly check: (...args: A) => C;
  /** what it returns */
  readonly outputs: Outputs<R>;
  /**
   * The output rule. 'new': the kernel returns new tensors. 'out': the checked
   * arguments' `out`, where the caller gave one, receives the result (the kernel
   * writes it), and the op returns the caller's own object.
   */
  readonly output: 'new' | 'out';
}

/** A declared op: its declaration and the typed call that dispatches it. */
export interface Op<N extends string = string, A extends unknown[] = never[], C = unknown, R = unknown> extends OpSpec<N, A, C, R> {
  /** Runs the op on the kernel for the device of its tensors, after its check. */
  call(...args: A): R;
}

/** What an op's check returns: its kernels' argument. */
export type Checked<O> = O extends Op<string, any, infer C, any> ? C : never;
/** A backend's kernel: the checked arguments in, the op's result out. */
export type KernelOf<O> = O extends Op<string, any, infer C, infer R> ? (checked: C) => R : never;
/** A kernel a user registers (registerKernel): the op's own arguments, after the check has accepted them. */
export type UserKernelOf<O> = [O] extends [Op<string, infer A, any, infer R>] ? (...args: A) => R : never;

/** What a backend is: the device type of its tensors, and how it takes host tensors when BNBJS_BACKEND forces it. */
export interface BackendInfo {
  /** 'cpu' for the WebAssembly backend */
  readonly device: DeviceType;
  /**
   * Where BNBJS_BACKEND forces this backend, host tensors run on its kernels, each
   * wrapped by this adapter (CUDA: checked host arguments copied in, results copied back).
   */
  readonly hostAdapter?: (op: OpSpec, kernel: (checked: unknown) => unknown) => (checked: unknown) => unknown;
  /** added to E_DEVICE when this backend has no kernel for an op */
  readonly hint?: string;
}

type AnyOp = Op<string, any[], any, any>;
type Entry = { backend: string; kernel: (checked: unknown) => unknown } | { backend: null; kernel: (...args: unknown[]) => unknown };

const ops = new Map<string, AnyOp>();
const backends = new Map<string, BackendInfo>();
/** the kernels each backend has registered, by op */
const byBackend = new Map<string, Map<string, (checked: unknown) => unknown>>();
/** what runs for each op on each device type: a backend's kernel, or a user's */
const byDevice = new Map<string, Map<DeviceType, Entry>>();
const hostKernels = new Map<string, { kernel: (checked: unknown) => unknown; host: (checked: unknown) => unknown }>();

/** Declares an op: the registry learns it, and the result's call() dispatches it. */
export function defineOp<N extends string, A extends unknown[], C, R>(spec: OpSpec<N, A, C, R>): Op<N, A, C, R> {
  if (ops.has(spec.name)) throw new BnbError('E_ARGUMENT', `op = ${show(spec.name)} is declared twice: op names are unique`);
  const op: Op<N, A, C, R> = { ...spec, call: (...args: A) => dispatch(op as AnyOp, args) as R };
  ops.set(spec.name, op as AnyOp);
  byDevice.set(spec.name, new Map());
  return op;
}

/** The declared ops' names, in declaration order. */
export function opNames(): string[] {
  return [...ops.keys()];
}

/** Registers a backend (before its kernels). */
export function registerBackend(name: string, info: BackendInfo): void {
  backends.set(name, info);
  if (!byBackend.has(name)) byBackend.set(name, new Map());
}

/** Registers a backend's kernel for an op: it runs the op for tensors on the backend's device type. */
export function registerOpKernel<O extends AnyOp>(op: O, backend: string, kernel: KernelOf<O>): void {
  const info = backends.get(backend);
  if (!info) throw new BnbError('E_ARGUMENT', `backend = ${show(backend)} is not registered (registerBackend first)`);
  if (ops.get(op.name) !== op) throw new BnbError('E_ARGUMENT', `op = ${show(op.name)} is not a declared op (defineOp)`);
  const k = kernel as (checked: unknown) => unknown;
  byBackend.get(backend)!.set(op.name, k);
  byDevice.get(op.name)!.set(info.device, { backend, kernel: k });
}

/**
 * A user's kernel for an op on a device type (bitsandbytes' register_kernel): it
 * replaces what ran there, and receives the op's arguments once the op's check has
 * accepted them. Returns a function that restores the previous kernel.
 */
export function registerUserKernel(op: unknown, deviceType: unknown, kernel: unknown): () => void {
  const table = typeof op === 'string' ? byDevice.get(op) : undefined;
  if (!table) throw new BnbError('E_ARGUMENT', `op = ${show(op)} is not accepted: expected one of ${opNames().join(', ')}`);
  if (typeof deviceType !== 'string' || !/^[a-z][a-z0-9-]*$/.test(deviceType))
    fail('E_ARGUMENT', 'deviceType', deviceType, "a device type such as 'cpu', 'cuda' or 'hpu'");
  if (typeof kernel !== 'function') fail('E_ARGUMENT', 'kernel', kernel, 'a function');
  const previous = table.get(deviceType);
  table.set(deviceType, { backend: null, kernel: kernel as (...args: unknown[]) => unknown });
  return () => (previous ? table.set(deviceType, previous) : table.delete(deviceType));
}

/** The tensors of a call that decide its device: the inputs, a state's statistics, the tensor options. */
function deviceTensors(op: AnyOp, args: readonly unknown[]): Record<string, unknown> {
  const tensors: Record<string, unknown> = {};
  op.inputs.forEach((name, i) => (tensors[name] = args[i]));
  if (op.state) Object.assign(tensors, stateTensors(args[op.inputs.length]));
  if (op.attrs) {
    const opts = args[args.length - 1] as Record<string, unknown>;
    for (const [k, kind] of Object.entries(op.attrs)) if (kind === 'tensor') tensors[k] = guard(`${op.name} option ${k}`, () => opts[k]);
  }
  return tensors;
}

/**
 * The forced backend (BNBJS_BACKEND, setForcedBackend) where it takes host tensors (it
 * has a host adapter); null where it does not, or none is forced. A forced backend
 * this entry point has not loaded is E_DEVICE rather than silently the host's.
 */
function hostBackend(op: AnyOp): string | null {
  const f = forcedBackend();
  if (f === null) return null;
  const b = backends.get(f);
  if (!b)
    throw new BnbError('E_DEVICE', `${op.name} cannot run: BNBJS_BACKEND forces the ${f} backend, which this entry point does not load`);
  return b.hostAdapter ? f : null;
}

/** What runs a call on `device`: the forced backend for host tensors where it takes them, else the device's kernel. */
function resolve(op: AnyOp, device: string): Entry {
  const type = deviceType(device);
  const forced = type === 'cpu' ? hostBackend(op) : null;
  if (forced !== null) {
    const info = backends.get(forced)!;
    const k = byBackend.get(forced)!.get(op.name);
    if (!k) throw new BnbError('E_DEVICE', `${op.name} has no kernel for the forced ${forced} backend (BNBJS_BACKEND)${info.hint ?? ''}`);
    // the adapted kernel, made once per op and kernel
    const key = `${forced}/${op.name}`;
    let h = hostKernels.get(key);
    if (h?.kernel !== k) hostKernels.set(key, (h = { kernel: k, host: info.hostAdapter!(op, k) }));
    return { backend: forced, kernel: h.host };
  }
  const e = byDevice.get(op.name)!.get(type);
  if (!e) {
    const hint = [...backends.values()].find((b) => b.device === type)?.hint ?? '';
    throw new BnbError('E_DEVICE', `${op.name} has no kernel for ${device}${hint}`);
  }
  return e;
}

/** The backend whose kernel a call with these tensors would run (null: a user's kernel). */
export function backendFor(op: AnyOp, tensors: Record<string, unknown>): string | null {
  return resolve(op, commonDevice(tensors as Record<string, { device?: string }>)).backend;
}

function dispatch(op: AnyOp, args: unknown[]): unknown {
  if (op.attrs && !isPlainObject(`${op.name} options`, args[args.length - 1])) {
    fail('E_ARGUMENT', `${op.name} options`, args[args.length - 1], 'an options object');
  }
  const entry = resolve(op, commonDevice(deviceTensors(op, args) as Record<string, { device?: string }>));
  // the options as a copy, each name read once (unknown names refused): the check and the kernel see only the copy
  const opts = op.attrs ? readOptions(op.name, args[args.length - 1], Object.keys(op.attrs)) : null;
  const checked: unknown = op.check(...(opts ? [...args.slice(0, -1), opts] : args));
  if (entry.backend === null) return entry.kernel(...args);
  const result = entry.kernel(checked);
  return op.output === 'out' && opts?.out !== undefined ? opts.out : result;
}
