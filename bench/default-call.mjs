// Issue 17, "the default call": each op's call without `out` (a fresh output) against
// the same call with `out` (an output allocated and written once before), on outputs of
// 100 MB+, 4096x14336. Calls alternate (default, out, default, out, ...), medians of
// --rounds (default 7), the whole table twice. Ops with no `out` option
// (int8VectorwiseDequant, quantize4bit's packed output) are timed alone (no ratio).
// Usage: npm run build && node --expose-gc bench/default-call.mjs [--threads 1,2] [--rounds 7] [--dist ../dist]
import os from 'node:os';
const argOf = (name, d) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : d);
const dist = new URL(argOf('--dist', '../dist') + '/', import.meta.url);
const bnb = await import(new URL('index.js', dist).href);
const {
  tensor,
  quantize4bit,
  dequantize4bit,
  quantizeBlockwise,
  dequantizeBlockwise,
  int8VectorwiseDequant,
  dequantizeFp8,
  setNumThreads,
} = bnb;
const threadList = argOf('--threads', '1,2').split(',').map(Number);
const rounds = Number(argOf('--rounds', 7));

const ROWS = 4096,
  COLS = 14336,
  n = ROWS * COLS;
let seed = 7;
const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296;
const x32 = Float32Array.from({ length: n }, () => rnd() * 2 - 1);
const X = tensor(x32, [ROWS, COLS]);
const [p4, s4] = quantize4bit(X, { quantType: 'nf4' });
const st4 = (dtype) => Object.assign(Object.create(Object.getPrototypeOf(s4)), s4, { dtype });
const [q8, s8] = quantizeBlockwise(X);
const st8 = (dtype) => Object.assign(Object.create(Object.getPrototypeOf(s8)), s8, { dtype });
const I8 = tensor(
  Int8Array.from({ length: n }, () => ((rnd() * 255) | 0) - 127),
  [ROWS, COLS],
  'int8',
);
const SCB = tensor(
  Float32Array.from({ length: ROWS }, () => 1 + rnd()),
  [ROWS],
  'float32',
);
const W8 = tensor(
  Uint8Array.from({ length: n }, () => (rnd() * 256) & 0x7e),
  [ROWS, COLS],
  'float8_e4m3fn',
);
const S1 = tensor(new Float32Array([0.01]), [1], 'float32');

// [name, output MB, default call, out call (or null)]
const cases = [
  ...['float16', 'float32'].map((dt) => {
    const s = st4(dt);
    const out = dequantize4bit(p4, s);
    return [`dequantize4bit nf4 -> ${dt}`, out.data.byteLength, () => dequantize4bit(p4, s), () => dequantize4bit(p4, s, { out })];
  }),
  (() => {
    const s = st8('float16');
    const out = dequantizeBlockwise(q8, s);
    return [
      'dequantizeBlockwise 8-bit -> float16',
      out.data.byteLength,
      () => dequantizeBlockwise(q8, s),
      () => dequantizeBlockwise(q8, s, { out }),
    ];
  })(),
  (() => {
    const out = dequantizeFp8(W8, S1, { dtype: 'bfloat16' });
    return [
      'dequantizeFp8 per-tensor -> bfloat16',
      out.data.byteLength,
      () => dequantizeFp8(W8, S1, { dtype: 'bfloat16' }),
      () => dequantizeFp8(W8, S1, { dtype: 'bfloat16', out }),
    ];
  })(),
  ['int8VectorwiseDequant -> float32 (no out option)', n * 4, () => int8VectorwiseDequant(I8, SCB), null],
  ['quantize4bit nf4 f32 input (no out option; 29 MB packed)', n / 2, () => quantize4bit(X, { quantType: 'nf4' }), null],
];

const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
const time = (f) => {
  globalThis.gc?.();
  const t = performance.now();
  f();
  return performance.now() - t;
};

console.log(`${os.cpus()[0]?.model}, ${os.cpus().length} logical CPUs, Node ${process.version}; dist ${dist.pathname}`);
console.log(`medians of ${rounds} alternating calls (gc before each)${globalThis.gc ? '' : ' [run with --expose-gc]'}\n`);
for (const pass of [1, 2]) {
  console.log(`pass ${pass}\n\n| op | output MB | threads | default ms | out ms | default / out |\n|---|---:|---:|---:|---:|---:|`);
  for (const [name, bytes, def, out] of cases) {
    for (const t of threadList) {
      setNumThreads(t);
      def(); // warm: pool started, scratch grown
      out?.();
      const d = [],
        o = [];
      for (let r = 0; r < rounds; r++) {
        d.push(time(def));
        if (out) o.push(time(out));
      }
      const md = median(d),
        mo = out ? median(o) : NaN;
      console.log(
        `| ${name} | ${(bytes / 1e6).toFixed(0)} | ${t} | ${md.toFixed(1)} | ${out ? mo.toFixed(1) : '—'} | ${out ? (md / mo).toFixed(2) : '—'} |`,
      );
    }
  }
  console.log();
}
process.exit(0);
