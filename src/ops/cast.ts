import { FloatDType } from '../dtypes.js';
import { numberToBf16, numberToF16 } from '../float16.js';
import { Tensor, tensor, toFloat32 } from '../tensor.js';

/** A float tensor converted to another float dtype (round to nearest even; NaN -> 0x7fff). */
export function castFloat(t: Tensor, dtype: FloatDType): Tensor {
  if (t.dtype === dtype) return t;
  const x = toFloat32(t);
  if (dtype === 'float32') return tensor(x, [...t.shape], 'float32');
  return tensor(Uint16Array.from(x, dtype === 'float16' ? numberToF16 : numberToBf16), [...t.shape], dtype);
}
