/**
 * Random training windows, as nanoGPT's get_batch: each row of a batch is a
 * window of T + 1 consecutive tokens starting at a uniformly random position
 * s in [0, n - T), so every window lies inside the stream; x is its first T
 * tokens and y its last T (x shifted by one).
 *
 * The sampler's whole state is the PRNG state plus a batch counter, so a
 * checkpoint can save it (`state()`) and a resumed run continues with exactly
 * the batches an uninterrupted run would have drawn (`setState()`).
 */
import type { Device } from "../torch/index.js";
import { Prng, type PrngState } from "../util/prng.js";
import { batchFromWindows, type Batch } from "./batch.js";
import type { TokenSource } from "./tokens.js";

export interface SamplerState {
  seed: number;
  rng: PrngState;
  /** Batches drawn so far (for information and checks). */
  batches: number;
}

export interface SamplerOptions {
  seed: number;
  /** Device of the batches (default 'cpu'). */
  device?: Device;
}

function checkPositiveInt(v: unknown, name: string): asserts v is number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer, got ${String(v)}`);
}

export class RandomWindowSampler {
  readonly seed: number;
  readonly device: Device | undefined;
  private rng: Prng;
  private batches = 0;

  constructor(
    readonly source: TokenSource,
    opts: SamplerOptions,
  ) {
    if (opts === undefined || typeof opts.seed !== "number") throw new TypeError("RandomWindowSampler: options.seed (an integer) is required");
    this.seed = opts.seed;
    this.device = opts.device;
    this.rng = new Prng(opts.seed);
  }

  /**
   * Draw `count` window starts for windows of seqLen + 1 tokens. Data-parallel
   * ranks can all draw the global batch's starts with the same seed and each
   * take its own share, which gives the same batches as one process.
   */
  nextStarts(count: number, seqLen: number): number[] {
    checkPositiveInt(count, "batchSize");
    checkPositiveInt(seqLen, "seqLen");
    const n = this.source.length;
    if (n < seqLen + 1) throw new RangeError(`${this.source.description}: ${n} tokens cannot hold one window of seqLen + 1 = ${seqLen + 1} tokens`);
    const starts: number[] = [];
    for (let i = 0; i < count; i++) starts.push(this.rng.nextInt(n - seqLen));
    this.batches++;
    return starts;
  }

  /** The batch of windows at `starts` (int64 tensors [starts.length, seqLen]). */
  batchAt(starts: readonly number[], seqLen: number, opts: { device?: Device } = {}): Batch {
    checkPositiveInt(seqLen, "seqLen");
    const w = new Int32Array(starts.length * (seqLen + 1));
    starts.forEach((s, b) => this.source.readInto(s, seqLen + 1, w, b * (seqLen + 1)));
    return batchFromWindows(w, starts.length, seqLen, opts.device ?? this.device);
  }

  /** A random batch: x and y int64 [batchSize, seqLen], y = x shifted by one token. */
  nextBatch(batchSize: number, seqLen: number, opts: { device?: Device } = {}): Batch {
    return this.batchAt(this.nextStarts(batchSize, seqLen), seqLen, opts);
  }

  state(): SamplerState {
    return { seed: this.seed, rng: this.rng.state(), batches: this.batches };
  }

  setState(state: SamplerState): void {
    if (typeof state !== "object" || state === null) throw new TypeError("RandomWindowSampler.setState: state must be an object from state()");
    if (state.seed !== this.seed) throw new RangeError(`RandomWindowSampler.setState: state was saved with seed ${String(state.seed)}, this sampler has seed ${this.seed}`);
    if (!Number.isSafeInteger(state.batches) || state.batches < 0) throw new RangeError("RandomWindowSampler.setState: batches must be a non-negative integer");
    this.rng.setState(state.rng);
    this.batches = state.batches;
  }
}
