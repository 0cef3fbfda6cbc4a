/**
 * Character-level tokenizer, as nanoGPT's shakespeare_char: the vocabulary is
 * the corpus' distinct characters (Unicode code points) sorted by code point,
 * and a character's id is its index in that list. Sorting by code point gives
 * the same ids as Python's `sorted(set(text))`.
 */
import { checkedIds, type EncodeOptions, type Tokenizer, type TokenizerJSON } from "./tokenizer.js";

/** Calls `fn(codePoint, index)` for each code point; a lone surrogate counts as one code point. */
function forEachCodePoint(text: string, fn: (cp: number, index: number) => void): void {
  const n = text.length;
  for (let i = 0; i < n; i++) {
    let cp = text.charCodeAt(i);
    const at = i;
    if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < n) {
      const lo = text.charCodeAt(i + 1);
      if (lo >= 0xdc00 && lo <= 0xdfff) {
        cp = ((cp - 0xd800) << 10) + (lo - 0xdc00) + 0x10000;
        i++;
      }
    }
    fn(cp, at);
  }
}

export class CharTokenizer implements Tokenizer {
  readonly kind = "char" as const;
  readonly eotId = null;
  /** The vocabulary: `vocab[id]` is the character of that id. */
  readonly vocab: readonly string[];
  private readonly bmp = new Int32Array(65536).fill(-1);
  private readonly astral = new Map<number, number>();

  private constructor(codePoints: number[]) {
    this.vocab = codePoints.map((cp) => String.fromCodePoint(cp));
    codePoints.forEach((cp, id) => {
      if (cp < 65536) this.bmp[cp] = id;
      else this.astral.set(cp, id);
    });
  }

  get vocabSize(): number {
    return this.vocab.length;
  }

  /** Build the vocabulary from a corpus. */
  static fromText(text: string): CharTokenizer {
    if (typeof text !== "string") throw new TypeError("CharTokenizer.fromText: text must be a string");
    if (text.length === 0) throw new RangeError("CharTokenizer.fromText: the corpus is empty");
    const seen = new Set<number>();
    forEachCodePoint(text, (cp) => seen.add(cp));
    return new CharTokenizer([...seen].sort((a, b) => a - b));
  }

  /** Rebuild from `toJSON()` output (as saved with a run). */
  static fromJSON(json: unknown): CharTokenizer {
    const vocab = (json as { vocab?: unknown })?.vocab;
    if ((json as { kind?: unknown })?.kind !== "char" || !Array.isArray(vocab) || vocab.length === 0) {
      throw new TypeError('CharTokenizer.fromJSON: expected { kind: "char", vocab: [non-empty list of characters] }');
    }
    const cps: number[] = [];
    for (const [i, ch] of vocab.entries()) {
      const cp = typeof ch === "string" ? ch.codePointAt(0) : undefined;
      if (cp === undefined || String.fromCodePoint(cp) !== ch) throw new TypeError(`CharTokenizer.fromJSON: vocab[${i}] must be exactly one character`);
      if (i > 0 && cp <= cps[i - 1]!) throw new RangeError(`CharTokenizer.fromJSON: vocab must be sorted by code point without repeats (vocab[${i}])`);
      cps.push(cp);
    }
    return new CharTokenizer(cps);
  }

  encode(text: string, opts: EncodeOptions = {}): Int32Array {
    if (typeof text !== "string") throw new TypeError("CharTokenizer.encode: text must be a string");
    const skip = opts.onUnknown === "skip";
    const out = new Int32Array(text.length);
    let n = 0;
    forEachCodePoint(text, (cp, at) => {
      const id = cp < 65536 ? this.bmp[cp]! : (this.astral.get(cp) ?? -1);
      if (id >= 0) out[n++] = id;
      else if (!skip) {
        const hex = cp.toString(16).toUpperCase().padStart(4, "0");
        throw new RangeError(
          `CharTokenizer.encode: character ${JSON.stringify(String.fromCodePoint(cp))} (U+${hex}) at position ${at} is not in the vocabulary of ${this.vocabSize} characters`,
        );
      }
    });
    return n === out.length ? out : out.slice(0, n);
  }

  decode(ids: Iterable<number | bigint> | ArrayLike<number | bigint>): string {
    const list = checkedIds(ids, this.vocabSize, "CharTokenizer");
    let s = "";
    for (const id of list) s += this.vocab[id];
    return s;
  }

  toJSON(): TokenizerJSON {
    return { kind: "char", vocab: [...this.vocab] };
  }
}
