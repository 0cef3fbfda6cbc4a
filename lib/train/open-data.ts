/**
 * Training data given to the Trainer directly rather than named in the configuration: token ids
 * in memory (Int32Array, number[], a Tensor), a `.bin` file of token ids of any vocabulary, or an
 * async iterable of ready-made batches. Each becomes the `RunData` the loop draws from.
 */
import { torch, Tensor, type Device } from "../torch/index.js";
import { ArrayTokenSource, BinTokenSource, splitTrainVal, DEFAULT_VAL_FRACTION, type BinDType, type Tokenizer, type TokenSource } from "../data/index.js";
import { sampler, VAL_SEED_OFFSET, type BatchSampler, type RunData } from "./data.js";

/** Token ids held in memory. */
export type TokenIds = Int32Array | Uint16Array | Uint32Array | readonly number[] | Tensor;

/** One batch: inputs and next-token targets, integer tensors [batchSize, seqLen]. */
export interface TrainBatch {
  inputs: Tensor;
  targets: Tensor;
}

/** What `Trainer` accepts as `data`: token ids, the path of a `.bin` token file, or batches. */
export type TrainData = TokenIds | string | AsyncIterable<TrainBatch>;

export interface OpenDataOptions {
  batchSize: number;
  seqLen: number;
  /** Token ids must be below this (the model's vocabulary), where it is known. */
  vocabSize: number | undefined;
  tokenizer: Tokenizer | null;
  /** Held-out ids: the validation stream (default: the last 10% of in-memory or .bin data). */
  valData?: TokenIds;
  /** Element type of a `.bin` file (default uint16). */
  binDType?: BinDType;
}

export function isBatchIterable(x: unknown): x is AsyncIterable<TrainBatch> {
  return x !== null && typeof x === "object" && !(x instanceof Tensor) && typeof (x as AsyncIterable<unknown>)[Symbol.asyncIterator] === "function";
}

/** A short description of the data, recorded as `config.data`. */
export function describeData(data: TrainData): string {
  if (typeof data === "string") return data;
  if (isBatchIterable(data)) return "<async iterable of batches>";
  return `<${data instanceof Tensor ? data.numel : data.length} token ids in memory>`;
}

/** Token ids as an Int32Array, each checked to be an integer in [0, vocabSize). */
export function tokenIds(ids: TokenIds, vocabSize: number | undefined, what: string): Int32Array {
  let arr: ArrayLike<number | bigint>;
  if (ids instanceof Tensor) {
    if (ids.dtype !== "int64" && ids.dtype !== "int32" && ids.dtype !== "uint8") {
      throw new TypeError(`${what}: a tensor of token ids must have an integer dtype, got ${ids.dtype}`);
    }
    arr = torch.tidy(() => ids.flatten().cpu().toTypedArray()) as ArrayLike<number | bigint>;
  } else if (ids instanceof Int32Array || ids instanceof Uint16Array || ids instanceof Uint32Array || Array.isArray(ids)) {
    arr = ids;
  } else {
    throw new TypeError(`${what} must be token ids (Int32Array, Uint16Array, Uint32Array, number[] or an integer Tensor), a .bin path or an async iterable of batches`);
  }
  const out = new Int32Array(arr.length);
  const limit = vocabSize ?? 2 ** 31 - 1;
  for (let i = 0; i < arr.length; i++) {
    const v = Number(arr[i]);
    if (!Number.isInteger(v) || v < 0 || v >= limit) {
      throw new RangeError(`${what}: token id ${String(arr[i])} at index ${i} is not an integer in [0, ${limit})${vocabSize !== undefined ? " (the model's vocabulary)" : ""}`);
    }
    out[i] = v;
  }
  return out;
}

/**
 * Batches from an async iterable: `prefetch` pulls the next ones before a step (the loop awaits
 * it), `next` hands them out. The trainer owns the yielded tensors and frees them once used. The
 * state is the number of batches used, so a resume with the same (deterministic) iterable skips
 * that many and continues exactly.
 */
function iterableSampler(source: AsyncIterable<TrainBatch>, o: OpenDataOptions): BatchSampler {
  const iter = source[Symbol.asyncIterator]();
  const queue: TrainBatch[] = [];
  let used = 0;
  let skip = 0;
  const pull = async (): Promise<TrainBatch> => {
    const r = await iter.next();
    if (r.done) throw new Error(`data: the async iterable of batches ended after ${used + queue.length + skip} batches, before the last step`);
    const b = r.value as Partial<TrainBatch> | null;
    if (!b || !(b.inputs instanceof Tensor) || !(b.targets instanceof Tensor)) {
      throw new TypeError("data: each batch must be { inputs: Tensor, targets: Tensor } (integer tensors [batchSize, seqLen])");
    }
    const shape = b.inputs.shape;
    if (shape.length !== 2 || shape[0] !== o.batchSize || b.targets.shape.join(",") !== shape.join(",")) {
      const got = `inputs [${shape}], targets [${b.targets.shape}]`;
      for (const t of [b.inputs, b.targets]) t.dispose();
      throw new RangeError(`data: a batch must have inputs and targets of shape [batchSize = ${o.batchSize}, T], got ${got}`);
    }
    return b as TrainBatch;
  };
  return {
    async prefetch(count) {
      for (; skip > 0; skip--) {
        const b = await pull();
        b.inputs.dispose();
        b.targets.dispose();
      }
      while (queue.length < count) queue.push(await pull());
    },
    next(device: Device, rows) {
      const b = queue.shift();
      if (b === undefined) throw new Error("data: no batch is ready (prefetch was not awaited)");
      used++;
      const take = (t: Tensor) => {
        const part = rows ? t.narrow(0, rows.start, rows.end - rows.start) : t;
        return part.to({ device, dtype: "int64" });
      };
      try {
        return { inputs: take(b.inputs), targets: take(b.targets) };
      } finally {
        b.inputs.dispose();
        b.targets.dispose();
      }
    },
    state: () => ({ batches: used }),
    setState(st) {
      const n = (st as { batches?: unknown } | null)?.batches;
      if (!Number.isSafeInteger(n) || (n as number) < 0) throw new Error(`data: the saved position ${JSON.stringify(st)} is not a batch count`);
      used = n as number;
      skip = n as number;
    },
  };
}

/** The RunData of data given directly to the Trainer. */
export function openTrainData(data: TrainData, o: OpenDataOptions): RunData {
  const tokenizer = o.tokenizer;
  const common = { tokenizer, tokenizerJSON: tokenizer?.toJSON() ?? null, modelVocabSize: o.vocabSize ?? tokenizer?.vocabSize ?? 0 };
  const val = o.valData === undefined ? null : new ArrayTokenSource(tokenIds(o.valData, o.vocabSize, "valData"), "valData");
  if (isBatchIterable(data)) {
    const iterSampler = iterableSampler(data, o);
    let made = false;
    return {
      ...common,
      train: null,
      val,
      trainTokens: 0,
      valTokens: val?.length ?? 0,
      trainSampler: () => {
        if (made) throw new Error("data: an async iterable of batches can be read by one sampler only");
        made = true;
        return iterSampler;
      },
      valSampler: (seed) => {
        if (val === null) throw new Error("data: evaluation needs valData (token ids) when the training data are batches");
        return sampler(val, seed + VAL_SEED_OFFSET, o.batchSize, o.seqLen);
      },
      close: () => {},
    };
  }
  let all: TokenSource;
  if (typeof data === "string") {
    if (!data.endsWith(".bin")) throw new TypeError(`data ${JSON.stringify(data)}: a path given as data must be a .bin file of token ids (text goes through config.data with a tokenizer)`);
    all = new BinTokenSource(data, { dtype: o.binDType, vocabSize: o.vocabSize });
  } else {
    all = new ArrayTokenSource(tokenIds(data, o.vocabSize, "data"), "data");
  }
  const split = val === null ? splitTrainVal(all, DEFAULT_VAL_FRACTION) : { train: all, val };
  return {
    ...common,
    train: split.train,
    val: split.val,
    trainTokens: split.train.length,
    valTokens: split.val.length,
    trainSampler: (seed) => sampler(split.train, seed, o.batchSize, o.seqLen),
    valSampler: (seed) => sampler(split.val, seed + VAL_SEED_OFFSET, o.batchSize, o.seqLen),
    close: () => all.close(),
  };
}
