// Oracle test: the analysis (docs/analysis.md) of pre-trained GPT-2, GPT-NeoX (parallel and
// sequential residual, a transformers-4 config in bfloat16) and LLaMA (GQA + llama3 RoPE + untied
// head; and a transformers-4 config, tied, with biases, in float16) checkpoints agrees within 1e-4
// relative with transformers + PyTorch autograd in float64 (scripts/oracle/pretrained_make.py).
// Half-precision checkpoints are loaded as float32 (an exact cast), as the reference upcasts them.

import { describe, it, expect, beforeAll } from "vitest";
import * as os from "node:os";
import * as fs from "node:fs";
import * as path from "node:path";
import { torch } from "../lib/torch/index.js";
import { loadPretrained } from "../lib/models/hf.js";
import { analyzeModel } from "../lib/analysis/analyze.js";
import { analyzeDir } from "../lib/analysis/run.js";
import type { AnalysisModel } from "../lib/analysis/adapter.js";
import type { AnalysisResult } from "../lib/analysis/result.js";
import { binTokenStream, readWindows } from "../lib/analysis/windows.js";
import { Analyzer } from "../lib/analysis/analyzer.js";
import { adaptModel } from "../lib/analysis/adapter.js";
import { frequencyBuckets } from "../lib/analysis/fits.js";
import { expectCoreAnalysisClose, expectNestedClose, nestedMaxAbs } from "./helpers/close.js";

const FIX = path.join(__dirname, "fixtures", "pretrained");
const MODELS = ["gpt2", "neox-par", "neox-seq", "llama", "llama-v4", "qwen3", "gemma2", "gemma3", "gemma3-v4", "phi3", "olmo2"] as const;
const REL = 1e-4;

type Expected = AnalysisResult & { settings: { seqLen: number; batchSize: number; maxWindows: number; topK: number; freqBuckets: number } };

const close = (actual: unknown, want: unknown, where: string, floor: number) => expectNestedClose(actual, want, where, floor, REL);
const scale = nestedMaxAbs;

const devices = ["cpu", ...(torch.cuda.isAvailable() ? ["cuda"] : [])] as const;

describe.each(devices)("analysis of pretrained checkpoints agrees with transformers + autograd (%s)", (device) => {
  for (const name of MODELS) {
    describe(name, () => {
      const expected = (JSON.parse(fs.readFileSync(path.join(FIX, name, "expected.json"), "utf8")) as { analysis: Expected }).analysis;
      const S = expected.settings;
      let got: AnalysisResult;
      beforeAll(() => {
        const model = loadPretrained(path.join(FIX, name, "model"), { device: device as "cpu", dtype: "float32" });
        const stream = binTokenStream(path.join(FIX, "tokens.bin"));
        try {
          got = analyzeModel(model as unknown as AnalysisModel, stream, {
            seqLen: S.seqLen,
            batchSize: S.batchSize,
            maxWindows: S.maxWindows,
            device,
            topK: S.topK,
            freqBuckets: S.freqBuckets,
          });
        } finally {
          stream.close();
          model.dispose();
        }
      });

      it("core fields (DESIGN.md table) within 1e-4 relative", () => {
        expect(S.maxWindows % S.batchSize).not.toBe(0); // a partial last batch
        expect(got.windows).toBe(expected.windows);
        expect(got.layers).toBe(expected.layers);
        expectCoreAnalysisClose(got, expected, REL);
      });

      it("further measures within 1e-4 relative", () => {
        close(got.gradNorm.std, expected.gradNorm.std, "gradNorm.std", scale(expected.gradNorm.std) * 1e-2);
        close(got.updateParts.attnNormMean, expected.updateParts.attnNormMean, "attnNormMean", 0);
        close(got.updateParts.mlpNormMean, expected.updateParts.mlpNormMean, "mlpNormMean", 0);
        close(got.updateParts.attnCosMean, expected.updateParts.attnCosMean, "attnCosMean", 1e-2);
        close(got.updateParts.mlpCosMean, expected.updateParts.mlpCosMean, "mlpCosMean", 1e-2);
        close(got.firstTokenRatio, expected.firstTokenRatio, "firstTokenRatio", 0);
        got.normFit.forEach((f, l) => {
          const e = expected.normFit[l]!;
          close(f!.slope, e.slope, `normFit[${l}].slope`, 1e-1);
          close(f!.intercept, e.intercept, `normFit[${l}].intercept`, 1);
          close(f!.r2, e.r2, `normFit[${l}].r2`, 1e-1);
        });
        expect(got.attnFirstToken).not.toBeNull();
        close(got.attnFirstToken!.mean, expected.attnFirstToken!.mean, "attnFirstToken.mean", 0);
        close(got.massive.meanAbs, expected.massive.meanAbs, "massive.meanAbs", 0);
        got.massive.layers.forEach((m, l) => {
          const e = expected.massive.layers[l]!;
          close(m.values, e.values, `massive.layers[${l}].values`, 0);
          // Without position embeddings, h^0 of a token is the same at every position, so equal
          // values (ties, also across the k-th place) may come from any of their positions: compare
          // (value, dim) pairs, and positions only for values that are not tied.
          const key = (v: number, d: number) => `${v.toPrecision(5)}|${d}`;
          expect(m.values.map((v, i) => key(v, m.dims[i]!)).sort()).toEqual(e.values.map((v, i) => key(v, e.dims[i]!)).sort());
          const p = (v: number) => v.toPrecision(5);
          const last = p(e.values[e.values.length - 1]!);
          e.values.forEach((v, i) => {
            const tied = e.values.filter((w) => p(w) === p(v)).length > 1 || p(v) === last;
            if (!tied) expect(m.positions[m.values.findIndex((w) => p(w) === p(v))], `massive.layers[${l}] position of ${v}`).toBe(e.positions[i]);
          });
        });
        expect(got.freqBuckets.types).toEqual(expected.freqBuckets.types);
        expect(got.freqBuckets.occurrences).toEqual(expected.freqBuckets.occurrences);
        close(got.freqBuckets.hiddenNormMean, expected.freqBuckets.hiddenNormMean, "freqBuckets.hiddenNormMean", 0);
      });
    });
  }
});

// The same checkpoints through `innerloop analyze`'s entry point: the model folder is loaded by
// architecture (loadPretrained) and analysis.json is written.
describe("innerloop analyze on pretrained checkpoints", () => {
  for (const name of MODELS) {
    it(`${name}: analysis.json agrees with transformers + autograd`, () => {
      const expected = (JSON.parse(fs.readFileSync(path.join(FIX, name, "expected.json"), "utf8")) as { analysis: Expected }).analysis;
      const S = expected.settings;
      const out = fs.mkdtempSync(path.join(os.tmpdir(), `il-analyze-${name}-`));
      try {
        analyzeDir({
          modelDir: path.join(FIX, name, "model"),
          data: path.join(FIX, "tokens.bin"),
          seqLen: S.seqLen,
          batchSize: S.batchSize,
          maxWindows: S.maxWindows,
          topK: S.topK,
          freqBuckets: S.freqBuckets,
          outDir: out,
        });
        const got = JSON.parse(fs.readFileSync(path.join(out, "analysis.json"), "utf8")) as AnalysisResult;
        expect(got.windows).toBe(expected.windows);
        close(got.loss, expected.loss, "loss", 0);
        close(got.hiddenNorm.mean, expected.hiddenNorm.mean, "hiddenNorm.mean", 0);
        close(got.gradNorm.mean, expected.gradNorm.mean, "gradNorm.mean", 0);
        close(got.paramGradNorm, expected.paramGradNorm, "paramGradNorm", 0);
      } finally {
        fs.rmSync(out, { recursive: true, force: true });
      }
    });
  }
});

// attnFirstToken is the attention the model applies: with sliding windows shorter than the
// analysis windows (qwen3: 4, gemma3-v4: 3, phi3: 6; T = 13) and Gemma 2's soft-capped scores, by
// either kernel (the fused one masks the window; the scores path, one window per chunk here, caps
// and masks).
describe("attention on the first token with sliding windows and soft-capping, both kernels", () => {
  for (const name of ["qwen3", "gemma2", "gemma3-v4", "phi3"] as const) {
    for (const attnKernel of ["fused", "scores"] as const) {
      it(`${name} (${attnKernel})`, () => {
        const expected = (JSON.parse(fs.readFileSync(path.join(FIX, name, "expected.json"), "utf8")) as { analysis: Expected }).analysis;
        const S = expected.settings;
        const T = S.seqLen;
        const loaded = loadPretrained(path.join(FIX, name, "model"), { dtype: "float32" });
        const model = loaded as unknown as AnalysisModel;
        const stream = binTokenStream(path.join(FIX, "tokens.bin"));
        try {
          const counts = new Float64Array(97);
          const all = readWindows(stream, T, 0, S.maxWindows);
          for (let w = 0; w < S.maxWindows; w++) for (let t = 0; t < T; t++) counts[all[w * (T + 1) + t]!]! += 1;
          const analyzer = new Analyzer(model, adaptModel(model), {
            seqLen: T,
            device: "cpu",
            topK: S.topK,
            freqBuckets: S.freqBuckets,
            bucketOf: frequencyBuckets(counts, S.freqBuckets),
            attnKernel,
            attnChunkScores: 4 * (T - 1) * T,
          });
          try {
            for (let w0 = 0; w0 < S.maxWindows; w0 += S.batchSize) {
              const w1 = Math.min(S.maxWindows, w0 + S.batchSize);
              analyzer.addBatch(readWindows(stream, T, w0, w1), w0, w1 === S.maxWindows);
            }
            const got = analyzer.finish();
            close(got.attnFirstToken!.mean, expected.attnFirstToken!.mean, "attnFirstToken.mean", 0);
          } finally {
            analyzer.dispose();
          }
        } finally {
          stream.close();
          loaded.dispose();
        }
      });
    }
  }
});
