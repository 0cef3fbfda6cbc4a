// What the harness hands to each side of a comparison (a JSON file read by lib/bench/worker.ts and
// scripts/bench/torch_step.py alike) and what each side reports back (one JSON line on stdout).

import type { BenchModel, Precision } from "./configs.js";

export interface OptimSpec {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** Applied to parameters with two or more dimensions; biases and norm weights get none. */
  weightDecay: number;
  /** Gradient clipping: the total L2 norm is scaled down to at most this. */
  clip: number;
}

export interface SideSpec {
  configName: string;
  model: BenchModel;
  device: string;
  precision: Precision;
  tf32: boolean;
  batchCandidates: number[];
  /** Intra-op threads; 0 leaves the library's default. */
  threads: number;
  seed: number;
  warmup: number;
  reps: number;
  optim: OptimSpec;
  /** int32 little-endian tokens [nBatches, maxBatch, seqLen + 1]; step i uses batch i % nBatches. */
  tokensFile: string;
  nBatches: number;
  maxBatch: number;
  /** Initial weights (Hugging Face GPT-2 names and layouts) both sides start from, when given. */
  weightsFile?: string;
  /** innerloop only: write the initial weights here before the first step. */
  saveWeightsTo?: string;
  /** Also time forward, backward, clipping, optimizer and zero-grad separately, and count calls. */
  profile?: boolean;
  /** After the timed steps, run this many more and report memory at their start and end. */
  soakSteps?: number;
  /** innerloop only: the whole step captured into a CUDA graph and replayed (lib/train/graph-step.ts). */
  cudaGraph?: boolean;
  /** innerloop only: time steps with the analysis plugin running after every step. */
  /** rideAlong: let snapshots ride along in the next step where they can (the trainer's default), or always take a pass of their own. */
  analysis?: { windows: number; steps: number; rideAlong: boolean };
}

export const DEFAULT_OPTIM: Readonly<OptimSpec> = Object.freeze({
  lr: 6e-4,
  beta1: 0.9,
  beta2: 0.95,
  eps: 1e-8,
  weightDecay: 0.1,
  clip: 1.0,
});

export interface PhaseProfile {
  forwardMs: number;
  backwardMs: number;
  clipMs: number;
  optimMs: number;
  zeroGradMs: number;
  /** Calls from the host language into the native library during one step. */
  callsPerStep: number;
  callsByName: Record<string, number>;
  /** Microseconds per call of small ops (1-element add, in-place add, 8x64 @ 64x64, view). */
  opOverheadUs: Record<string, number>;
}

export interface SideResult {
  side: "innerloop" | "pytorch";
  /** libtorch / torch version of that side. */
  torch: string;
  threads: number;
  device: string;
  deviceName: string | null;
  config: BenchModel & {
    batch: number;
    precision: Precision;
    params: number;
    optimizer: string;
    clip: number;
    weightDecay: number;
  };
  /** Wall time of each timed step (after warmup), milliseconds. */
  stepMs: number[];
  medianMs: number;
  /**
   * CPU time (user + system, whole process) of each timed step: on a machine shared with other work
   * this counts the step's own work and not the time spent waiting for a core.
   */
  cpuMs: number[];
  medianCpuMs: number;
  /** With several rounds: the median of each round. */
  roundMedians?: number[];
  /** Loss of every step, warmup included. */
  losses: number[];
  /** Resident memory in KiB: at process start, after setup (model, optimizer, batches), at the end. */
  rssAtStartKB: number | null;
  rssReadyKB: number | null;
  rssAfterKB: number | null;
  /** getrusage(RUSAGE_SELF).ru_maxrss of the process, KiB (measured the same way on both sides). */
  maxRssKB: number;
  cudaMaxAllocated?: number;
  profile?: PhaseProfile;
  /** innerloop with `cudaGraph`: whether the step was captured (every timed step a replay). */
  cudaGraph?: { captured: boolean };
  soak?: {
    steps: number;
    rssStartKB: number | null;
    rssEndKB: number | null;
    liveTensorsStart?: number;
    liveTensorsEnd?: number;
    seconds: number;
    /** innerloop: after `steps` more in one synchronous loop (no turn of the event loop between steps). */
    syncLoop?: { rssEndKB: number | null; liveTensorsEnd: number };
  };
  analysis?: { available: boolean; reason?: string; windows?: number; rideAlong?: boolean; rodeAlong?: number; medianStepMs?: number; medianWithAnalysisMs?: number; medianAnalysisMs?: number; overhead?: number; overheadOfMedians?: number };
}
