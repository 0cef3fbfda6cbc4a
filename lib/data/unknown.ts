/**
 * The one policy for text a tokenizer's vocabulary cannot represent (only the char tokenizer can
 * meet such text), shared by every command that encodes user text: refuse by default, naming the
 * first unknown character and its position; or skip such characters and say how many were skipped.
 */
import type { Tokenizer } from "./tokenizer.js";

export interface EncodedText {
  ids: Int32Array;
  /** Characters (code points) dropped because the vocabulary lacks them; 0 unless skipping. */
  skipped: number;
}

/** Encodes `text` with `tokenizer`; with `skipUnknown` false an unknown character is an Error naming it. */
export function encodeText(tokenizer: Tokenizer, text: string, opts: { skipUnknown?: boolean } = {}): EncodedText {
  if (opts.skipUnknown !== true) return { ids: tokenizer.encode(text, { onUnknown: "error" }), skipped: 0 };
  const ids = tokenizer.encode(text, { onUnknown: "skip" });
  // The char tokenizer gives one id per code point: what it did not give was skipped.
  let codePoints = 0;
  if (tokenizer.kind === "char") for (const _ of text) codePoints++;
  return { ids, skipped: tokenizer.kind === "char" ? codePoints - ids.length : 0 };
}
