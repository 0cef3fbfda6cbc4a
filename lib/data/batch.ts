/** Turning windows of token ids into int64 tensors. */
import { torch, type Tensor, type Device } from "../torch/index.js";

/**
 * An int64 tensor of `shape` from non-negative ids, in one copy: the ids are
 * laid out as little-endian int64 (low word = id, high word = 0) and handed
 * to `torch.fromBuffer`.
 */
export function int64Tensor(ids: Int32Array, shape: number[], device?: Device): Tensor {
  const words = new Int32Array(ids.length * 2);
  for (let i = 0; i < ids.length; i++) words[2 * i] = ids[i]!;
  return torch.fromBuffer(new Uint8Array(words.buffer), "int64", shape, device === undefined ? {} : { device });
}

export interface Batch {
  /** Inputs, int64 [B, T]. */
  x: Tensor;
  /** Targets, int64 [B, T]: x shifted left by one token. */
  y: Tensor;
}

/** Split B windows of T + 1 tokens (row-major in `windows`) into inputs and targets. */
export function batchFromWindows(windows: Int32Array, batchSize: number, seqLen: number, device?: Device): Batch {
  const x = new Int32Array(batchSize * seqLen);
  const y = new Int32Array(batchSize * seqLen);
  for (let b = 0; b < batchSize; b++) {
    const w = windows.subarray(b * (seqLen + 1), (b + 1) * (seqLen + 1));
    x.set(w.subarray(0, seqLen), b * seqLen);
    y.set(w.subarray(1), b * seqLen);
  }
  const xt = int64Tensor(x, [batchSize, seqLen], device);
  try {
    return { x: xt, y: int64Tensor(y, [batchSize, seqLen], device) };
  } catch (e) {
    xt.dispose();
    throw e;
  }
}
