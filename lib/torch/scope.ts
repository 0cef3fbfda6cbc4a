// Memory scopes, as in tfjs's engine and TorchSharp's DisposeScope: every
// tensor created inside `tidy(fn)` is released when fn returns, except what fn
// returns and what was `keep()`-ed. Synchronous scopes live in the addon (an
// intrusive list per scope, no JS bookkeeping per op); asynchronous scopes
// follow the async context with AsyncLocalStorage.
import { AsyncLocalStorage } from "node:async_hooks";
import { native } from "./native.js";
import type { Tensor } from "./tensor.js";

interface AsyncScope {
  tensors: Tensor[];
  parent: AsyncScope | undefined;
}

const asyncStorage = new AsyncLocalStorage<AsyncScope>();
const kept = new WeakSet<object>();
let openAsyncScopes = 0;

function onCreateInAsyncScope(t: Tensor): void {
  const scope = asyncStorage.getStore();
  if (scope) scope.tensors.push(t);
}

/** Collects the tensors in a returned value: a tensor, or arrays / plain objects of them. */
function collectTensors(value: unknown, out: Tensor[] = [], depth = 0): Tensor[] {
  if (value === null || value === undefined || depth > 8) return out;
  if (native.isTensor(value)) {
    out.push(value as Tensor);
  } else if (Array.isArray(value)) {
    for (const v of value) collectTensors(v, out, depth + 1);
  } else if (value instanceof Map) {
    for (const v of value.values()) collectTensors(v, out, depth + 1);
  } else if (typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value as Record<string, unknown>)) collectTensors(v, out, depth + 1);
  }
  return out;
}

/** Hands tensors that leave a scope to the enclosing one (sync or async). */
function adoptIntoEnclosingAsyncScope(tensors: Tensor[]): void {
  const scope = asyncStorage.getStore();
  if (scope) for (const t of tensors) scope.tensors.push(t);
}

/**
 * Runs fn and releases every tensor it created, except those it returns (a
 * tensor, or arrays and plain objects of tensors) and those passed to keep().
 * Returned tensors move to the enclosing scope.
 */
export function tidy<T>(fn: () => T): T {
  if (typeof fn !== "function") throw new TypeError(`tidy: fn must be a function, got ${typeof fn}`);
  const id = native.scopeBegin();
  let result: T;
  try {
    result = fn();
  } catch (err) {
    native.scopeEnd(id);
    throw err;
  }
  if (result instanceof Promise) {
    native.scopeEnd(id);
    throw new TypeError("tidy: the function returned a Promise; use tidyAsync for async functions");
  }
  const returned = collectTensors(result);
  native.scopeEnd(id, returned);
  if (openAsyncScopes > 0 && returned.length > 0) adoptIntoEnclosingAsyncScope(returned);
  return result;
}

/** The async variant of tidy: the scope follows fn across awaits. */
export async function tidyAsync<T>(fn: () => Promise<T>): Promise<T> {
  if (typeof fn !== "function") throw new TypeError(`tidyAsync: fn must be a function, got ${typeof fn}`);
  const scope: AsyncScope = { tensors: [], parent: asyncStorage.getStore() };
  if (openAsyncScopes++ === 0) native.setCreateHook(onCreateInAsyncScope);
  let returned: Tensor[] = [];
  try {
    const result = await asyncStorage.run(scope, fn);
    returned = collectTensors(result);
    return result;
  } finally {
    const keep = new Set<Tensor>(returned);
    for (const t of scope.tensors) {
      if (!keep.has(t) && !kept.has(t)) native.dispose(t);
    }
    if (scope.parent) {
      for (const t of returned) scope.parent.tensors.push(t);
    }
    if (--openAsyncScopes === 0) native.setCreateHook(undefined);
  }
}

/** Exempts tensors (a tensor, or arrays / objects of them) from every enclosing scope. */
export function keep<T>(value: T): T {
  for (const t of collectTensors(value)) {
    native.keep(t);
    kept.add(t);
  }
  return value;
}

export interface MemoryInfo {
  /** JS tensors not yet disposed or collected. */
  liveTensors: number;
  /** Bytes of CPU storage they reference, each storage counted once. */
  cpuBytes: number;
  /** Bytes held by live CUDA tensors (all devices). */
  cudaAllocated: number;
  /** Bytes held by the CUDA caching allocator (all devices). */
  cudaReserved: number;
  /**
   * Bytes of freed large CPU buffers kept by innerloop's CPU allocator for reuse
   * (native/cpu_allocator.cc; 0 when INNERLOOP_CPU_ALLOCATOR=default).
   */
  cpuCached: number;
}

export function memory(): MemoryInfo {
  const m = native.memory() as Omit<MemoryInfo, "cpuCached">;
  return { ...m, cpuCached: native.cpuCacheInfo().cachedBytes };
}

/**
 * Returns the freed large CPU buffers that innerloop's CPU allocator keeps for reuse to the
 * system (the CPU counterpart of torch.cuda.emptyCache). Buffers in use are not affected.
 */
export function emptyCpuCache(): void {
  native.cpuEmptyCache();
}

/**
 * The most bytes of freed large CPU buffers innerloop's CPU allocator keeps for reuse
 * (INNERLOOP_CPU_CACHE_MB at start, default 256 MiB; 0 when INNERLOOP_CPU_ALLOCATOR=default).
 */
export function cpuCacheLimit(): number {
  return native.cpuCacheLimit() as number;
}

/**
 * Sets that bound (bytes; buffers past it are returned to the system, those freed longest ago
 * first) and returns the previous one. No effect when INNERLOOP_CPU_ALLOCATOR=default.
 */
export function setCpuCacheLimit(bytes: number): number {
  if (typeof bytes !== "number" || !Number.isSafeInteger(bytes) || bytes < 0) {
    throw new RangeError(`setCpuCacheLimit: bytes must be a non-negative whole number, got ${String(bytes)}`);
  }
  return native.cpuCacheLimit(bytes) as number;
}
