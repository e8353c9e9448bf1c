// The exported functions of a WebAssembly binary with their parameter and result
// types, read from its type, import, function and export sections (the JS API does
// not reflect a function's types; `.length` gives only the parameter count).

const VALTYPE: Record<number, string> = { 0x7f: 'i32', 0x7e: 'i64', 0x7d: 'f32', 0x7c: 'f64', 0x7b: 'v128' };

export interface WasmSignature {
  params: string[];
  results: string[];
}

export function wasmSignatures(bytes: Uint8Array): Map<string, WasmSignature> {
  let at = 8; // magic and version
  const u32 = (): number => {
    let v = 0;
    for (let shift = 0; ; shift += 7) {
      if (at >= bytes.length) throw new Error('wasmSignatures: the binary ends inside a number');
      const b = bytes[at++]!;
      v += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return v;
    }
  };
  const vec = <T>(item: () => T): T[] => Array.from({ length: u32() }, item);
  const name = (): string => {
    const length = u32();
    return new TextDecoder().decode(bytes.subarray(at, (at += length)));
  };
  const valtype = (): string => VALTYPE[bytes[at++]!] ?? 'other';
  const limits = (): void => {
    const flags = bytes[at++]!;
    u32();
    if (flags & 1) u32();
  };

  let types: WasmSignature[] = [];
  const funcs: number[] = []; // the type of every function, imported ones first
  const exports = new Map<string, number>();
  while (at < bytes.length) {
    const id = bytes[at++]!;
    const size = u32();
    const end = at + size;
    if (id === 1) {
      types = vec(() => {
        at++; // 0x60, a function type
        return { params: vec(valtype), results: vec(valtype) };
      });
    } else if (id === 2) {
      vec(() => {
        name();
        name();
        const kind = bytes[at++]!;
        if (kind === 0) funcs.push(u32());
        else if (kind === 1) (at++, limits());
        else if (kind === 2) limits();
        else at += 2; // a global: its type and mutability
      });
    } else if (id === 3) {
      funcs.push(...vec(u32));
    } else if (id === 7) {
      vec(() => {
        const n = name();
        const kind = bytes[at++]!;
        const index = u32();
        if (kind === 0) exports.set(n, index);
      });
    }
    at = end;
  }
  return new Map([...exports].map(([n, index]) => [n, types[funcs[index]!]!]));
}
