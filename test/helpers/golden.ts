// Replays golden cases made by scripts/golden/*.py against the innerloop torch API.
// A case names an op and describes its arguments; nothing here knows about particular ops,
// so every case is checked the same way: result structure, shape, dtype, device, values,
// unchanged inputs, and the input gradients of sum(out * weights).
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { expect } from "vitest";
import { F, Tensor, torch } from "../../lib/torch/index.js";
import type { Device, DType } from "../../lib/torch/index.js";
import { decodeNumber, expectClose, toleranceFor } from "./close.js";
import { canonicalDevice } from "./devices.js";

export interface TensorSpec {
  shape: number[];
  dtype: DType;
  data: Array<number | string | boolean> | null;
  grad?: boolean;
}

export type ResultSpec = TensorSpec | ResultSpec[] | { values: ResultSpec; indices: ResultSpec } | number | boolean;
export type WeightSpec = TensorSpec | WeightSpec[] | { values: WeightSpec } | null;

export interface GoldenCase {
  id: string;
  call: "method" | "torch" | "F";
  op: string;
  self?: string;
  args: unknown[];
  inputs: Record<string, TensorSpec>;
  out: ResultSpec;
  weights?: WeightSpec;
  grads?: Record<string, TensorSpec>;
  inplace?: boolean;
  factory?: boolean;
  /** Method calls applied to the receiver before the op (e.g. a transpose, to test strided inputs). */
  pre?: Array<[string, unknown[]]>;
}

export function loadGolden<T = { cases: GoldenCase[] }>(name: string): T {
  const path = fileURLToPath(new URL(`../golden/${name}`, import.meta.url));
  return JSON.parse(readFileSync(path, "utf8")) as T;
}

type Nested = number | boolean | Nested[];

function nest(flat: Array<number | boolean>, shape: number[]): Nested[] {
  if (shape.length <= 1) return flat;
  const [n, ...rest] = shape;
  const stride = rest.reduce((a, b) => a * b, 1);
  const out: Nested[] = [];
  for (let i = 0; i < n!; i++) out.push(nest(flat.slice(i * stride, (i + 1) * stride), rest));
  return out;
}

/** Build a tensor from its spec through torch.tensor (nested arrays), on `device`. */
export function makeTensor(spec: TensorSpec, deviceName: string, requiresGrad = false): Tensor {
  const device = deviceName as Device;
  if (spec.data === null) throw new Error("spec without data");
  const flat = spec.data.map((v) => (spec.dtype === "bool" ? Boolean(v) : decodeNumber(v)));
  if (spec.shape.length === 0) {
    // A 0-d tensor: made 1-d, reshaped, then detached so it is a leaf again.
    const one = torch.tensor(flat as number[], { dtype: spec.dtype, device }).reshape([]);
    const leaf = one.detach();
    one.dispose();
    return requiresGrad ? leaf.requiresGrad_(true) : leaf;
  }
  return torch.tensor(nest(flat, spec.shape) as number[], { dtype: spec.dtype, device, requiresGrad });
}

/** Substitute tensor references and encoded numbers in a case's argument list. */
export function resolveArgs(value: unknown, env: Record<string, Tensor>): unknown {
  if (Array.isArray(value)) return value.map((v) => resolveArgs(v, env));
  if (value !== null && typeof value === "object") {
    const o = value as Record<string, unknown>;
    if ("$t" in o) {
      const t = env[o.$t as string];
      if (!t) throw new Error(`case refers to unknown input ${String(o.$t)}`);
      return t;
    }
    if ("$n" in o) return decodeNumber(o.$n as string);
    if ("$u" in o) return undefined;
    return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, resolveArgs(v, env)]));
  }
  return value;
}

function callable(target: unknown, op: string, where: string): (...a: unknown[]) => unknown {
  const fn = (target as Record<string, unknown>)[op];
  if (typeof fn !== "function") throw new Error(`API mismatch: ${where}.${op} is not a function`);
  return (fn as (...a: unknown[]) => unknown).bind(target);
}

export interface CaseRun {
  env: Record<string, Tensor>;
  /** The tensor a method was called on, after any `pre` calls. */
  receiver?: Tensor;
  result: unknown;
}

/** Create the inputs on `device` and perform the call. */
export function runCase(c: GoldenCase, device: string): CaseRun {
  const env: Record<string, Tensor> = {};
  for (const [name, spec] of Object.entries(c.inputs)) env[name] = makeTensor(spec, device, spec.grad === true);
  const args = resolveArgs(c.args, env) as unknown[];
  if (c.factory) {
    const last = args[args.length - 1];
    if (last === null || typeof last !== "object" || last instanceof Tensor) throw new Error("factory case without options");
    args[args.length - 1] = { ...(last as object), device };
  }
  let fn: (...a: unknown[]) => unknown;
  let receiver: Tensor | undefined;
  if (c.call === "method") {
    let self = env[c.self!];
    if (!self) throw new Error(`case ${c.id}: no receiver ${c.self}`);
    for (const [method, preArgs] of c.pre ?? []) {
      self = callable(self, method, "Tensor.prototype")(...(resolveArgs(preArgs, env) as unknown[])) as Tensor;
    }
    receiver = self;
    fn = callable(self, c.op, "Tensor.prototype");
  } else if (c.call === "torch") {
    fn = callable(torch, c.op, "torch");
  } else {
    fn = callable(F, c.op, "F");
  }
  return { env, receiver, result: fn(...args) };
}

function isTensorSpec(s: unknown): s is TensorSpec {
  return s !== null && typeof s === "object" && "shape" in (s as object) && "dtype" in (s as object);
}

/** Compare a result against its spec: structure, then per tensor shape, dtype, device and values. */
export function checkResult(got: unknown, exp: ResultSpec, device: string, label: string): void {
  if (isTensorSpec(exp)) {
    expect(got, `${label}: result is a Tensor`).toBeInstanceOf(Tensor);
    const t = got as Tensor;
    expect(t.shape, `${label}: shape`).toEqual(exp.shape);
    expect(t.dtype, `${label}: dtype`).toBe(exp.dtype);
    expect(t.device, `${label}: device`).toBe(canonicalDevice(device));
    expect(t.ndim, `${label}: ndim`).toBe(exp.shape.length);
    expect(t.numel, `${label}: numel`).toBe(exp.shape.reduce((a, b) => a * b, 1));
    if (exp.data !== null) expectClose(t, exp.data, toleranceFor(exp.dtype), label);
    return;
  }
  if (Array.isArray(exp)) {
    expect(Array.isArray(got), `${label}: result is an array`).toBe(true);
    const arr = got as unknown[];
    expect(arr.length, `${label}: number of results`).toBe(exp.length);
    exp.forEach((e, i) => checkResult(arr[i], e, device, `${label}[${i}]`));
    return;
  }
  if (exp !== null && typeof exp === "object") {
    const o = got as Record<string, unknown>;
    expect(o, `${label}: result is an object`).toBeTypeOf("object");
    checkResult(o.values, exp.values, device, `${label}.values`);
    checkResult(o.indices, exp.indices, device, `${label}.indices`);
    return;
  }
  expect(got, label).toBe(exp);
}

/** sum over float outputs of (out * weight).sum(), built with the API itself. */
export function weightedLoss(result: unknown, weights: WeightSpec | undefined, device: string): Tensor | null {
  if (weights === null || weights === undefined) return null;
  if (isTensorSpec(weights)) {
    const w = makeTensor(weights, device);
    return (result as Tensor).mul(w).sum();
  }
  if (Array.isArray(weights)) {
    let total: Tensor | null = null;
    weights.forEach((w, i) => {
      const part = weightedLoss((result as unknown[])[i], w, device);
      if (part) total = total ? total.add(part) : part;
    });
    return total;
  }
  return weightedLoss((result as { values: unknown }).values, weights.values, device);
}

/** The full check of one case on one device; runs inside torch.tidy so nothing leaks. */
export function checkCase(c: GoldenCase, device: string): void {
  torch.tidy(() => {
    const { env, receiver, result } = runCase(c, device);
    // Factory calls without an options argument (arange(5), eye(3)) make CPU tensors.
    const resultDevice = c.factory || Object.keys(c.inputs).length > 0 ? device : "cpu";
    checkResult(result, c.out, resultDevice, c.id);
    if (c.inplace) expect(result, `${c.id}: in-place op returns its receiver`).toBe(receiver);
    // Out-of-place ops must leave their inputs untouched.
    for (const [name, spec] of Object.entries(c.inputs)) {
      if (c.inplace && name === c.self && !c.pre) continue;
      expectClose(env[name]!, spec.data!, toleranceFor(spec.dtype === "float64" ? "float64" : "float32"), `${c.id}: input ${name} unchanged`);
    }
    if (c.grads) {
      const loss = weightedLoss(result, c.weights, device);
      expect(loss, `${c.id}: loss`).not.toBeNull();
      loss!.backward();
      for (const [name, spec] of Object.entries(c.grads)) {
        const g = env[name]!.grad;
        expect(g, `${c.id}: grad of ${name}`).not.toBeNull();
        checkResult(g, spec, device, `${c.id}: grad of ${name}`);
      }
    }
    return undefined;
  });
}
