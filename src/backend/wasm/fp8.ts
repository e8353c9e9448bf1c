// The WebAssembly kernel of dequantizeFp8: flat chunks for one scale, else chunks
// of whole rows with the scale table shared.
import { Tensor, numel } from '../../tensor.js';
import { DTYPE_ID } from '../abi.js';
import { Checked } from '../../ops/registry.js';
import { dequantizeFp8Op } from '../../ops/fp8.js';
import { freshTensor } from './fresh.js';
import { byteView, chunkElements } from './chunk.js';
import { kernelsFor, runChunks } from './threads/parallel.js';

/** The WebAssembly kernel of dequantizeFp8. */
export function dequantizeFp8Wasm(c: Checked<typeof dequantizeFp8Op>): Tensor {
  const { W: w, dtype, layout: L, scales, out } = c;
  const result = out ?? freshTensor(dtype, w.shape);
  const size = dtype === 'float32' ? 4 : 2;
  const n = numel(w.shape);
  const { m, threads } = kernelsFor(n, w.data, result.data);
  if (scales.length === 1) {
    // one scale: any layout is the same, so stream flat chunks (rows of any length)
    const chunk = Math.max(1, Math.min(n, chunkElements(1, threads, n)));
    const span = (j: number) => [j * chunk, Math.min(chunk, n - j * chunk)] as const;
    runChunks(m, threads, {
      count: Math.ceil(n / chunk),
      shared: [4],
      prepare: ([pS]) => m.write(pS!, byteView(scales, 0, 4)),
      slot: [chunk, chunk * size],
      load(j, p) {
        const [start, len] = span(j);
        p[0] = m.place(p[0]!, byteView(w.data, start, len));
        p[1] = m.target(p[1]!, result.data, start * size, len * size);
      },
      calls: (j, [pW, pO], [pS]) => [['dequantizeFp8', pW!, 1, span(j)[1], 0, pS!, 1, 1, span(j)[1], DTYPE_ID[dtype], pO!]],
      store(j, [, pO]) {
        const [start, len] = span(j);
        m.read(pO!, result.data, start * size, len * size);
      },
    });
    return result;
  }
  const chunkRows = Math.max(1, Math.min(L.rows, Math.floor(chunkElements(1, threads, n) / Math.max(L.cols, 1))));
  const span = (j: number) => [j * chunkRows, Math.min(chunkRows, L.rows - j * chunkRows)] as const;
  runChunks(m, threads, {
    count: Math.ceil(L.rows / chunkRows),
    shared: [scales.byteLength],
    prepare: ([pS]) => m.write(pS!, byteView(scales, 0, scales.byteLength)),
    slot: [chunkRows * L.cols, chunkRows * L.cols * size],
    load(j, p) {
      const [r0, rows] = span(j);
      p[0] = m.place(p[0]!, byteView(w.data, r0 * L.cols, rows * L.cols));
      p[1] = m.target(p[1]!, result.data, r0 * L.cols * size, rows * L.cols * size);
    },
    calls(j, [pW, pO], [pS]) {
      // row indices relative to the chunk's block of rows (32-bit in the kernel)
      const [r0, rows] = span(j);
      const rowBlock = Math.floor(r0 / L.blockRows);
      return [
        [
          'dequantizeFp8',
          pW!,
          rows,
          L.cols,
          r0 - rowBlock * L.blockRows,
          pS! + rowBlock * L.scaleCols * 4,
          L.scaleCols,
          L.blockRows,
          L.blockCols,
          DTYPE_ID[dtype],
          pO!,
        ],
      ];
    },
    store(j, [, pO]) {
      const [r0, rows] = span(j);
      m.read(pO!, result.data, r0 * L.cols * size, rows * L.cols * size);
    },
  });
  return result; // out's checked snapshot where given: the op returns the caller's object
}
