// Streaming statistics on the device.
//
// Per-(row, position) mean and population variance over windows are merged batch by batch with
// Chan et al.'s pairwise formula in float64 (each batch's mean and sum of squared deviations are
// computed exactly around the batch mean, then combined), which avoids the cancellation of the
// naive sum / sum-of-squares formula. Everything stays on the tensor's device; nothing is copied
// to the host until `result()`.
//
// The accumulators are allocated once and can be reused: `reset()` only marks them empty, and the
// first batch after it overwrites them (copy_) instead of being added to zeros.

import { torch, Tensor } from "../torch/index.js";
import type { Device } from "../torch/index.js";

export class StreamingMoments {
  private n = 0;
  private readonly mean: Tensor;
  private readonly m2: Tensor;

  /** `shape` is the shape of one statistic (e.g. [rows, T]). */
  constructor(readonly shape: number[], device: Device | string) {
    this.mean = torch.keep(torch.zeros(shape, { dtype: "float64", device: device as Device }));
    this.m2 = torch.keep(torch.zeros(shape, { dtype: "float64", device: device as Device }));
  }

  get count(): number {
    return this.n;
  }

  /** Forgets every batch added so far (the storage is kept for the next ones). */
  reset(): void {
    this.n = 0;
  }

  /** Adds a batch `x` of shape [..shape[:dim], B, ..shape[dim:]] reduced over `dim` (the windows). */
  update(x: Tensor, dim: number): void {
    torch.tidy(() => {
      const b = x.shape[dim]!;
      if (b === 0) return;
      const x64 = x.to("float64");
      const mb = x64.mean(dim);
      const m2b = x64.sub(mb.unsqueeze(dim)).square().sum(dim);
      const na = this.n;
      const n = na + b;
      if (na === 0) {
        this.mean.copy_(mb);
        this.m2.copy_(m2b);
      } else {
        const delta = mb.sub(this.mean);
        this.mean.add_(delta.mul(b / n));
        this.m2.add_(m2b.add(delta.square().mul((na * b) / n)));
      }
      this.n = n;
    });
  }

  /** Mean and population std as nested arrays (one host transfer each). */
  result(): { mean: unknown; std: unknown } {
    return torch.tidy(() => {
      if (this.n === 0) {
        const z = torch.zeros(this.shape, { dtype: "float64" }).toArray();
        return { mean: z, std: z };
      }
      const mean = this.mean.toArray();
      const std = this.m2.div(this.n).clamp(0).sqrt().toArray();
      return { mean, std };
    });
  }

  /**
   * The raw device tensors (mean, M2) for callers that pack several results into one transfer;
   * meaningful only while `count > 0`. std = sqrt(max(M2 / count, 0)).
   */
  tensors(): { mean: Tensor; m2: Tensor } {
    return { mean: this.mean, m2: this.m2 };
  }

  dispose(): void {
    this.mean.dispose();
    this.m2.dispose();
  }
}

/** A float64 running sum on the device. */
export class DeviceSum {
  private readonly sum: Tensor;
  /** No `add` since construction or `reset()`: the next one overwrites the storage. */
  private empty = true;
  /** The storage holds values from before a `reset()`. */
  private stale = false;
  constructor(shape: number[], device: Device | string) {
    this.sum = torch.keep(torch.zeros(shape, { dtype: "float64", device: device as Device }));
  }
  /** The running sum (float64, on the device). */
  get total(): Tensor {
    if (this.stale) {
      this.sum.zero_();
      this.stale = false;
    }
    return this.sum;
  }
  add(x: Tensor): void {
    // copy_ and add_ convert to float64 themselves, without a temporary.
    if (this.empty) this.sum.copy_(x);
    else this.sum.add_(x);
    this.empty = false;
    this.stale = false;
  }
  /** Back to zero; the storage is only cleared if it is read before the next `add`. */
  reset(): void {
    if (!this.empty) this.stale = true;
    this.empty = true;
  }
  dispose(): void {
    this.sum.dispose();
  }
}

/**
 * Running top-k of values with their int64 labels (e.g. flat positions), row by row: after each
 * `update(values [R, m], labels [R, m])` it holds the k largest values seen in every row.
 */
export class RunningTopK {
  private vals: Tensor | null = null;
  private labels: Tensor | null = null;
  constructor(readonly k: number) {}

  update(values: Tensor, labels: Tensor): void {
    const prevVals = this.vals;
    const prevLabels = this.labels;
    const next = torch.tidy(() => {
      const v64 = values.to("float64");
      // The first batch's values (already a top-k of at most k per row) are kept as they are.
      if (!prevVals || !prevLabels) {
        if (v64.shape[1]! <= this.k) return { v: v64, l: labels };
        const top = v64.topk(this.k, 1);
        return { v: top.values, l: labels.gather(1, top.indices) };
      }
      const v = torch.cat([prevVals, v64], 1);
      const lab = torch.cat([prevLabels, labels], 1);
      const top = v.topk(Math.min(this.k, v.shape[1]!), 1);
      return { v: top.values, l: lab.gather(1, top.indices) };
    });
    // `next.l` may be the caller's `labels`; keep() moves it out of the caller's scope.
    this.vals = torch.keep(next.v === values ? next.v.clone() : next.v);
    this.labels = torch.keep(next.l === labels ? next.l.clone() : next.l);
    prevVals?.dispose();
    prevLabels?.dispose();
  }

  /** The current values [R, ≤k] (float64) and labels [R, ≤k] (int64) on the device, or null before any update. */
  tensors(): { values: Tensor; labels: Tensor } | null {
    return this.vals && this.labels ? { values: this.vals, labels: this.labels } : null;
  }

  result(): { values: number[][]; labels: number[][] } {
    if (!this.vals || !this.labels) return { values: [], labels: [] };
    const values = this.vals.toArray() as number[][];
    const lab = this.labels;
    const labels = torch.tidy(() => lab.to("float64").toArray() as number[][]);
    return { values, labels };
  }

  /** Forgets every value seen so far. */
  reset(): void {
    this.vals?.dispose();
    this.labels?.dispose();
    this.vals = null;
    this.labels = null;
  }

  dispose(): void {
    this.reset();
  }
}
