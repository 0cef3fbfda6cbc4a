/**
 * Tokenizers of Hugging Face model folders, from `tokenizer.json` (and `tokenizer_config.json`
 * where present): byte-level BPE (GPT-2, GPT-NeoX/Pythia, LLaMA 3, Qwen2) and the SentencePiece
 * kinds of LLaMA 1/2 and Mistral (BPE with byte fallback and '▁' for spaces), through the
 * `@huggingface/tokenizers` package: pure JavaScript, no dependencies, nothing fetched at run
 * time. `encode` adds the special tokens the tokenizer's post-processor adds (e.g. LLaMA's BOS),
 * as transformers' `tokenizer(text)` does; `decode` drops special tokens.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { Tokenizer as HFTokenizerImpl } from "@huggingface/tokenizers";
import { checkedIds } from "./tokenizer.js";
import type { Tokenizer } from "./tokenizer.js";

export const TOKENIZER_FILE = "tokenizer.json";
export const TOKENIZER_CONFIG_FILE = "tokenizer_config.json";

export interface HfEncodeOptions {
  /** Add the post-processor's special tokens (default true, as transformers). */
  addSpecialTokens?: boolean;
}

export interface HfTokenizerJSON {
  kind: "hf";
  /** Folder holding tokenizer.json, as given when the tokenizer was loaded. */
  dir: string;
}

function readJson(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new Error(`cannot read ${file}: ${(e as Error).message}`);
  }
  try {
    const j = JSON.parse(text) as unknown;
    if (j === null || typeof j !== "object" || Array.isArray(j)) throw new Error("not a JSON object");
    return j as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${file}: invalid JSON (${(e as Error).message})`);
  }
}

function tokenString(v: unknown): string | null {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && typeof (v as { content?: unknown }).content === "string") return (v as { content: string }).content;
  return null;
}

export class HfTokenizer implements Tokenizer {
  readonly kind = "hf" as const;
  /** Number of ids: every id is in [0, vocabSize) (added tokens included). */
  readonly vocabSize: number;
  /** The end-of-sequence id (tokenizer_config.json eos_token), or null. */
  readonly eotId: number | null;
  readonly bosId: number | null;
  readonly dir: string;
  private readonly impl: HFTokenizerImpl;

  private constructor(dir: string, impl: HFTokenizerImpl, config: Record<string, unknown>) {
    this.dir = dir;
    this.impl = impl;
    let max = -1;
    for (const id of impl.get_vocab(true).values()) if (id > max) max = id;
    this.vocabSize = max + 1;
    const id = (k: string): number | null => {
      const s = tokenString(config[k]);
      return s === null ? null : (impl.token_to_id(s) ?? null);
    };
    this.eotId = id("eos_token");
    this.bosId = id("bos_token");
  }

  /** Loads `dir/tokenizer.json` (and `dir/tokenizer_config.json` if present). */
  static fromDir(dir: string): HfTokenizer {
    const file = path.join(dir, TOKENIZER_FILE);
    if (!fs.existsSync(file)) throw new Error(`${dir}: no ${TOKENIZER_FILE}`);
    const json = readJson(file);
    const cfgFile = path.join(dir, TOKENIZER_CONFIG_FILE);
    const config = fs.existsSync(cfgFile) ? readJson(cfgFile) : {};
    const model = (json.model as { type?: unknown } | undefined)?.type;
    if (model !== undefined && model !== "BPE" && model !== "Unigram" && model !== "WordPiece" && model !== "WordLevel") {
      throw new Error(`${file}: model.type ${JSON.stringify(model)} is not supported (BPE, Unigram, WordPiece, WordLevel)`);
    }
    let impl: HFTokenizerImpl;
    try {
      impl = new HFTokenizerImpl(json, config);
    } catch (e) {
      throw new Error(`${file}: cannot build the tokenizer (${(e as Error).message})`);
    }
    return new HfTokenizer(dir, impl, config);
  }

  static fromJSON(json: unknown): HfTokenizer {
    const j = json as Partial<HfTokenizerJSON> | null;
    if (j?.kind !== "hf" || typeof j.dir !== "string") throw new TypeError('HfTokenizer.fromJSON: expected { kind: "hf", dir }');
    return HfTokenizer.fromDir(j.dir);
  }

  encode(text: string, opts: HfEncodeOptions & { onUnknown?: "error" | "skip" } = {}): Int32Array {
    if (typeof text !== "string") throw new TypeError("HfTokenizer.encode: text must be a string");
    const { ids } = this.impl.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true });
    return Int32Array.from(ids);
  }

  decode(ids: Iterable<number | bigint> | ArrayLike<number | bigint>, opts: { skipSpecialTokens?: boolean } = {}): string {
    const list = checkedIds(ids, this.vocabSize, "HfTokenizer");
    // The library refuses an empty list; nothing decodes to the empty string.
    if (list.length === 0) return "";
    return this.impl.decode(list, { skip_special_tokens: opts.skipSpecialTokens ?? true });
  }

  toJSON(): HfTokenizerJSON {
    return { kind: "hf", dir: path.resolve(this.dir) };
  }
}

/** The tokenizer of a model folder that has a tokenizer.json, or null. */
export function loadHfTokenizer(dir: string): HfTokenizer | null {
  return fs.existsSync(path.join(dir, TOKENIZER_FILE)) ? HfTokenizer.fromDir(dir) : null;
}
