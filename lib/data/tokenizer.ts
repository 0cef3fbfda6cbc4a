/**
 * The tokenizer interface shared by the data, training and analysis layers,
 * and the JSON form that is saved with a run so that the same tokenizer can be
 * rebuilt later (`tokenizerFromJSON`).
 */
import type { HfTokenizerJSON } from "./hf-tokenizer.js";

/** 'char' and 'gpt2' are built here; 'hf' is a model folder's tokenizer.json (hf-tokenizer.ts). */
export type TokenizerKind = "char" | "gpt2" | "hf";

export interface EncodeOptions {
  /**
   * What to do with text the vocabulary cannot represent. 'error' (default)
   * throws an Error naming the character and its position; 'skip' drops it.
   * Only the char tokenizer can meet such text: GPT-2's byte-level BPE encodes
   * every string.
   */
  onUnknown?: "error" | "skip";
}

export type TokenizerJSON = { kind: "char"; vocab: string[] } | { kind: "gpt2"; encoding: "r50k_base" } | HfTokenizerJSON;

export interface Tokenizer {
  readonly kind: TokenizerKind;
  /** Number of token ids: every id is in [0, vocabSize). */
  readonly vocabSize: number;
  /** The end-of-text id, where the vocabulary has one (GPT-2: 50256). */
  readonly eotId: number | null;
  encode(text: string, opts?: EncodeOptions): Int32Array;
  /** Ids may come from any integer array, including the BigInt64Array of an int64 tensor. */
  decode(ids: Iterable<number | bigint> | ArrayLike<number | bigint>): string;
  toJSON(): TokenizerJSON;
}

/** Turn ids into validated numbers in [0, vocabSize). */
export function checkedIds(ids: Iterable<number | bigint> | ArrayLike<number | bigint>, vocabSize: number, who: string): number[] {
  const src: Iterable<number | bigint> =
    typeof (ids as Iterable<number | bigint>)[Symbol.iterator] === "function" ? (ids as Iterable<number | bigint>) : Array.from(ids as ArrayLike<number | bigint>);
  const out: number[] = [];
  let i = 0;
  for (const v of src) {
    const n = typeof v === "bigint" ? Number(v) : v;
    if (!Number.isInteger(n) || n < 0 || n >= vocabSize) {
      throw new RangeError(`${who}.decode: id ${String(v)} at index ${i} is not an integer in [0, ${vocabSize})`);
    }
    out.push(n);
    i++;
  }
  return out;
}
