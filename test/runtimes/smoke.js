// The runtime smoke suite: the same checks in Node, Deno, Bun, Chromium and workerd.
// Plain JavaScript without imports: it gets the library's namespace and the golden
// files' bytes (test/runtimes/fixtures.js, prepared from ../shared/golden by the
// harness) and returns one { name, ok, detail } per check; it never throws.

/** The golden files the checks read (file names in ../shared/golden, without .safetensors). */
export const GOLDEN_FILES = [
  'q4_nf4_bs64_float16_plain_0',
  'q4_fp4_bs128_bfloat16_plain_0',
  'q4_nf4_bs64_float16_nested_0',
  'q8_bs256_float16_plain',
  'int8_quant_t0_3x17',
  'int8_matmul_5x7x33',
];

const bytesOf = (t) => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);

function sameBytes(what, a, b) {
  const x = a instanceof Uint8Array ? a : bytesOf(a),
    y = b instanceof Uint8Array ? b : bytesOf(b);
  if (x.length !== y.length) throw new Error(`${what}: ${x.length} bytes, expected ${y.length}`);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) throw new Error(`${what}: byte ${i} is ${x[i]}, expected ${y[i]}`);
}

function same(what, a, b) {
  if (JSON.stringify(a) !== JSON.stringify(b)) throw new Error(`${what}: ${JSON.stringify(a)}, expected ${JSON.stringify(b)}`);
}

/** A golden file: its tensors (through the library) and its parameters (__metadata__, JSON per key). */
function golden(lib, files, name) {
  const bytes = files[name];
  if (!bytes) throw new Error(`fixture ${name} missing`);
  const { tensors, metadata } = lib.parseSafetensors(bytes);
  const params = Object.fromEntries(Object.entries(metadata ?? {}).map(([k, v]) => [k, JSON.parse(v)]));
  return { t: tensors, params };
}

/** The qs.* entries of a golden file: the state dict bitsandbytes wrote. */
const goldenDict = (t) =>
  Object.fromEntries(
    Object.entries(t)
      .filter(([k]) => k.startsWith('cuda.qs.'))
      .map(([k, v]) => [k.slice(8), v]),
  );

function quant4(lib, files, name) {
  const { t, params } = golden(lib, files, name);
  const opts = { quantType: params.quant_type, blocksize: params.blocksize };
  const [packed, state] = lib.quantize4bit(t.input, opts);
  same('packed shape', packed.shape, t['cuda.packed'].shape);
  sameBytes('packed codes', packed, t['cuda.packed']);
  sameBytes('absmax', state.absmax, t['cuda.qs.absmax']);
  const back = lib.dequantize4bit(t['cuda.packed'], state);
  same('dequantized dtype', back.dtype, params.dtype);
  sameBytes('dequantized values', back, t['cuda.dequant']);
  return `${params.quant_type} blocksize ${params.blocksize} ${params.dtype} ${params.shape.join('x')}: codes, absmax and dequantized values match CUDA`;
}

const CHECKS = {
  'safetensors from bytes'(lib, files) {
    // The header read here without the library; the library's tensors must agree with it.
    const bytes = files[GOLDEN_FILES[0]];
    const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
    const { tensors, metadata } = lib.parseSafetensors(bytes);
    const names = Object.keys(header).filter((k) => k !== '__metadata__');
    same('tensor names', Object.keys(tensors).sort(), names.sort());
    same('metadata', metadata, header.__metadata__);
    for (const name of names) {
      const [a, b] = header[name].data_offsets;
      same(`${name} shape`, tensors[name].shape, header[name].shape);
      sameBytes(name, tensors[name], bytes.subarray(8 + n + a, 8 + n + b));
    }
    return `${names.length} tensors, ${bytes.length} bytes`;
  },
  'quantize4bit/dequantize4bit nf4': (lib, files) => quant4(lib, files, 'q4_nf4_bs64_float16_plain_0'),
  'quantize4bit/dequantize4bit fp4': (lib, files) => quant4(lib, files, 'q4_fp4_bs128_bfloat16_plain_0'),
  'QuantState asDict/fromDict round trip'(lib, files) {
    const { t } = golden(lib, files, 'q4_nf4_bs64_float16_nested_0');
    const dict = goldenDict(t);
    const state = lib.QuantState.fromDict(dict);
    const again = state.asDict({ packed: true });
    same('keys', Object.keys(again).sort(), Object.keys(dict).sort());
    for (const k of Object.keys(dict)) sameBytes(k, again[k], dict[k]);
    sameBytes('nested dequantize', lib.dequantize4bit(t['cuda.packed'], state), t['cuda.dequant']);
    const [, ours] = lib.quantize4bit(t.input, { quantType: 'nf4', blocksize: 64, compressStatistics: true });
    if (!lib.QuantState.fromDict(ours.asDict({ packed: true })).equals(ours)) throw new Error('fromDict(asDict(state)) differs from state');
    return `${Object.keys(dict).length} dict entries byte-identical, the packed JSON blob included`;
  },
  'blockwise 8-bit'(lib, files) {
    const { t, params } = golden(lib, files, 'q8_bs256_float16_plain');
    const [q, state] = lib.quantizeBlockwise(t.input, { blocksize: params.blocksize });
    sameBytes('codes', q, t['cuda.q']);
    sameBytes('absmax', state.absmax, t['cuda.absmax']);
    sameBytes('dequantized values', lib.dequantizeBlockwise(t['cuda.q'], state), t['cuda.dequant']);
    return `blocksize ${params.blocksize} ${params.dtype} ${params.shape.join('x')}: codes, absmax and dequantized values match CUDA`;
  },
  'int8 quant + matmul'(lib, files) {
    const q = golden(lib, files, 'int8_quant_t0_3x17').t;
    const [CA, SCA, outliers] = lib.int8VectorwiseQuant(q.A);
    sameBytes('int8 codes', CA, q['cuda.vq.CA']);
    sameBytes('row stats', SCA, q['cuda.vq.SCA']);
    if (outliers !== null) throw new Error('outliers without a threshold');
    const m = golden(lib, files, 'int8_matmul_5x7x33').t;
    sameBytes('int8 matmul', lib.int8LinearMatmul(m.A, m.B), m['cuda.C']);
    sameBytes('mm dequant', lib.int8MmDequant(m['cuda.C'], m.row_stats, m.col_stats, { bias: m.bias }), m['cuda.mm_dequant_bias']);
    return 'int8VectorwiseQuant 3x17, int8LinearMatmul and int8MmDequant 5x7x33 match CUDA';
  },
};

export const CHECK_NAMES = Object.keys(CHECKS);

/** Runs every check; `files` maps GOLDEN_FILES names to their bytes. */
export function smoke(lib, files) {
  const results = [];
  for (const [name, check] of Object.entries(CHECKS)) {
    try {
      results.push({ name, ok: true, detail: check(lib, files) });
    } catch (e) {
      results.push({ name, ok: false, detail: `${e && e.name}: ${e && e.message}` });
    }
  }
  return { build: lib.wasmBuild(), features: lib.wasmFeatures(), results };
}

/** Fixture module text → bytes (base64 decoded without Buffer, which browsers lack). */
export function decodeFixtures(b64) {
  return Object.fromEntries(
    Object.entries(b64).map(([k, v]) => {
      const s = atob(v);
      const b = new Uint8Array(s.length);
      for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i);
      return [k, b];
    }),
  );
}

/**
 * Threads: a large op on 2 threads gives the bytes it gives on 1, and jobs run on a
 * worker. Ops repeat, yielding between them (workers may start only then: browsers),
 * until one has, or 20 s; not on one thread nor the scalar build (which runs on the
 * calling thread). Returns { threads, threadedSame, workerJobs, threadError }.
 */
export async function threadRun(lib) {
  try {
    lib.setForcedBackend?.('wasm'); // threads are the WebAssembly kernels' (BNBJS_BACKEND=cuda would send ops to the GPU)
    const big = lib.tensor(new Float32Array(1_500_001).map((_, i) => Math.sin(i * 0.37) * (1 + (i % 97))));
    const run = () => {
      const [p, s] = lib.quantize4bit(big, { quantType: 'nf4' });
      return [p, s.absmax, lib.dequantize4bit(p, s)].map(bytesOf);
    };
    const same = (a, b) => a.every((x, i) => x.length === b[i].length && x.every((v, j) => v === b[i][j]));
    lib.setNumThreads(2);
    const threads = lib.numThreads(),
      many = run();
    let threadedSame = true;
    for (
      const end = Date.now() + 20_000;
      threads > 1 && lib.wasmBuild() !== 'scalar' && lib.threadStats().workerJobs === 0 && Date.now() < end;
    ) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      threadedSame &&= same(run(), many);
    }
    const { workerJobs } = lib.threadStats();
    // the same ops on resident tensors (in the shared kernel memory where there is one)
    const rA = lib.wasmTensor(big),
      rOut = lib.wasmTensor([big.data.length], 'float32');
    const resident = lib.isResident(rA) && lib.isResident(rOut);
    const [rp, rs] = lib.quantize4bit(rA, { quantType: 'nf4' });
    lib.dequantize4bit(rp, rs, { out: rOut });
    const residentSame = same([rp, rs.absmax, rOut].map(bytesOf), many);
    rA.dispose();
    rOut.dispose();
    lib.setNumThreads(1);
    threadedSame &&= same(run(), many);
    return { threads, threadedSame, workerJobs, resident, residentSame };
  } catch (e) {
    return { threadError: `${e && e.name}: ${e && e.message}` };
  }
}
