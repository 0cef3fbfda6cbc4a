// The autoregressive loop shared by every causal LM: validation, seeded sampling that leaves the
// global generator as it was, eval mode, a KV cache, and cropping to the model's context.
import { torch } from "../torch/index.js";
import type { Device, Tensor } from "../torch/index.js";
import { KVCache } from "./kv-cache.js";
import { checkSampleOptions, sampleNext, type SampleOptions } from "./sampling.js";

export interface GenerateOptions extends SampleOptions {
  maxNewTokens: number;
  /** Seed for sampling; the global generator's state is restored afterwards. */
  seed?: number;
  /** Only the first `vocabLimit` ids can be produced (for a vocabulary padded past the tokenizer's). */
  vocabLimit?: number;
  /** Reuse keys and values of earlier positions (default true). */
  useCache?: boolean;
}

/** What a model provides to be generated from. */
export interface TokenGenerator {
  readonly config: { vocabSize: number; nLayer: number; nPositions: number };
  readonly training: boolean;
  eval(): unknown;
  train(mode?: boolean): unknown;
  /** Logits [B, vocabSize] after the last token of `input`, whose first token sits at position `past`; uses and extends `cache` when given. */
  stepLogits(input: Tensor, past: number, cache: KVCache | null): Tensor;
}

/** Logits [B, V] for the position after the last of `ids`, reusing and extending the cache. */
function nextTokenLogits(model: TokenGenerator, ids: Tensor, cache: KVCache | null): Tensor {
  const L = ids.shape[1]!;
  const nPos = model.config.nPositions;
  if (cache !== null && L <= nPos) {
    const past = cache.length;
    return model.stepLogits(past === 0 ? ids : ids.narrow(1, past, L - past), past, cache);
  }
  // No cache, or the context slid past nPositions (positions shift, so cached keys are stale).
  cache?.clear();
  return model.stepLogits(L > nPos ? ids.narrow(1, L - nPos, nPos) : ids, 0, null);
}

/**
 * Extends ids [B, T] by `maxNewTokens` tokens, each chosen from the model's next-token
 * distribution (greedy when temperature is 0). Runs without gradients in eval mode (the mode is
 * restored). Beyond nPositions the context is cropped to the last nPositions tokens.
 */
export function generateTokens(model: TokenGenerator, ids: Tensor, opts: GenerateOptions): Tensor {
  const { maxNewTokens } = opts;
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0) {
    throw new RangeError(`generate: maxNewTokens must be an integer >= 0, got ${maxNewTokens}`);
  }
  checkSampleOptions(opts);
  const V = model.config.vocabSize;
  const vocabLimit = opts.vocabLimit;
  if (vocabLimit !== undefined && !(Number.isInteger(vocabLimit) && vocabLimit > 0 && vocabLimit <= V)) {
    throw new RangeError(`generate: vocabLimit must be an integer in [1, ${V}], got ${vocabLimit}`);
  }
  if (ids.ndim !== 2 || ids.shape[1] === 0) throw new RangeError(`generate: ids must have shape [B, T] with T >= 1, got [${ids.shape}]`);
  if (ids.dtype !== "int64") throw new TypeError(`generate: ids must be int64, got ${ids.dtype}`);

  const device = ids.device as Device;
  const savedCpu = opts.seed === undefined ? null : torch.keep(torch.getRngState());
  const savedDev = opts.seed === undefined || device === "cpu" ? null : torch.keep(torch.getRngState(device));
  if (opts.seed !== undefined) torch.manualSeed(opts.seed);
  const wasTraining = model.training;
  model.eval();
  const cache = opts.useCache === false ? null : new KVCache(model.config.nLayer);
  let out = ids.clone();
  try {
    torch.noGrad(() => {
      for (let i = 0; i < maxNewTokens; i++) {
        const next = torch.tidy(() => {
          let logits = nextTokenLogits(model, out, cache);
          if (vocabLimit !== undefined && vocabLimit < V) logits = logits.narrow(1, 0, vocabLimit);
          return torch.cat([out, sampleNext(logits, opts)], 1);
        });
        out.dispose();
        out = next;
      }
    });
    return out;
  } catch (e) {
    out.dispose();
    throw e;
  } finally {
    cache?.dispose();
    model.train(wasTraining);
    if (savedCpu !== null) {
      torch.setRngState(savedCpu);
      savedCpu.dispose();
    }
    if (savedDev !== null) {
      torch.setRngState(savedDev, device);
      savedDev.dispose();
    }
  }
}
