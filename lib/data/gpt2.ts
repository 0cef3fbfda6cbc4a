/**
 * GPT-2 byte-level BPE (OpenAI's `r50k_base`: 50,257 ids, `<|endoftext|>` =
 * 50256) through the `gpt-tokenizer` package, whose vocabulary ships inside
 * the package (no download at run time).
 *
 * Special tokens: like transformers' GPT2TokenizerFast, the literal text
 * `<|endoftext|>` becomes id 50256; all other text is split by GPT-2's
 * pre-tokenization pattern and BPE-merged. (gpt-tokenizer 4.0's own special
 * token search only looks at the start of a string, so the text is split on
 * `<|endoftext|>` here.)
 */
import { createRequire } from "node:module";
import { checkedIds, type Tokenizer, type TokenizerJSON } from "./tokenizer.js";

interface GptEncodingApi {
  encode(text: string, opts?: { disallowedSpecial?: Set<string> }): number[];
  decode(ids: Iterable<number>): string;
  vocabularySize: number;
}

const require = createRequire(import.meta.url);
let api: GptEncodingApi | null = null;

/** The encoding tables are about 0.5 MB of JavaScript: load them on first use. */
function encoding(): GptEncodingApi {
  api ??= require("gpt-tokenizer/cjs/encoding/r50k_base") as GptEncodingApi;
  return api;
}

export const GPT2_EOT = "<|endoftext|>";
export const GPT2_EOT_ID = 50256;
export const GPT2_VOCAB_SIZE = 50257;

export class Gpt2Tokenizer implements Tokenizer {
  readonly kind = "gpt2" as const;
  readonly vocabSize = GPT2_VOCAB_SIZE;
  readonly eotId = GPT2_EOT_ID;

  static fromJSON(json: unknown): Gpt2Tokenizer {
    const j = json as { kind?: unknown; encoding?: unknown };
    if (j?.kind !== "gpt2" || (j.encoding !== undefined && j.encoding !== "r50k_base")) {
      throw new TypeError('Gpt2Tokenizer.fromJSON: expected { kind: "gpt2", encoding: "r50k_base" }');
    }
    return new Gpt2Tokenizer();
  }

  encode(text: string): Int32Array {
    if (typeof text !== "string") throw new TypeError("Gpt2Tokenizer.encode: text must be a string");
    const enc = encoding();
    const none = new Set<string>();
    const parts = text.split(GPT2_EOT);
    const ids: number[] = [];
    parts.forEach((part, i) => {
      if (i > 0) ids.push(GPT2_EOT_ID);
      if (part.length > 0) for (const id of enc.encode(part, { disallowedSpecial: none })) ids.push(id);
    });
    return Int32Array.from(ids);
  }

  decode(ids: Iterable<number | bigint> | ArrayLike<number | bigint>): string {
    return encoding().decode(checkedIds(ids, this.vocabSize, "Gpt2Tokenizer"));
  }

  toJSON(): TokenizerJSON {
    return { kind: "gpt2", encoding: "r50k_base" };
  }
}
