// Learning-rate schedules: pure functions of the step (0-based), so a resumed run gets the same
// rates as an uninterrupted one.

export type LrSchedule = (step: number) => number;

export interface WarmupCosineOptions {
  /** Peak learning rate, reached at the end of warmup. */
  lr: number;
  /** Final learning rate (default 0.1 * lr, as nanoGPT suggests). */
  minLr?: number;
  /** Linear warmup steps (default 0). */
  warmupSteps?: number;
  /** Step at which decay ends; later steps stay at minLr. */
  decaySteps: number;
}

function checkRate(name: string, v: number): void {
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0) throw new RangeError(`${name} must be a finite number >= 0, got ${v}`);
}

function checkSteps(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0) throw new RangeError(`${name} must be an integer >= 0, got ${v}`);
}

/**
 * nanoGPT's schedule: lr * (step + 1) / (warmup + 1) during warmup, then a half cosine from lr
 * down to minLr at `decaySteps`, then minLr.
 */
export function warmupCosine(o: WarmupCosineOptions): LrSchedule {
  return warmupThenDecay(o, 0.1 * o.lr, (ratio, lr, minLr) => minLr + 0.5 * (1 + Math.cos(Math.PI * ratio)) * (lr - minLr));
}

/**
 * The shape both decaying schedules share: linear warmup, then decay(ratio) for ratio = 0..1 of
 * the way from the end of warmup to `decaySteps`, then minLr.
 */
function warmupThenDecay(o: WarmupCosineOptions, defaultMinLr: number, decay: (ratio: number, lr: number, minLr: number) => number): LrSchedule {
  const { lr, decaySteps } = o;
  const minLr = o.minLr ?? defaultMinLr;
  const warmup = o.warmupSteps ?? 0;
  checkRate("lr", lr);
  checkRate("minLr", minLr);
  checkSteps("warmupSteps", warmup);
  checkSteps("decaySteps", decaySteps);
  return (step) => {
    if (step < warmup) return (lr * (step + 1)) / (warmup + 1);
    if (step >= decaySteps) return minLr;
    return decay((step - warmup) / (decaySteps - warmup), lr, minLr);
  };
}

/** A constant rate, optionally after the same linear warmup as warmupCosine. */
export function constantLr(lr: number, opts: { warmupSteps?: number } = {}): LrSchedule {
  checkRate("lr", lr);
  const warmup = opts.warmupSteps ?? 0;
  checkSteps("warmupSteps", warmup);
  return (step) => (step < warmup ? (lr * (step + 1)) / (warmup + 1) : lr);
}

/** Linear warmup, then a straight line from lr to minLr at `decaySteps`, then minLr. */
export function linearLr(o: WarmupCosineOptions): LrSchedule {
  return warmupThenDecay(o, 0, (ratio, lr, minLr) => lr + ratio * (minLr - lr));
}
