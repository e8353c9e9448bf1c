// First-touch cost of a fresh 117 MB array: one thread, and split over k threads.
import { Worker } from 'node:worker_threads';
import os from 'node:os';
const n = 4096 * 14336,
  B = n * 2;
const med = (a) => a.sort((x, y) => x - y)[a.length >> 1];
const t = (f) => {
  const s = performance.now();
  f();
  return performance.now() - s;
};
const warm = new Uint16Array(n);
warm.fill(1);
const src = new Uint16Array(n);
src.fill(3);
const r = { allocFill: [], allocSet: [], setWarm: [] };
for (let i = 0; i < 7; i++) {
  r.allocFill.push(t(() => new Uint16Array(n).fill(1)));
  r.allocSet.push(t(() => new Uint16Array(n).set(src)));
  r.setWarm.push(t(() => warm.set(src)));
}
console.log(os.cpus()[0].model, os.cpus().length, 'cpus', process.version);
for (const [k, v] of Object.entries(r)) console.log(k, med(v).toFixed(1), 'ms');
const code = `const {parentPort}=require('worker_threads'); parentPort.on('message',({sab,from,to})=>{const a=new Uint16Array(sab); for(let i=from;i<to;i+=2048)a[i]=0; parentPort.postMessage(0);});`;
for (const k of [2, 4, 8]) {
  const ws = Array.from({ length: k - 1 }, () => new Worker(code, { eval: true }));
  await Promise.all(
    ws.map(
      (w) =>
        new Promise((res) => {
          w.once('online', res);
        }),
    ),
  );
  const par = [];
  for (let i = 0; i < 7; i++) {
    const s = performance.now();
    const sab = new SharedArrayBuffer(B),
      a = new Uint16Array(sab),
      part = Math.ceil(n / k);
    const done = ws.map((w, j) => {
      const p = new Promise((res) => w.once('message', res));
      w.postMessage({ sab, from: (j + 1) * part, to: Math.min(n, (j + 2) * part) });
      return p;
    });
    for (let x = 0; x < part; x += 2048) a[x] = 0;
    await Promise.all(done);
    par.push(performance.now() - s);
  }
  console.log(`touch in ${k} threads`, med(par).toFixed(1), 'ms');
  ws.forEach((w) => w.terminate());
}
