// The Analyzer: one forward pass and one autograd call per batch of windows, reduced on the device
// into streaming per-(layer, position) sums. Nothing of a batch outlives it except the running
// accumulators; no host transfer happens until `finish()`. Definitions: docs/analysis.md.

import { torch, F, Tensor } from "../torch/index.js";
import type { Device } from "../torch/index.js";
import { runWithCache } from "./capture.js";
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
}

// Rows of the per-(row, position) moment accumulator, in this order.
const ROWS_FULL = ["hiddenNorm", "gradNorm"] as const; // L+1 rows each
const ROWS_BLOCK = ["updateNorm", "updateCos", "attnNorm", "attnCos", "mlpNorm", "mlpCos"] as const; // L rows each

/** cos(u, −g) row-wise over the last dim, 0 where either vector is 0. */
function cosNeg(u: Tensor, g: Tensor, un: Tensor, gn: Tensor): Tensor {
  return u.mul(g).sum(-1).neg().div(un.mul(gn).clamp(1e-30));
}

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
  private readonly params: Tensor[];
  private readonly blockOf: number[];
  /** Additive causal mask [T, T]: 0 on and below the diagonal, −∞ above. */
  private readonly causalMask: Tensor | null;
  private readonly names: string[];
  private readonly residNames: string[];
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
    this.moments = new StreamingMoments([ROWS_FULL.length * (L + 1) + ROWS_BLOCK.length * L, T], dev);
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
      ? torch.keep(torch.tidy(() => torch.zeros([T, T], { device: dev as Device }).maskedFill(torch.ones([T, T], { device: dev as Device }).triu(1).gt(0), -Infinity)))
      : null;
    this.residNames = Array.from({ length: L + 1 }, (_, l) => adapter.residName(l));
    this.names = [...this.residNames];
    for (let l = 0; l < L; l++) {
      this.names.push(adapter.attnOutName(l), adapter.mlpOutName(l));
      if (useAttn) this.names.push(adapter.qName(l), adapter.kName(l));
    }
  }

  /** Analyses windows [w0, w0+b) given as their b·(T+1) tokens. */
  addBatch(tokens: Int32Array, w0: number): void {
    if (this.disposed) throw new Error("Analyzer: already finished");
    const T = this.T;
    const L = this.L;
    const b = tokens.length / (T + 1);
    if (!Number.isInteger(b) || b < 1) throw new RangeError(`Analyzer.addBatch: ${tokens.length} tokens is not a whole number of windows of ${T + 1}`);
    const wasTraining = this.model.training;
    this.model.eval();
    try {
      torch.tidy(() => {
        const win = torch.tensor(tokens).view([b, T + 1]).to({ device: this.opts.device as Device, dtype: "int64" });
        const ids = win.slice(1, 0, T).contiguous();
        const tgt = win.slice(1, 1, T + 1).contiguous();
        const residSet = new Set(this.residNames);
        const cache = runWithCache(this.model, ids, {
          namesFilter: this.names,
          withGrads: true,
          gradNamesFilter: (n) => residSet.has(n),
          targets: tgt,
          reduction: "sum",
          params: this.params,
        });
        const act = (n: string): Tensor => {
          const t = cache.acts.get(n);
          if (!t) throw new Error(`analysis: hook point '${n}' was not reached by the forward pass`);
          return t;
        };
        const Hraw = this.residNames.map(act);
        const H = torch.stack(Hraw.map((h) => h.detach())).float(); // [L+1, b, T, D]
        const G = torch.stack(this.residNames.map((n) => cache.grads.get(n)!)).float();
        this.D = H.shape[3]!;
        const hn = H.norm(2, -1); // [L+1, b, T]
        const gn = G.norm(2, -1);
        const Gin = G.slice(0, 0, L);
        const gnIn = gn.slice(0, 0, L);
        const U = H.slice(0, 1, L + 1).sub(H.slice(0, 0, L));
        const un = U.norm(2, -1);
        const A = torch.stack(Array.from({ length: L }, (_, l) => act(this.adapter.attnOutName(l)).detach())).float();
        const M = torch.stack(Array.from({ length: L }, (_, l) => act(this.adapter.mlpOutName(l)).detach())).float();
        const an = A.norm(2, -1);
        const mn = M.norm(2, -1);
        const rows = torch.cat(
          [hn, gn, un, cosNeg(U, Gin, un, gnIn), an, cosNeg(A, Gin, an, gnIn), mn, cosNeg(M, Gin, mn, gnIn)],
          0,
        );
        this.moments.update(rows, 1);

        // Logit lens: final norm + unembedding on every h^l; h^L uses the model's own logits.
        torch.noGrad(() => {
          const v = cache.logits.shape[2]!;
          const flatTgt = tgt.reshape([-1]);
          const ce = (logits: Tensor): Tensor => F.crossEntropy(logits.reshape([-1, v]).float(), flatTgt, { reduction: "sum" });
          // Decoded in chunks of at most 2^24 logits, so that a large vocabulary (GPT-2's 50257) does
          // not need L more copies of the full [B, T, V] logits at once.
          const rowsAll = b * T;
          const chunk = Math.max(1, Math.floor((this.opts.lensChunkLogits ?? 2 ** 24) / v));
          const lens = (h: Tensor): Tensor => {
            const flat = h.detach().reshape([rowsAll, h.shape[2]!]);
            if (rowsAll <= chunk) return ce(this.adapter.decode(flat));
            const parts: Tensor[] = [];
            for (let s = 0; s < rowsAll; s += chunk) {
              const n = Math.min(chunk, rowsAll - s);
              parts.push(torch.tidy(() => F.crossEntropy(this.adapter.decode(flat.narrow(0, s, n)).float(), flatTgt.narrow(0, s, n), { reduction: "sum" })));
            }
            return torch.stack(parts).sum();
          };
          const losses: Tensor[] = [];
          for (let l = 0; l < L; l++) losses.push(lens(Hraw[l]!));
          losses.push(ce(cache.logits.detach()));
          this.lensSum.add(torch.stack(losses));

          if (this.attnSum && this.causalMask) {
            const masses: Tensor[] = [];
            for (let l = 0; l < L; l++) {
              const q = act(this.adapter.qName(l)).detach().float(); // [b, H, T, Dh]
              const k = act(this.adapter.kName(l)).detach().float();
              const scale = this.adapter.attnScale(l, q.shape[3]!);
              // A_{t,0} = exp(s_{t,0} − logsumexp_{s≤t} s_{t,s}) for queries t ≥ 1, without the full softmax.
              const scores = q.slice(2, 1, T).matmul(k.transpose(2, 3)).mul(scale).add(this.causalMask.slice(0, 1, T));
              const p0 = scores.slice(3, 0, 1).squeeze(3).sub(scores.logsumexp(3)).exp(); // [b, H, T-1]
              masses.push(p0.sum([0, 2]));
            }
            this.attnSum.add(torch.stack(masses));
          }

          // Massive activations: running top-k of |h| with flat (window, position, dim) labels.
          const D = this.D;
          const absH = H.abs().reshape([L + 1, b * T * D]);
          this.absSum.add(absH.sum(1));
          const top = absH.topk(Math.min(this.k, b * T * D), 1);
          this.top.update(top.values, top.indices.add(w0 * T * D));

          // Norms by token-frequency bucket (positions t >= 1).
          const K = this.opts.freqBuckets;
          const onehot = new Float32Array(b * T * K);
          for (let w = 0; w < b; w++) {
            for (let t = 1; t < T; t++) {
              const id = tokens[w * (T + 1) + t]!;
              const bk = id >= 0 && id < this.opts.bucketOf.length ? this.opts.bucketOf[id]! : -1;
              if (bk < 0) continue;
              onehot[(w * T + t) * K + bk] = 1;
              this.freqOcc[bk]! += 1;
            }
          }
          const oh = torch.tensor(onehot).view([b * T, K]).to(this.opts.device as Device);
          this.freqSum.add(hn.reshape([L + 1, b * T]).matmul(oh));
        });

        // Parameter gradients of ℓ, summed over batches (divided by N·T at the end).
        cache.paramGrads.forEach((g, i) => {
          const acc = this.paramAcc[i];
          if (acc) acc.add_(g);
          else this.paramAcc[i] = torch.keep(g.dtype === "float32" ? g : g.float());
        });
      });
    } finally {
      this.model.train(wasTraining);
    }
    this.windows += b;
  }

  /** Reduces the accumulators to an AnalysisResult and frees them. */
  finish(): AnalysisResult {
    if (this.disposed) throw new Error("Analyzer: already finished");
    if (this.windows === 0) throw new Error("Analyzer: no windows were analysed");
    const L = this.L;
    const T = this.T;
    const N = this.windows;
    const { mean, std } = this.moments.result() as { mean: Matrix; std: Matrix };
    const rows = (i: number, n: number): [Matrix, Matrix] => [mean.slice(i, i + n), std.slice(i, i + n)];
    let o = 0;
    const [hMean, hStd] = rows(o, L + 1);
    o += L + 1;
    const [gMean, gStd] = rows(o, L + 1);
    o += L + 1;
    const block: Matrix[] = [];
    for (let r = 0; r < ROWS_BLOCK.length; r++, o += L) block.push(rows(o, L)[0]);
    const lens = (this.lensSum.total.toArray() as number[]).map((s) => s / (N * T));
    const paramGradNorm = torch.tidy(() => {
      // One pass per tensor (norm accumulates in higher precision internally); squares summed on the host.
      const norms = torch.stack(this.paramAcc.map((a) => a!.norm())).toArray() as number[];
      const per = new Array<number>(L).fill(0);
      norms.forEach((n, i) => (per[this.blockOf[i]!]! += n * n));
      return per.map((s) => Math.sqrt(s) / (N * T));
    });
    const meanAbsSum = this.absSum.total.toArray() as number[];
    const topRes = this.top.result();
    const D = this.D;
    const massiveLayers = topRes.values.map((vals, l) => {
      const labels = topRes.labels[l]!;
      return {
        values: vals,
        dims: labels.map((x) => x % D),
        positions: labels.map((x) => Math.floor(x / D) % T),
        windows: labels.map((x) => Math.floor(x / (T * D))),
      };
    });
    const attn = this.attnSum ? (this.attnSum.total.toArray() as Matrix).map((r) => r.map((s) => s / (N * (T - 1)))) : null;
    const fSum = this.freqSum.total.toArray() as Matrix;
    const K = this.opts.freqBuckets;
    const types = new Array<number>(K).fill(0);
    for (const bk of this.opts.bucketOf) if (bk >= 0) types[bk]! += 1;
    const result: AnalysisResult = {
      windows: N,
      seqLen: T,
      layers: L + 1,
      loss: lens[L]!,
      hiddenNorm: { mean: hMean, std: hStd },
      gradNorm: { mean: gMean, std: gStd },
      update: { normMean: block[0]!, cosMean: block[1]! },
      updateParts: { attnNormMean: block[2]!, attnCosMean: block[3]!, mlpNormMean: block[4]!, mlpCosMean: block[5]! },
      logitLens: { loss: lens },
      paramGradNorm,
      normFit: hMean.map((r) => fitPowerLaw(r)),
      firstTokenRatio: hMean.map((r) => firstTokenRatio(r)),
      massive: { k: this.k, layers: massiveLayers, meanAbs: meanAbsSum.map((s) => s / (N * T * D)) },
      attnFirstToken: attn ? { mean: attn } : null,
      freqBuckets: {
        buckets: K,
        types,
        occurrences: Array.from(this.freqOcc),
        hiddenNormMean: fSum.map((r) => r.map((s, k) => (this.freqOcc[k]! > 0 ? s / this.freqOcc[k]! : null))),
      },
    };
    this.dispose();
    return result;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.moments.dispose();
    this.lensSum.dispose();
    this.absSum.dispose();
    this.attnSum?.dispose();
    this.freqSum.dispose();
    this.top.dispose();
    for (const a of this.paramAcc) a?.dispose();
    this.causalMask?.dispose();
  }
}
