// Standard normal quantile function (scipy.stats.norm.ppf) in f64.

const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

function pdf(z: number): number {
  return Math.exp(-0.5 * z * z) * INV_SQRT_2PI;
}

/** Φ(z) - 1/2 = pdf(z) * Σ z^(2n+1) / (1·3·…·(2n+1)); the terms share z's sign, so the sum does not cancel. */
function halfMass(z: number): number {
  let term = z,
    sum = z;
  for (let n = 1; Math.abs(term) > 1e-17 * Math.abs(sum); n++) {
    term *= (z * z) / (2 * n + 1);
    sum += term;
  }
  return pdf(z) * sum;
}

/** Upper tail Q(z) = 1 - Φ(z) for z > 0, to a few ulps relative. */
function upperTail(z: number): number {
  if (z < 1) return 0.5 - halfMass(z); // Q >= 0.158 here, so the subtraction loses under 2 bits
  // Laplace's continued fraction Q = pdf / (z + 1/(z + 2/(z + 3/(z + …)))), from the bottom;
  // 400 terms reach 3e-17 relative at z = 1 and converge faster above.
  let f = z;
  for (let k = 400; k >= 1; k--) f = z + k / f;
  return pdf(z) / f;
}

/**
 * The inverse normal CDF: x with P(Z <= x) = p. 0 gives -Infinity, 1 Infinity, outside [0, 1] NaN.
 * Within a few f64 ulps of the exact quantile for 1e-300 <= p < 1.
 */
export function normPpf(p: number): number {
  if (!(p >= 0 && p <= 1)) return NaN;
  if (p === 0) return -Infinity;
  if (p === 1) return Infinity;
  if (p === 0.5) return 0;
  // Solve for z >= 0 against a target that is exact in f64: |p - 1/2| near the centre,
  // else the smaller tail (p - 1/2 and 1 - p are exact by Sterbenz's lemma where used).
  const central = p > 0.25 && p < 0.75;
  const target = central ? Math.abs(p - 0.5) : Math.min(p, 1 - p);
  // Initial guess, Abramowitz & Stegun 26.2.23 (absolute error < 4.5e-4).
  const t = Math.sqrt(-2 * Math.log(Math.min(p, 1 - p)));
  let z = t - (2.515517 + t * (0.802853 + t * 0.010328)) / (1 + t * (1.432788 + t * (0.189269 + t * 0.001308)));
  // Halley steps on g(z) = Φ(z) - Φ(x) (g' = pdf, g'' = -z pdf); each step cubes the error.
  for (let i = 0; i < 3; i++) {
    const d = pdf(z);
    if (!(d > 0)) break;
    const u = (central ? halfMass(z) - target : target - upperTail(z)) / d;
    z -= u / (1 + 0.5 * z * u);
  }
  return p < 0.5 ? -z : z;
}
