// Oracle test: `innerloop analyze` on a random Hugging Face GPT-2 (scripts/oracle/analysis_oracle.py
// made the weights, the tokens and the expected values with transformers + PyTorch autograd in
// float64) must agree with the reference within 1e-4 relative for every field.

import { describe, it, expect, beforeAll } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { torch } from "../lib/torch/index.js";
import { analyzeDir } from "../lib/analysis/run.js";
import type { AnalysisResult } from "../lib/analysis/result.js";
import { expectCoreAnalysisClose, expectNestedClose, nestedMaxAbs } from "./helpers/close.js";

const FIXTURE = path.join(__dirname, "..", "scripts", "oracle", "fixtures", "gpt2-tiny");
const expected = JSON.parse(fs.readFileSync(path.join(FIXTURE, "expected.json"), "utf8")) as AnalysisResult & {
  settings: { seqLen: number; batchSize: number; maxWindows: number; topK: number; freqBuckets: number; tokensInFile: number };
};
const S = expected.settings;

const REL = 1e-4;

const close = (actual: unknown, want: unknown, where: string, floor: number) => expectNestedClose(actual, want, where, floor, REL);
const scale = nestedMaxAbs;

const devices = ["cpu", ...(torch.cuda.isAvailable() ? ["cuda"] : [])] as const;

describe.each(devices)("analyze agrees with transformers + autograd (%s)", (device) => {
  let got: AnalysisResult;
  let out: string;
  beforeAll(() => {
    out = fs.mkdtempSync(path.join(os.tmpdir(), "innerloop-analysis-"));
    got = analyzeDir({
      modelDir: path.join(FIXTURE, "model"),
      data: path.join(FIXTURE, "tokens.bin"),
      seqLen: S.seqLen,
      batchSize: S.batchSize,
      maxWindows: S.maxWindows,
      topK: S.topK,
      freqBuckets: S.freqBuckets,
      device: device as "cpu",
      outDir: out,
    });
  });

  it("uses N windows in batches with a partial last one", () => {
    expect(S.maxWindows % S.batchSize).not.toBe(0); // the fixture really has a partial batch
    expect(got.windows).toBe(expected.windows);
    expect(got.seqLen).toBe(S.seqLen);
    expect(got.layers).toBe(expected.layers);
  });

  it("core fields (DESIGN.md table) within 1e-4 relative", () => {
    expectCoreAnalysisClose(got, expected, REL);
    // The logit lens of the last layer is the model's loss.
    expect(got.logitLens.loss[got.layers - 1]).toBeCloseTo(got.loss, 10);
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
      expect(f!.firstPosition).toBe(2);
      expect(f!.lastPosition).toBe(S.seqLen);
      close(f!.slope, e.slope, `normFit[${l}].slope`, 1e-1);
      close(f!.intercept, e.intercept, `normFit[${l}].intercept`, 1);
      close(f!.r2, e.r2, `normFit[${l}].r2`, 1e-1);
    });
    expect(got.attnFirstToken).not.toBeNull();
    close(got.attnFirstToken!.mean, expected.attnFirstToken!.mean, "attnFirstToken.mean", 0);
    expect(got.massive.k).toBe(S.topK);
    close(got.massive.meanAbs, expected.massive.meanAbs, "massive.meanAbs", 0);
    got.massive.layers.forEach((m, l) => {
      const e = expected.massive.layers[l]!;
      close(m.values, e.values, `massive.layers[${l}].values`, 0);
      // Equal values (the same token at the same position in two windows) may come in any order:
      // compare the (value, dim, position) multisets, and every reported window must hold that value.
      const key = (v: number, d: number, t: number) => `${v.toPrecision(5)}|${d}|${t}`;
      const mine = m.values.map((v, i) => key(v, m.dims[i]!, m.positions[i]!)).sort();
      const theirs = e.values.map((v, i) => key(v, e.dims[i]!, e.positions[i]!)).sort();
      expect(mine).toEqual(theirs);
      for (const w of m.windows) expect(w).toBeGreaterThanOrEqual(0), expect(w).toBeLessThan(S.maxWindows);
    });
    expect(got.freqBuckets.buckets).toBe(S.freqBuckets);
    expect(got.freqBuckets.types).toEqual(expected.freqBuckets.types);
    expect(got.freqBuckets.occurrences).toEqual(expected.freqBuckets.occurrences);
    close(got.freqBuckets.hiddenNormMean, expected.freqBuckets.hiddenNormMean, "freqBuckets.hiddenNormMean", 0);
  });

  it("writes analysis.json and CSVs with the same numbers", () => {
    const file = JSON.parse(fs.readFileSync(path.join(out, "analysis.json"), "utf8")) as AnalysisResult;
    expect(file.windows).toBe(got.windows);
    expect(file.hiddenNorm.mean).toEqual(got.hiddenNorm.mean);
    expect(file.paramGradNorm).toEqual(got.paramGradNorm);
    const pos = fs.readFileSync(path.join(out, "positions.csv"), "utf8").trim().split("\n");
    expect(pos[0]!.split(",").slice(0, 4)).toEqual(["layer", "position", "hiddenNormMean", "hiddenNormStd"]);
    expect(pos.length).toBe(1 + got.layers * got.seqLen);
    const row = pos[1 + 2 * got.seqLen + 5]!.split(","); // layer 2, position 5
    expect(Number(row[0])).toBe(2);
    expect(Number(row[1])).toBe(5);
    expect(Number(row[2])).toBe(got.hiddenNorm.mean[2]![5]);
    const layers = fs.readFileSync(path.join(out, "layers.csv"), "utf8").trim().split("\n");
    expect(layers.length).toBe(1 + got.layers);
    expect(Number(layers[1]!.split(",")[1])).toBe(got.logitLens.loss[0]);
  });
});

describe("analyze inputs", () => {
  it("uses every whole window of the file without --max-windows, and refuses bad input clearly", () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "innerloop-analysis-"));
    const r = analyzeDir({
      modelDir: path.join(FIXTURE, "model"),
      data: path.join(FIXTURE, "tokens.bin"),
      seqLen: S.seqLen,
      batchSize: 5,
      outDir: out,
    });
    expect(r.windows).toBe(Math.floor(S.tokensInFile / (S.seqLen + 1)));
    expect(() => analyzeDir({ modelDir: path.join(FIXTURE, "model"), data: path.join(FIXTURE, "tokens.bin"), seqLen: 64, batchSize: 2, outDir: out })).toThrow(/seqLen 64 exceeds the model's context length 32|not enough/);
    expect(() => analyzeDir({ modelDir: path.join(out, "nope"), data: path.join(FIXTURE, "tokens.bin"), seqLen: 8, batchSize: 2, outDir: out })).toThrow(/config\.json/);
  });
});

describe("innerloop analyze (command line)", () => {
  it("analyses text with the run's tokenizer exactly as the same ids from a .bin file", async () => {
    const { main } = await import("../lib/cli/main.js");
    const { GPT2, saveGPT2 } = await import("../lib/models/index.js");
    const { CharTokenizer, writeTokenBin } = await import("../lib/data/index.js");
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "innerloop-analyze-cli-"));
    const text = "Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse. ".repeat(3);
    const tok = CharTokenizer.fromText(text);
    const model = new GPT2({ vocabSize: tok.vocabSize, nPositions: 16, nEmbd: 24, nLayer: 2, nHead: 2 }, { seed: 3 });
    saveGPT2(path.join(dir, "run"), model, { innerloop: { tokenizer: tok.toJSON() } });
    model.dispose();
    fs.writeFileSync(path.join(dir, "text.txt"), text);
    const ids = tok.encode(text);
    writeTokenBin(path.join(dir, "ids.bin"), ids);
    const out: string[] = [];
    const io = { stdout: { write: (s: string) => out.push(s) } as unknown as NodeJS.WritableStream };
    for (const [data, o] of [["text.txt", "a"], ["ids.bin", "b"]] as const) {
      const code = await main(["analyze", "--model", path.join(dir, "run"), "--data", path.join(dir, data), "--seq-len", "15", "--batch-size", "3", "--out", path.join(dir, o)], io);
      expect(code).toBe(0);
    }
    const a = JSON.parse(fs.readFileSync(path.join(dir, "a", "analysis.json"), "utf8")) as AnalysisResult;
    const b = JSON.parse(fs.readFileSync(path.join(dir, "b", "analysis.json"), "utf8")) as AnalysisResult;
    expect(a.windows).toBe(Math.floor(ids.length / 16));
    expect(a.hiddenNorm).toEqual(b.hiddenNorm);
    expect(a.loss).toBe(b.loss);
    expect(out.join("")).toMatch(/analysed 19 windows of 15 tokens \(2 blocks\)/);
    // A usage error is one line and exit status 2.
    const err: string[] = [];
    const code = await main(["analyze", "--model", path.join(dir, "run"), "--out", path.join(dir, "c")], { stderr: { write: (s: string) => err.push(s) } as unknown as NodeJS.WritableStream });
    expect(code).toBe(2);
    expect(err.join("")).toMatch(/--data PATH is required/);
  });
});

describe("logit lens in chunks", () => {
  it("gives the same losses when the decode is split into small chunks", async () => {
    const { loadGPT2 } = await import("../lib/models/index.js");
    const { analyzeModel } = await import("../lib/analysis/analyze.js");
    const { binTokenStream } = await import("../lib/analysis/windows.js");
    const model = loadGPT2(path.join(FIXTURE, "model"));
    const stream = binTokenStream(path.join(FIXTURE, "tokens.bin"));
    const opts = { seqLen: S.seqLen, batchSize: S.batchSize, maxWindows: S.maxWindows };
    const limit = torch.cpuCacheLimit();
    const during: number[] = [];
    const whole = analyzeModel(model as never, stream, { ...opts, onProgress: () => during.push(torch.cpuCacheLimit()) });
    // An analysis raises the CPU buffer cache's bound to 1 GiB while it runs, and puts it back.
    if (process.env.INNERLOOP_CPU_CACHE_MB === undefined) expect(new Set(during)).toEqual(new Set([2 ** 30]));
    expect(torch.cpuCacheLimit()).toBe(limit);
    const chunked = analyzeModel(model as never, stream, { ...opts, lensChunkLogits: 97 * 5 });
    stream.close();
    model.dispose();
    chunked.logitLens.loss.forEach((v, l) => expect(v).toBeCloseTo(whole.logitLens.loss[l]!, 5));
    close(chunked.logitLens.loss, expected.logitLens.loss, "chunked logitLens.loss", 0);
  });
});

describe("analyze in bfloat16", () => {
  it("runs a bf16 model and stays close to the float64 reference", () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "innerloop-analysis-bf16-"));
    const r = analyzeDir({
      modelDir: path.join(FIXTURE, "model"),
      data: path.join(FIXTURE, "tokens.bin"),
      seqLen: S.seqLen,
      batchSize: S.batchSize,
      maxWindows: S.maxWindows,
      dtype: "bfloat16",
      outDir: out,
    });
    expect(r.windows).toBe(expected.windows);
    expect(Math.abs(r.loss - expected.loss) / expected.loss).toBeLessThan(0.03);
    r.hiddenNorm.mean.forEach((row, l) => row.forEach((v, t) => expect(Math.abs(v - expected.hiddenNorm.mean[l]![t]!) / expected.hiddenNorm.mean[l]![t]!).toBeLessThan(0.03)));
    r.paramGradNorm.forEach((v, l) => expect(Math.abs(v - expected.paramGradNorm[l]!) / expected.paramGradNorm[l]!).toBeLessThan(0.1));
  });
});

describe("short windows", () => {
  it("handles T = 1 and T = 2 (measures that need more positions are null)", () => {
    for (const T of [1, 2]) {
      const out = fs.mkdtempSync(path.join(os.tmpdir(), "innerloop-analysis-short-"));
      const r = analyzeDir({ modelDir: path.join(FIXTURE, "model"), data: path.join(FIXTURE, "tokens.bin"), seqLen: T, batchSize: 7, maxWindows: 20, outDir: out });
      expect(r.windows).toBe(20);
      expect(r.hiddenNorm.mean[0]).toHaveLength(T);
      expect(r.normFit.every((f) => f === null)).toBe(true);
      if (T === 1) {
        expect(r.attnFirstToken).toBeNull();
        expect(r.firstTokenRatio.every((x) => x === null)).toBe(true);
        expect(r.freqBuckets.hiddenNormMean.flat().every((x) => x === null)).toBe(true);
      } else {
        // With two positions the second query splits its attention between the two keys.
        for (const row of r.attnFirstToken!.mean) for (const m of row) expect(m).toBeGreaterThan(0), expect(m).toBeLessThan(1);
        expect(r.firstTokenRatio.every((x) => typeof x === "number")).toBe(true);
      }
      expect(Number.isFinite(r.loss)).toBe(true);
    }
  });
});
