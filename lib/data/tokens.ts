/**
 * Token streams. A `TokenSource` is a read-only sequence of token ids that
 * can be read in windows; it hides whether the tokens are in memory (a
 * tokenized text) or in a file of any size (a nanoGPT `.bin` file, read with
 * `fs.readSync` at offsets, never loaded whole).
 */
import * as fs from "node:fs";
import * as os from "node:os";
import { writeFileAtomic } from "../util/atomic.js";

export interface TokenSource {
  /** Number of tokens. */
  readonly length: number;
  /** Copy tokens [start, start + count) into `out` at `outOffset`. */
  readInto(start: number, count: number, out: Int32Array, outOffset?: number): void;
  /** Tokens [start, start + count) as a new array. */
  read(start: number, count: number): Int32Array;
  /** What the tokens are (file name, corpus name), for messages. */
  readonly description: string;
  /** Release a file handle, where there is one. Idempotent. */
  close(): void;
}

export function checkRange(src: { length: number; description: string }, start: number, count: number): void {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(count) || start < 0 || count < 0 || start + count > src.length) {
    throw new RangeError(`${src.description}: cannot read ${String(count)} tokens at ${String(start)}: the stream has ${src.length}`);
  }
}

abstract class BaseSource implements TokenSource {
  abstract readonly length: number;
  abstract readonly description: string;
  abstract readInto(start: number, count: number, out: Int32Array, outOffset?: number): void;
  read(start: number, count: number): Int32Array {
    checkRange(this, start, count);
    const out = new Int32Array(count);
    this.readInto(start, count, out, 0);
    return out;
  }
  close(): void {}
}

/** Tokens held in memory. */
export class ArrayTokenSource extends BaseSource {
  readonly description: string;
  constructor(
    readonly tokens: Int32Array | Uint16Array | Uint32Array,
    description = "tokens",
  ) {
    super();
    this.description = description;
  }
  get length(): number {
    return this.tokens.length;
  }
  readInto(start: number, count: number, out: Int32Array, outOffset = 0): void {
    checkRange(this, start, count);
    out.set(this.tokens.subarray(start, start + count), outOffset);
  }
}

/** A contiguous part [begin, end) of another source (train/validation splits). */
export class SliceTokenSource extends BaseSource {
  readonly description: string;
  constructor(
    readonly base: TokenSource,
    readonly begin: number,
    readonly end: number,
    label = `[${begin}, ${end})`,
  ) {
    super();
    if (!Number.isSafeInteger(begin) || !Number.isSafeInteger(end) || begin < 0 || end < begin || end > base.length) {
      throw new RangeError(`SliceTokenSource: [${begin}, ${end}) is not within ${base.description} (${base.length} tokens)`);
    }
    this.description = `${base.description} ${label}`;
  }
  get length(): number {
    return this.end - this.begin;
  }
  readInto(start: number, count: number, out: Int32Array, outOffset = 0): void {
    checkRange(this, start, count);
    this.base.readInto(this.begin + start, count, out, outOffset);
  }
  // close() stays a no-op: the slice does not own its base (train and validation share one file).
}

/** Several sources one after another. */
export class ConcatTokenSource extends BaseSource {
  readonly description: string;
  readonly length: number;
  private readonly starts: number[] = [];
  constructor(readonly parts: readonly TokenSource[]) {
    super();
    let n = 0;
    for (const p of parts) {
      this.starts.push(n);
      n += p.length;
    }
    this.length = n;
    this.description = parts.map((p) => p.description).join(" + ");
  }
  readInto(start: number, count: number, out: Int32Array, outOffset = 0): void {
    checkRange(this, start, count);
    let pos = start;
    let left = count;
    let o = outOffset;
    for (let i = 0; i < this.parts.length && left > 0; i++) {
      const p = this.parts[i]!;
      const s = this.starts[i]!;
      if (pos >= s + p.length) continue;
      const n = Math.min(left, s + p.length - pos);
      p.readInto(pos - s, n, out, o);
      pos += n;
      o += n;
      left -= n;
    }
  }
  override close(): void {
    for (const p of this.parts) p.close();
  }
}

export type BinDType = "uint16" | "uint32";
const BIN_ITEMSIZE: Record<BinDType, number> = { uint16: 2, uint32: 4 };
const LITTLE_ENDIAN_HOST = os.endianness() === "LE";

const closer = new FinalizationRegistry<number>((fd) => {
  try {
    fs.closeSync(fd);
  } catch {
    // already closed
  }
});

export interface BinTokenSourceOptions {
  /** Element type of the file: 'uint16' (nanoGPT, default) or 'uint32'. */
  dtype?: BinDType;
  /** When given, every token read is checked to be below it (an id outside the model's vocabulary would fail later, far from its cause). */
  vocabSize?: number;
}

/**
 * A nanoGPT-style file of little-endian unsigned token ids with no header
 * (`np.array(ids, dtype=np.uint16).tofile(path)`). The file stays open and is
 * read window by window with `fs.readSync`, so its size is not limited by memory.
 */
export class BinTokenSource extends BaseSource {
  readonly description: string;
  readonly length: number;
  readonly dtype: BinDType;
  readonly vocabSize: number | undefined;
  private fd: number | null;
  private scratch: Buffer = Buffer.alloc(0);

  constructor(
    readonly path: string,
    opts: BinTokenSourceOptions = {},
  ) {
    super();
    this.dtype = opts.dtype ?? "uint16";
    if (!(this.dtype in BIN_ITEMSIZE)) throw new TypeError(`BinTokenSource: dtype must be 'uint16' or 'uint32', got ${JSON.stringify(opts.dtype)}`);
    if (opts.vocabSize !== undefined && !(Number.isSafeInteger(opts.vocabSize) && opts.vocabSize > 0)) {
      throw new RangeError(`BinTokenSource: vocabSize must be a positive integer, got ${String(opts.vocabSize)}`);
    }
    this.vocabSize = opts.vocabSize;
    this.description = path;
    const fd = fs.openSync(path, "r");
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) throw new Error(`${path}: not a regular file`);
      const size = BIN_ITEMSIZE[this.dtype];
      if (st.size % size !== 0) throw new Error(`${path}: size ${st.size} bytes is not a multiple of ${size}: not a ${this.dtype} token file`);
      this.length = st.size / size;
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
    this.fd = fd;
    closer.register(this, fd, this);
  }

  readInto(start: number, count: number, out: Int32Array, outOffset = 0): void {
    checkRange(this, start, count);
    if (this.fd === null) throw new Error(`${this.path}: token file was closed`);
    if (outOffset < 0 || outOffset + count > out.length) throw new RangeError("BinTokenSource.readInto: output array too small");
    const size = BIN_ITEMSIZE[this.dtype];
    const bytes = count * size;
    // A scratch buffer on its own ArrayBuffer (offset 0) so typed views are aligned.
    if (this.scratch.byteLength < bytes) this.scratch = Buffer.from(new ArrayBuffer(Math.max(bytes, 2 * this.scratch.byteLength)));
    let done = 0;
    while (done < bytes) {
      const n = fs.readSync(this.fd, this.scratch, done, bytes - done, start * size + done);
      if (n === 0) throw new Error(`${this.path}: file ended early (was it truncated while open?)`);
      done += n;
    }
    const limit = this.vocabSize ?? Infinity;
    let bad = -1;
    if (LITTLE_ENDIAN_HOST) {
      const view = this.dtype === "uint16" ? new Uint16Array(this.scratch.buffer, 0, count) : new Uint32Array(this.scratch.buffer, 0, count);
      for (let i = 0; i < count; i++) {
        const v = view[i]!;
        if (v >= limit || v > 0x7fffffff) bad = bad < 0 ? i : bad;
        out[outOffset + i] = v;
      }
    } else {
      for (let i = 0; i < count; i++) {
        const v = this.dtype === "uint16" ? this.scratch.readUInt16LE(i * 2) : this.scratch.readUInt32LE(i * 4);
        if (v >= limit || v > 0x7fffffff) bad = bad < 0 ? i : bad;
        out[outOffset + i] = v;
      }
    }
    if (bad >= 0) {
      const v = this.dtype === "uint16" ? this.scratch.readUInt16LE(bad * 2) : this.scratch.readUInt32LE(bad * 4);
      throw new RangeError(`${this.path}: token ${v} at index ${start + bad} is outside the vocabulary (size ${this.vocabSize ?? 2 ** 31})`);
    }
  }

  override close(): void {
    if (this.fd !== null) {
      closer.unregister(this);
      fs.closeSync(this.fd);
      this.fd = null;
    }
  }
}

/** Write token ids as a nanoGPT `.bin` file (little-endian, no header), atomically. */
export function writeTokenBin(path: string, tokens: ArrayLike<number>, opts: { dtype?: BinDType } = {}): void {
  const dtype = opts.dtype ?? "uint16";
  const size = BIN_ITEMSIZE[dtype];
  if (size === undefined) throw new TypeError(`writeTokenBin: dtype must be 'uint16' or 'uint32', got ${JSON.stringify(dtype)}`);
  const max = dtype === "uint16" ? 0xffff : 0xffffffff;
  const buf = Buffer.alloc(tokens.length * size);
  for (let i = 0; i < tokens.length; i++) {
    const v = tokens[i]!;
    if (!Number.isInteger(v) || v < 0 || v > max) throw new RangeError(`writeTokenBin: token ${v} at index ${i} does not fit ${dtype}`);
    if (size === 2) buf.writeUInt16LE(v, i * 2);
    else buf.writeUInt32LE(v, i * 4);
  }
  writeFileAtomic(path, buf);
}

/** Fraction of the stream used for validation unless told otherwise. */
export const DEFAULT_VAL_FRACTION = 0.1;

/**
 * The train/validation split of one token stream of n tokens: the last
 * floor(n * valFraction) tokens are validation, everything before is training
 * ([0, n - v) and [n - v, n)). A window never straddles the boundary because
 * each part is sampled on its own.
 */
export function splitTrainVal(source: TokenSource, valFraction = DEFAULT_VAL_FRACTION): { train: TokenSource; val: TokenSource } {
  if (typeof valFraction !== "number" || !(valFraction >= 0 && valFraction < 1)) {
    throw new RangeError(`splitTrainVal: valFraction must be in [0, 1), got ${String(valFraction)}`);
  }
  const n = source.length;
  const v = Math.floor(n * valFraction);
  return {
    train: new SliceTokenSource(source, 0, n - v, "(train)"),
    val: new SliceTokenSource(source, n - v, n, "(validation)"),
  };
}
