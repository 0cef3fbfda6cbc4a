// Tensor factories. Shapes are number[] (a single number is accepted for 1-D);
// options are { dtype, device, requiresGrad }.
import { native, ops } from "./native.js";
import { valueKind, type Tensor } from "./tensor.js";
import { type DType, type RawDType, type TensorOptions, type TypedArray } from "./types.js";

type Nested = number | bigint | boolean | Nested[];

/** A value as an error message shows it: `the string "3"`, `NaN`, `-1`, `null`. */
export function describeValue(v: unknown): string {
  if (typeof v === "string") return `the string ${JSON.stringify(v)}`;
  if (typeof v === "number") return String(v);
  if (typeof v === "bigint") return `${v}n`;
  if (typeof v === "boolean") return String(v);
  return valueKind(v);
}

function dims(shape: number | number[], fn: string): number[] {
  if (typeof shape === "number") {
    if (!Number.isInteger(shape) || shape < 0) throw new RangeError(`${fn}: shape must be a non-negative integer or an array of them, got ${describeValue(shape)}`);
    return [shape];
  }
  if (!Array.isArray(shape)) throw new TypeError(`${fn}: shape must be an array of non-negative integers, got ${describeValue(shape)}`);
  for (let k = 0; k < shape.length; k++) {
    const d: unknown = shape[k];
    if (typeof d !== "number" || !Number.isInteger(d) || d < 0) {
      const err = typeof d === "number" ? RangeError : TypeError;
      throw new err(`${fn}: shape[${k}] must be a non-negative integer, got ${describeValue(d)}`);
    }
  }
  return shape;
}

/**
 * The options argument: like PyTorch's keyword arguments, leaving it out and passing null or
 * undefined mean the same (no options); anything else must be an object.
 */
function options(opts: TensorOptions | null | undefined, fn: string): TensorOptions {
  if (opts === undefined || opts === null) return {};
  if (typeof opts !== "object" || Array.isArray(opts)) {
    throw new TypeError(`${fn}: options must be an object such as { dtype, device, requiresGrad }, got ${describeValue(opts)}`);
  }
  return opts;
}

function inferShape(data: Nested): number[] {
  const shape: number[] = [];
  let cur: Nested = data;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    if (cur.length === 0) break;
    cur = cur[0]!;
  }
  return shape;
}

/** The range each integer dtype holds, as PyTorch checks a conversion from Python numbers. */
const INT_RANGE: Partial<Record<DType, [number, number]>> = {
  uint8: [0, 255],
  int32: [-2147483648, 2147483647],
  int64: [-9223372036854775808, 9223372036854775807],
};

/**
 * Whether PyTorch accepts `v` for an integer dtype: NaN and infinities never; fractions when
 * they lie in the range (then they are truncated); integers in the range, and for unsigned
 * dtypes also negatives down to -max, which wrap (PyTorch takes -1 as 255 for uint8).
 */
function fitsInteger(v: number | bigint, dtype: DType): boolean {
  const range = INT_RANGE[dtype];
  if (!range) return true;
  const [lo, hi] = range;
  if (typeof v === "bigint") {
    const big = dtype === "int64" ? [-(1n << 63n), (1n << 63n) - 1n] : [BigInt(lo), BigInt(hi)];
    return (v >= big[0]! && v <= big[1]!) || (lo === 0 && v < 0n && -v <= big[1]!);
  }
  if (!Number.isFinite(v)) return false;
  // 2^63 is the double nearest to int64's maximum: it is out of range.
  const inRange = v >= lo && (dtype === "int64" ? v < 9223372036854775808 : v <= hi);
  if (inRange) return true;
  return lo === 0 && Number.isInteger(v) && v < 0 && -v <= hi;
}

/**
 * A tensor from nested arrays of numbers/booleans/BigInts or a typed array. As in PyTorch, the
 * dtype is inferred when none is given: bool when every element is a boolean, int64 when every
 * element is an integer (a JS number with no fractional part and at most 2^53 - 1 in magnitude, a
 * BigInt, or a boolean), float32 otherwise. A value the dtype cannot hold is refused, as PyTorch refuses it. Typed arrays keep
 * their type.
 */
export function tensor(data: Nested | TypedArray, opts?: TensorOptions | null): Tensor {
  const o = options(opts, "tensor");
  if (ArrayBuffer.isView(data)) {
    return native.fromTypedArray(data, [(data as TypedArray).length], o.dtype, o.device, o.requiresGrad);
  }
  if (typeof data !== "number" && typeof data !== "boolean" && typeof data !== "bigint" && !Array.isArray(data)) {
    throw new TypeError(`tensor: data must be a number, a boolean, a BigInt, nested arrays or a typed array, got ${describeValue(data)}`);
  }
  const shape = inferShape(data);
  const numel = shape.reduce((a, b) => a * b, 1);
  const values: (number | bigint | boolean)[] = new Array(numel);
  let i = 0;
  let allBool = true, allInt = true, anyBig = false;
  const walk = (v: Nested, d: number, index: number[]): void => {
    if (d === shape.length) {
      // Integral numbers beyond 2^53 (1e20) come from floating-point arithmetic, not from integer
      // literals: they infer float32 as PyTorch's 1e20 does (exact large integers are BigInts).
      if (typeof v === "number") { allBool = false; if (!Number.isSafeInteger(v)) allInt = false; }
      else if (typeof v === "bigint") { allBool = false; anyBig = true; }
      else if (typeof v !== "boolean") {
        throw new TypeError(`tensor: data[${index.join("][")}] must be a number, a boolean or a BigInt, got ${Array.isArray(v) ? "an array" : describeValue(v)}`);
      }
      values[i++] = v;
      return;
    }
    if (!Array.isArray(v) || v.length !== shape[d]) {
      throw new RangeError(`tensor: data must not be ragged (expected length ${shape[d]} at depth ${d}${index.length ? `, data[${index.join("][")}]` : ""})`);
    }
    for (let k = 0; k < v.length; k++) walk(v[k]!, d + 1, [...index, k]);
  };
  walk(data, 0, []);
  const inferred: DType = numel === 0 ? "float32" : allBool ? "bool" : allInt ? "int64" : "float32";
  const dtype: DType = o.dtype ?? inferred;
  for (let k = 0; k < numel; k++) {
    const v = values[k]!;
    if (typeof v !== "boolean" && !fitsInteger(v, dtype)) {
      throw new RangeError(`tensor: value ${describeValue(v)} at flat index ${k} cannot be converted to ${dtype} without overflow`);
    }
  }
  // int64 goes through a BigInt64Array so that BigInt values beyond 2^53 stay exact.
  let flat: Float64Array | BigInt64Array;
  if (anyBig && (dtype === "int64" || inferred === "int64")) {
    flat = BigInt64Array.from(values, (v) => (typeof v === "bigint" ? v : BigInt(Math.trunc(Number(v)))));
  } else {
    flat = Float64Array.from(values, (v) => Number(v));
  }
  return native.fromTypedArray(flat, shape, dtype, o.device, o.requiresGrad);
}

/** A CPU tensor (then moved to opts.device) from raw little-endian bytes; copies them once. */
export function fromBuffer(bytes: Uint8Array, dtype: RawDType, shape: number[], opts: { device?: string } = {}): Tensor {
  return native.fromBuffer(bytes, dtype, dims(shape, "fromBuffer"), opts.device);
}

type ShapeFactory = (shape: number | number[], opts?: TensorOptions | null) => Tensor;

/** A factory that takes a shape and options, checked with messages that name `name`. */
function shapeFactory(name: "zeros" | "ones" | "empty" | "randn" | "rand"): ShapeFactory {
  return (shape, opts) => {
    const o = options(opts, name);
    return native[name](dims(shape, name), o.dtype, o.device, o.requiresGrad);
  };
}

export const zeros: ShapeFactory = shapeFactory("zeros");
export const ones: ShapeFactory = shapeFactory("ones");
export const empty: ShapeFactory = shapeFactory("empty");
/** Standard normal samples (from the default generator; see manualSeed). */
export const randn: ShapeFactory = shapeFactory("randn");
/** Uniform samples in [0, 1). */
export const rand: ShapeFactory = shapeFactory("rand");
export function full(shape: number | number[], value: number | boolean, opts?: TensorOptions | null): Tensor {
  const o = options(opts, "full");
  return native.full(dims(shape, "full"), value, o.dtype, o.device, o.requiresGrad);
}
/** Integers in [low, high); int64 unless a dtype is given. */
export function randint(low: number, high: number, shape: number | number[], opts?: TensorOptions | null): Tensor {
  const o = options(opts, "randint");
  if (!(high > low)) throw new RangeError(`randint: high (${high}) must be greater than low (${low})`);
  return native.randint(low, high, dims(shape, "randint"), o.dtype, o.device);
}

/** arange(end) or arange(start, end, step?); int64 when every bound is an integer and no dtype is given. */
export function arange(end: number, opts?: TensorOptions): Tensor;
export function arange(start: number, end: number, step?: number, opts?: TensorOptions): Tensor;
export function arange(a: number, b?: number | TensorOptions, c?: number | TensorOptions, d?: TensorOptions): Tensor {
  let start = 0, end: number, step = 1, opts: TensorOptions = {};
  if (typeof b !== "number") { end = a; opts = options(b, "arange"); }
  else { start = a; end = b; if (typeof c === "number") { step = c; opts = options(d, "arange"); } else opts = options(c, "arange"); }
  if (step === 0) throw new RangeError("arange: step must not be zero");
  const ints = Number.isInteger(start) && Number.isInteger(end) && Number.isInteger(step);
  return native.arange(start, end, step, opts.dtype ?? (ints ? "int64" : "float32"), opts.device, opts.requiresGrad);
}

export function linspace(start: number, end: number, steps: number, opts?: TensorOptions | null): Tensor {
  const o = options(opts, "linspace");
  return native.linspace(start, end, steps, o.dtype, o.device, o.requiresGrad);
}
export function eye(n: number, m?: number | TensorOptions | null, opts?: TensorOptions | null): Tensor {
  if (typeof m === "object") { opts = m; m = undefined; }
  const o = options(opts, "eye");
  return native.eye(n, m ?? n, o.dtype, o.device, o.requiresGrad);
}
type LikeFactory = (t: Tensor, opts?: TensorOptions | null) => Tensor;

/** A factory shaped like `t` (its dtype and device unless the options say otherwise). */
function likeFactory(name: "zerosLike" | "onesLike" | "emptyLike" | "randnLike"): LikeFactory {
  return (t, opts) => {
    const o = options(opts, name);
    return native[name](t, o.dtype, o.device, o.requiresGrad);
  };
}

export const zerosLike: LikeFactory = likeFactory("zerosLike");
export const onesLike: LikeFactory = likeFactory("onesLike");
export const emptyLike: LikeFactory = likeFactory("emptyLike");
export const randnLike: LikeFactory = likeFactory("randnLike");

export function cat(tensors: Tensor[], dim = 0): Tensor { return ops.cat(tensors, dim); }
export function stack(tensors: Tensor[], dim = 0): Tensor { return ops.stack(tensors, dim); }
/** Elementwise: a where condition holds, else b (either may be a number). */
export function where(condition: Tensor, a: Tensor | number, b: Tensor | number): Tensor { return ops.where(condition, a, b); }
