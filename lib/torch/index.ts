// The `torch` namespace: tensors, factories, ops, autograd, memory scopes,
// CUDA and version information, with PyTorch's names in camelCase.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { aten, ops } from "./aten.js";
import * as friendly from "./aten-friendly.js";
import * as autograd from "./autograd.js";
import * as cuda from "./cuda.js";
import * as distributed from "./distributed.js";
import * as factories from "./factories.js";
import * as F from "./functional.js";
import * as fused from "./fused.js";
import { native, packageRoot } from "./native.js";
import * as random from "./random.js";
import * as scope from "./scope.js";
import { Tensor, notATensor } from "./tensor.js";

export { Tensor } from "./tensor.js";
export type { KeepDim, ValuesIndices } from "./tensor.js";
export { TorchError, OutOfMemoryError } from "./errors.js";
export * from "./types.js";
export type { MemoryInfo } from "./scope.js";
export type { AtenOps, OpFunction, OpNamespace, OpsFunctions } from "./aten.js";
export { F };
export type { ProcessGroup, InitOptions as DistributedInitOptions, ReduceOp } from "./distributed.js";

const build = native.buildInfo();
const pkg = JSON.parse(readFileSync(join(packageRoot, "package.json"), "utf8")) as { version: string };

/** Versions: this package, the libtorch it runs on, and the CUDA runtime it was built with (or null). */
export const version = Object.freeze({
  innerloop: pkg.version,
  libtorch: build.libtorch as string,
  cuda: (build.cuda ?? null) as string | null,
});

// Free-function forms of tensor methods: torch.exp(t) is t.exp().
const methodNames = [
  "add", "sub", "mul", "div", "remainder", "pow", "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge",
  "logicalAnd", "logicalOr", "logicalNot", "lerp", "neg", "exp", "log", "log1p", "sqrt", "rsqrt", "tanh", "sigmoid",
  "abs", "sign", "sin", "cos", "reciprocal", "square", "floor", "ceil", "round", "isnan", "isfinite", "relu", "clamp",
  "matmul", "bmm", "mm", "outer", "sum", "mean", "max", "min", "amax", "amin", "argmax", "argmin", "norm", "var", "std",
  "logsumexp", "cumsum", "prod", "all", "any", "topk", "sort", "reshape", "transpose", "permute", "unsqueeze", "squeeze",
  "flatten", "narrow", "indexSelect", "gather", "scatter", "scatterAdd", "split", "chunk", "unbind", "triu", "tril",
  "maskedFill", "clone", "detach", "multinomial",
] as const;
type MethodName = (typeof methodNames)[number];
type Method<K extends MethodName> = Tensor[K] extends (...args: infer A) => infer R ? (t: Tensor, ...args: A) => R : never;
type MethodFns = { [K in MethodName]: Method<K> };

const methodFns = {} as Record<string, (t: Tensor, ...args: unknown[]) => unknown>;
for (const name of methodNames) {
  methodFns[name] = (t: Tensor, ...args: unknown[]) => {
    if (!(t instanceof Tensor)) throw notATensor(`torch.${name}`, "argument 0 (input)", t);
    return (t as any)[name](...args);
  };
}

/**
 * The torch namespace, as in PyTorch: factories, free-function forms of the tensor ops, autograd,
 * memory scopes, CUDA, random state and version. (`@namespace` makes the API reference list each
 * member on its own page.)
 * @namespace
 */
export const torch = {
  ...(methodFns as unknown as MethodFns),
  ...factories,
  ...friendly,
  Tensor,
  /** Every ATen operator by its own name, overloads chosen as in Python (docs/aten.md). */
  aten,
  /** `torch.ops.<namespace>.<op>` for operators of any namespace; `torch.ops.loadLibrary(path)`. */
  ops,
  version,
  nn: { functional: F },
  F,
  autograd: { grad: autograd.grad },
  noGrad: autograd.noGrad,
  enableGrad: autograd.enableGrad,
  isGradEnabled: autograd.isGradEnabled,
  setGradEnabled: autograd.setGradEnabled,
  autocast: autograd.autocast,
  tidy: scope.tidy,
  tidyAsync: scope.tidyAsync,
  keep: scope.keep,
  memory: scope.memory,
  emptyCpuCache: scope.emptyCpuCache,
  cpuCacheLimit: scope.cpuCacheLimit,
  setCpuCacheLimit: scope.setCpuCacheLimit,
  dispose(value: Tensor | Tensor[] | Record<string, Tensor>): void {
    const list = value instanceof Tensor ? [value] : Array.isArray(value) ? value : Object.values(value);
    for (const t of list) native.dispose(t);
  },
  isTensor(x: unknown): x is Tensor { return native.isTensor(x); },
  manualSeed: random.manualSeed,
  getRngState: random.getRngState,
  setRngState: random.setRngState,
  setNumThreads(n: number): void { native.setNumThreads(n); },
  getNumThreads(): number { return native.getNumThreads(); },
  /**
   * Which library float32 matrix products on the CPU use: "onednn" (oneDNN's AVX-512 kernels,
   * for products of at least 2^24 multiply-adds, where it was faster than MKL) or "blas" (at::mm
   * everywhere: INNERLOOP_GEMM=blas, or a CPU without AVX-512). docs/threads.md.
   */
  gemmBackend(): "onednn" | "blas" { return native.gemmBackend(); },
  /** 'high' allows TF32 matrix products on CUDA (PyTorch's torch.set_float32_matmul_precision). */
  setFloat32MatmulPrecision(p: "highest" | "high" | "medium"): void { native.setFloat32MatmulPrecision(p); },
  cuda,
  distributed,
  /** Scales the gradients so that their total norm is at most maxNorm; returns the norm before. */
  clipGradNorm: fused.clipGradNorm,
  setFusedPaths: fused.setFusedPaths,
  fusedPathsEnabled: fused.fusedPathsEnabled,
};

export default torch;
