// The Analyzer: one forward pass and one autograd call per batch of windows, reduced on the device
// into streaming per-(layer, position) sums. Nothing of a batch outlives it except the running
// accumulators; no host transfer happens until `finish()`, which reads every accumulator back in
// one transfer. Definitions: docs/analysis.md.
//
// The per-batch reductions are done for all layers at once (the layers' tensors stacked), so a
// batch costs a fixed few dozen tensor operations beyond its forward and backward pass, however
// many layers the model has. An Analyzer can be reused: `finish()` leaves it ready for the next
// analysis with the same model (the accumulators are kept and overwritten), and `prepareBatch()`
// puts a batch's token tensors on the device once for repeated analyses of the same windows
// (training-time snapshots).

import { torch, F, Tensor } from "../torch/index.js";
import type { Device } from "../torch/index.js";
import { runWithCache } from "./capture.js";
import type { ProbeCapture } from "../models/gpt2-probe.js";
import type { AnalysisModel, ModelAdapter } from "./adapter.js";
import { StreamingMoments, DeviceSum, RunningTopK } from "./stats.js";
import { fitPowerLaw, firstTokenRatio } from "./fits.js";
import type { AnalysisResult, Matrix } from "./result.js";

export interface AnalyzerOptions {
  seqLen: number;
  device: Device | string;
  /** k of the top-|activation| lists per layer (default 8). */
  topK?: number;
  /** Number of frequency buckets K. */
  freqBuckets: number;
  /** Bucket of every token id (frequencyBuckets()); −1 for ids that never occur. */
  bucketOf: Int32Array;
  /** Most logits the logit lens decodes at once (default 2^24). */
  lensChunkLogits?: number;
  /**
   * How the first-token attention mass is computed: "fused" (the default on a CPU) runs the fused
   * attention kernel with value vectors that pick key 0, without forming the T×T scores;
   * "scores" (the default elsewhere) forms the scores and their softmax, in chunks of windows.
   */
  attnKernel?: "fused" | "scores";
  /** Most attention scores the "scores" path forms at once (default 2^24, at least one window's). */
  attnChunkScores?: number;
}

/** A batch of windows with its tensors on the analysis device (Analyzer.prepareBatch). */
export interface PreparedBatch {
  /** Index of the batch's first window. */
  readonly w0: number;
  /** Number of windows b. */
  readonly b: number;
  /** Inputs [b, T] and targets [b, T] (int64). */
  readonly ids: Tensor;
  readonly targets: Tensor;
  /** Frequency-bucket indicators of the input positions t ≥ 1, [b·T, K] float32. */
  readonly buckets: Tensor;
  /** Input positions t ≥ 1 per bucket. */
  readonly occurrences: Float64Array;
  dispose(): void;
}

/** What one batch's forward and backward pass gives the measures (tensors in the model's dtype). */
interface BatchPass {
  /** h^0 … h^L [b, T, D], and ∂ℓ/∂h^l. */
  resid: Tensor[];
  residGrads: Tensor[];
  /** Each block's attention and MLP output [b, T, D]. */
  attnOut: Tensor[];
  mlpOut: Tensor[];
  /** Σ over the windows and queries t ≥ 1 of the attention on the first key, [L, H] (called only when measured). */
  firstKeyMass(): Tensor;
  logits: Tensor;
  loss: Tensor | null;
  /** The gradients of ℓ with respect to `blockParameters`, or (single-batch analyses) their norms [P]. */
  paramGrads: Tensor[] | null;
  paramGradNorms: Tensor | null;
}

/** Most positions the logit lens decodes at once (see logitLens). */
const LENS_MAX_ROWS = 512;

// Rows of the per-(row, position) moment accumulator, in this order: L+1 rows each of
const ROWS_FULL = ["hiddenNorm", "gradNorm"] as const;
// then L rows each of the norms of u, a, m and then L rows each of their cosines with −g.
const PARTS = ["update", "attn", "mlp"] as const;

export class Analyzer {
  private readonly L: number;
  private readonly T: number;
  private readonly k: number;
  private readonly moments: StreamingMoments;
  private readonly lensSum: DeviceSum;
  private readonly absSum: DeviceSum;
  private readonly attnSum: DeviceSum | null;
  private readonly freqSum: DeviceSum;
  private readonly freqOcc: Float64Array;
  private readonly top: RunningTopK;
  /** Running sums of the parameter gradients (null until the first batch). */
  private readonly paramAcc: Array<Tensor | null>;
  /** ‖gradient‖ of every parameter [P], when the analysis was one batch given as `last` (no sums kept). */
  private paramNorms: Tensor | null = null;
  private readonly params: Tensor[];
  private readonly blockOf: number[];
  /** Additive causal mask for queries 1 … T−1: [T−1, T], 0 where s ≤ t, −∞ above. */
  private readonly causalMask: Tensor | null;
  private readonly names: string[];
  private readonly residNames: string[];
  private readonly residSet: Set<string>;
  private readonly gradFilter: (n: string) => boolean;
  private D = 0;
  private windows = 0;
  private disposed = false;

  constructor(
    private readonly model: AnalysisModel,
    private readonly adapter: ModelAdapter,
    private readonly opts: AnalyzerOptions,
  ) {
    const L = (this.L = adapter.nLayer);
    const T = (this.T = opts.seqLen);
    this.k = opts.topK ?? 8;
    const dev = opts.device;
    this.moments = new StreamingMoments([ROWS_FULL.length * (L + 1) + 2 * PARTS.length * L, T], dev);
    this.lensSum = new DeviceSum([L + 1], dev);
    this.absSum = new DeviceSum([L + 1], dev);
    const useAttn = adapter.hasQK && adapter.nHead > 0 && T > 1;
    this.attnSum = useAttn ? new DeviceSum([L, adapter.nHead], dev) : null;
    this.freqSum = new DeviceSum([L + 1, opts.freqBuckets], dev);
    this.freqOcc = new Float64Array(opts.freqBuckets);
    this.top = new RunningTopK(this.k);
    this.params = [];
    this.blockOf = [];
    for (let l = 0; l < L; l++) {
      for (const p of adapter.blockParams(l)) {
        this.params.push(p);
        this.blockOf.push(l);
      }
    }
    this.paramAcc = this.params.map(() => null);
    this.causalMask = useAttn
      ? torch.keep(torch.tidy(() => {
          const d = { device: dev as Device };
          return torch.zeros([T, T], d).maskedFill(torch.ones([T, T], d).triu(1).gt(0), -Infinity).narrow(0, 1, T - 1).contiguous();
        }))
      : null;
    this.residNames = Array.from({ length: L + 1 }, (_, l) => adapter.residName(l));
    this.residSet = new Set(this.residNames);
    this.gradFilter = (n) => this.residSet.has(n);
    this.names = [...this.residNames];
    for (let l = 0; l < L; l++) {
      this.names.push(adapter.attnOutName(l), adapter.mlpOutName(l));
      if (useAttn) this.names.push(adapter.qName(l), adapter.kName(l));
    }
  }

  /** The parameters whose gradients give paramGradNorm, in the order the analysis uses them. */
  get blockParameters(): readonly Tensor[] {
    return this.params;
  }

  /**
   * Puts windows [w0, w0+b), given as their b·(T+1) tokens, on the device with their frequency-
   * bucket indicators. The caller owns the result (dispose() it); `addPrepared` can use it any
   * number of times.
   */
  prepareBatch(tokens: Int32Array, w0: number): PreparedBatch {
    const T = this.T;
    const b = tokens.length / (T + 1);
    if (!Number.isInteger(b) || b < 1) throw new RangeError(`Analyzer.addBatch: ${tokens.length} tokens is not a whole number of windows of ${T + 1}`);
    const K = this.opts.freqBuckets;
    const bucketOf = this.opts.bucketOf;
    const onehot = new Float32Array(b * T * K);
    const occurrences = new Float64Array(K);
    for (let w = 0; w < b; w++) {
      for (let t = 1; t < T; t++) {
        const id = tokens[w * (T + 1) + t]!;
        const bk = id >= 0 && id < bucketOf.length ? bucketOf[id]! : -1;
        if (bk < 0) continue;
        onehot[(w * T + t) * K + bk] = 1;
        occurrences[bk]! += 1;
      }
    }
    const dev = this.opts.device as Device;
    const [ids, targets, buckets] = torch.keep(torch.tidy(() => {
      const win = torch.tensor(tokens).view([b, T + 1]).to({ device: dev, dtype: "int64" });
      return [win.narrow(1, 0, T).contiguous(), win.narrow(1, 1, T).contiguous(), torch.tensor(onehot).view([b * T, K]).to(dev)];
    }));
    return {
      w0, b, ids: ids!, targets: targets!, buckets: buckets!, occurrences,
      dispose() {
        ids!.dispose();
        targets!.dispose();
        buckets!.dispose();
      },
    };
  }

  /**
   * Analyses windows [w0, w0+b) given as their b·(T+1) tokens. `last` says that `finish()` comes
   * next (it lets a single-batch analysis reduce the parameter gradients right away).
   */
  addBatch(tokens: Int32Array, w0: number, last = false): void {
    if (this.disposed) throw new Error("Analyzer: already disposed");
    const batch = this.prepareBatch(tokens, w0);
    try {
      this.addPrepared(batch, last);
    } finally {
      batch.dispose();
    }
  }

  /** Analyses a batch made by `prepareBatch` (`last` as for addBatch). */
  addPrepared(batch: PreparedBatch, last = false): void {
    this.checkOpen();
    const wasTraining = this.model.training;
    this.model.eval();
    try {
      torch.tidy(() => {
        const cache = runWithCache(this.model, batch.ids, {
          namesFilter: this.names,
          withGrads: true,
          gradNamesFilter: this.gradFilter,
          targets: batch.targets,
          reduction: "sum",
          params: this.params,
        });
        const act = (n: string): Tensor => {
          const t = cache.acts.get(n);
          if (!t) throw new Error(`analysis: hook point '${n}' was not reached by the forward pass`);
          return t;
        };
        const L = this.L;
        const layers = Array.from({ length: L }, (_, l) => l);
        this.accumulate(batch, {
          resid: this.residNames.map(act),
          residGrads: this.residNames.map((n) => cache.grads.get(n)!),
          attnOut: layers.map((l) => act(this.adapter.attnOutName(l))),
          mlpOut: layers.map((l) => act(this.adapter.mlpOutName(l))),
          firstKeyMass: () => this.attnFirstToken(act, batch.b),
          logits: cache.logits,
          loss: cache.loss,
          paramGrads: cache.paramGrads,
          paramGradNorms: null,
        }, last);
      });
    } finally {
      this.model.train(wasTraining);
    }
  }

  /**
   * Analyses a batch whose forward and backward pass ran elsewhere: in a training step that carried
   * the batch's windows along (lib/models/gpt2-probe.ts). `capture` must come from `batch.ids` and
   * `batch.targets` with the model's current weights, its backward pass done; a single-batch
   * analysis only (`finish()` comes next).
   */
  addCaptured(batch: PreparedBatch, capture: ProbeCapture): void {
    this.checkOpen();
    if (this.windows > 0) throw new Error("Analyzer.addCaptured: only a single-batch analysis can use a captured pass");
    const P = capture.paramGradNorms.shape[1]!;
    if (capture.resid.length !== this.L + 1 || capture.paramGradNorms.shape[0] !== this.L || this.params.length !== this.L * P ||
      this.blockOf.some((l, i) => l !== Math.floor(i / P))) {
      throw new Error("Analyzer.addCaptured: the capture does not match the model's layers and block parameters");
    }
    torch.tidy(() => {
      const T = this.T;
      this.accumulate(batch, {
        ...capture,
        // Σ over windows and queries t ≥ 1 of A[t, 0], [L, H].
        firstKeyMass: () => torch.stack(capture.firstKeyAttention).narrow(3, 1, T - 1).sum([1, 3]),
        paramGrads: null,
        paramGradNorms: capture.paramGradNorms.reshape([-1]),
      }, true);
    });
  }

  private checkOpen(): void {
    if (this.disposed) throw new Error("Analyzer: already disposed");
    if (this.paramNorms) throw new Error("Analyzer: a batch was added after the one given as last");
  }

  /**
   * The measures of one batch, added to the running sums. The per-token measures are computed for
   * all layers at once on the stacked residual stream, so a batch costs a fixed few dozen tensor
   * operations beyond its forward and backward pass.
   */
  private accumulate(batch: PreparedBatch, pass: BatchPass, last: boolean): void {
    const T = this.T;
    const L = this.L;
    const { b, w0 } = batch;
    const f32 = (t: Tensor): Tensor => t.detach().float(); // no copy for a float32 model
    const stacked = torch.stack(pass.resid).detach(); // [L+1, b, T, D], the model's dtype (logit lens)
    const Hs = stacked.float();
    const Gs = f32(torch.stack(pass.residGrads));
    const D = (this.D = Hs.shape[3]!);
    // The parts of every block's update: u = h^(l+1) − h^l, its attention part a and MLP part m,
    // [3L, b, T, D]; their norms and their cosines with −g^l = −∂ℓ/∂h^l.
    const parts = torch.cat([Hs.narrow(0, 1, L).sub(Hs.narrow(0, 0, L)), f32(torch.stack(pass.attnOut)), f32(torch.stack(pass.mlpOut))], 0);
    const n3 = parts.norm(2, -1).view([3, L, b, T]);
    const dots = parts.view([3, L, b, T, D]).mul(Gs.narrow(0, 0, L)).sum(-1);
    const hgn = torch.cat([Hs.norm(2, -1), Gs.norm(2, -1)], 0); // [2(L+1), b, T]
    // cos(x, −g) = −x·g / (‖x‖‖g‖), 0 when either is 0.
    const cos3 = dots.neg_().div_(n3.mul(hgn.narrow(0, L + 1, L)).clamp_(1e-30));
    this.moments.update(torch.cat([hgn, n3.view([3 * L, b, T]), cos3.view([3 * L, b, T])], 0), 1);

    torch.noGrad(() => {
      this.lensSum.add(this.logitLens(stacked, pass.logits, pass.loss, batch.targets, b));
      if (this.attnSum) this.attnSum.add(pass.firstKeyMass());

      // Massive activations: running top-k of |h| with flat (window, position, dim) labels.
      this.absSum.add(Hs.abs().sum([1, 2, 3])); // Σ|h| per layer
      const top = this.topAbs(Hs, b);
      this.top.update(top.values, w0 === 0 ? top.labels : top.labels.add(w0 * T * D));

      // Norms by token-frequency bucket (positions t >= 1; the indicators are 0 at t = 0).
      this.freqSum.add(hgn.narrow(0, 0, L + 1).reshape([L + 1, b * T]).matmul(batch.buckets));
    });

    // Parameter gradients of ℓ, summed over batches (divided by N·T at the end). A single batch
    // needs only their norms (computed in float32 with a higher-precision accumulator).
    if (pass.paramGradNorms) {
      this.paramNorms = torch.keep(pass.paramGradNorms.clone());
    } else {
      const pg = pass.paramGrads ?? [];
      if (pg.length > 0 && last && this.windows === 0) {
        // (float64 gradients keep their own precision; 16-bit ones are reduced in float32)
        this.paramNorms = torch.keep(torch.stack(pg.map((g) => (g.dtype === "float64" ? g.norm() : g.norm(2, null, { dtype: "float32" })))));
      } else {
        const wide = pg.length > 0 && pg[0]!.dtype !== "float32";
        pg.forEach((g, i) => {
          const acc = this.paramAcc[i];
          if (acc) acc.add_(g);
          else this.paramAcc[i] = torch.keep(wide ? g.float() : g);
        });
      }
    }
    for (let k = 0; k < this.freqOcc.length; k++) this.freqOcc[k]! += batch.occurrences[k]!;
    this.windows += b;
  }

  /**
   * The k largest |h^l| of the batch per layer, [L+1, k'], with their flat labels (w·T + t)·D + d.
   * In two stages, without |h| of the whole batch: the k largest values lie in the k rows (w, t)
   * with the largest max_d |h| (if a value were in another row, each of those k rows would hold a
   * value at least as large), so only those rows are searched. Equal values may come out in any order.
   */
  private topAbs(Hs: Tensor, b: number): { values: Tensor; labels: Tensor } {
    const D = this.D;
    const rows = b * this.T;
    const kr = Math.min(this.k, rows);
    const layers = Hs.shape[0]!;
    const flat = Hs.view([layers, rows, D]);
    // max_d |h| per row, [L+1, b·T], from the row maxima and minima.
    const rowMax = flat.amax(-1).maximum(flat.amin(-1).neg());
    const topRows = rowMax.topk(kr, 1).indices; // [L+1, kr]
    const cand = flat.gather(1, topRows.unsqueeze(2).expand([layers, kr, D])).abs().view([layers, kr * D]);
    const top = cand.topk(Math.min(this.k, kr * D), 1);
    const row = topRows.gather(1, top.indices.div(D, { roundingMode: "floor" }));
    return { values: top.values, labels: row.mul(D).add(top.indices.remainder(D)) };
  }

  /**
   * Summed cross-entropy of the logit lens at every h^l, [L+1], from the stacked h^0 … h^L
   * [L+1, b, T, D]; l = L is the model's own loss.
   */
  private logitLens(stacked: Tensor, logits: Tensor, loss: Tensor | null, tgt: Tensor, b: number): Tensor {
    const L = this.L;
    const T = this.T;
    const v = logits.shape[2]!;
    // The model's own summed loss: the differentiated scalar when it was computed in float32.
    const own = loss && logits.dtype === "float32"
      ? loss.detach().reshape([1])
      : F.crossEntropy(logits.detach().reshape([-1, v]).float(), tgt.reshape([-1]), { reduction: "sum" }).reshape([1]);
    if (L === 0) return own;
    // h^0..h^(L−1) decoded together, in chunks of at most 2^24 logits, so that a large vocabulary
    // (GPT-2's 50257) does not need L more copies of the full [B, T, V] logits at once, and of at
    // most LENS_MAX_ROWS rows: a chunk's logits are then read back by the log-softmax while much of
    // them is still in cache. On a 2-core EPYC, one thread, a 6 x 256 GPT-2 with V 8192 (16
    // windows of T 256): the lens took 1.53-1.58 s of CPU against 1.60-1.70 s in chunks of 2048
    // rows; with V 50257 the 2^24 bound (333 rows) is the smaller and did better than 83 rows.
    const rowsAll = L * b * T;
    const flat = stacked.narrow(0, 0, L).view([rowsAll, stacked.shape[3]!]);
    const flatTgt = L === 1 ? tgt.reshape([-1]) : tgt.reshape([1, -1]).expand([L, b * T]).reshape([-1]);
    const chunk = Math.max(1, Math.min(LENS_MAX_ROWS, Math.floor((this.opts.lensChunkLogits ?? 2 ** 24) / v)));
    const ce = (s: number, n: number): Tensor =>
      F.crossEntropy(this.adapter.decode(flat.narrow(0, s, n)).float(), flatTgt.narrow(0, s, n), { reduction: "none" });
    let perToken: Tensor;
    if (rowsAll <= chunk) perToken = ce(0, rowsAll);
    else {
      const parts: Tensor[] = [];
      for (let s = 0; s < rowsAll; s += chunk) {
        const n = Math.min(chunk, rowsAll - s);
        parts.push(torch.tidy(() => ce(s, n)));
      }
      perToken = torch.cat(parts, 0);
    }
    return torch.cat([perToken.view([L, b * T]).sum(1), own], 0);
  }

  /** Σ over windows and queries t ≥ 1 of the attention on the first token, [L, H]. */
  private attnFirstToken(act: (n: string) => Tensor, b: number): Tensor {
    const L = this.L;
    const T = this.T;
    const H = this.adapter.nHead;
    const fused = (this.opts.attnKernel ?? (String(this.opts.device) === "cpu" ? "fused" : "scores")) === "fused";
    // Scores path: windows in chunks whose scores [w, H, T−1, T] are at most 2^24 (one window at
    // least), so that long contexts do not need a batch's full score tensor at once.
    const perWindow = H * (T - 1) * T;
    const chunk = Math.max(1, Math.min(b, Math.floor((this.opts.attnChunkScores ?? 2 ** 24) / perWindow)));
    const masses: Tensor[] = [];
    let indicator: Tensor | null = null;
    for (let l = 0; l < L; l++) {
      const q = act(this.adapter.qName(l)).detach().float(); // [b, H, T, Dh]
      const k = act(this.adapter.kName(l)).detach().float();
      const Dh = q.shape[3]!;
      const scale = this.adapter.attnScale(l, Dh);
      // The attention the model applies: soft-capped scores, keys outside a sliding window masked.
      const cap = this.adapter.attnSoftcap(l);
      const w = this.adapter.attnWindow(l);
      const window = w !== null && w < T ? w : null;
      if (fused && cap === null) {
        // softmax(s·q·kᵀ) v with v_s = e_0 for s = 0 and 0 otherwise: output column 0 is A_{t,0}. The
        // fused attention kernel never forms the T×T scores.
        indicator ??= this.indicatorValues(Dh, q.device);
        const v = indicator.expand([b, H, T, Dh]);
        const mask = window === null ? { isCausal: true } : { attnMask: this.windowAllowed(T, window, q.device) };
        const out = F.scaledDotProductAttention(q, k, v, { ...mask, scale });
        masses.push(out.select(3, 0).narrow(2, 1, T - 1).sum([0, 2])); // [H]
        continue;
      }
      const windowMask = window === null ? null : torch.zeros([T, T], { device: q.device as Device }).maskedFill(this.windowAllowed(T, window, q.device).logicalNot(), -Infinity).narrow(0, 1, T - 1);
      const qs = q.narrow(2, 1, T - 1); // queries 1..T−1
      const parts: Tensor[] = [];
      for (let w = 0; w < b; w += chunk) {
        const n = Math.min(chunk, b - w);
        parts.push(torch.tidy(() => {
          let scores = qs.narrow(0, w, n).matmul(k.narrow(0, w, n).transpose(2, 3)).mul_(scale);
          if (cap !== null) scores = scores.div(cap).tanh().mul_(cap);
          scores.add_(windowMask ?? this.causalMask!);
          // A_{t,0}: the first column of the softmax over s ≤ t (−∞ above the diagonal).
          return F.softmax(scores, 3).select(3, 0).sum([0, 2]); // [H]
        }));
      }
      masses.push(parts.length === 1 ? parts[0]! : torch.stack(parts).sum(0));
    }
    return torch.stack(masses);
  }

  /** [T, T] bool: query t may attend to key s (causal, s > t − window). */
  private windowAllowed(T: number, window: number, device: string): Tensor {
    const ones = torch.ones([T, T], { dtype: "bool", device: device as Device });
    return ones.tril(0).logicalAnd(ones.triu(1 - window));
  }

  /**
   * [T, Dh] float32: ones in the row of key 0, zeros below. Made for each batch (two small
   * operations) rather than kept, so that the analysis holds the same tensors whichever way its
   * batches were computed.
   */
  private indicatorValues(Dh: number, device: string): Tensor {
    const v = torch.zeros([this.T, Dh], { device: device as Device });
    v.narrow(0, 0, 1).fill_(1);
    return v;
  }


  /**
   * Reduces the accumulators to an AnalysisResult, reading them back in one host transfer, and
   * leaves the Analyzer empty for the next analysis.
   */
  finish(): AnalysisResult {
    if (this.disposed) throw new Error("Analyzer: already disposed");
    if (this.windows === 0) throw new Error("Analyzer: no windows were analysed");
    const L = this.L;
    const T = this.T;
    const N = this.windows;
    const D = this.D;
    const R = this.moments.shape[0]!;
    const nParams = this.params.length;
    const topT = this.top.tensors()!;
    const kk = topT.values.shape[1]!;
    // Everything in one float64 vector: mean, M2, lens, |h| sums, attention, bucket sums, top-k
    // values and labels (int64 labels are exact in float64), parameter-gradient norms.
    const segments: Array<[string, number]> = [
      ["mean", R * T], ["m2", R * T], ["lens", L + 1], ["abs", L + 1], ["attn", this.attnSum ? L * this.adapter.nHead : 0],
      ["freq", (L + 1) * this.opts.freqBuckets], ["topV", (L + 1) * kk], ["topL", (L + 1) * kk], ["pnorm", nParams],
    ];
    const flat = torch.tidy(() => {
      const m = this.moments.tensors();
      const parts = [m.mean, m.m2, this.lensSum.total, this.absSum.total, ...(this.attnSum ? [this.attnSum.total] : []),
        this.freqSum.total, topT.values, topT.labels.to("float64")].map((t) => t.reshape([-1]));
      // One norm per parameter tensor (computed in float32 with a higher-precision accumulator);
      // their squares are summed per block on the host in float64.
      if (nParams > 0) parts.push((this.paramNorms ?? torch.stack(this.paramAcc.map((a) => a!.norm()))).to("float64"));
      return torch.cat(parts, 0).toTypedArray() as Float64Array;
    });
    const seg: Record<string, Float64Array> = {};
    let off = 0;
    for (const [name, n] of segments) {
      seg[name] = flat.subarray(off, off + n);
      off += n;
    }
    // (Plain loops: Array.from over a typed array with a map function is ten times slower.)
    const matrix = (a: Float64Array, rows: number, cols: number, f?: (x: number) => number): Matrix => {
      const out: Matrix = new Array(rows);
      for (let r = 0; r < rows; r++) {
        const row = new Array<number>(cols);
        for (let c = 0; c < cols; c++) row[c] = f ? f(a[r * cols + c]!) : a[r * cols + c]!;
        out[r] = row;
      }
      return out;
    };
    const mean = matrix(seg.mean!, R, T);
    const std = matrix(seg.m2!, R, T, (x) => Math.sqrt(Math.max(x / N, 0)));
    let o = 0;
    const take = (from: Matrix, n: number): Matrix => from.slice(o, o + n);
    const hMean = take(mean, L + 1);
    const hStd = take(std, L + 1);
    o += L + 1;
    const gMean = take(mean, L + 1);
    const gStd = take(std, L + 1);
    o += L + 1;
    const norms: Matrix[] = [];
    for (let p = 0; p < PARTS.length; p++, o += L) norms.push(take(mean, L));
    const coss: Matrix[] = [];
    for (let p = 0; p < PARTS.length; p++, o += L) coss.push(take(mean, L));
    const lens = matrix(seg.lens!, 1, L + 1, (s) => s / (N * T))[0]!;
    const per = new Array<number>(L).fill(0);
    seg.pnorm!.forEach((n, i) => (per[this.blockOf[i]!]! += n * n));
    const paramGradNorm = per.map((s) => Math.sqrt(s) / (N * T));
    const topV = matrix(seg.topV!, L + 1, kk);
    const topL = matrix(seg.topL!, L + 1, kk);
    const massiveLayers = topV.map((vals, l) => {
      const labels = topL[l]!;
      return {
        values: vals,
        dims: labels.map((x) => x % D),
        positions: labels.map((x) => Math.floor(x / D) % T),
        windows: labels.map((x) => Math.floor(x / (T * D))),
      };
    });
    const attn = this.attnSum ? matrix(seg.attn!, L, this.adapter.nHead, (s) => s / (N * (T - 1))) : null;
    const K = this.opts.freqBuckets;
    const occ = Array.from(this.freqOcc);
    const fSum = matrix(seg.freq!, L + 1, K);
    const types = new Array<number>(K).fill(0);
    for (const bk of this.opts.bucketOf) if (bk >= 0) types[bk]! += 1;
    const result: AnalysisResult = {
      windows: N,
      seqLen: T,
      layers: L + 1,
      loss: lens[L]!,
      hiddenNorm: { mean: hMean, std: hStd },
      gradNorm: { mean: gMean, std: gStd },
      update: { normMean: norms[0]!, cosMean: coss[0]! },
      updateParts: { attnNormMean: norms[1]!, attnCosMean: coss[1]!, mlpNormMean: norms[2]!, mlpCosMean: coss[2]! },
      logitLens: { loss: lens },
      paramGradNorm,
      normFit: hMean.map((r) => fitPowerLaw(r)),
      firstTokenRatio: hMean.map((r) => firstTokenRatio(r)),
      massive: { k: this.k, layers: massiveLayers, meanAbs: matrix(seg.abs!, 1, L + 1, (s) => s / (N * T * D))[0]! },
      attnFirstToken: attn ? { mean: attn } : null,
      freqBuckets: {
        buckets: K,
        types,
        occurrences: occ,
        hiddenNormMean: fSum.map((r) => r.map((s, k) => (occ[k]! > 0 ? s / occ[k]! : null))),
      },
    };
    this.reset();
    return result;
  }

  /** Forgets every batch added so far; the accumulators' storage is kept for the next analysis. */
  reset(): void {
    this.moments.reset();
    this.lensSum.reset();
    this.absSum.reset();
    this.attnSum?.reset();
    this.freqSum.reset();
    this.top.reset();
    this.paramNorms?.dispose();
    this.paramNorms = null;
    this.paramAcc.forEach((a, i) => {
      a?.dispose();
      this.paramAcc[i] = null;
    });
    this.freqOcc.fill(0);
    this.windows = 0;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.reset();
    this.moments.dispose();
    this.lensSum.dispose();
    this.absSum.dispose();
    this.attnSum?.dispose();
    this.freqSum.dispose();
    this.top.dispose();
    this.causalMask?.dispose();
  }
}
