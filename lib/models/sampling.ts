// Picking the next token from logits: greedy, or sampling with temperature and top-k.

import { torch } from "../torch/index.js";
import type { Tensor } from "../torch/index.js";

export interface SampleOptions {
  /** 0 means greedy (argmax). Default 1. */
  temperature?: number;
  /** Keep only the k most likely tokens (default: all; a k past the vocabulary keeps all). */
  topK?: number;
}

/**
 * logits [B, V] -> token ids [B, 1] (int64). Sampling uses the Gumbel-max trick: argmax of
 * logits / temperature + Gumbel noise is a draw from softmax(logits / temperature), taken from the
 * global generator (so torch.manualSeed makes it reproducible).
 */
export function sampleNext(logits: Tensor, opts: SampleOptions = {}): Tensor {
  const temperature = opts.temperature ?? 1;
  if (temperature === 0) return logits.argmax(-1, { keepdim: true });
  let x = logits.float().div(temperature);
  const vocab = x.shape[x.ndim - 1]!;
  if (opts.topK !== undefined && opts.topK < vocab) {
    const kth = x.topk(opts.topK, -1).values.narrow(-1, opts.topK - 1, 1);
    x = x.maskedFill(x.lt(kth), -Infinity);
  }
  const u = torch.rand(x.shape, { device: x.device as never });
  // Gumbel noise -log(-log u); u = 0 gives -inf, which simply never wins.
  const gumbel = u.log().neg().log().neg();
  return x.add(gumbel).argmax(-1, { keepdim: true });
}

export function checkSampleOptions(o: SampleOptions): void {
  if (o.temperature !== undefined && !(typeof o.temperature === "number" && o.temperature >= 0 && Number.isFinite(o.temperature))) {
    throw new RangeError(`generate: temperature must be a finite number >= 0, got ${o.temperature}`);
  }
  if (o.topK !== undefined && !(Number.isInteger(o.topK) && o.topK > 0)) {
    throw new RangeError(`generate: topK must be a positive integer, got ${o.topK}`);
  }
}
