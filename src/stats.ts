/**
 * f32(mean) of f32 values with the sum taken exactly (Shewchuk's partials, as
 * Python's math.fsum) and rounded once to f64 before the division.
 * bitsandbytes takes torch's mean, whose summation order differs per device by
 * a few ulp (docs/bit-exactness.md#nested-statistics).
 */
export function meanF32(values: Float32Array): number {
  // Inf/NaN (allowNonFinite) make the exact sum meaningless; torch gives inf or NaN.
  if (!values.every(Number.isFinite)) return Math.fround(values.reduce((a, b) => a + b, 0) / values.length);
  const partials: number[] = [];
  for (let x of values) {
    let i = 0;
    for (let y of partials) {
      if (Math.abs(x) < Math.abs(y)) [x, y] = [y, x];
      const hi = x + y;
      const lo = y - (hi - x);
      if (lo !== 0) partials[i++] = lo;
      x = hi;
    }
    partials.length = i;
    partials.push(x);
  }
  let sum = 0;
  for (let i = partials.length - 1; i >= 0; i--) sum += partials[i]!;
  return Math.fround(sum / values.length);
}
