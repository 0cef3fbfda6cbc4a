/**
 * A small seeded PRNG whose whole state is four 32-bit words, so that it can
 * be saved in a checkpoint and restored exactly.
 *
 * Generator: xoshiro128** (Blackman and Vigna), seeded by expanding the seed
 * with splitmix32. Integers in [0, n) are drawn by rejection sampling, so they
 * are unbiased for every n up to 2^53.
 */

export type PrngState = [number, number, number, number];

function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

const TWO32 = 2 ** 32;
const TWO53 = 2 ** 53;

export class Prng {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;

  /** `seed` is any safe integer (both 32-bit halves are used). */
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed)) throw new TypeError(`Prng: seed must be a safe integer, got ${String(seed)}`);
    const lo = seed >>> 0;
    const hi = Math.floor(seed / TWO32) >>> 0;
    const sm = splitmix32(lo ^ Math.imul(hi, 0x27d4eb2d));
    this.s0 = sm();
    this.s1 = sm();
    this.s2 = sm();
    this.s3 = sm();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** The next uniformly distributed unsigned 32-bit integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** A uniform float in [0, 1) with 53 random bits. */
  nextFloat(): number {
    const hi = this.nextUint32() >>> 11; // 21 bits
    const lo = this.nextUint32(); // 32 bits
    return (hi * TWO32 + lo) / TWO53;
  }

  /** A uniform integer in [0, n), 1 <= n <= 2^53. */
  nextInt(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > TWO53) throw new RangeError(`Prng.nextInt: n must be an integer in [1, 2^53], got ${String(n)}`);
    if (n <= TWO32) {
      const limit = TWO32 - (TWO32 % n);
      for (;;) {
        const r = this.nextUint32();
        if (r < limit) return r % n;
      }
    }
    const limit = TWO53 - (TWO53 % n);
    for (;;) {
      const r = (this.nextUint32() >>> 11) * TWO32 + this.nextUint32();
      if (r < limit) return r % n;
    }
  }

  state(): PrngState {
    return [this.s0 >>> 0, this.s1 >>> 0, this.s2 >>> 0, this.s3 >>> 0];
  }

  setState(state: readonly number[]): void {
    if (!Array.isArray(state) || state.length !== 4 || !state.every((w) => Number.isInteger(w) && w >= 0 && w < TWO32)) {
      throw new TypeError("Prng.setState: state must be an array of four unsigned 32-bit integers");
    }
    if (state.every((w) => w === 0)) throw new RangeError("Prng.setState: the all-zero state is invalid for xoshiro128**");
    [this.s0, this.s1, this.s2, this.s3] = state.map((w) => w | 0) as PrngState;
  }

  static fromState(state: readonly number[]): Prng {
    const p = new Prng(0);
    p.setState(state);
    return p;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
