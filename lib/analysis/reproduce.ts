// `innerloop reproduce`: the experiment end to end on the bundled moby-dick corpus. Train a small
// character-level GPT-2 with analysis snapshots on a fixed held-out set, analyse the final model on
// more held-out windows, and render the report.

import * as fs from "node:fs";
import * as path from "node:path";
import type { Device } from "../torch/index.js";
import { resolveConfig, type TrainConfig } from "../train/config.js";
import { runTraining } from "../train/run.js";
import { analyzeModel } from "./analyze.js";
import type { AnalysisModel } from "./adapter.js";
import { writeAnalysis } from "./files.js";
import { createAnalysisPlugin } from "./plugin.js";
import { registerTrainerPlugin } from "../train/plugins.js";
import { writeReport } from "./report/html.js";
import { toTokenStream } from "./windows.js";
import { checkDevice } from "./run.js";

export interface ReproduceOptions {
  outDir: string;
  quick: boolean;
  device?: Device;
  /** Override the number of training steps. */
  steps?: number;
  /** Override the snapshot interval. */
  analyzeEvery?: number;
  stdout?: NodeJS.WritableStream;
  stderr?: NodeJS.WritableStream;
}

/** The training settings of the full and the quick experiment. */
export function reproduceConfig(quick: boolean, device: Device): TrainConfig {
  const common: Partial<TrainConfig> = { data: "moby-dick", tokenizer: "char", device, dtype: "float32", dropout: 0, seed: 1337 };
  if (quick) {
    // Sized to finish within 3 minutes on 2 CPU cores, analysis and report included.
    return resolveConfig({
      ...common, nLayer: 4, nHead: 4, nEmbd: 64, seqLen: 64, batchSize: 16, steps: 1000,
      lr: 3e-3, minLr: 3e-4, warmup: 50, evalEvery: 250, evalBatches: 4, checkpointEvery: 0,
      analyzeEvery: 40, analyzeWindows: 8,
    });
  }
  return resolveConfig({
    ...common, nLayer: 4, nHead: 4, nEmbd: 128, seqLen: 128, batchSize: 16, steps: 1500,
    lr: 2e-3, minLr: 2e-4, warmup: 100, evalEvery: 250, evalBatches: 8, checkpointEvery: 500,
    analyzeEvery: 50, analyzeWindows: 16,
  });
}

export async function reproduce(o: ReproduceOptions): Promise<{ reportPath: string; analysisPath: string }> {
  const stderr = o.stderr ?? process.stderr;
  const stdout = o.stdout ?? process.stdout;
  const device = checkDevice(o.device);
  if (fs.existsSync(o.outDir) && fs.readdirSync(o.outDir).length > 0) {
    throw new Error(`--out ${o.outDir} exists and is not empty; choose a new folder`);
  }
  fs.mkdirSync(o.outDir, { recursive: true });
  const config = reproduceConfig(o.quick, device);
  if (o.steps !== undefined) {
    config.steps = o.steps;
    config.warmup = Math.min(config.warmup, o.steps);
    config.evalEvery = Math.min(config.evalEvery, o.steps);
  }
  if (o.analyzeEvery !== undefined) config.analyzeEvery = o.analyzeEvery;
  registerTrainerPlugin("analysis", createAnalysisPlugin);
  const t0 = performance.now();
  stderr.write(`reproduce${o.quick ? " --quick" : ""}: training ${config.nLayer} x ${config.nEmbd} on moby-dick for ${config.steps} steps, analysis every ${config.analyzeEvery} steps\n`);
  const { trainer } = await runTraining({ runDir: o.outDir, resume: false, config, stdout: stderr, stderr });

  // Final analysis on more held-out windows than the snapshots use.
  stderr.write("reproduce: analysing the trained model on held-out windows\n");
  const result = analyzeModel(trainer.model as unknown as AnalysisModel, toTokenStream(trainer.data.val), {
    seqLen: config.seqLen,
    batchSize: config.batchSize,
    maxWindows: o.quick ? 64 : 256,
    device,
  });
  result.meta = { model: path.resolve(o.outDir), data: "moby-dick (validation split)", device, steps: trainer.step };
  const analysisDir = path.join(o.outDir, "analysis");
  writeAnalysis(analysisDir, result);

  stderr.write("reproduce: rendering the report\n");
  await writeReport(o.outDir);
  const reportPath = path.join(o.outDir, "report.html");
  const L = result.layers - 1;
  const fit = result.normFit[L];
  stdout.write(
    `done in ${((performance.now() - t0) / 1000).toFixed(0)} s: held-out loss ${result.loss.toFixed(3)} nats; ` +
      `last-layer norm ~ position^${fit ? fit.slope.toFixed(3) : "n/a"} (R² ${fit ? fit.r2.toFixed(2) : "n/a"}), ` +
      `first-token ratio ${result.firstTokenRatio[L]?.toFixed(2) ?? "n/a"}\n` +
      `report: ${reportPath}\nanalysis: ${path.join(analysisDir, "analysis.json")}\ntimeline: ${path.join(o.outDir, "analysis", "timeline.json")}\n`,
  );
  return { reportPath, analysisPath: path.join(analysisDir, "analysis.json") };
}
