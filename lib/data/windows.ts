/**
 * Windows for analysis, exactly as DESIGN.md defines them: consecutive,
 * non-overlapping chunks of T + 1 tokens from the start of the stream. Window
 * i covers tokens [i(T+1), (i+1)(T+1)); its inputs are the first T tokens and
 * its targets the last T. There are floor(n / (T+1)) windows (capped by
 * maxWindows); the tokens after the last full window are not used.
 */
import type { Device } from "../torch/index.js";
import { batchFromWindows, type Batch } from "./batch.js";
import type { TokenSource } from "./tokens.js";

export class SequentialWindows {
  /** N, the number of windows. */
  readonly count: number;

  constructor(
    readonly source: TokenSource,
    readonly seqLen: number,
    opts: { maxWindows?: number } = {},
  ) {
    if (!Number.isSafeInteger(seqLen) || seqLen < 1) throw new RangeError(`sequentialWindows: seqLen must be a positive integer, got ${String(seqLen)}`);
    const max = opts.maxWindows;
    if (max !== undefined && !(Number.isSafeInteger(max) && max >= 1)) throw new RangeError(`sequentialWindows: maxWindows must be a positive integer, got ${String(max)}`);
    const full = Math.floor(source.length / (seqLen + 1));
    this.count = max === undefined ? full : Math.min(full, max);
    if (this.count === 0) throw new RangeError(`${source.description}: ${source.length} tokens cannot hold one window of seqLen + 1 = ${seqLen + 1} tokens`);
  }

  /** First token index of window i. */
  start(i: number): number {
    return i * (this.seqLen + 1);
  }

  /** Window i: T + 1 tokens. */
  window(i: number): Int32Array {
    if (!Number.isSafeInteger(i) || i < 0 || i >= this.count) throw new RangeError(`window index ${String(i)} is not in [0, ${this.count})`);
    return this.source.read(this.start(i), this.seqLen + 1);
  }

  /** Windows [first, first + size) as int64 tensors x, y [size, T]. */
  batch(first: number, size: number, opts: { device?: Device } = {}): Batch {
    if (!Number.isSafeInteger(first) || !Number.isSafeInteger(size) || first < 0 || size < 1 || first + size > this.count) {
      throw new RangeError(`windows [${String(first)}, ${String(first + size)}) are not within [0, ${this.count})`);
    }
    const T1 = this.seqLen + 1;
    // Consecutive windows are contiguous in the stream: one read.
    const w = this.source.read(this.start(first), size * T1);
    return batchFromWindows(w, size, this.seqLen, opts.device);
  }

  /** Batch ranges covering all windows in order; the last may be smaller. */
  *ranges(batchSize: number): Generator<{ first: number; size: number }> {
    if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be a positive integer, got ${String(batchSize)}`);
    for (let first = 0; first < this.count; first += batchSize) yield { first, size: Math.min(batchSize, this.count - first) };
  }
}

export function sequentialWindows(source: TokenSource, seqLen: number, opts: { maxWindows?: number } = {}): SequentialWindows {
  return new SequentialWindows(source, seqLen, opts);
}
