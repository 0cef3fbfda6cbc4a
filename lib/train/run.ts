/**
 * A training run as the CLI starts it: the trainer, plugins asked for by the
 * configuration, SIGINT/SIGTERM handling and the closing summary.
 */
import { OutOfMemoryError, type Device } from "../torch/index.js";
import type { TrainConfig } from "./config.js";
import { getTrainerPluginFactory } from "./plugins.js";
import { StopRequest } from "./signals.js";
import { Trainer } from "./trainer.js";
import { DataParallel, distEnvFromProcess, type DistEnv } from "./ddp.js";
import { readTrainerState } from "./state.js";
import { TensorBoardPlugin } from "./tensorboard.js";

export interface RunOptions {
  runDir: string;
  resume: boolean;
  /** A new run's full configuration. */
  config?: TrainConfig;
  /** With `resume`: the settings that may change. */
  overrides?: { steps?: number; device?: Device; checkpointEvery?: number; evalEvery?: number; cudaGraph?: boolean };
  /** Write TensorBoard event files beside metrics.jsonl (lib/train/tensorboard.ts). */
  tensorboard?: boolean;
}

export interface RunTrainingOptions extends RunOptions {
  stdout?: NodeJS.WritableStream;
  stderr?: NodeJS.WritableStream;
}

/** Trains, and returns the exit status and the trainer (the caller's to `close()`; failures throw). */
export async function runTraining(o: RunTrainingOptions): Promise<{ exitCode: number; trainer: Trainer }> {
  const stderr = o.stderr ?? process.stderr;
  const stdout = o.stdout ?? process.stdout;
  // A worker of a data-parallel run (started by `--nproc N`, torchrun or another launcher)?
  const env = distEnvFromProcess();
  let config = o.config;
  let overrides = o.overrides;
  let parallel: DataParallel | undefined;
  if (env) {
    const device = o.resume ? (overrides?.device ?? readTrainerState(o.runDir).config.device) : config!.device;
    const mine = rankDevice(device, env);
    if (o.resume) overrides = { ...overrides, device: mine };
    else config = { ...config!, device: mine };
    parallel = DataParallel.join(env, mine);
  }
  try {
    return await train({ ...o, config, overrides }, parallel, stdout, stderr);
  } finally {
    parallel?.destroy();
  }
}

/** Each local rank gets its own GPU: `cuda` becomes `cuda:LOCAL_RANK`. */
function rankDevice(device: Device, env: DistEnv): Device {
  return device === "cuda" ? `cuda:${env.localRank}` : device;
}

async function train(o: RunOptions, parallel: DataParallel | undefined, stdout: NodeJS.WritableStream, stderr: NodeJS.WritableStream): Promise<{ exitCode: number; trainer: Trainer }> {
  const main = parallel?.isMain ?? true;
  const trainer = await Trainer.create({
    runDir: o.runDir,
    config: o.config,
    resume: o.resume,
    overrides: o.overrides,
    progress: { stream: stderr, quiet: !main },
    parallel,
  });
  const c = trainer.config;
  const tensorboard = main && o.tensorboard ? new TensorBoardPlugin(trainer.runDir) : undefined;
  if (main && c.analyzeEvery > 0) {
    const factory = getTrainerPluginFactory("analysis");
    if (!factory) throw new Error("--analyze-every needs the analysis plugin, which this build of innerloop does not register");
    trainer.addPlugin(await factory({ config: c, runDir: trainer.runDir, resumed: trainer.resumed, scalars: tensorboard }));
  }
  // After the analysis plugin, so that its last snapshot's scalars land before the event file closes.
  if (tensorboard) trainer.addPlugin(tensorboard);
  const nParams = trainer.model.numParameters();
  const procs = parallel && parallel.worldSize > 1 ? `, ${parallel.worldSize} processes` : "";
  const tok = trainer.data.tokenizer;
  const shape = c.init !== undefined ? `from ${c.init}` : `${c.nLayer} layers x ${c.nEmbd}, ${c.nHead} heads`;
  const vocab = tok !== null ? `${tok.kind} tokenizer (vocab ${tok.vocabSize})` : `token ids (vocab ${c.vocabSize ?? trainer.data.modelVocabSize})`;
  if (main) stderr.write(
    `${trainer.resumed ? `resuming ${o.runDir} at step ${trainer.step}` : `training into ${o.runDir}`}: ` +
      `${shape}, T ${c.seqLen}, ${(nParams / 1e6).toFixed(2)}M parameters, ` +
      `${vocab}, ${trainer.data.trainTokens} train / ${trainer.data.valTokens} val tokens, ` +
      `${c.device}${c.dtype === "bfloat16" ? " bf16" : ""}${procs}, ${c.steps} steps of ${c.batchSize * c.gradAccum} x ${c.seqLen} tokens\n`,
  );
  const stop = new StopRequest((sig) => {
    trainer.requestStop();
    if (main) stderr.write(`\n${sig}: finishing the current step and writing a checkpoint (${sig} again exits at once)\n`);
  }).install();
  try {
    let result;
    try {
      result = await trainer.run();
    } catch (e) {
      // Free the native state now (a captured CUDA graph above all), not at process exit.
      try {
        trainer.close();
      } catch {
        // the first error is the one to report
      }
      if (e instanceof OutOfMemoryError) {
        throw new OutOfMemoryError(`${e.message.split("\n")[0]} (lower --batch-size and raise --grad-accum to keep the same effective batch)`);
      }
      throw e;
    }
    if (!main) return { exitCode: 0, trainer };
    const last = result.lastLoss !== undefined ? `, loss ${result.lastLoss.toFixed(4)}` : "";
    const val = result.lastValLoss !== undefined ? `, val loss ${result.lastValLoss.toFixed(4)}` : "";
    if (result.reason === "interrupted") {
      stdout.write(`stopped at step ${result.step}/${c.steps}${last}; checkpoint in ${o.runDir} (continue with: innerloop train --resume ${o.runDir})\n`);
    } else {
      stdout.write(`done: ${result.step} steps${last}${val}; model in ${o.runDir}\n`);
    }
    return { exitCode: 0, trainer };
  } finally {
    stop.uninstall();
  }
}
