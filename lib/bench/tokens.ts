// Deterministic random tokens (xorshift32), so that a benchmark run is reproducible from its seed
// and both sides of a comparison read the same file.

export function randomTokens(count: number, vocab: number, seed: number): Uint32Array {
  const buf = new Uint32Array(count);
  let s = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < count; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    buf[i] = s % vocab;
  }
  return buf;
}
