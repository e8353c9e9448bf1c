// Parse time and memory of hostile safetensors headers near the 100 MB limit
// (SECURITY.md's "Limits"): each case in a fresh process, reporting wall time,
// the rise of peak RSS, and the error code (a header refused early costs little).
//   npm run build && node bench/header-bound.mjs [--case NAME]
import { execFileSync } from 'node:child_process';

const CASES = {
  // the report's file: 45k tensors whose shapes have 1000 dims (93 MB)
  'rank-1000': { tensors: 45_000, rank: 1000 },
  // the most rank-64 shapes a 100 MB header holds
  'rank-64': { tensors: 700_000, rank: 64 },
  // the most rank-8 shapes (many small tensors)
  'rank-8': { tensors: 1_000_000, rank: 8 },
  // a real-looking header: 2-D shapes at the tensor limit
  'rank-2': { tensors: 1_048_576, rank: 2 },
};

const child = `
const { parseHeader } = await import(${JSON.stringify(new URL('../dist/index.js', import.meta.url).href)});
const [tensors, rank] = JSON.parse(process.argv[1]);
const dims = Array(rank).fill('1').join(',');
const parts = ['{'];
for (let i = 0; i < tensors; i++) parts.push(\`\${i ? ',' : ''}"t\${i}":{"dtype":"U8","shape":[\${dims}],"data_offsets":[\${i},\${i + 1}]}\`);
parts.push('}');
let bytes = new TextEncoder().encode(parts.join(''));
const maxBytes = 100_000_000;
let n = tensors;
if (bytes.length > maxBytes) { // keep it under the header limit: fewer tensors
  const per = bytes.length / tensors;
  n = Math.floor((maxBytes - 100) / per);
  const p2 = ['{'];
  for (let i = 0; i < n; i++) p2.push(\`\${i ? ',' : ''}"t\${i}":{"dtype":"U8","shape":[\${dims}],"data_offsets":[\${i},\${i + 1}]}\`);
  p2.push('}');
  bytes = new TextEncoder().encode(p2.join(''));
}
parts.length = 0;
globalThis.gc?.();
const rss0 = process.memoryUsage().rss;
let peak = rss0;
const timer = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 5);
const t0 = performance.now();
let outcome = 'ok';
try { parseHeader(bytes, 8 + bytes.length + n); } catch (e) { outcome = e.code ?? e.constructor.name; }
const ms = performance.now() - t0;
peak = Math.max(peak, process.memoryUsage().rss);
clearInterval(timer);
console.log(JSON.stringify({ tensors: n, headerMB: +(bytes.length / 1e6).toFixed(1), seconds: +(ms / 1000).toFixed(2), peakRssRiseMB: Math.round((peak - rss0) / 2 ** 20), outcome }));
`;

const only = process.argv.includes('--case') ? process.argv[process.argv.indexOf('--case') + 1] : null;
for (const [name, c] of Object.entries(CASES)) {
  if (only && name !== only) continue;
  const out = execFileSync(
    process.execPath,
    ['--expose-gc', '--max-old-space-size=8192', '--input-type=module', '-e', child, JSON.stringify([c.tensors, c.rank])],
    { encoding: 'utf8' },
  );
  console.log(`${name.padEnd(10)} ${out.trim()}`);
}
