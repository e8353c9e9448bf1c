// Inputs are streamed through wasm memory in chunks of whole blocks; the chunk
// size never changes a bit. Here the chunk is lowered to a few blocks.
import { afterAll, describe, expect, it } from 'vitest';
import { dequantize4bit, dequantizeBlockwise, quantize4bit, quantizeBlockwise, tensor } from '../src/index.js';
import { setChunkElements } from '../src/backend/wasm/chunk.js';
import { Rng, asDType, randn } from './helpers/random.js';

const x = randn(new Rng(11), 50_001);

function run() {
  const out: Uint8Array[] = [];
  const keep = (t: { data: ArrayBufferView }) => out.push(new Uint8Array(t.data.buffer.slice(0)));
  for (const blocksize of [32, 64, 4096]) {
    for (const dtype of ['float32', 'bfloat16'] as const) {
      const A = asDType(x, [x.length], dtype);
      const [p, s] = quantize4bit(A, { blocksize, quantType: 'nf4', compressStatistics: true });
      keep(p);
      keep(s.absmax);
      keep(s.state2!.absmax);
      keep(dequantize4bit(p, s));
    }
  }
  for (const blocksize of [64, 4096]) {
    const [q, s] = quantizeBlockwise(tensor(x), { blocksize, nested: true });
    keep(q);
    keep(s.absmax);
    keep(dequantizeBlockwise(q, s));
  }
  return out;
}

describe('chunked processing', () => {
  it('gives identical bits for any chunk size', () => {
    const whole = run();
    for (const chunk of [1, 100, 4096, 12_345]) {
      setChunkElements(chunk);
      const chunked = run();
      chunked.forEach((b, i) => expect(Buffer.compare(Buffer.from(b), Buffer.from(whole[i]!)), `chunk ${chunk}, output ${i}`).toBe(0));
    }
  });

  it('reports the flat index of a non-finite value past a chunk boundary', () => {
    setChunkElements(128);
    const y = x.slice(0, 1000);
    y[777] = NaN;
    expect(() => quantize4bit(tensor(y))).toThrow(/flat index 777/);
    expect(() => quantizeBlockwise(tensor(y), { blocksize: 64 })).toThrow(/flat index 777/);
  });
});

afterAll(() => setChunkElements(1 << 18));
