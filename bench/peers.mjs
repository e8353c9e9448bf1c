// bnbjs against onnxruntime-node's 4-bit MatMul kernels (issue 17), side by side in one
// process: bnbjs matmul4bit (weights resident in wasm memory, and the default call on plain
// tensors), its int8-activation mode where this build has it, onnxruntime's MatMulBnb4 (the
// same nf4 bytes and absmax bnbjs made) and MatMulNBits (int4 round-to-nearest per block of
// 64 along K, accuracy_level 0 and 4), each on a one-node ONNX model built here in memory
// with protobufjs. Calls interleaved one by one, caches flushed (a 64 MB buffer read)
// before each, medians of --reps per round, --rounds rounds (default 2) in one process.
// Outputs are compared against float64 references of each format's dequantized weights.
//
// onnxruntime-node and protobufjs are not dependencies of bnbjs nor of its tests: the first
// run installs them (pinned in bench/peers/package.json) into bench/peers/node_modules with
// `npm install --ignore-scripts --prefix bench/peers`.
//
// Usage: npm run build && node bench/peers.mjs [--n 14336] [--k 4096] [--m 1,8,64,512]
//          [--threads 1,2] [--reps 5] [--rounds 2] [--zp]  (--zp: asymmetric MatMulNBits, with zero points)
// Smoke run: node bench/peers.mjs --n 256 --k 128 --m 1,8 --reps 2
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { QuantState, dequantize4bit, matmul4bit, quantize4bit, setNumThreads, tensor, wasmTensor } from '../dist/index.js';

// ---------------------------------------------------------------------------------------
// Arguments
const argv = process.argv.slice(2);
const flag = (name) => argv.includes(name);
const opt = (name, dflt) => (flag(name) ? argv[argv.indexOf(name) + 1] : dflt);
const list = (s) => String(s).split(',').map(Number);
const N = Number(opt('--n', 14336)),
  K = Number(opt('--k', 4096));
const Ms = list(opt('--m', '1,8,64,512')),
  THREADS = list(opt('--threads', '1,2'));
const REPS = Number(opt('--reps', 5)),
  ROUNDS = Number(opt('--rounds', 2));
const ASYM = flag('--zp');
const BS = 64; // nf4 blocksize and MatMulNBits block_size
const CHECK_ROWS = 8; // rows of each output compared against the float64 references

// ---------------------------------------------------------------------------------------
// The peers, installed on first run
const peersDir = fileURLToPath(new URL('./peers/', import.meta.url));
if (
  !existsSync(`${peersDir}node_modules/onnxruntime-node/package.json`) ||
  !existsSync(`${peersDir}node_modules/protobufjs/package.json`)
) {
  console.error(`installing the peers into ${peersDir}node_modules (first run) ...`);
  execFileSync('npm', ['install', '--ignore-scripts', '--no-audit', '--no-fund', '--prefix', peersDir], { stdio: 'inherit' });
}
const requirePeer = createRequire(`${peersDir}package.json`);
const ort = requirePeer('onnxruntime-node');
const protobuf = requirePeer('protobufjs');
const ortVersion = requirePeer('onnxruntime-node/package.json').version;

// ---------------------------------------------------------------------------------------
// A minimal subset of the ONNX protobuf schema (field numbers of onnx.proto), enough for a
// one-node graph with initializers.
const onnx = protobuf.Root.fromJSON({
  nested: {
    onnx: {
      nested: {
        ModelProto: {
          fields: {
            irVersion: { type: 'int64', id: 1 },
            producerName: { type: 'string', id: 2 },
            graph: { type: 'GraphProto', id: 7 },
            opsetImport: { rule: 'repeated', type: 'OperatorSetIdProto', id: 8 },
          },
        },
        OperatorSetIdProto: { fields: { domain: { type: 'string', id: 1 }, version: { type: 'int64', id: 2 } } },
        GraphProto: {
          fields: {
            node: { rule: 'repeated', type: 'NodeProto', id: 1 },
            name: { type: 'string', id: 2 },
            initializer: { rule: 'repeated', type: 'TensorProto', id: 5 },
            input: { rule: 'repeated', type: 'ValueInfoProto', id: 11 },
            output: { rule: 'repeated', type: 'ValueInfoProto', id: 12 },
          },
        },
        NodeProto: {
          fields: {
            input: { rule: 'repeated', type: 'string', id: 1 },
            output: { rule: 'repeated', type: 'string', id: 2 },
            name: { type: 'string', id: 3 },
            opType: { type: 'string', id: 4 },
            attribute: { rule: 'repeated', type: 'AttributeProto', id: 5 },
            domain: { type: 'string', id: 7 },
          },
        },
        // type: AttributeType (INT = 2)
        AttributeProto: { fields: { name: { type: 'string', id: 1 }, i: { type: 'int64', id: 3 }, type: { type: 'int32', id: 20 } } },
        // dataType: TensorProto.DataType (FLOAT = 1, UINT8 = 2)
        TensorProto: {
          fields: {
            dims: { rule: 'repeated', type: 'int64', id: 1 },
            dataType: { type: 'int32', id: 2 },
            name: { type: 'string', id: 8 },
            rawData: { type: 'bytes', id: 9 },
          },
        },
        ValueInfoProto: { fields: { name: { type: 'string', id: 1 }, type: { type: 'TypeProto', id: 2 } } },
        TypeProto: {
          fields: { tensorType: { type: 'TensorType', id: 1 } },
          nested: {
            TensorType: { fields: { elemType: { type: 'int32', id: 1 }, shape: { type: 'TensorShapeProto', id: 2 } } },
          },
        },
        TensorShapeProto: {
          fields: { dim: { rule: 'repeated', type: 'Dimension', id: 1 } },
          nested: { Dimension: { fields: { dimValue: { type: 'int64', id: 1 }, dimParam: { type: 'string', id: 2 } } } },
        },
      },
    },
  },
}).lookupType('onnx.ModelProto');

const FLOAT = 1,
  UINT8 = 2,
  ATTR_INT = 2;
const valueInfo = (name, dims) => ({
  name,
  type: {
    tensorType: {
      elemType: FLOAT,
      shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) },
    },
  },
});
const init = (name, dataType, dims, typed) => ({
  name,
  dataType,
  dims,
  rawData: new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength),
});

/** A one-node com.microsoft model: Y [M, n] = opType(A [M, k], ...initializers). */
function oneNodeModel(opType, inits, attrs, n, k) {
  const model = {
    irVersion: 10,
    producerName: 'bnbjs bench/peers.mjs',
    opsetImport: [
      { domain: '', version: 21 },
      { domain: 'com.microsoft', version: 1 },
    ],
    graph: {
      name: opType,
      node: [
        {
          name: opType,
          opType,
          domain: 'com.microsoft',
          input: ['A', ...inits.map((t) => t?.name ?? '')],
          output: ['Y'],
          attribute: Object.entries(attrs).map(([name, i]) => ({ name, i, type: ATTR_INT })),
        },
      ],
      initializer: inits.filter(Boolean),
      input: [valueInfo('A', ['M', k])],
      output: [valueInfo('Y', ['M', n])],
    },
  };
  return onnx.encode(onnx.fromObject(model)).finish();
}

const sessionOptions = (threads) => ({
  intraOpNumThreads: threads,
  interOpNumThreads: 1,
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
  // No spinning after a call: idle ORT threads would otherwise spin while bnbjs runs next.
  extra: { session: { intra_op: { allow_spinning: '0' } } },
});

/** MatMulBnb4: B is bnb's packed bytes as they are (flat [N, K], high nibble first), absmax float per block of the flat index. */
function bnb4Model(packed, absmax, n, k, bs, quantType) {
  const bytes = packed.data instanceof Uint8Array ? packed.data : new Uint8Array(packed.data.buffer);
  return oneNodeModel(
    'MatMulBnb4',
    [init('B', UINT8, [Math.ceil((n * k) / 2)], bytes.subarray(0, Math.ceil((n * k) / 2))), init('absmax', FLOAT, [absmax.length], absmax)],
    { K: k, N: n, block_size: bs, quant_type: quantType === 'nf4' ? 1 : 0 },
    n,
    k,
  );
}

/** MatMulNBits: B [N, blocks, bs/2] (low nibble first along K), scales [N * blocks], zero points [N * ceil(blocks/2)] (low nibble first) or none (8). */
function nbitsModel(q, n, k, accuracyLevel) {
  const blocks = Math.ceil(k / BS);
  return oneNodeModel(
    'MatMulNBits',
    [
      init('B', UINT8, [n, blocks, BS / 2], q.B),
      init('scales', FLOAT, [n * blocks], q.scales),
      q.zp ? init('zero_points', UINT8, [n * Math.ceil(blocks / 2)], q.zp) : null,
    ],
    { K: k, N: n, bits: 4, block_size: BS, accuracy_level: accuracyLevel },
    n,
    k,
  );
}

// ---------------------------------------------------------------------------------------
// Data
let seed = 17;
const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296;
function normals(len, sigma) {
  const out = new Float32Array(len);
  for (let i = 0; i < len; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - rnd())) * sigma,
      t = 2 * Math.PI * rnd();
    out[i] = r * Math.cos(t);
    if (i + 1 < len) out[i + 1] = r * Math.sin(t);
  }
  return out;
}

/** int4 round-to-nearest per block of BS along K, MatMulNBits' layout; the dequantized weight (float32) alongside. */
function quantizeNBits(W, n, k, asym) {
  const blocks = Math.ceil(k / BS),
    zpRow = Math.ceil(blocks / 2);
  const B = new Uint8Array(n * blocks * (BS / 2)),
    scales = new Float32Array(n * blocks),
    zp = asym ? new Uint8Array(n * zpRow) : null,
    deq = new Float32Array(n * k);
  for (let r = 0; r < n; r++) {
    for (let b = 0; b < blocks; b++) {
      const k0 = b * BS,
        k1 = Math.min(k, k0 + BS),
        row = r * k;
      let scale, z;
      if (asym) {
        let lo = 0,
          hi = 0;
        for (let j = k0; j < k1; j++) ((lo = Math.min(lo, W[row + j])), (hi = Math.max(hi, W[row + j])));
        scale = Math.fround((hi - lo) / 15) || 1;
        z = Math.min(15, Math.max(0, Math.round(-lo / scale)));
        zp[r * zpRow + (b >> 1)] |= z << ((b & 1) * 4);
      } else {
        let v = 0; // the value of largest magnitude, its sign kept: it maps to -8
        for (let j = k0; j < k1; j++) if (Math.abs(W[row + j]) > Math.abs(v)) v = W[row + j];
        scale = Math.fround(v / -8) || 1;
        z = 8;
      }
      scales[r * blocks + b] = scale;
      const base = (r * blocks + b) * (BS / 2);
      for (let j = 0; j < BS; j++) {
        const x = k0 + j < k1 ? W[row + k0 + j] : 0;
        const c = Math.min(15, Math.max(0, Math.round(x / scale) + z));
        B[base + (j >> 1)] |= c << ((j & 1) * 4);
        if (k0 + j < k1) deq[row + k0 + j] = (c - z) * scale;
      }
    }
  }
  return { B, scales, zp, deq };
}

/** float64 A [rows, k] @ W [n, k]^T. */
function ref64(A, W, rows, n, k) {
  const out = new Float64Array(rows * n);
  for (let r = 0; r < n; r++) {
    const w = W.subarray(r * k, r * k + k);
    for (let m = 0; m < rows; m++) {
      let s = 0;
      const a = m * k;
      for (let j = 0; j < k; j++) s += A[a + j] * w[j];
      out[m * n + r] = s;
    }
  }
  return out;
}

/** Max abs difference over the first `rows` rows, and that relative to max |ref|. */
function compare(out, ref, rows, n) {
  let d = 0,
    s = 0;
  for (let i = 0; i < rows * n; i++) ((d = Math.max(d, Math.abs(out[i] - ref[i]))), (s = Math.max(s, Math.abs(ref[i]))));
  return { abs: d, rel: d / s };
}
const fmtCmp = (c) => `${c.abs.toExponential(2)} (${c.rel.toExponential(2)})`;

// ---------------------------------------------------------------------------------------
// Layout check on an awkward shape first: N*K odd, K not a multiple of the blocksize (bnb's
// blocks run over the flat index and straddle rows), fp4 and nf4.
async function layoutCheck() {
  const n = 33,
    k = 201,
    rows = 3;
  const W = normals(n * k, 1),
    A = normals(rows * k, 1);
  const lines = [];
  let control = '';
  for (const quantType of ['nf4', 'fp4']) {
    const [packed, state] = quantize4bit(tensor(W, [n, k]), { quantType, blocksize: BS });
    const deq = dequantize4bit(packed, state).data;
    const ref = ref64(A, deq, rows, n, k);
    const ours = matmul4bit(tensor(A, [rows, k]), packed, state).data;
    const sess = await ort.InferenceSession.create(bnb4Model(packed, state.absmax.data, n, k, BS, quantType), sessionOptions(1));
    const peer = (await sess.run({ A: new ort.Tensor('float32', A, [rows, k]) })).Y.data;
    await sess.release();
    if (quantType === 'nf4') {
      // Negative control: the same bytes with their nibbles swapped (low first, as MatMulNBits packs) must not agree.
      const bytes = packed.data.map((b) => ((b & 15) << 4) | (b >> 4));
      const bad = await ort.InferenceSession.create(
        bnb4Model(tensor(bytes, packed.shape), state.absmax.data, n, k, BS, quantType),
        sessionOptions(1),
      );
      const wrong = (await bad.run({ A: new ort.Tensor('float32', A, [rows, k]) })).Y.data;
      await bad.release();
      control = `| nf4, ${n}x${k}, nibbles swapped (negative control) | | ${fmtCmp(compare(wrong, ref, rows, n))} | |`;
    }
    lines.push(
      `| ${quantType}, ${n}x${k} (N·K odd, blocks straddle rows) | ${fmtCmp(compare(ours, ref, rows, n))} | ${fmtCmp(compare(peer, ref, rows, n))} | ${fmtCmp(compare(peer, ours, rows, n))} |`,
    );
  }
  return [...lines, control];
}

// ---------------------------------------------------------------------------------------
// Main
const t0 = Date.now();
const log = (s) => console.error(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${s}`);
const layoutLines = await layoutCheck();

const maxM = Math.max(...Ms),
  refRows = Math.min(CHECK_ROWS, maxM);
log(`weights ${N}x${K}, A up to ${maxM}x${K}`);
const W = normals(N * K, 0.02);
const Aall = normals(maxM * K, 1); // A for M rows = the first M rows: every M is checked on the same leading rows
const [packed, state] = quantize4bit(tensor(W, [N, K]), { quantType: 'nf4', blocksize: BS });
const absmax = state.absmax.data;
const nb = quantizeNBits(W, N, K, ASYM);
log('quantized (nf4 by bnbjs, int4 for MatMulNBits); float64 references ...');
const refBnb = ref64(Aall, dequantize4bit(packed, state).data, refRows, N, K);
const refNbits = ref64(Aall, nb.deq, refRows, N, K);
const refTrue = ref64(Aall, W, refRows, N, K);
nb.deq = null;
// The other MatMulNBits variant (with or without zero points) is checked too, not timed.
const nbOther = quantizeNBits(W, N, K, !ASYM);
const refOther = ref64(Aall, nbOther.deq, refRows, N, K);
nbOther.deq = null;
const refOf = {
  bnbjs: refBnb,
  'bnbjs default': refBnb,
  'bnbjs int8': refBnb,
  MatMulBnb4: refBnb,
  'NBits acc0': refNbits,
  'NBits acc4': refNbits,
};

// Resident bnbjs tensors
const rPacked = wasmTensor(packed),
  rAbsmax = wasmTensor(state.absmax);
const rState = new QuantState({ ...state, absmax: rAbsmax });

// int8-activation mode: accepted by this build?
let int8 = null;
try {
  const [p, s] = quantize4bit(tensor(new Float32Array(2 * BS).fill(0.5), [2, BS]), { quantType: 'nf4' });
  matmul4bit(tensor(new Float32Array(BS).fill(1), [1, BS]), p, s, { accuracy: 'int8' });
  int8 = true;
} catch (e) {
  if (e?.code === 'E_ARGUMENT' && /accuracy/.test(e.message)) int8 = false;
  else throw e;
}
log(`int8-activation mode: ${int8 ? 'accepted' : 'n/a (not in this build)'}`);

// Sessions, one per thread count and model
const models = {
  MatMulBnb4: bnb4Model(packed, absmax, N, K, BS, 'nf4'),
  'NBits acc0': nbitsModel(nb, N, K, 0),
  'NBits acc4': nbitsModel(nb, N, K, 4),
};
const sessions = {};
for (const t of THREADS)
  for (const [name, bytes] of Object.entries(models))
    sessions[`${name}|${t}`] = await ort.InferenceSession.create(bytes, sessionOptions(t));
for (const name of Object.keys(models)) delete models[name]; // the model bytes are not needed any more
log(`${Object.keys(sessions).length} onnxruntime sessions`);
const otherChecks = [];
{
  const oA = new ort.Tensor('float32', Aall.subarray(0, refRows * K), [refRows, K]);
  for (const level of [0, 4]) {
    const sess = await ort.InferenceSession.create(nbitsModel(nbOther, N, K, level), sessionOptions(1));
    const out = (await sess.run({ A: oA })).Y.data;
    otherChecks.push([`NBits acc${level}, ${ASYM ? 'symmetric' : 'with zero points'} (not timed)`, compare(out, refOther, refRows, N)]);
    await sess.release();
  }
}

// Cache flush and the memcpy bandwidth for the DRAM floor
const flushBuf = new Int32Array(16 << 20); // 64 MB
flushBuf.fill(1);
let sink = 0;
function flush() {
  let s = 0;
  for (let i = 0; i < flushBuf.length; i += 16) s += flushBuf[i];
  sink += s;
}
const cpySrc = new Float32Array(64 << 20).fill(1),
  cpyDst = new Float32Array(64 << 20);
function memcpyGBs() {
  let best = 0;
  for (let i = 0; i < 5; i++) {
    const s = process.hrtime.bigint();
    cpyDst.set(cpySrc);
    best = Math.max(best, (2 * cpySrc.byteLength) / Number(process.hrtime.bigint() - s));
  }
  return best; // bytes per ns = GB/s, read + write counted
}
const weightBytes = Math.ceil((N * K) / 2) + absmax.byteLength;

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b),
    h = s.length >> 1;
  return s.length & 1 ? s[h] : (s[h - 1] + s[h]) / 2;
};
const now = () => process.hrtime.bigint();
const ms = (a, b) => Number(b - a) / 1e6;

const names = ['bnbjs', 'bnbjs default', ...(int8 ? ['bnbjs int8'] : []), 'MatMulBnb4', 'NBits acc0', 'NBits acc4'];
const checks = new Map(); // name -> worst { abs, rel } over M and threads
const note = (name, c) => {
  const w = checks.get(name);
  if (!w || c.rel > w.rel) checks.set(name, c);
};
let bnbVsPeer = { abs: 0, rel: 0 };

const rounds = [];
for (let round = 1; round <= ROUNDS; round++) {
  const bw = memcpyGBs(),
    load0 = os.loadavg()[0];
  const rows = [];
  for (const M of Ms) {
    const A32 = Aall.subarray(0, M * K);
    const A = tensor(A32, [M, K]),
      rA = wasmTensor(A),
      oA = new ort.Tensor('float32', A32, [M, K]);
    for (const t of THREADS) {
      setNumThreads(t);
      const calls = {
        bnbjs: () => matmul4bit(rA, rPacked, rState).data,
        'bnbjs default': () => matmul4bit(A, packed, state).data,
        'bnbjs int8': () => matmul4bit(rA, rPacked, rState, { accuracy: 'int8' }).data,
        MatMulBnb4: async () => (await sessions[`MatMulBnb4|${t}`].run({ A: oA })).Y.data,
        'NBits acc0': async () => (await sessions[`NBits acc0|${t}`].run({ A: oA })).Y.data,
        'NBits acc4': async () => (await sessions[`NBits acc4|${t}`].run({ A: oA })).Y.data,
      };
      // Warm-up call of each, its output checked on the leading rows
      const outs = {};
      for (const name of names) {
        outs[name] = await calls[name]();
        note(name, compare(outs[name], refOf[name], Math.min(M, refRows), N));
      }
      const c = compare(outs.MatMulBnb4, outs.bnbjs, Math.min(M, refRows), N);
      if (c.rel > bnbVsPeer.rel) bnbVsPeer = c;
      const times = Object.fromEntries(names.map((n) => [n, []]));
      for (let rep = 0; rep < REPS; rep++) {
        for (let j = 0; j < names.length; j++) {
          const name = names[(j + rep) % names.length]; // rotate the order rep by rep
          flush();
          const s = now();
          await calls[name]();
          times[name].push(ms(s, now()));
        }
      }
      const med = Object.fromEntries(names.map((n) => [n, median(times[n])]));
      // Ratios paired rep by rep (the two calls ran next to each other), then their median: steadier than a ratio of medians under load.
      const ratio = (a, b) => median(times[a].map((x, i) => x / times[b][i]));
      const ratios = {
        Bnb4: ratio('bnbjs', 'MatMulBnb4'),
        acc0: ratio('bnbjs', 'NBits acc0'),
        acc4: ratio('bnbjs', 'NBits acc4'),
        int8: int8 ? ratio('bnbjs int8', 'NBits acc4') : null,
      };
      rows.push({ M, t, med, ratios });
      log(`round ${round}, M = ${M}, ${t} thread(s): ${names.map((n) => `${n} ${med[n].toFixed(2)}`).join(', ')} ms`);
    }
    rA.dispose();
  }
  rounds.push({ round, bw, rows, load: [load0, os.loadavg()[0]] });
}

// ---------------------------------------------------------------------------------------
// Report
const f = (x) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x >= 1 ? x.toFixed(2) : x.toPrecision(2));
const r = (x) => x.toFixed(2);
const cpu = os.cpus()[0]?.model ?? '?';
console.log(
  `\n${new Date().toISOString().slice(0, 10)} — ${cpu}, ${os.cpus().length} cores, Node ${process.version}, onnxruntime-node ${ortVersion}`,
);
console.log(
  `N = ${N}, K = ${K}, nf4 blocksize ${BS} (bnbjs, MatMulBnb4); int4 ${ASYM ? 'asymmetric (zero points)' : 'symmetric (no zero points)'} block_size ${BS} (MatMulNBits); A float32; median of ${REPS} interleaved calls, cache flushed before each; times in ms; ratios: bnbjs time / peer time, paired call by call, median`,
);
for (const { round, bw, rows, load } of rounds) {
  const floor = weightBytes / bw / 1e6;
  console.log(
    `\nRound ${round} of ${ROUNDS} — memcpy ${bw.toFixed(1)} GB/s (read + write, 1 thread); DRAM floor = ${(weightBytes / 1e6).toFixed(1)} MB of weights / memcpy = ${f(floor)} ms; 1-minute load average ${load[0].toFixed(1)} at its start, ${load[1].toFixed(1)} at its end\n`,
  );
  const int8Head = int8 ? 'bnbjs int8 (resident)' : 'bnbjs int8';
  console.log(
    `| M | threads | bnbjs resident | bnbjs default | ${int8Head} | MatMulBnb4 | NBits acc0 | NBits acc4 | bnbjs/Bnb4 | bnbjs/acc0 | bnbjs/acc4 | ${int8 ? 'int8/acc4 | ' : ''}DRAM floor |`,
  );
  console.log(`|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|${int8 ? '---:|' : ''}---:|`);
  for (const { M, t, med, ratios } of rows) {
    const b = med.bnbjs;
    console.log(
      `| ${M} | ${t} | ${f(b)} | ${f(med['bnbjs default'])} | ${int8 ? f(med['bnbjs int8']) : 'n/a (not in this build)'} | ${f(med.MatMulBnb4)} | ${f(med['NBits acc0'])} | ${f(med['NBits acc4'])} | ${r(ratios.Bnb4)} | ${r(ratios.acc0)} | ${r(ratios.acc4)} | ${int8 ? `${r(ratios.int8)} | ` : ''}${f(floor)} |`,
    );
  }
}

console.log(
  `\nAgreement (first ${refRows} rows of every output, worst over M = ${Ms.join(', ')} and threads ${THREADS.join(', ')}): max |out - ref| (relative to max |ref|)\n`,
);
console.log('| output | reference | max abs diff (rel.) |\n|---|---|---:|');
for (const name of names) {
  const which = refOf[name] === refBnb ? "float64 A @ W^T, W = bnbjs' nf4 dequantized" : 'float64 A @ W^T, W = its own int4 dequantized';
  console.log(`| ${name === 'bnbjs' ? 'bnbjs resident' : name} | ${which} | ${fmtCmp(checks.get(name))} |`);
}
for (const [name, c] of otherChecks) console.log(`| ${name} | float64 A @ W^T, W = its own int4 dequantized | ${fmtCmp(c)} |`);
console.log(`| MatMulBnb4 | bnbjs resident's output | ${fmtCmp(bnbVsPeer)} |`);
console.log(`| float64 on nf4 weights | float64 on the original float weights | ${fmtCmp(compare(refBnb, refTrue, refRows, N))} |`);
console.log(`| float64 on int4 weights | float64 on the original float weights | ${fmtCmp(compare(refNbits, refTrue, refRows, N))} |`);
console.log(`\nMatMulBnb4 layout check (3 rows, 1 thread): max |out - ref| (rel.)\n`);
console.log('| weights | bnbjs vs float64 | MatMulBnb4 vs float64 | MatMulBnb4 vs bnbjs |\n|---|---:|---:|---:|');
for (const l of layoutLines) console.log(l);
if (sink === 0.5) console.log(''); // keep the flush reads alive
for (const s of Object.values(sessions)) await s.release();
process.exit(0);
