// Analysis windows (docs/analysis.md, "Windows"): consecutive, non-overlapping chunks of T+1
// tokens from the start of a token stream; inputs are the first T tokens of a chunk, targets the
// last T. A trailing remainder shorter than T+1 is not used.
//
// Token streams are read window range by window range, so that a multi-GB `.bin` file is never
// held in memory: only the tokens of the current batch are.

import * as fs from "node:fs";

/** A random-access stream of token ids. */
export interface TokenStream {
  /** Number of tokens. */
  readonly length: number;
  /** Tokens [start, start+count) as int32. */
  read(start: number, count: number): Int32Array;
}

type IntArray = Uint16Array | Int32Array | Uint32Array | Uint8Array | readonly number[];

/** A stream over ids already in memory. */
export function arrayTokenStream(ids: IntArray): TokenStream {
  return {
    length: ids.length,
    read(start, count) {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = ids[start + i] as number;
      return out;
    },
  };
}

/** A stream over a nanoGPT-style `.bin` file of little-endian uint16 ids, read on demand. */
export function binTokenStream(path: string): TokenStream & { close(): void } {
  const st = fs.statSync(path);
  if (!st.isFile()) throw new Error(`data: ${path} is not a file`);
  if (st.size % 2 !== 0) throw new Error(`data: ${path} has an odd byte count (${st.size}); a .bin file holds uint16 token ids`);
  let fd: number | null = fs.openSync(path, "r");
  return {
    length: st.size / 2,
    read(start, count) {
      if (fd === null) throw new Error(`data: ${path} was closed`);
      const buf = Buffer.alloc(count * 2);
      let got = 0;
      while (got < buf.length) {
        const n = fs.readSync(fd, buf, got, buf.length - got, start * 2 + got);
        if (n === 0) throw new Error(`data: ${path} ended early (wanted tokens ${start}..${start + count})`);
        got += n;
      }
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = buf.readUInt16LE(i * 2);
      return out;
    },
    close() {
      if (fd !== null) fs.closeSync(fd);
      fd = null;
    },
  };
}

/** Adapts whatever lib/data hands out (a stream with read(), a typed array, an array) to a TokenStream. */
export function toTokenStream(x: unknown): TokenStream {
  if (x && typeof x === "object") {
    const o = x as Record<string, unknown>;
    if (typeof o.read === "function" && typeof o.length === "number") return o as unknown as TokenStream;
    if (ArrayBuffer.isView(x) || Array.isArray(x)) return arrayTokenStream(x as IntArray);
    // Objects that wrap their ids (e.g. { ids }, { tokens }, { data }).
    for (const key of ["ids", "tokens", "data"]) {
      const v = o[key];
      if (v && (ArrayBuffer.isView(v) || Array.isArray(v))) return arrayTokenStream(v as IntArray);
    }
    // Streams with a slice-like accessor.
    if (typeof o.length === "number" && typeof o.slice === "function") {
      const s = o as unknown as { length: number; slice(a: number, b: number): ArrayLike<number> };
      return {
        length: s.length,
        read(start, count) {
          return Int32Array.from(s.slice(start, start + count) as ArrayLike<number>);
        },
      };
    }
  }
  throw new TypeError("analysis: token stream must be a typed array, an array of ids, or an object with length and read(start, count)");
}

export interface WindowPlan {
  /** Number of windows N analysed. */
  windows: number;
  seqLen: number;
  batchSize: number;
  /** [first window, end window) per batch; the last batch may be partial. */
  batches: Array<[number, number]>;
}

/** Plans the windows and batches: N = min(maxWindows, floor(length / (T+1))). */
export function planWindows(streamLength: number, seqLen: number, batchSize: number, maxWindows?: number): WindowPlan {
  if (!Number.isInteger(seqLen) || seqLen < 1) throw new RangeError(`seqLen must be a positive integer, got ${seqLen}`);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
  if (maxWindows !== undefined && (!Number.isInteger(maxWindows) || maxWindows < 1)) {
    throw new RangeError(`maxWindows must be a positive integer, got ${maxWindows}`);
  }
  let n = Math.floor(streamLength / (seqLen + 1));
  if (maxWindows !== undefined) n = Math.min(n, maxWindows);
  if (n < 1) {
    throw new RangeError(`data holds ${streamLength} tokens: not enough for one window of seqLen+1 = ${seqLen + 1} tokens`);
  }
  const batches: Array<[number, number]> = [];
  for (let s = 0; s < n; s += batchSize) batches.push([s, Math.min(n, s + batchSize)]);
  return { windows: n, seqLen, batchSize, batches };
}

/** Tokens of windows [w0, w1) as one int32 array of (w1-w0)*(T+1) ids. */
export function readWindows(stream: TokenStream, seqLen: number, w0: number, w1: number): Int32Array {
  return stream.read(w0 * (seqLen + 1), (w1 - w0) * (seqLen + 1));
}
