// The benchmark configurations (issue "Performance"): the same GPT-2 training step at sizes from
// "nearly all per-op overhead" (micro) to GPT-2 small on a GPU (gpt2-124m), and the FLOP count used
// for model FLOPs utilisation.

export type Precision = "float32" | "bf16-autocast";

export interface BenchModel {
  nLayer: number;
  nEmbd: number;
  nHead: number;
  seqLen: number;
  /** Rows of the position embedding (= seqLen here). */
  nPositions: number;
  vocabSize: number;
}

export interface BenchConfig {
  name: string;
  model: BenchModel;
  /** Batch sizes to try in order; the first that fits is used (several only on CUDA). */
  batchCandidates: number[];
  /** float32 everywhere; on CUDA, bf16 autocast with TF32 matrix products for gpt2-124m. */
  precision: Precision;
  tf32: boolean;
  cudaOnly: boolean;
}

// A byte-sized vocabulary for the small configurations: large enough that the output layer is a real
// matrix product, small enough that the step stays dominated by what the issue wants to measure.
const SMALL_VOCAB = 256;

function small(name: string, nLayer: number, nEmbd: number, seqLen: number, batch: number): BenchConfig {
  return {
    name,
    model: { nLayer, nEmbd, nHead: 4, seqLen, nPositions: seqLen, vocabSize: SMALL_VOCAB },
    batchCandidates: [batch],
    precision: "float32",
    tf32: false,
    cudaOnly: false,
  };
}

export const CONFIGS: Readonly<Record<string, BenchConfig>> = Object.freeze({
  micro: small("micro", 2, 64, 8, 1),
  tiny: small("tiny", 2, 64, 64, 8),
  mid: small("mid", 4, 128, 128, 16),
  "gpt2-124m": {
    name: "gpt2-124m",
    // GPT-2's 50257 tokens padded to a multiple of 64 (50304), which the matrix-product kernels prefer.
    model: { nLayer: 12, nEmbd: 768, nHead: 12, seqLen: 1024, nPositions: 1024, vocabSize: padTo(50257, 64) },
    batchCandidates: [16, 8],
    precision: "bf16-autocast",
    tf32: true,
    cudaOnly: true,
  },
});

export const CPU_DEFAULT = ["micro", "tiny", "mid"];
export const CUDA_DEFAULT = ["tiny", "mid", "gpt2-124m"];

export function padTo(n: number, multiple: number): number {
  return Math.ceil(n / multiple) * multiple;
}

/** Parameters of the model (tied output layer counted once), computed from the shape alone. */
export function paramCount(m: BenchModel): number {
  const C = m.nEmbd;
  const block = 2 * (2 * C) /* two LayerNorms */ + (C * 3 * C + 3 * C) + (C * C + C) + (C * 4 * C + 4 * C) + (4 * C * C + C);
  return m.vocabSize * C + m.nPositions * C + m.nLayer * block + 2 * C;
}

/**
 * Training FLOPs per token: 6N + 12·L·H·Q·T (PaLM appendix B, as nanoGPT's estimate_mfu), with N the
 * parameters without the position embedding, L layers, H heads, Q = head size, T = sequence length.
 */
export function flopsPerToken(m: BenchModel): number {
  const N = paramCount(m) - m.nPositions * m.nEmbd;
  const Q = m.nEmbd / m.nHead;
  return 6 * N + 12 * m.nLayer * m.nHead * Q * m.seqLen;
}

/** Peak dense bf16 tensor-core FLOP/s of the cards we know, by a substring of the device name. */
const PEAK_BF16: Array<[RegExp, number]> = [
  [/H200/i, 989e12],
  [/H100/i, 989e12], // SXM; the PCIe card is lower (756e12), reported as such below
  [/A100/i, 312e12],
];

export function peakBf16Flops(deviceName: string | null | undefined): number | null {
  if (!deviceName) return null;
  if (/H100/i.test(deviceName) && /PCIe/i.test(deviceName)) return 756e12;
  for (const [re, v] of PEAK_BF16) if (re.test(deviceName)) return v;
  return null;
}
