// Tensor factories. Shapes are number[] (a single number is accepted for 1-D);
// options are { dtype, device, requiresGrad }.
import { native, ops } from "./native.js";
import { valueKind, type Tensor } from "./tensor.js";
import { type DType, type RawDType, type TensorOptions, type TypedArray } from "./types.js";

type Nested = number | boolean | Nested[];

function dims(shape: number | number[], fn: string): number[] {
  if (typeof shape === "number") return [shape];
  if (!Array.isArray(shape)) throw new TypeError(`${fn}: shape must be an array of non-negative integers`);
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) {
      throw new RangeError(`${fn}: shape must be an array of non-negative integers, got [${shape.join(", ")}]`);
    }
  }
  return shape;
}

function inferShape(data: Nested, fn: string): number[] {
  const shape: number[] = [];
  let cur: Nested = data;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    if (cur.length === 0) break;
    cur = cur[0]!;
  }
  return shape;
}

/**
 * A tensor from nested arrays of numbers/booleans or a typed array. Plain JS
 * numbers become float32 unless a dtype is given (JS has no separate integer
 * type to infer int64 from); booleans become bool; typed arrays keep their type.
 */
export function tensor(data: Nested | TypedArray, opts: TensorOptions = {}): Tensor {
  if (ArrayBuffer.isView(data)) {
    return native.fromTypedArray(data, [(data as TypedArray).length], opts.dtype, opts.device, opts.requiresGrad);
  }
  if (typeof data === "number" || typeof data === "boolean") {
    const isBool = typeof data === "boolean";
    const arr = new Float64Array([Number(data)]);
    return native.fromTypedArray(arr, [], opts.dtype ?? (isBool ? "bool" : "float32"), opts.device, opts.requiresGrad);
  }
  if (!Array.isArray(data)) throw new TypeError(`tensor: data must be a number, a boolean, nested arrays or a typed array, got ${valueKind(data)}`);
  const shape = inferShape(data, "tensor");
  const numel = shape.reduce((a, b) => a * b, 1);
  const flat = new Float64Array(numel);
  let i = 0;
  let allBool = true;
  const walk = (v: Nested, d: number): void => {
    if (d === shape.length) {
      if (typeof v === "number") { flat[i++] = v; allBool = false; }
      else if (typeof v === "boolean") flat[i++] = v ? 1 : 0;
      else throw new TypeError(`tensor: data must hold numbers or booleans at depth ${d}, got ${Array.isArray(v) ? "an array" : valueKind(v)}`);
      return;
    }
    if (!Array.isArray(v) || v.length !== shape[d]) {
      throw new RangeError(`tensor: data must not be ragged (expected length ${shape[d]} at depth ${d})`);
    }
    for (const e of v) walk(e, d + 1);
  };
  walk(data, 0);
  const dtype: DType = opts.dtype ?? (allBool && numel > 0 ? "bool" : "float32");
  return native.fromTypedArray(flat, shape, dtype, opts.device, opts.requiresGrad);
}

/** A CPU tensor (then moved to opts.device) from raw little-endian bytes; copies them once. */
export function fromBuffer(bytes: Uint8Array, dtype: RawDType, shape: number[], opts: { device?: string } = {}): Tensor {
  return native.fromBuffer(bytes, dtype, dims(shape, "fromBuffer"), opts.device);
}

export function zeros(shape: number | number[], opts: TensorOptions = {}): Tensor {
  return native.zeros(dims(shape, "zeros"), opts.dtype, opts.device, opts.requiresGrad);
}
export function ones(shape: number | number[], opts: TensorOptions = {}): Tensor {
  return native.ones(dims(shape, "ones"), opts.dtype, opts.device, opts.requiresGrad);
}
export function empty(shape: number | number[], opts: TensorOptions = {}): Tensor {
  return native.empty(dims(shape, "empty"), opts.dtype, opts.device, opts.requiresGrad);
}
export function full(shape: number | number[], value: number | boolean, opts: TensorOptions = {}): Tensor {
  return native.full(dims(shape, "full"), value, opts.dtype, opts.device, opts.requiresGrad);
}
/** Standard normal samples (from the default generator; see manualSeed). */
export function randn(shape: number | number[], opts: TensorOptions = {}): Tensor {
  return native.randn(dims(shape, "randn"), opts.dtype, opts.device, opts.requiresGrad);
}
/** Uniform samples in [0, 1). */
export function rand(shape: number | number[], opts: TensorOptions = {}): Tensor {
  return native.rand(dims(shape, "rand"), opts.dtype, opts.device, opts.requiresGrad);
}
/** Integers in [low, high); int64 unless a dtype is given. */
export function randint(low: number, high: number, shape: number | number[], opts: TensorOptions = {}): Tensor {
  if (!(high > low)) throw new RangeError(`randint: high (${high}) must be greater than low (${low})`);
  return native.randint(low, high, dims(shape, "randint"), opts.dtype, opts.device);
}

/** arange(end) or arange(start, end, step?); int64 when every bound is an integer and no dtype is given. */
export function arange(end: number, opts?: TensorOptions): Tensor;
export function arange(start: number, end: number, step?: number, opts?: TensorOptions): Tensor;
export function arange(a: number, b?: number | TensorOptions, c?: number | TensorOptions, d?: TensorOptions): Tensor {
  let start = 0, end: number, step = 1, opts: TensorOptions = {};
  if (typeof b !== "number") { end = a; opts = b ?? {}; }
  else { start = a; end = b; if (typeof c === "number") { step = c; opts = d ?? {}; } else opts = c ?? {}; }
  if (step === 0) throw new RangeError("arange: step must not be zero");
  const ints = Number.isInteger(start) && Number.isInteger(end) && Number.isInteger(step);
  return native.arange(start, end, step, opts.dtype ?? (ints ? "int64" : "float32"), opts.device, opts.requiresGrad);
}

export function linspace(start: number, end: number, steps: number, opts: TensorOptions = {}): Tensor {
  return native.linspace(start, end, steps, opts.dtype, opts.device, opts.requiresGrad);
}
export function eye(n: number, m?: number | TensorOptions, opts: TensorOptions = {}): Tensor {
  if (typeof m === "object") { opts = m; m = undefined; }
  return native.eye(n, m ?? n, opts.dtype, opts.device, opts.requiresGrad);
}
export function zerosLike(t: Tensor, opts: TensorOptions = {}): Tensor {
  return native.zerosLike(t, opts.dtype, opts.device, opts.requiresGrad);
}
export function onesLike(t: Tensor, opts: TensorOptions = {}): Tensor {
  return native.onesLike(t, opts.dtype, opts.device, opts.requiresGrad);
}
export function emptyLike(t: Tensor, opts: TensorOptions = {}): Tensor {
  return native.emptyLike(t, opts.dtype, opts.device, opts.requiresGrad);
}
export function randnLike(t: Tensor, opts: TensorOptions = {}): Tensor {
  return native.randnLike(t, opts.dtype, opts.device, opts.requiresGrad);
}

export function cat(tensors: Tensor[], dim = 0): Tensor { return ops.cat(tensors, dim); }
export function stack(tensors: Tensor[], dim = 0): Tensor { return ops.stack(tensors, dim); }
/** Elementwise: a where condition holds, else b (either may be a number). */
export function where(condition: Tensor, a: Tensor | number, b: Tensor | number): Tensor { return ops.where(condition, a, b); }
