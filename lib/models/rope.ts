// Rotary position embeddings (RoPE; Su et al. 2021) as Hugging Face transformers computes them:
// inverse frequencies theta^(-2i/d) over the first d = int(headDim * partialRotaryFactor) dims of
// each head, optionally rescaled ('linear': all divided by a factor; 'llama3': long wavelengths
// divided by the factor, short ones kept, a smooth blend between), angles position * invFreq in
// float32, and the "rotate half" layout (GPT-NeoX / LLaMA): x_rot = x*cos + rotate_half(x)*sin,
// rotate_half([a, b]) = [-b, a], on the first `rotaryDim` dims; the rest pass through.

import { torch } from "../torch/index.js";
import type { Device, DType, Tensor } from "../torch/index.js";

export type RopeType = "default" | "linear" | "llama3";

export interface RopeConfig {
  type: RopeType;
  /** Base wavelength theta (rope_theta). */
  theta: number;
  /** Fraction of each head's dims that rotate (1 for LLaMA; GPT-NeoX: rotary_pct). */
  partialRotaryFactor: number;
  /** 'linear' and 'llama3': the scaling factor. */
  factor?: number;
  /** 'llama3' only. */
  lowFreqFactor?: number;
  highFreqFactor?: number;
  originalMaxPositions?: number;
}

/**
 * The inverse frequencies, one per rotated pair, computed as transformers computes them: in
 * float32 tensor arithmetic, operation for operation (theta^(2i/d) by float32 pow, the llama3
 * wavelength regimes compared and blended in float32), so that the angles agree bit for bit and
 * a float64 model is not off by the rounding of a float64 computation.
 */
export function inverseFrequencies(rope: RopeConfig, headDim: number): Float32Array {
  const dim = Math.floor(headDim * rope.partialRotaryFactor);
  const f32 = { dtype: "float32" as const };
  return torch.noGrad(() =>
    torch.tidy(() => {
      const exps = torch.arange(0, dim, 2, { dtype: "int64" }).to("float32").div(dim);
      let inv = torch.full([exps.shape[0]!], rope.theta, f32).pow(exps).reciprocal();
      if (rope.type === "linear") inv = inv.div(rope.factor!);
      else if (rope.type === "llama3") {
        const factor = rope.factor!;
        const low = rope.lowFreqFactor!;
        const high = rope.highFreqFactor!;
        const oldLen = rope.originalMaxPositions!;
        const lowWavelen = oldLen / low;
        const highWavelen = oldLen / high;
        const wavelen = inv.reciprocal().mul(2 * Math.PI);
        // Long wavelengths divided by the factor, short ones kept, medium ones blended.
        const scaled = inv.div(factor).where(wavelen.gt(lowWavelen), inv);
        const smooth = wavelen.reciprocal().mul(oldLen).sub(low).div(high - low);
        const smoothed = smooth.neg().add(1).mul(scaled).div(factor).add(smooth.mul(scaled));
        const medium = wavelen.ge(highWavelen).logicalAnd(wavelen.le(lowWavelen));
        inv = smoothed.where(medium, scaled);
      }
      return Float32Array.from(inv.contiguous().toTypedArray() as Float32Array);
    }),
  );
}

/** cos and sin tables [T, rotaryDim] for positions past .. past+T-1, in the activations' dtype. */
export interface RopeTables {
  cos: Tensor;
  sin: Tensor;
}

/**
 * Holds cos/sin tables for positions 0..n-1 per (device, dtype), grown on demand, so a forward
 * pass only narrows them. The tables are not parameters or buffers: they never appear in state
 * dicts and a dtype cast of the model does not round the float32 angles.
 */
export class RotaryTables {
  readonly rotaryDim: number;
  private readonly invFreq: Float32Array;
  private readonly cache = new Map<string, { n: number; cos: Tensor; sin: Tensor }>();

  constructor(rope: RopeConfig, headDim: number) {
    this.invFreq = inverseFrequencies(rope, headDim);
    this.rotaryDim = 2 * this.invFreq.length;
  }

  /** Tables for positions [past, past + T). The caller must not dispose them (they are narrowed views). */
  get(past: number, T: number, device: Device | string, dtype: DType): RopeTables {
    const key = `${device}|${dtype}`;
    let entry = this.cache.get(key);
    const need = past + T;
    if (entry === undefined || entry.n < need) {
      const n = Math.max(need, entry === undefined ? 0 : 2 * entry.n, 64);
      if (entry !== undefined) {
        entry.cos.dispose();
        entry.sin.dispose();
      }
      const [cos, sin] = torch.noGrad(() =>
        torch.tidy(() => {
          const dev = device as Device;
          const pos = torch.arange(0, n, 1, { dtype: "float32", device: dev });
          const inv = torch.tensor(this.invFreq, { dtype: "float32" }).to(dev);
          const freqs = pos.outer(inv); // [n, d/2], float32 as in transformers
          const emb = torch.cat([freqs, freqs], 1);
          return [emb.cos().to(dtype), emb.sin().to(dtype)];
        }),
      ) as [Tensor, Tensor];
      entry = { n, cos: torch.keep(cos), sin: torch.keep(sin) };
      this.cache.set(key, entry);
    }
    return { cos: entry.cos.narrow(0, past, T), sin: entry.sin.narrow(0, past, T) };
  }

  dispose(): void {
    for (const e of this.cache.values()) {
      e.cos.dispose();
      e.sin.dispose();
    }
    this.cache.clear();
  }
}

function rotateHalf(x: Tensor): Tensor {
  const half = x.shape[x.ndim - 1]! / 2;
  const [x1, x2] = x.split(half, -1) as [Tensor, Tensor];
  return torch.cat([x2.neg(), x1], -1);
}

/** Applies the rotation to x [B, H, T, D] with tables [T, r]; dims r.. of each head pass through. */
export function applyRotary(x: Tensor, t: RopeTables): Tensor {
  const D = x.shape[3]!;
  const r = t.cos.shape[1]!;
  if (r === D) return x.mul(t.cos).add(rotateHalf(x).mul(t.sin));
  const rot = x.narrow(3, 0, r);
  const pass = x.narrow(3, r, D - r);
  return torch.cat([rot.mul(t.cos).add(rotateHalf(rot).mul(t.sin)), pass], 3);
}
