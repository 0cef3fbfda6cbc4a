/**
 * safetensors reading and writing.
 *
 * Format: 8 bytes little-endian u64 N, N bytes of UTF-8 JSON header, then the
 * data region. The header maps tensor names to `{ dtype, shape, data_offsets:
 * [begin, end] }` (offsets relative to the data region) and may hold a
 * `__metadata__` map of strings.
 *
 * Files are treated as hostile. Before anything is allocated from a size read
 * in the file, the header is checked the way the reference (Rust) reader does:
 * header length at most 100 MB and within the file, header starting with `{`,
 * valid UTF-8 and JSON, every entry with a known dtype, a shape of
 * non-negative integers whose element count does not overflow, offsets that
 * match dtype x shape and that tile the data region exactly (sorted by offset,
 * each tensor starts where the previous ended, the last ends at the end of the
 * file). Every violation is an Error that names the file and the tensor.
 *
 * Reading allocates each tensor with `torch.empty` and reads the file bytes
 * straight into its memory (`tensor.bytes()`) with `fs.readSync`: no copy
 * through JS numbers and no whole-file buffer, so peak memory is the tensors
 * themselves. Writing goes tensor by tensor through a temporary file that is
 * renamed into place (atomic), with the reference writer's layout (tensors
 * ordered by dtype alignment then name, header padded with spaces to a
 * multiple of 8 bytes), so files from Python's `safetensors` and from here are
 * byte-identical for the same tensors and no metadata.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { torch, Tensor, type DType, type Device } from "./index.js";
import { writeAllAsync, writeFileAtomicAsync, writeFileAtomicWith } from "../util/atomic.js";
import { native } from "./native.js";

/** Largest header the reader accepts (the reference reader's bound). */
export const MAX_HEADER_BYTES = 100_000_000;

const FROM_ST: Readonly<Record<string, DType>> = {
  F32: "float32",
  F64: "float64",
  BF16: "bfloat16",
  F16: "float16",
  I64: "int64",
  I32: "int32",
  I16: "int16",
  I8: "int8",
  U8: "uint8",
  BOOL: "bool",
  C64: "complex64",
};
/** complex128 has no safetensors dtype. */
const TO_ST: Readonly<Partial<Record<DType, string>>> = {
  float32: "F32",
  float64: "F64",
  bfloat16: "BF16",
  float16: "F16",
  int64: "I64",
  int32: "I32",
  int16: "I16",
  int8: "I8",
  uint8: "U8",
  bool: "BOOL",
  complex64: "C64",
};
const ITEMSIZE: Readonly<Record<DType, number>> = {
  float32: 4,
  float64: 8,
  bfloat16: 2,
  float16: 2,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
  complex64: 8,
  complex128: 16,
};
/** Position of each dtype in the reference writer's `Dtype` enum; it orders tensors by it, descending. */
// C64 sorts between F32 and F64 (checked against safetensors 0.x's writer).
const WRITE_RANK: Readonly<Record<string, number>> = {
  BOOL: 0, U8: 1, I8: 2, I16: 5, F16: 7, BF16: 8, I32: 9, F32: 11, C64: 11.5, F64: 12, I64: 13,
};
const FLOATING: ReadonlySet<DType> = new Set<DType>(["float32", "float64", "bfloat16", "float16"]);

/** One tensor as described by a file's header. */
export interface SafetensorsEntry {
  name: string;
  dtype: DType;
  shape: number[];
  numel: number;
  /** Offsets relative to the data region, as written in the header. */
  dataOffsets: [number, number];
  /** Absolute position of the first byte in the file. */
  fileOffset: number;
  byteLength: number;
}

export interface SafetensorsHeader {
  path: string;
  fileSize: number;
  headerLength: number;
  dataStart: number;
  metadata: Record<string, string>;
  /** In file order (by offset). */
  entries: SafetensorsEntry[];
}

export interface LoadOptions {
  /** Where the tensors go (default 'cpu'). They are read on the CPU and moved one at a time. */
  device?: Device;
  /**
   * Cast floating-point tensors to this dtype (integer and bool tensors keep
   * theirs, as `Module.to(dtype)` does in PyTorch).
   */
  dtype?: DType;
  /** Load only these names (or those for which the predicate is true). Unknown names in a list are an error. */
  names?: readonly string[] | ((name: string) => boolean);
}

export interface LoadResult {
  tensors: Record<string, Tensor>;
  metadata: Record<string, string>;
}

function fail(file: string, msg: string, tensor?: string): never {
  throw new Error(`safetensors ${file}: ${tensor === undefined ? "" : `tensor ${JSON.stringify(tensor)}: `}${msg}`);
}

function checkHostEndianness(): void {
  if (os.endianness() !== "LE") throw new Error("safetensors: only little-endian hosts are supported");
}

function readExact(fd: number, file: string, buf: Uint8Array, position: number, what: string): void {
  let done = 0;
  while (done < buf.byteLength) {
    const n = fs.readSync(fd, buf, done, Math.min(buf.byteLength - done, 1 << 30), position + done);
    if (n === 0) fail(file, `file is truncated: ${what} ends at byte ${position + buf.byteLength}, but reading stopped at byte ${position + done}`);
    done += n;
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isCount(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

/** Parse and validate the header of the open file `fd`. */
function readHeader(fd: number, file: string): SafetensorsHeader {
  const fileSize = fs.fstatSync(fd).size;
  if (fileSize < 8) fail(file, `file is ${fileSize} bytes, too small to hold the 8-byte header length`);
  const lenBuf = Buffer.alloc(8);
  readExact(fd, file, lenBuf, 0, "the header length");
  const n64 = lenBuf.readBigUInt64LE(0);
  if (n64 > BigInt(MAX_HEADER_BYTES)) fail(file, `header length ${n64} exceeds the limit of ${MAX_HEADER_BYTES} bytes`);
  const headerLength = Number(n64);
  if (8 + headerLength > fileSize) fail(file, `header length ${headerLength} exceeds the file size (${fileSize} bytes): the file is truncated or not safetensors`);
  if (headerLength < 2) fail(file, `header length ${headerLength} is too small for a JSON object`);
  const raw = Buffer.alloc(headerLength);
  readExact(fd, file, raw, 8, "the header");
  if (raw[0] !== 0x7b) fail(file, "header does not start with '{'");
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(raw);
  } catch {
    fail(file, "header is not valid UTF-8");
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    fail(file, `header is not valid JSON (${(e as Error).message})`);
  }
  if (!isPlainObject(json)) fail(file, "header is not a JSON object");

  const dataStart = 8 + headerLength;
  const dataLength = fileSize - dataStart;
  const metadata: Record<string, string> = {};
  const entries: SafetensorsEntry[] = [];
  for (const [name, value] of Object.entries(json)) {
    if (name === "__metadata__") {
      if (value === null) continue; // the reference reader treats null as "no metadata"
      if (!isPlainObject(value)) fail(file, "__metadata__ must be an object of strings");
      for (const [k, v] of Object.entries(value)) {
        if (typeof v !== "string") fail(file, `__metadata__[${JSON.stringify(k)}] must be a string`);
        metadata[k] = v;
      }
      continue;
    }
    if (!isPlainObject(value)) fail(file, "entry must be an object with dtype, shape and data_offsets", name);
    const { dtype: st, shape, data_offsets: offsets } = value;
    if (typeof st !== "string") fail(file, "dtype must be a string", name);
    const dtype = Object.prototype.hasOwnProperty.call(FROM_ST, st) ? FROM_ST[st] : undefined;
    if (dtype === undefined) fail(file, `dtype ${JSON.stringify(st)} is not supported (supported: ${Object.keys(FROM_ST).join(", ")})`, name);
    if (!Array.isArray(shape) || !shape.every(isCount)) fail(file, "shape must be an array of non-negative integers", name);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) fail(file, "data_offsets must be two non-negative integers", name);
    const [begin, end] = offsets as [number, number];
    if (end < begin) fail(file, `data_offsets [${begin}, ${end}] end before they begin`, name);
    let numel = 1;
    for (const d of shape as number[]) {
      numel *= d;
      if (!Number.isSafeInteger(numel)) fail(file, `shape [${(shape as number[]).join(", ")}] has too many elements`, name);
    }
    const byteLength = numel * ITEMSIZE[dtype];
    if (!Number.isSafeInteger(byteLength)) fail(file, `shape [${(shape as number[]).join(", ")}] is too large`, name);
    if (end - begin !== byteLength) {
      fail(file, `data_offsets [${begin}, ${end}] span ${end - begin} bytes but ${st} x [${(shape as number[]).join(", ")}] needs ${byteLength}`, name);
    }
    if (end > dataLength) fail(file, `data_offsets [${begin}, ${end}] extend past the data region (${dataLength} bytes): the file is truncated or corrupt`, name);
    entries.push({ name, dtype, shape: (shape as number[]).slice(), numel, dataOffsets: [begin, end], fileOffset: dataStart + begin, byteLength });
  }
  // The tensors must tile the data region exactly: no overlap, no gap, nothing after the last.
  entries.sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  let at = 0;
  for (const e of entries) {
    if (e.dataOffsets[0] < at) fail(file, `data_offsets [${e.dataOffsets.join(", ")}] overlap the previous tensor (which ends at ${at})`, e.name);
    if (e.dataOffsets[0] > at) fail(file, `data_offsets [${e.dataOffsets.join(", ")}] leave a gap after byte ${at} of the data region`, e.name);
    at = e.dataOffsets[1];
  }
  if (at !== dataLength) fail(file, `the tensors cover ${at} bytes but the data region holds ${dataLength}: the file has trailing bytes or is corrupt`);
  return { path: file, fileSize, headerLength, dataStart, metadata, entries };
}

/** Read and validate only the header of a safetensors file. */
export function readSafetensorsHeader(file: string): SafetensorsHeader {
  checkHostEndianness();
  const fd = fs.openSync(file, "r");
  try {
    return readHeader(fd, file);
  } finally {
    fs.closeSync(fd);
  }
}

function place(t: Tensor, opts: LoadOptions): Tensor {
  const device = opts.device;
  const dtype = opts.dtype !== undefined && FLOATING.has(t.dtype) && t.dtype !== opts.dtype ? opts.dtype : undefined;
  const onDevice = device === undefined || device === "cpu";
  if (onDevice && dtype === undefined) return t;
  try {
    const moved = t.to({ ...(onDevice ? {} : { device }), ...(dtype === undefined ? {} : { dtype }) });
    return moved;
  } finally {
    t.dispose();
  }
}

function readEntry(fd: number, header: SafetensorsHeader, e: SafetensorsEntry, opts: LoadOptions): Tensor {
  const t = torch.empty(e.shape, { dtype: e.dtype });
  try {
    if (e.byteLength > 0) {
      const dst = t.bytes();
      if (dst.byteLength !== e.byteLength) fail(header.path, `internal error: tensor memory is ${dst.byteLength} bytes, expected ${e.byteLength}`, e.name);
      readExact(fd, header.path, dst, e.fileOffset, `tensor ${JSON.stringify(e.name)}`);
    }
  } catch (err) {
    t.dispose();
    throw err;
  }
  return place(t, opts);
}

function validateLoadOptions(opts: LoadOptions, fn: string): void {
  if (typeof opts !== "object" || opts === null || Array.isArray(opts)) throw new TypeError(`${fn}: options must be an object`);
  if (opts.dtype !== undefined && !(typeof opts.dtype === "string" && Object.prototype.hasOwnProperty.call(TO_ST, opts.dtype))) {
    throw new TypeError(`${fn}: dtype must be one of ${Object.keys(TO_ST).join(", ")}, got ${JSON.stringify(opts.dtype)}`);
  }
  if (opts.device !== undefined && (typeof opts.device !== "string" || !/^(cpu|cuda(:\d+)?)$/.test(opts.device))) {
    throw new TypeError(`${fn}: device must be 'cpu', 'cuda' or 'cuda:N', got ${JSON.stringify(opts.device)}`);
  }
}

/** Closes the descriptor of a SafetensorsFile that was never closed (a safety net only). */
const fdCloser = new FinalizationRegistry<number>((fd) => {
  try {
    fs.closeSync(fd);
  } catch {
    // already closed
  }
});

/** A safetensors file opened for reading selected tensors on demand. */
export class SafetensorsFile implements Disposable {
  readonly path: string;
  readonly metadata: Record<string, string>;
  readonly header: SafetensorsHeader;
  private fd: number | null;
  private readonly byName: Map<string, SafetensorsEntry>;

  private constructor(file: string, fd: number, header: SafetensorsHeader) {
    this.path = file;
    this.fd = fd;
    this.header = header;
    this.metadata = header.metadata;
    this.byName = new Map(header.entries.map((e) => [e.name, e]));
    fdCloser.register(this, fd, this);
  }

  /** Open and validate `file`; tensors are read only when asked for. */
  static open(file: string): SafetensorsFile {
    if (typeof file !== "string" || file.length === 0) throw new TypeError("openSafetensors: path must be a non-empty string");
    checkHostEndianness();
    const fd = fs.openSync(file, "r");
    try {
      return new SafetensorsFile(file, fd, readHeader(fd, file));
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  /** Tensor names in file order. */
  get names(): string[] {
    return this.header.entries.map((e) => e.name);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** dtype, shape and location of one tensor, without reading it. */
  info(name: string): SafetensorsEntry {
    const e = this.byName.get(name);
    if (e === undefined) throw new RangeError(`safetensors ${this.path}: no tensor named ${JSON.stringify(name)}`);
    return e;
  }

  /** Read one tensor (a fresh tensor the caller owns). */
  get(name: string, opts: Omit<LoadOptions, "names"> = {}): Tensor {
    validateLoadOptions(opts, "SafetensorsFile.get");
    if (this.fd === null) throw new Error(`safetensors ${this.path}: file was closed`);
    return readEntry(this.fd, this.header, this.info(name), opts);
  }

  close(): void {
    if (this.fd !== null) {
      fdCloser.unregister(this);
      fs.closeSync(this.fd);
      this.fd = null;
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** Open a safetensors file lazily: header info now, `get(name)` reads a tensor when asked. Close it when done. */
export function openSafetensors(file: string): SafetensorsFile {
  return SafetensorsFile.open(file);
}

function selected(names: LoadOptions["names"], file: SafetensorsFile): string[] {
  if (names === undefined) return file.names;
  if (typeof names === "function") return file.names.filter((n) => names(n));
  if (!Array.isArray(names)) throw new TypeError("loadSafetensors: names must be an array of strings or a predicate");
  for (const n of names) file.info(n);
  return [...names];
}

/** Load tensors from one file. On error every tensor read so far is disposed. */
export function loadSafetensors(file: string, opts: LoadOptions = {}): LoadResult {
  validateLoadOptions(opts, "loadSafetensors");
  const f = openSafetensors(file);
  const tensors: Record<string, Tensor> = {};
  try {
    for (const name of selected(opts.names, f)) tensors[name] = f.get(name, opts);
  } catch (e) {
    for (const t of Object.values(tensors)) t.dispose();
    throw e;
  } finally {
    f.close();
  }
  return { tensors, metadata: { ...f.metadata } };
}

export const SAFETENSORS_FILE = "model.safetensors";
export const SAFETENSORS_INDEX_FILE = "model.safetensors.index.json";

export interface ShardIndex {
  metadata: Record<string, unknown>;
  weightMap: Record<string, string>;
}

/** Read and validate `model.safetensors.index.json`. Shard names must be plain file names inside the folder. */
export function readShardIndex(indexPath: string): ShardIndex {
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(indexPath, "utf8"));
  } catch (e) {
    throw new Error(`safetensors index ${indexPath}: ${(e as Error).message}`);
  }
  if (!isPlainObject(json) || !isPlainObject(json.weight_map)) throw new Error(`safetensors index ${indexPath}: weight_map must be an object`);
  const weightMap: Record<string, string> = {};
  for (const [name, shard] of Object.entries(json.weight_map)) {
    if (typeof shard !== "string" || shard.length === 0 || shard !== path.basename(shard) || shard === "." || shard === ".." || shard.includes("\\")) {
      throw new Error(`safetensors index ${indexPath}: weight_map[${JSON.stringify(name)}] must be a file name in the same folder, got ${JSON.stringify(shard)}`);
    }
    weightMap[name] = shard;
  }
  const metadata = isPlainObject(json.metadata) ? json.metadata : {};
  return { metadata, weightMap };
}

/**
 * Load a Hugging Face weights folder: the shards listed in
 * `model.safetensors.index.json` when it exists, else `model.safetensors`.
 * Every name in the index must be found in the shard it names, and no tensor
 * may appear in two shards. Returned metadata merges the shards' `__metadata__`.
 */
export function loadSafetensorsDir(dir: string, opts: LoadOptions = {}): LoadResult & { files: string[] } {
  validateLoadOptions(opts, "loadSafetensorsDir");
  const indexPath = path.join(dir, SAFETENSORS_INDEX_FILE);
  if (!fs.existsSync(indexPath)) {
    const single = path.join(dir, SAFETENSORS_FILE);
    if (!fs.existsSync(single)) throw new Error(`loadSafetensorsDir: neither ${SAFETENSORS_FILE} nor ${SAFETENSORS_INDEX_FILE} found in ${dir}`);
    return { ...loadSafetensors(single, opts), files: [single] };
  }
  const index = readShardIndex(indexPath);
  const byShard = new Map<string, string[]>();
  for (const [name, shard] of Object.entries(index.weightMap)) {
    const list = byShard.get(shard) ?? [];
    list.push(name);
    byShard.set(shard, list);
  }
  const tensors: Record<string, Tensor> = {};
  const metadata: Record<string, string> = {};
  const files: string[] = [];
  const want = opts.names;
  try {
    for (const shard of [...byShard.keys()].sort()) {
      const file = path.join(dir, shard);
      files.push(file);
      const f = openSafetensors(file);
      try {
        for (const name of byShard.get(shard)!) {
          if (!f.has(name)) throw new Error(`safetensors index ${indexPath}: tensor ${JSON.stringify(name)} is listed in ${shard} but not found there`);
        }
        Object.assign(metadata, f.metadata);
        for (const name of f.names) {
          if (want !== undefined && !(typeof want === "function" ? want(name) : want.includes(name))) continue;
          if (Object.prototype.hasOwnProperty.call(tensors, name)) throw new Error(`safetensors ${file}: tensor ${JSON.stringify(name)} also appears in another shard`);
          tensors[name] = f.get(name, opts);
        }
      } finally {
        f.close();
      }
    }
    if (Array.isArray(want)) {
      for (const n of want) if (!Object.prototype.hasOwnProperty.call(tensors, n)) throw new RangeError(`loadSafetensorsDir: no tensor named ${JSON.stringify(n)} in ${dir}`);
    }
  } catch (e) {
    for (const t of Object.values(tensors)) t.dispose();
    throw e;
  }
  return { tensors, metadata, files };
}

function utf8Compare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

interface PlannedEntry {
  name: string;
  tensor: Tensor;
  st: string;
  shape: number[];
  byteLength: number;
  begin: number;
}

function plan(file: string, tensors: Record<string, Tensor>, metadata: Record<string, string> | undefined): { header: Buffer; entries: PlannedEntry[] } {
  if (!isPlainObject(tensors)) throw new TypeError(`saveSafetensors ${file}: tensors must be an object mapping names to tensors`);
  const entries: PlannedEntry[] = [];
  for (const [name, t] of Object.entries(tensors)) {
    if (name.length === 0 || name === "__metadata__") throw new RangeError(`saveSafetensors ${file}: invalid tensor name ${JSON.stringify(name)}`);
    if (!(t instanceof Tensor)) throw new TypeError(`saveSafetensors ${file}: ${JSON.stringify(name)} is not a Tensor`);
    if (t.isDisposed) throw new Error(`saveSafetensors ${file}: tensor ${JSON.stringify(name)} was disposed`);
    const st = TO_ST[t.dtype];
    if (st === undefined) throw new TypeError(`saveSafetensors ${file}: tensor ${JSON.stringify(name)} has unsupported dtype ${t.dtype}`);
    const shape = t.shape.slice();
    entries.push({ name, tensor: t, st, shape, byteLength: shape.reduce((a, b) => a * b, 1) * ITEMSIZE[t.dtype], begin: 0 });
  }
  entries.sort((a, b) => WRITE_RANK[b.st]! - WRITE_RANK[a.st]! || utf8Compare(a.name, b.name));
  let at = 0;
  for (const e of entries) {
    e.begin = at;
    at += e.byteLength;
  }
  // Build the JSON by hand so the key order is the file order, as the reference writer does.
  const parts: string[] = [];
  if (metadata !== undefined) {
    if (!isPlainObject(metadata)) throw new TypeError(`saveSafetensors ${file}: metadata must be an object of strings`);
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") throw new TypeError(`saveSafetensors ${file}: metadata[${JSON.stringify(k)}] must be a string`);
    }
    parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  }
  for (const e of entries) {
    parts.push(`${JSON.stringify(e.name)}:{"dtype":"${e.st}","shape":[${e.shape.join(",")}],"data_offsets":[${e.begin},${e.begin + e.byteLength}]}`);
  }
  let json = Buffer.from(`{${parts.join(",")}}`, "utf8");
  const pad = (8 - (json.byteLength % 8)) % 8;
  if (pad > 0) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  if (json.byteLength > MAX_HEADER_BYTES) throw new RangeError(`saveSafetensors ${file}: header would be ${json.byteLength} bytes, over the ${MAX_HEADER_BYTES}-byte limit readers enforce`);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.byteLength));
  return { header: Buffer.concat([len, json]), entries };
}

function writeAll(fd: number, buf: Uint8Array): void {
  let off = 0;
  while (off < buf.byteLength) off += fs.writeSync(fd, buf, off, Math.min(buf.byteLength - off, 1 << 30));
}

/** Write one tensor's bytes: copied to a contiguous CPU tensor first when needed, one tensor at a time. */
function writeTensor(fd: number, file: string, e: PlannedEntry): void {
  if (e.byteLength === 0) return;
  torch.noGrad(() => {
    let host = e.tensor;
    const owned: Tensor[] = [];
    try {
      if (host.device !== "cpu") {
        host = host.to("cpu");
        owned.push(host);
      }
      const c = host.contiguous();
      if (c !== host) {
        owned.push(c);
        host = c;
      }
      const bytes = host.bytes();
      if (bytes.byteLength !== e.byteLength) throw new Error(`saveSafetensors ${file}: tensor ${JSON.stringify(e.name)} has ${bytes.byteLength} bytes, expected ${e.byteLength}`);
      writeAll(fd, bytes);
    } finally {
      for (const t of owned) t.dispose();
    }
  });
}

/** Write `tensors` (any device, any layout) and optional string metadata to `file`, atomically. */
export function saveSafetensors(file: string, tensors: Record<string, Tensor>, metadata?: Record<string, string>): void {
  if (typeof file !== "string" || file.length === 0) throw new TypeError("saveSafetensors: path must be a non-empty string");
  checkHostEndianness();
  const { header, entries } = plan(file, tensors, metadata);
  writeFileAtomicWith(file, (fd) => {
    writeAll(fd, header);
    for (const e of entries) writeTensor(fd, file, e);
  });
}

// ---------------------------------------------------------------------------
// Asynchronous forms. The same files, with each tensor's bytes read and written by the addon on
// libuv's thread pool (readTensorFrom / writeTensorTo, which also make the device-to-host copy
// there), so that a large file does not block the event loop. The header (kilobytes) is read
// and planned on the calling thread, and a dtype or device asked for on load is applied there.

/** `loadSafetensors` with the reads off the event loop. On error every tensor read so far is disposed. */
export async function loadSafetensorsAsync(file: string, opts: LoadOptions = {}): Promise<LoadResult> {
  validateLoadOptions(opts, "loadSafetensorsAsync");
  const f = openSafetensors(file);
  const handle = await fs.promises.open(file, "r");
  const tensors: Record<string, Tensor> = {};
  try {
    for (const name of selected(opts.names, f)) {
      const e = f.info(name);
      const t = torch.empty(e.shape, { dtype: e.dtype });
      tensors[name] = t;
      if (e.byteLength > 0) {
        try {
          await native.readTensorFrom(t, handle.fd, e.fileOffset);
        } catch (err) {
          fail(file, (err as Error).message.replace(/^readTensor: /, ""), name);
        }
      }
      tensors[name] = place(t, opts);
    }
  } catch (err) {
    for (const t of Object.values(tensors)) t.dispose();
    throw err;
  } finally {
    f.close();
    await handle.close();
  }
  return { tensors, metadata: { ...f.metadata } };
}

/** `saveSafetensors` with the copies and writes off the event loop; atomic as it is. */
export async function saveSafetensorsAsync(file: string, tensors: Record<string, Tensor>, metadata?: Record<string, string>): Promise<void> {
  if (typeof file !== "string" || file.length === 0) throw new TypeError("saveSafetensorsAsync: path must be a non-empty string");
  checkHostEndianness();
  const { header, entries } = plan(file, tensors, metadata);
  await writeFileAtomicAsync(file, async (handle) => {
    await writeAllAsync(handle, header);
    for (const e of entries) if (e.byteLength > 0) await native.writeTensorTo(e.tensor, handle.fd);
  });
}

export interface SaveDirOptions {
  metadata?: Record<string, string>;
  /** Largest shard in bytes of tensor data (default 5 GB, as transformers). One file when everything fits. */
  maxShardBytes?: number;
}

/**
 * Write `tensors` into `dir` in Hugging Face layout: `model.safetensors` when
 * the data fits in one shard, else `model-0000k-of-0000n.safetensors` plus
 * `model.safetensors.index.json`. Each file is written atomically; use
 * `writeDirAtomic` around this for an all-or-nothing folder.
 */
export function saveSafetensorsDir(dir: string, tensors: Record<string, Tensor>, opts: SaveDirOptions = {}): string[] {
  const maxShardBytes = opts.maxShardBytes ?? 5_000_000_000;
  if (!(maxShardBytes > 0)) throw new RangeError("saveSafetensorsDir: maxShardBytes must be positive");
  fs.mkdirSync(dir, { recursive: true });
  const names = Object.keys(tensors);
  const size = (n: string) => tensors[n]!.numel * ITEMSIZE[tensors[n]!.dtype];
  const total = names.reduce((a, n) => a + size(n), 0);
  if (total <= maxShardBytes) {
    const file = path.join(dir, SAFETENSORS_FILE);
    saveSafetensors(file, tensors, opts.metadata);
    return [file];
  }
  // Greedy in name order, as transformers does: start a new shard when the next tensor would not fit.
  const shards: string[][] = [[]];
  let current = 0;
  for (const n of names) {
    const s = size(n);
    if (current + s > maxShardBytes && shards[shards.length - 1]!.length > 0) {
      shards.push([]);
      current = 0;
    }
    shards[shards.length - 1]!.push(n);
    current += s;
  }
  const count = shards.length;
  const pad = (k: number) => String(k).padStart(5, "0");
  const weightMap: Record<string, string> = {};
  const files: string[] = [];
  shards.forEach((list, i) => {
    const shardName = `model-${pad(i + 1)}-of-${pad(count)}.safetensors`;
    const part: Record<string, Tensor> = {};
    for (const n of list) {
      part[n] = tensors[n]!;
      weightMap[n] = shardName;
    }
    const file = path.join(dir, shardName);
    saveSafetensors(file, part, opts.metadata);
    files.push(file);
  });
  const sortedMap: Record<string, string> = {};
  for (const n of Object.keys(weightMap).sort()) sortedMap[n] = weightMap[n]!;
  const indexFile = path.join(dir, SAFETENSORS_INDEX_FILE);
  writeFileAtomicWith(indexFile, (fd) => writeAll(fd, Buffer.from(JSON.stringify({ metadata: { total_size: total }, weight_map: sortedMap }, null, 2) + "\n", "utf8")));
  files.push(indexFile);
  return files;
}
