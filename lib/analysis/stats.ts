// Streaming statistics on the device.
//
// Per-(row, position) mean and population variance over windows are merged batch by batch with
// Chan et al.'s pairwise formula in float64 (each batch's mean and sum of squared deviations are
// computed exactly around the batch mean, then combined), which avoids the cancellation of the
// naive sum / sum-of-squares formula. Everything stays on the tensor's device; nothing is copied
// to the host until `result()`.

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

  /** Adds a batch `x` of shape [..shape[:dim], B, ..shape[dim:]] reduced over `dim` (the windows). */
  update(x: Tensor, dim: number): void {
    torch.tidy(() => {
      const b = x.shape[dim]!;
      if (b === 0) return;
      const x64 = x.to("float64");
      const mb = x64.mean(dim);
      const m2b = x64.sub(mb.unsqueeze(dim)).pow(2).sum(dim);
      const na = this.n;
      const n = na + b;
      const delta = mb.sub(this.mean);
      this.mean.add_(delta.mul(b / n));
      this.m2.add_(m2b.add(delta.pow(2).mul((na * b) / n)));
      this.n = n;
    });
  }

  /** Mean and population std as nested arrays (one host transfer each). */
  result(): { mean: unknown; std: unknown } {
    return torch.tidy(() => {
      const mean = this.mean.toArray();
      const std = this.n > 0 ? this.m2.div(this.n).clamp(0).sqrt().toArray() : this.m2.toArray();
      return { mean, std };
    });
  }

  /** The raw device tensors (mean, M2) for callers that pack several results into one transfer. */
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
  readonly total: Tensor;
  constructor(shape: number[], device: Device | string) {
    this.total = torch.keep(torch.zeros(shape, { dtype: "float64", device: device as Device }));
  }
  add(x: Tensor): void {
    torch.tidy(() => {
      this.total.add_(x.to("float64"));
    });
  }
  dispose(): void {
    this.total.dispose();
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
    const next = torch.tidy(() => {
      const v = this.vals ? torch.cat([this.vals, values.to("float64")], 1) : values.to("float64");
      const lab = this.labels ? torch.cat([this.labels, labels], 1) : labels;
      const k = Math.min(this.k, v.shape[1]!);
      const top = v.topk(k, 1);
      return { v: top.values, l: lab.gather(1, top.indices) };
    });
    this.vals?.dispose();
    this.labels?.dispose();
    this.vals = torch.keep(next.v);
    this.labels = torch.keep(next.l);
  }

  result(): { values: number[][]; labels: number[][] } {
    if (!this.vals || !this.labels) return { values: [], labels: [] };
    const values = this.vals.toArray() as number[][];
    const lab = this.labels;
    const labels = torch.tidy(() => lab.to("float64").toArray() as number[][]);
    return { values, labels };
  }

  dispose(): void {
    this.vals?.dispose();
    this.labels?.dispose();
  }
}
