/**
 * A seeded xorshift32 generator for the tests that throw random guest input at a device model:
 * the same seed gives the same run, so a failure reproduces.
 */

/** `rnd(n)` is an integer in [0, n); `rnd()` the raw 32-bit value. */
export function xorshift32(seed: number): (n?: number) => number {
  let s = seed | 0;
  return (n?: number) => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return n === undefined ? s >>> 0 : (s >>> 0) % n;
  };
}
