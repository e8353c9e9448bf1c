// A planned safetensors output laid out before any tensor comes: the fixed-shape
// tensors in the reference writer's order (descending dtype, then name), then the
// maxElements tensors in that order, and the header reserved at its widest. The file
// sink and the memory sink share it, so that their outputs are the same bytes.
import { BnbError, fail, show } from '../../errors.js';
import { guard, readShape } from '../../args.js';
import type { PlannedTensor } from '../sink.js';
import { SafetensorsDType, isSafetensorsDType, referenceOrder, safetensorsItemsize } from './dtypes.js';
import { MAX_HEADER_BYTES } from './header.js';
import { checkTensorCount, checkTensorName, encodeHeader, headerJson } from './encode.js';
import { StoredTensor, checkStoredTensor, littleEndianBytes } from './tensors.js';

export interface Slot {
  name: string;
  dtype: SafetensorsDType;
  /** fixed: the declared shape; variable: set when written */
  shape: number[];
  /** variable-length (declared with maxElements) */
  maxElements: number | null;
  start: number;
  end: number;
  written: boolean;
}

/** A plan, checked: each entry read once, into a Slot. */
export function checkPlan(plan: unknown): Slot[] {
  // each entry's fields read once, into plain objects
  const items = guard('plan', () => {
    if (!Array.isArray(plan)) return null;
    const n: unknown = plan.length;
    if (typeof n !== 'number' || !Number.isSafeInteger(n)) return null;
    checkTensorCount(n);
    const out: unknown[] = [];
    for (let i = 0; i < n; i++) {
      const p: unknown = plan[i];
      out.push(
        typeof p === 'object' && p !== null
          ? {
              name: (p as PlannedTensor).name,
              dtype: (p as PlannedTensor).dtype,
              shape: (p as PlannedTensor).shape,
              maxElements: (p as PlannedTensor).maxElements,
              given: p,
            }
          : p,
      );
    }
    return out;
  });
  if (items === null) fail('E_ARGUMENT', 'plan', plan, 'an array of { name, dtype, shape } or { name, dtype, maxElements }');
  const seen = new Set<string>();
  return items.map((p: unknown, i): Slot => {
    if (typeof p !== 'object' || p === null) fail('E_ARGUMENT', `plan[${i}]`, p, '{ name, dtype, shape } or { name, dtype, maxElements }');
    const q = p as { name: unknown; dtype: unknown; shape: unknown; maxElements: unknown; given: unknown };
    const name = checkTensorName(q.name);
    if (seen.has(name)) fail('E_ARGUMENT', `plan[${i}].name`, name, 'a name not declared before');
    seen.add(name);
    if (!isSafetensorsDType(q.dtype))
      fail(
        'E_ST_DTYPE',
        `plan[${i}].dtype (${JSON.stringify(name)})`,
        q.dtype,
        'one of F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL, F8_E4M3, F8_E5M2',
      );
    const dtype = q.dtype;
    const hasShape = q.shape !== undefined;
    const hasMax = q.maxElements !== undefined;
    if (hasShape === hasMax) {
      fail('E_ARGUMENT', `plan[${i}] (${JSON.stringify(name)})`, q.given, 'exactly one of shape and maxElements');
    }
    if (hasShape) {
      const shape = readShape(`plan[${i}].shape (${JSON.stringify(name)})`, q.shape, 'E_ST_SHAPE');
      const bytes = shape.reduce((a, d) => a * d, safetensorsItemsize(dtype));
      if (!Number.isSafeInteger(bytes))
        fail('E_ST_SIZE', `plan[${i}].shape (${JSON.stringify(name)})`, shape, `a tensor of at most 2^53 - 1 bytes`);
      return { name, dtype, shape, maxElements: null, start: 0, end: 0, written: false };
    }
    const m = q.maxElements;
    if (typeof m !== 'number' || !Number.isSafeInteger(m) || m < 0 || !Number.isSafeInteger(m * safetensorsItemsize(dtype))) {
      fail('E_ARGUMENT', `plan[${i}].maxElements (${JSON.stringify(name)})`, m, 'a non-negative integer');
    }
    return { name, dtype, shape: [], maxElements: m, start: 0, end: 0, written: false };
  });
}

export interface Layout {
  slots: Map<string, Slot>;
  /** fixed-shape tensors, in data order, at their offsets */
  fixed: Slot[];
  /** maxElements tensors, in the order they are placed after the fixed ones */
  variable: Slot[];
  /** where the fixed tensors end (relative to the data section) */
  fixedEnd: number;
  /** bytes reserved for the header after its 8-byte length */
  headerSize: number;
}

/**
 * Lays out checked slots: the fixed tensors get their offsets; the header is reserved
 * at its widest (fixed tensors exactly, maxElements ones with their maximum length and
 * offsets as wide as the largest possible end).
 */
export function layOut(slots: Slot[], metadata: [string, string][] | null): Layout {
  let maxEnd = 0;
  for (const s of slots) {
    maxEnd +=
      s.maxElements === null ? s.shape.reduce((a, d) => a * d, safetensorsItemsize(s.dtype)) : s.maxElements * safetensorsItemsize(s.dtype);
  }
  if (!Number.isSafeInteger(maxEnd)) fail('E_ST_SIZE', 'plan', `${slots.length} tensors`, 'at most 2^53 - 1 bytes in all');
  const fixed = slots.filter((s) => s.maxElements === null).sort(referenceOrder);
  const variable = slots.filter((s) => s.maxElements !== null).sort(referenceOrder);
  let offset = 0;
  for (const s of fixed) {
    s.start = offset;
    offset += s.shape.reduce((a, d) => a * d, safetensorsItemsize(s.dtype));
    s.end = offset;
  }
  const widest = fixed.map((s) => ({ name: s.name, dtype: s.dtype, shape: s.shape, start: s.start, end: s.end }));
  for (const s of slots) {
    if (s.maxElements !== null) widest.push({ name: s.name, dtype: s.dtype, shape: [s.maxElements], start: maxEnd, end: maxEnd });
  }
  const headerSize = encodeHeader(headerJson(metadata, widest)).byteLength - 8; // validates the size too
  if (headerSize > MAX_HEADER_BYTES)
    fail('E_ST_HEADER_TOO_LARGE', 'plan', `${slots.length} tensors`, 'a header of at most 100000000 bytes');
  return { slots: new Map(slots.map((s) => [s.name, s])), fixed, variable, fixedEnd: offset, headerSize };
}

/**
 * Checks a tensor written to `slot` against the plan (dtype, shape, size); returns its
 * little-endian bytes and shape. The caller marks the slot written and places it.
 */
export function checkWrite(slot: Slot, name: string, given: StoredTensor): { bytes: ArrayBufferView; shape: number[] } {
  const what = `write(${JSON.stringify(name)})`;
  const { dtype, t } = checkStoredTensor(`${what} t`, given);
  if (dtype !== slot.dtype) {
    throw new BnbError('E_DTYPE', `${what}: t.dtype = ${show(t.dtype)} (${dtype}) is not accepted: the plan declares ${slot.dtype}`);
  }
  const bytes = littleEndianBytes(t);
  if (slot.maxElements === null) {
    if (t.shape.length !== slot.shape.length || t.shape.some((d, i) => d !== slot.shape[i])) {
      throw new BnbError('E_SHAPE', `${what}: t.shape = ${show(t.shape)} is not accepted: the plan declares ${show(slot.shape)}`);
    }
    if (bytes.byteLength !== slot.end - slot.start) {
      throw new BnbError(
        'E_ST_SIZE',
        `${what}: ${bytes.byteLength} bytes given but the plan's ${slot.dtype} ${show(slot.shape)} needs ${slot.end - slot.start}`,
      );
    }
  } else if (t.shape.length !== 1 || t.shape[0]! > slot.maxElements) {
    throw new BnbError(
      'E_SHAPE',
      `${what}: t.shape = ${show(t.shape)} is not accepted: the plan declares a 1-D tensor of at most ${slot.maxElements} elements`,
    );
  }
  return { bytes, shape: [...t.shape] };
}

/** E_ST_INCOMPLETE where planned tensors were not written. */
export function checkComplete(layout: Layout, where: string): void {
  const missingNames = [...layout.slots.values()].filter((s) => !s.written).map((s) => JSON.stringify(s.name));
  if (missingNames.length > 0) {
    throw new BnbError(
      'E_ST_INCOMPLETE',
      `finish(): ${missingNames.length} planned tensor(s) of ${where} were not written: ${missingNames.slice(0, 5).join(', ')}${missingNames.length > 5 ? ', ...' : ''}`,
    );
  }
}

/** The final header: the tensors at their offsets, padded to the reserved size. */
export function finalHeader(layout: Layout, metadata: [string, string][] | null): Uint8Array {
  return encodeHeader(headerJson(metadata, [...layout.fixed, ...layout.variable]), layout.headerSize);
}
