// The analysis.json record (docs/analysis.md defines every field precisely).

export type Matrix = number[][];

export interface PowerLawFit {
  /** d log‖h‖ / d log(position). */
  slope: number;
  intercept: number;
  r2: number;
  /** 1-based positions used by the fit (inclusive). */
  firstPosition: number;
  lastPosition: number;
}

export interface MassiveLayer {
  /** The k largest |h^l_{w,t,d}|, descending, with their dimension d, position t (0-based) and window w. */
  values: number[];
  dims: number[];
  positions: number[];
  windows: number[];
}

export interface AnalysisResult {
  windows: number;
  seqLen: number;
  /** L+1. */
  layers: number;
  loss: number;
  hiddenNorm: { mean: Matrix; std: Matrix };
  gradNorm: { mean: Matrix; std: Matrix };
  update: { normMean: Matrix; cosMean: Matrix };
  updateParts: { attnNormMean: Matrix; attnCosMean: Matrix; mlpNormMean: Matrix; mlpCosMean: Matrix };
  logitLens: { loss: number[] };
  paramGradNorm: number[];
  normFit: Array<PowerLawFit | null>;
  firstTokenRatio: Array<number | null>;
  massive: { k: number; layers: MassiveLayer[]; meanAbs: number[] };
  /** Null when the model exposes no attention query/key hook points or T = 1. */
  attnFirstToken: { mean: Matrix } | null;
  freqBuckets: {
    buckets: number;
    types: number[];
    occurrences: number[];
    hiddenNormMean: Array<Array<number | null>>;
  };
  meta?: Record<string, unknown>;
}

/** The fields that DESIGN.md defines (the rest are extra measures). */
export const CORE_FIELDS = ["windows", "seqLen", "layers", "loss", "hiddenNorm", "gradNorm", "update", "logitLens", "paramGradNorm"] as const;
