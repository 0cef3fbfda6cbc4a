// The typed Tensor facade. Instances are created by the addon; the methods
// below are installed on the addon's Tensor prototype, so a method call is one
// JS function call plus one native call, with no wrapper object in between.
import { inspect } from "node:util";
import { TorchError } from "./errors.js";
import { native, ops } from "./native.js";
import { isDType, isDevice, type DType, type Device, type TypedArray } from "./types.js";

type Other = Tensor | number | boolean;
type Dims = number | number[];
type ShapeArgs = (number | number[])[];

/** `param` names the argument in errors, as PyTorch names it (view's `shape`, permute's `dims`). */
function shapeFrom(args: ShapeArgs, fn: string, param: string): number[] {
  if (args.length === 1 && Array.isArray(args[0])) return args[0];
  for (const a of args) {
    if (typeof a !== "number") throw new TypeError(`${fn}: ${param} must be numbers or one array of numbers, got ${valueKind(a)}`);
  }
  return args as number[];
}

/**
 * The error for a value that should have been a tensor. An empty plain object is what a tensor
 * becomes when postMessage or structuredClone sends it to another thread: that gets a TorchError
 * that says so (the addon says the same for the arguments it checks).
 */
export function notATensor(fn: string, label: string, v: unknown): Error {
  if (v !== null && typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype && Object.keys(v).length === 0) {
    return new TorchError(
      `${fn}: ${label} is an empty object, as a tensor of another thread becomes when it is sent with postMessage or ` +
        "structuredClone: a tensor belongs to the thread that made it. Send its data instead " +
        "(await t.data(), with t.shape and t.dtype) and make a tensor from it with torch.tensor()",
    );
  }
  return new TypeError(`${fn}: ${label} must be a Tensor, got ${valueKind(v)}`);
}

/** What a wrong argument was, for error messages. */
export function valueKind(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "object" && native.isTensor(v)) return "a Tensor";
  return typeof v;
}

/** 2^53: every integer up to it has an exact JS number. */
const MAX_SAFE = 1n << 53n;

/** A value or nested arrays of values, as toArray() returns them (one level per dimension). */
export type NestedArray<T> = T | NestedArray<T>[];

export interface KeepDim {
  keepdim?: boolean;
}

export interface ValuesIndices {
  values: Tensor;
  indices: Tensor;
}

/** A multi-dimensional array on the CPU or a CUDA device, with autograd. */
export class Tensor {
  /** Tensors come from factories such as torch.tensor() and torch.zeros(), never from `new`. */
  protected constructor() {
    throw new TypeError("Tensors are made by factories such as torch.tensor() or torch.zeros(), not with `new`");
  }

  // --- properties
  get shape(): number[] { return native.shape(this); }
  get dtype(): DType { return native.dtype(this); }
  get device(): Device { return native.device(this); }
  get ndim(): number { return native.ndim(this); }
  get numel(): number { return native.numel(this); }
  get requiresGrad(): boolean { return native.requiresGrad(this); }
  set requiresGrad(value: boolean) { native.requiresGrad_(this, value); }
  /** The accumulated gradient, or null. Settable (to a tensor of the same shape, or null). */
  get grad(): Tensor | null { return native.grad(this); }
  set grad(value: Tensor | null) { native.setGrad(this, value); }
  get isLeaf(): boolean { return native.isLeaf(this); }
  /** Name of the autograd node that made this tensor, or null for leaves. */
  get gradFn(): string | null { return native.gradFn(this); }
  get isDisposed(): boolean { return native.isDisposed(this); }
  isContiguous(): boolean { return native.isContiguous(this); }
  /** The shape, or with `dim` the size of that dimension (negative counts from the end). */
  size(): number[];
  size(dim: number): number;
  size(dim?: number): number | number[] {
    const s = this.shape;
    if (dim === undefined) return s;
    const d = dim < 0 ? dim + s.length : dim;
    if (!Number.isInteger(dim) || d < 0 || d >= s.length) {
      throw new RangeError(`size: dim must be an integer in [${-s.length}, ${s.length - 1}], got ${dim}`);
    }
    return s[d]!;
  }

  // --- conversion
  /**
   * The single value of a one-element tensor: a number (a boolean for bool tensors). An int64
   * beyond 2^53 has no exact JS number: it throws unless `{ bigint: true }` asks for a BigInt.
   */
  item(): number;
  item(opts: { bigint: true }): number | bigint;
  item(opts?: { bigint?: boolean }): number | bigint;
  item(opts?: { bigint?: boolean }): number | bigint { return native.item(this, opts?.bigint ?? false); }
  /** A copy of the elements in a typed array (int64 as BigInt64Array, 16-bit floats as Float32Array). */
  toTypedArray(): TypedArray { return native.toTypedArray(this); }
  /**
   * Like toTypedArray, but every copy (device to host, dtype conversion, into the typed array)
   * runs on libuv's thread pool, off the event loop. Disposing the tensor meanwhile is safe.
   */
  data(): Promise<TypedArray> {
    try {
      return native.data(this);
    } catch (err) {
      return Promise.reject(err);
    }
  }
  /**
   * The elements as nested JS arrays: numbers (booleans for bool tensors). An int64 value
   * beyond 2^53 throws, naming its position, unless `{ bigint: true }` asks for int64 values as
   * BigInts.
   */
  toArray(): NestedArray<number | boolean>;
  toArray(opts: { bigint: true }): NestedArray<number | bigint | boolean>;
  toArray(opts?: { bigint?: boolean }): NestedArray<number | bigint | boolean>;
  toArray(opts?: { bigint?: boolean }): NestedArray<number | bigint | boolean> {
    const flat = this.toTypedArray();
    const shape = this.shape;
    const bool = this.dtype === "bool";
    const position = (i: number): string => {
      const idx: number[] = [];
      for (let d = shape.length - 1; d >= 0; d--) { idx.unshift(i % shape[d]!); i = Math.floor(i / shape[d]!); }
      return `[${idx.join(", ")}]`;
    };
    const get = flat instanceof BigInt64Array
      ? opts?.bigint
        ? (i: number) => flat[i]!
        : (i: number) => {
            const v = flat[i]!;
            if (v > MAX_SAFE || v < -MAX_SAFE) {
              throw new RangeError(`toArray: the int64 value ${v} at ${position(i)} is beyond 2^53 and has no exact JS number; use toArray({ bigint: true })`);
            }
            return Number(v);
          }
      : bool ? (i: number) => flat[i] !== 0 : (i: number) => flat[i] as number;
    if (shape.length === 0) return get(0);
    let offset = 0;
    const build = (d: number): NestedArray<number | bigint | boolean>[] => {
      const n = shape[d]!;
      const out = new Array(n);
      for (let i = 0; i < n; i++) out[i] = d === shape.length - 1 ? get(offset++) : build(d + 1);
      return out;
    };
    return build(0);
  }
  /** A Buffer over this contiguous CPU tensor's memory (no copy; writes go to the tensor). */
  bytes(): Buffer { return native.bytes(this); }
  to(target: Device | DType | { device?: Device; dtype?: DType; nonBlocking?: boolean; copy?: boolean }): Tensor {
    if (typeof target === "string") {
      if (isDType(target)) return ops.to(this, null, target);
      if (isDevice(target)) return ops.to(this, target, null);
      throw new TypeError(`to: '${target}' is neither a dtype nor a device ('cpu', 'cuda', 'cuda:N')`);
    }
    if (target === null || typeof target !== "object") {
      throw new TypeError("to: expected a device, a dtype or { device, dtype }");
    }
    return ops.to(this, target.device ?? null, target.dtype ?? null, target.nonBlocking ?? false, target.copy ?? false);
  }
  cpu(): Tensor { return ops.to(this, "cpu", null); }
  cuda(index = 0): Tensor { return ops.to(this, `cuda:${index}`, null); }
  float(): Tensor { return ops.to(this, null, "float32"); }
  double(): Tensor { return ops.to(this, null, "float64"); }
  half(): Tensor { return ops.to(this, null, "float16"); }
  bfloat16(): Tensor { return ops.to(this, null, "bfloat16"); }
  long(): Tensor { return ops.to(this, null, "int64"); }
  int(): Tensor { return ops.to(this, null, "int32"); }
  bool(): Tensor { return ops.to(this, null, "bool"); }
  contiguous(): Tensor { return ops.contiguous(this); }
  clone(): Tensor { return ops.clone(this); }
  detach(): Tensor { return ops.detach(this); }

  // --- arithmetic (numbers work like Python scalars: they do not change the result dtype)
  add(other: Other, opts?: { alpha?: number }): Tensor { return ops.add(this, other, opts?.alpha); }
  sub(other: Other, opts?: { alpha?: number }): Tensor { return ops.sub(this, other, opts?.alpha); }
  mul(other: Other): Tensor { return ops.mul(this, other); }
  div(other: Other, opts?: { roundingMode?: "trunc" | "floor" }): Tensor { return ops.div(this, other, opts?.roundingMode); }
  remainder(other: Other): Tensor { return ops.remainder(this, other); }
  pow(exponent: Other): Tensor { return ops.pow(this, exponent); }
  maximum(other: Other): Tensor { return ops.maximum(this, other); }
  minimum(other: Other): Tensor { return ops.minimum(this, other); }
  eq(other: Other): Tensor { return ops.eq(this, other); }
  ne(other: Other): Tensor { return ops.ne(this, other); }
  lt(other: Other): Tensor { return ops.lt(this, other); }
  le(other: Other): Tensor { return ops.le(this, other); }
  gt(other: Other): Tensor { return ops.gt(this, other); }
  ge(other: Other): Tensor { return ops.ge(this, other); }
  logicalAnd(other: Other): Tensor { return ops.logicalAnd(this, other); }
  logicalOr(other: Other): Tensor { return ops.logicalOr(this, other); }
  logicalNot(): Tensor { return ops.logicalNot(this); }
  lerp(end: Tensor, weight: Other): Tensor { return ops.lerp(this, end, weight); }
  neg(): Tensor { return ops.neg(this); }
  exp(): Tensor { return ops.exp(this); }
  log(): Tensor { return ops.log(this); }
  log1p(): Tensor { return ops.log1p(this); }
  sqrt(): Tensor { return ops.sqrt(this); }
  rsqrt(): Tensor { return ops.rsqrt(this); }
  tanh(): Tensor { return ops.tanh(this); }
  sigmoid(): Tensor { return ops.sigmoid(this); }
  abs(): Tensor { return ops.abs(this); }
  sign(): Tensor { return ops.sign(this); }
  sin(): Tensor { return ops.sin(this); }
  cos(): Tensor { return ops.cos(this); }
  reciprocal(): Tensor { return ops.reciprocal(this); }
  square(): Tensor { return ops.square(this); }
  floor(): Tensor { return ops.floor(this); }
  ceil(): Tensor { return ops.ceil(this); }
  round(): Tensor { return ops.round(this); }
  isnan(): Tensor { return ops.isnan(this); }
  isfinite(): Tensor { return ops.isfinite(this); }
  relu(): Tensor { return ops.relu(this); }
  clamp(min?: number | null, max?: number | null): Tensor { return ops.clamp(this, min, max); }
  where(condition: Tensor, other: Other): Tensor { return ops.where(condition, this, other); }

  // --- linear algebra
  matmul(other: Tensor): Tensor { return ops.matmul(this, other); }
  bmm(other: Tensor): Tensor { return ops.bmm(this, other); }
  mm(other: Tensor): Tensor { return ops.mm(this, other); }
  outer(other: Tensor): Tensor { return ops.outer(this, other); }

  // --- reductions
  sum(dim?: Dims | null, opts?: KeepDim & { dtype?: DType }): Tensor { return ops.sum(this, dim, opts?.keepdim, opts?.dtype); }
  mean(dim?: Dims | null, opts?: KeepDim & { dtype?: DType }): Tensor { return ops.mean(this, dim, opts?.keepdim, opts?.dtype); }
  max(): Tensor;
  max(dim: number, opts?: KeepDim): ValuesIndices;
  max(dim?: number, opts?: KeepDim): Tensor | ValuesIndices {
    if (dim === undefined || dim === null) return ops.maxAll(this);
    const [values, indices] = ops.maxDim(this, dim, opts?.keepdim);
    return { values, indices };
  }
  min(): Tensor;
  min(dim: number, opts?: KeepDim): ValuesIndices;
  min(dim?: number, opts?: KeepDim): Tensor | ValuesIndices {
    if (dim === undefined || dim === null) return ops.minAll(this);
    const [values, indices] = ops.minDim(this, dim, opts?.keepdim);
    return { values, indices };
  }
  amax(dim?: Dims, opts?: KeepDim): Tensor { return ops.amax(this, dim, opts?.keepdim); }
  amin(dim?: Dims, opts?: KeepDim): Tensor { return ops.amin(this, dim, opts?.keepdim); }
  argmax(dim?: number | null, opts?: KeepDim): Tensor { return ops.argmax(this, dim, opts?.keepdim); }
  argmin(dim?: number | null, opts?: KeepDim): Tensor { return ops.argmin(this, dim, opts?.keepdim); }
  /** Vector p-norm over all elements or the given dims (torch.linalg.vector_norm). */
  norm(p: number = 2, dim?: Dims | null, opts?: KeepDim & { dtype?: DType }): Tensor {
    return ops.norm(this, p, dim, opts?.keepdim, opts?.dtype);
  }
  var(dim?: Dims | null, opts?: KeepDim & { correction?: number }): Tensor { return ops.var(this, dim, opts?.correction ?? 1, opts?.keepdim); }
  std(dim?: Dims | null, opts?: KeepDim & { correction?: number }): Tensor { return ops.std(this, dim, opts?.correction ?? 1, opts?.keepdim); }
  logsumexp(dim: Dims, opts?: KeepDim): Tensor { return ops.logsumexp(this, dim, opts?.keepdim); }
  cumsum(dim: number): Tensor { return ops.cumsum(this, dim); }
  prod(): Tensor { return ops.prod(this); }
  all(): Tensor { return ops.all(this); }
  any(): Tensor { return ops.any(this); }
  topk(k: number, dim = -1, opts?: { largest?: boolean; sorted?: boolean }): ValuesIndices {
    const [values, indices] = ops.topk(this, k, dim, opts?.largest ?? true, opts?.sorted ?? true);
    return { values, indices };
  }
  sort(dim = -1, opts?: { descending?: boolean }): ValuesIndices {
    const [values, indices] = ops.sort(this, dim, opts?.descending ?? false);
    return { values, indices };
  }

  // --- shape
  view(...shape: ShapeArgs): Tensor { return ops.view(this, shapeFrom(shape, "view", "shape")); }
  reshape(...shape: ShapeArgs): Tensor { return ops.reshape(this, shapeFrom(shape, "reshape", "shape")); }
  transpose(dim0: number, dim1: number): Tensor { return ops.transpose(this, dim0, dim1); }
  /** The transpose of the last two dimensions. */
  get mT(): Tensor { return ops.transpose(this, -2, -1); }
  t(): Tensor { return ops.transpose(this, 0, 1); }
  permute(...dims: ShapeArgs): Tensor { return ops.permute(this, shapeFrom(dims, "permute", "dims")); }
  unsqueeze(dim: number): Tensor { return ops.unsqueeze(this, dim); }
  squeeze(dim?: number): Tensor { return ops.squeeze(this, dim); }
  flatten(startDim = 0, endDim = -1): Tensor { return ops.flatten(this, startDim, endDim); }
  expand(...shape: ShapeArgs): Tensor { return ops.expand(this, shapeFrom(shape, "expand", "size")); }
  expandAs(other: Tensor): Tensor { return ops.expandAs(this, other); }
  repeat(...sizes: ShapeArgs): Tensor { return ops.repeat(this, shapeFrom(sizes, "repeat", "repeats")); }
  narrow(dim: number, start: number, length: number): Tensor { return ops.narrow(this, dim, start, length); }
  /** Python's t[..., start:end:step] along one dimension. */
  slice(dim: number, start?: number | null, end?: number | null, step = 1): Tensor { return ops.slice(this, dim, start, end, step); }
  select(dim: number, index: number): Tensor { return ops.select(this, dim, index); }
  indexSelect(dim: number, index: Tensor): Tensor { return ops.indexSelect(this, dim, index); }
  gather(dim: number, index: Tensor): Tensor { return ops.gather(this, dim, index); }
  scatter(dim: number, index: Tensor, src: Tensor | number): Tensor { return ops.scatter(this, dim, index, src); }
  scatterAdd(dim: number, index: Tensor, src: Tensor): Tensor { return ops.scatterAdd(this, dim, index, src); }
  split(sizeOrSizes: number | number[], dim = 0): Tensor[] { return ops.split(this, sizeOrSizes, dim); }
  chunk(chunks: number, dim = 0): Tensor[] { return ops.chunk(this, chunks, dim); }
  unbind(dim = 0): Tensor[] { return ops.unbind(this, dim); }
  triu(diagonal = 0): Tensor { return ops.triu(this, diagonal); }
  tril(diagonal = 0): Tensor { return ops.tril(this, diagonal); }
  maskedFill(mask: Tensor, value: Tensor | number): Tensor { return ops.maskedFill(this, mask, value); }
  multinomial(numSamples: number, opts?: { replacement?: boolean }): Tensor { return ops.multinomial(this, numSamples, opts?.replacement ?? false); }

  // --- in place (each returns this tensor)
  add_(other: Other, opts?: { alpha?: number }): this { return ops.add_(this, other, opts?.alpha); }
  sub_(other: Other, opts?: { alpha?: number }): this { return ops.sub_(this, other, opts?.alpha); }
  mul_(other: Other): this { return ops.mul_(this, other); }
  div_(other: Other): this { return ops.div_(this, other); }
  pow_(other: Other): this { return ops.pow_(this, other); }
  copy_(src: Tensor, opts?: { nonBlocking?: boolean }): this { return ops.copy_(this, src, opts?.nonBlocking ?? false); }
  zero_(): this { return ops.zero_(this); }
  fill_(value: number | boolean): this { return ops.fill_(this, value); }
  normal_(mean = 0, std = 1): this { return ops.normal_(this, mean, std); }
  uniform_(from = 0, to = 1): this { return ops.uniform_(this, from, to); }
  clamp_(min?: number | null, max?: number | null): this { return ops.clamp_(this, min, max); }
  addcmul_(t1: Tensor, t2: Tensor, opts?: { value?: number }): this { return ops.addcmul_(this, t1, t2, opts?.value); }
  addcdiv_(t1: Tensor, t2: Tensor, opts?: { value?: number }): this { return ops.addcdiv_(this, t1, t2, opts?.value); }
  lerp_(end: Tensor, weight: Other): this { return ops.lerp_(this, end, weight); }
  maskedFill_(mask: Tensor, value: Tensor | number): this { return ops.maskedFill_(this, mask, value); }
  scatter_(dim: number, index: Tensor, src: Tensor | number): this { return ops.scatter_(this, dim, index, src); }
  exp_(): this { return ops.exp_(this); }
  sqrt_(): this { return ops.sqrt_(this); }
  neg_(): this { return ops.neg_(this); }

  // --- autograd
  requiresGrad_(requiresGrad = true): this { return native.requiresGrad_(this, requiresGrad); }
  /** Accumulates d(this)/d(leaf) into every leaf's .grad. A gradient is needed unless this has one element. */
  backward(gradient?: Tensor | null, opts?: { retainGraph?: boolean; createGraph?: boolean }): void {
    native.backward(this, gradient, opts?.retainGraph, opts?.createGraph);
  }
  /** Keeps .grad for this non-leaf tensor during backward. */
  retainGrad(): this { return native.retainGrad(this); }

  // --- memory
  /** Releases this tensor's reference to its data now (idempotent). Later use throws. */
  dispose(): void { native.dispose(this); }
  [Symbol.dispose](): void { native.dispose(this); }

  toString(): string {
    if (this.isDisposed) return "Tensor(disposed)";
    return `Tensor(shape=[${this.shape.join(", ")}], dtype=${this.dtype}, device=${this.device}${this.requiresGrad ? ", requiresGrad" : ""})`;
  }
  [inspect.custom](): string {
    if (this.isDisposed) return "Tensor(disposed)";
    const head = this.toString().slice(0, -1);
    return this.numel <= 64 ? `${head}, ${JSON.stringify(this.toArray())})` : `${head})`;
  }
}

// Install the methods on the addon's class, so addon-made objects have them,
// and let `instanceof Tensor` recognise those objects.
{
  const target = native.Tensor.prototype;
  const source = Tensor.prototype as any;
  for (const key of [...Object.getOwnPropertyNames(source), ...Object.getOwnPropertySymbols(source)]) {
    if (key === "constructor") continue;
    Object.defineProperty(target, key, Object.getOwnPropertyDescriptor(source, key)!);
  }
  Object.defineProperty(Tensor, Symbol.hasInstance, { value: (x: unknown) => native.isTensor(x) });
}
