// The Module base class: a tree of named parameters, buffers and submodules, in the manner of
// PyTorch's nn.Module. Names are dotted paths ("transformer.h.0.ln_1.weight") built from the names
// given at registration, so that state dicts line up with other libraries' checkpoints.
//
// Subclasses register their tensors explicitly and keep the returned value in a field of the same
// name, e.g. `this.weight = this.registerParameter("weight", w)`. When `to()` has to replace a tensor
// (a new device or dtype), the registry entry and a field of that name holding the old tensor are
// both updated, so code that reads `this.weight` keeps working.

import { torch, Tensor } from "../torch/index.js";
import * as kernels from "../torch/internal.js";
import type { Device, DType } from "../torch/index.js";
import type { HookPoint } from "./hook-point.js";
import { sameShape } from "../util/shape.js";

export type StateDict = Record<string, Tensor>;

export interface LoadStateDictOptions {
  /** Require exactly the module's keys (default true). Shapes must always match. */
  strict?: boolean;
}

export interface LoadStateDictResult {
  missingKeys: string[];
  unexpectedKeys: string[];
}

export interface ToOptions {
  device?: Device;
  dtype?: DType;
}

const FLOAT_DTYPES: ReadonlySet<DType> = new Set<DType>(["float32", "float64", "bfloat16", "float16"]);

interface BufferEntry {
  tensor: Tensor | null;
  persistent: boolean;
}

function checkName(kind: string, name: string): void {
  if (typeof name !== "string" || name.length === 0 || name.includes(".")) {
    throw new TypeError(`${kind} name must be a non-empty string without '.', got ${JSON.stringify(name)}`);
  }
}

function isDevice(s: string): boolean {
  return s === "cpu" || s === "cuda" || /^cuda:\d+$/.test(s);
}

export class Module {
  /** True in training mode (dropout active), false after `eval()`. */
  training = true;

  // Registries in registration order. Prefixed with '_' so that they never clash with the fields
  // subclasses name after their parameters.
  private readonly _parameters = new Map<string, Tensor | null>();
  private readonly _buffers = new Map<string, BufferEntry>();
  private readonly _modules = new Map<string, Module>();

  // ---------------------------------------------------------------- registration

  /**
   * Registers `tensor` as a parameter named `name`. The tensor becomes a leaf that requires grad
   * (unless `requiresGrad: false`) and is kept out of every `torch.tidy` scope. Returns the tensor.
   */
  registerParameter(name: string, tensor: Tensor, opts?: { requiresGrad?: boolean }): Tensor;
  registerParameter(name: string, tensor: null): null;
  registerParameter(name: string, tensor: Tensor | null, opts: { requiresGrad?: boolean } = {}): Tensor | null {
    checkName("parameter", name);
    this.checkFree(name, this._parameters);
    if (tensor !== null) {
      if (!(tensor instanceof Tensor)) throw new TypeError(`parameter '${name}' must be a Tensor or null`);
      if (!tensor.isLeaf) tensor = tensor.detach();
      const rg = opts.requiresGrad ?? true;
      if (tensor.requiresGrad !== rg) tensor.requiresGrad_(rg);
      torch.keep(tensor);
    }
    this._parameters.set(name, tensor);
    return tensor;
  }

  /**
   * Registers a buffer: state that is not trained (running statistics, masks). Persistent buffers
   * appear in the state dict; non-persistent ones do not.
   */
  registerBuffer(name: string, tensor: Tensor, opts?: { persistent?: boolean }): Tensor;
  registerBuffer(name: string, tensor: null, opts?: { persistent?: boolean }): null;
  registerBuffer(name: string, tensor: Tensor | null, opts: { persistent?: boolean } = {}): Tensor | null {
    checkName("buffer", name);
    this.checkFree(name, this._buffers);
    if (tensor !== null) {
      if (!(tensor instanceof Tensor)) throw new TypeError(`buffer '${name}' must be a Tensor or null`);
      torch.keep(tensor);
    }
    this._buffers.set(name, { tensor, persistent: opts.persistent ?? true });
    return tensor;
  }

  /** Registers a child module under `name` and returns it. */
  registerModule<M extends Module>(name: string, module: M): M {
    checkName("module", name);
    this.checkFree(name, this._modules);
    if (!(module instanceof Module)) throw new TypeError(`module '${name}' must be a Module`);
    this._modules.set(name, module);
    return module;
  }

  private checkFree(name: string, own: Map<string, unknown>): void {
    const taken =
      (own !== this._parameters && this._parameters.has(name)) ||
      (own !== this._buffers && this._buffers.has(name)) ||
      (own !== this._modules && this._modules.has(name));
    if (taken || own.has(name)) throw new Error(`'${name}' is already registered on ${this.constructor.name}`);
  }

  // ---------------------------------------------------------------- traversal

  /** Direct children, in registration order. */
  *namedChildren(): IterableIterator<[string, Module]> {
    yield* this._modules.entries();
  }

  children(): Module[] {
    return [...this._modules.values()];
  }

  /** This module (name "") and every descendant, depth first, with dotted names. */
  *namedModules(prefix = ""): IterableIterator<[string, Module]> {
    yield [prefix, this];
    for (const [name, m] of this._modules) {
      yield* m.namedModules(prefix === "" ? name : `${prefix}.${name}`);
    }
  }

  modules(): Module[] {
    return [...this.namedModules()].map(([, m]) => m);
  }

  /**
   * Every parameter with its dotted name. A tensor shared by several modules (tied weights) is
   * listed once, under the first name it is found at.
   */
  namedParameters(): Array<[string, Tensor]> {
    const out: Array<[string, Tensor]> = [];
    const seen = new Set<Tensor>();
    for (const [prefix, m] of this.namedModules()) {
      for (const [name, p] of m._parameters) {
        if (p === null || seen.has(p)) continue;
        seen.add(p);
        out.push([prefix === "" ? name : `${prefix}.${name}`, p]);
      }
    }
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }

  /** Every buffer (persistent or not) with its dotted name. */
  namedBuffers(): Array<[string, Tensor]> {
    const out: Array<[string, Tensor]> = [];
    const seen = new Set<Tensor>();
    for (const [prefix, m] of this.namedModules()) {
      for (const [name, b] of m._buffers) {
        if (b.tensor === null || seen.has(b.tensor)) continue;
        seen.add(b.tensor);
        out.push([prefix === "" ? name : `${prefix}.${name}`, b.tensor]);
      }
    }
    return out;
  }

  buffers(): Tensor[] {
    return this.namedBuffers().map(([, b]) => b);
  }

  /** Total number of elements over all (distinct) parameters. */
  numParameters(opts: { trainableOnly?: boolean } = {}): number {
    let n = 0;
    for (const p of this.parameters()) if (!opts.trainableOnly || p.requiresGrad) n += p.numel;
    return n;
  }

  /**
   * Hook points in this tree, keyed by their hook name (a HookPoint's own `name` when it has one,
   * otherwise its module path).
   */
  hookPoints(): Map<string, HookPoint> {
    const out = new Map<string, HookPoint>();
    for (const [path, m] of this.namedModules()) {
      if ((m as { isHookPoint?: boolean }).isHookPoint === true) {
        const hp = m as unknown as HookPoint;
        if (hp.name === null) hp.name = path;
        out.set(hp.name, hp);
      }
    }
    return out;
  }

  /** Calls `fn` on every descendant, children before parents (as PyTorch's `apply`). */
  apply(fn: (m: Module) => void): this {
    for (const m of this._modules.values()) m.apply(fn);
    fn(this);
    return this;
  }

  // ---------------------------------------------------------------- modes

  /** Sets training mode on this module and every descendant. */
  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Drops every parameter's gradient (sets it to null, as PyTorch's default). */
  zeroGrad(): void {
    const params = this.parameters();
    kernels.zeroGrad(params);
  }

  // ---------------------------------------------------------------- state dicts

  /**
   * Parameters and persistent buffers by dotted name. The values are the module's own tensors (not
   * copies): read them, save them, but do not dispose them. Tied tensors appear under every name.
   */
  stateDict(): StateDict {
    const out: StateDict = {};
    for (const [prefix, m] of this.namedModules()) {
      const pre = prefix === "" ? "" : `${prefix}.`;
      for (const [name, p] of m._parameters) if (p !== null) out[pre + name] = p;
      for (const [name, b] of m._buffers) if (b.tensor !== null && b.persistent) out[pre + name] = b.tensor;
    }
    return out;
  }

  /**
   * Copies `sd` into the module's existing tensors (without recording gradients), converting
   * device and dtype as needed. Mis-shaped keys are always an error; with `strict` (the default)
   * missing and unexpected keys are too. Nothing is copied unless every check passes.
   */
  loadStateDict(sd: Record<string, Tensor> | Map<string, Tensor>, opts: LoadStateDictOptions = {}): LoadStateDictResult {
    const strict = opts.strict ?? true;
    const given = sd instanceof Map ? sd : new Map(Object.entries(sd));
    const own = this.stateDict();
    const missingKeys: string[] = [];
    const unexpectedKeys: string[] = [];
    const misShaped: string[] = [];
    for (const [k, t] of Object.entries(own)) {
      const src = given.get(k);
      if (src === undefined) {
        missingKeys.push(k);
        continue;
      }
      if (!(src instanceof Tensor)) throw new TypeError(`state dict entry '${k}' is not a Tensor`);
      if (!sameShape(src.shape, t.shape)) {
        misShaped.push(`${k}: expected [${t.shape.join(", ")}], got [${src.shape.join(", ")}]`);
      }
    }
    for (const k of given.keys()) if (!(k in own)) unexpectedKeys.push(k);

    const problems: string[] = [];
    if (misShaped.length > 0) problems.push(`mis-shaped keys: ${misShaped.join("; ")}`);
    if (strict && missingKeys.length > 0) problems.push(`missing keys: ${missingKeys.join(", ")}`);
    if (strict && unexpectedKeys.length > 0) problems.push(`unexpected keys: ${unexpectedKeys.join(", ")}`);
    if (problems.length > 0) {
      throw new Error(`loadStateDict into ${this.constructor.name} failed: ${problems.join(". ")}`);
    }

    torch.noGrad(() => {
      const done = new Set<Tensor>();
      for (const [k, t] of Object.entries(own)) {
        const src = given.get(k);
        if (src === undefined || done.has(t)) continue;
        done.add(t);
        t.copy_(src);
      }
    });
    return { missingKeys, unexpectedKeys };
  }

  // ---------------------------------------------------------------- device and dtype

  /**
   * Moves parameters and buffers to a device and/or casts floating-point ones to a dtype. Tensors
   * already in place are kept as they are (same object). Replaced tensors are disposed; a tensor
   * shared by several modules is replaced by one shared tensor. Move a model before creating its
   * optimizer: an optimizer holds the parameter objects it was given.
   */
  to(deviceOrDtype: Device | DType | ToOptions, dtype?: DType): this {
    let opts: ToOptions;
    if (typeof deviceOrDtype === "string") {
      opts = isDevice(deviceOrDtype) ? { device: deviceOrDtype as Device, dtype } : { dtype: deviceOrDtype as DType };
    } else {
      opts = deviceOrDtype ?? {};
    }
    if (opts.dtype !== undefined && !FLOAT_DTYPES.has(opts.dtype)) {
      throw new TypeError(`Module.to: dtype must be a floating-point dtype, got '${opts.dtype}'`);
    }
    const replaced = new Map<Tensor, Tensor>();
    const convert = (t: Tensor, isParam: boolean): Tensor => {
      const hit = replaced.get(t);
      if (hit !== undefined) return hit;
      const dt = opts.dtype !== undefined && FLOAT_DTYPES.has(t.dtype) ? opts.dtype : t.dtype;
      const dev = opts.device !== undefined ? normalizeDevice(opts.device) : t.device;
      if (dt === t.dtype && dev === t.device) return t;
      const moved = torch.noGrad(() => t.to({ device: dev as Device, dtype: dt }).detach());
      if (isParam && t.requiresGrad) moved.requiresGrad_(true);
      torch.keep(moved);
      replaced.set(t, moved);
      return moved;
    };
    for (const [, m] of this.namedModules()) {
      const fields = m as unknown as Record<string, unknown>;
      for (const [name, p] of m._parameters) {
        if (p === null) continue;
        const q = convert(p, true);
        if (q !== p) {
          m._parameters.set(name, q);
          if (fields[name] === p) fields[name] = q;
        }
      }
      for (const [name, b] of m._buffers) {
        if (b.tensor === null) continue;
        const q = convert(b.tensor, false);
        if (q !== b.tensor) {
          if (fields[name] === b.tensor) fields[name] = q;
          b.tensor = q;
        }
      }
    }
    for (const old of replaced.keys()) old.dispose();
    return this;
  }

  /** Frees every parameter and buffer. The module cannot be used afterwards. */
  dispose(): void {
    for (const [, m] of this.namedModules()) {
      for (const p of m._parameters.values()) p?.dispose();
      for (const b of m._buffers.values()) b.tensor?.dispose();
    }
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}


/** 'cuda' means the current CUDA device, which a tensor reports as 'cuda:0'. */
function normalizeDevice(d: Device): string {
  return d === "cuda" ? "cuda:0" : d;
}
