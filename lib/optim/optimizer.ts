// The Optimizer base: parameter groups with their own hyperparameters, per-parameter state, and a
// state dict split into tensors (for safetensors) and JSON-able metadata, so that training can
// resume exactly.

import { torch, Tensor } from "../torch/index.js";
import * as kernels from "../torch/internal.js";
import { sameShape } from "../util/shape.js";
import { sameItems } from "../util/arrays.js";

/** Hyperparameters shared by every optimizer. */
export interface BaseHyper {
  lr: number;
  weightDecay: number;
}

/** What a caller passes: a list of tensors, or groups with per-group overrides. */
export type ParamGroupSpec<H> = { params: Iterable<Tensor> } & Partial<H>;
export type ParamsArg<H> = Iterable<Tensor> | Array<ParamGroupSpec<H>>;

export type ParamGroup<H> = H & { params: Tensor[] };

/** Per-parameter state: tensors (kept, owned by the optimizer) and a step count. */
export interface ParamState {
  step: number;
  tensors: Record<string, Tensor>;
}

/**
 * Optimizer state for saving. `tensors` maps "state.{i}.{name}" (i: the parameter's index over
 * all groups in order) to the optimizer's own tensors; `meta` is plain JSON.
 */
export interface OptimizerStateDict {
  meta: {
    type: string;
    paramGroups: Array<Record<string, number | boolean> & { params: number[] }>;
    /** Parameter index -> number of steps taken (only parameters with state). */
    steps: Record<string, number>;
  };
  tensors: Record<string, Tensor>;
}

export abstract class Optimizer<H extends BaseHyper> {
  readonly paramGroups: Array<ParamGroup<H>>;
  protected readonly state = new Map<Tensor, ParamState>();
  protected abstract readonly typeName: string;

  constructor(params: ParamsArg<H>, defaults: H) {
    const list = [...(params as Iterable<Tensor | ParamGroupSpec<H>>)];
    const specs: Array<ParamGroupSpec<H>> =
      list.length > 0 && !(list[0] instanceof Tensor)
        ? (list as Array<ParamGroupSpec<H>>)
        : [{ params: list as Tensor[] } as unknown as ParamGroupSpec<H>];
    const seen = new Set<Tensor>();
    this.paramGroups = specs.map((spec, gi) => {
      if (spec === null || typeof spec !== "object" || spec.params === undefined) {
        throw new TypeError(`optimizer: param group ${gi} must be an object with 'params'`);
      }
      const ps = [...spec.params];
      for (const [pi, p] of ps.entries()) {
        if (!(p instanceof Tensor)) throw new TypeError(`optimizer: param group ${gi} entry ${pi} is not a Tensor`);
        if (seen.has(p)) throw new Error(`optimizer: a parameter appears in more than one group (group ${gi}, entry ${pi})`);
        seen.add(p);
      }
      const group = { ...defaults, ...spec, params: ps } as ParamGroup<H>;
      this.validateGroup(group, gi);
      return group;
    });
    if (seen.size === 0) throw new Error("optimizer: got an empty parameter list");
  }

  protected validateGroup(g: ParamGroup<H>, gi: number): void {
    checkNonNegative(`group ${gi} lr`, g.lr);
    checkNonNegative(`group ${gi} weightDecay`, g.weightDecay);
  }

  /** Applies one update to every parameter that has a gradient. */
  abstract step(): void;

  /** Sets the learning rate of every group (what a schedule drives each step). */
  setLr(lr: number): void {
    checkNonNegative("lr", lr);
    for (const g of this.paramGroups) g.lr = lr;
  }

  /** Drops the gradients of every parameter (sets them to null). */
  zeroGrad(): void {
    zeroGrads(this.allParams());
  }

  /**
   * All parameters in group order (indices used by the state dict). The same array while the
   * groups hold the same parameters, so that the native calls taking it every step (zeroGrad)
   * can keep the list.
   */
  protected allParams(): Tensor[] {
    const all = this.paramGroups.flatMap((g) => g.params);
    if (this.allParamsCache !== null && sameItems(this.allParamsCache, all)) return this.allParamsCache;
    return (this.allParamsCache = all);
  }
  private allParamsCache: Tensor[] | null = null;

  protected newState(p: Tensor, names: readonly string[]): ParamState {
    const tensors: Record<string, Tensor> = {};
    for (const n of names) tensors[n] = torch.keep(torch.zerosLike(p, { requiresGrad: false }));
    const s = { step: 0, tensors };
    this.state.set(p, s);
    return s;
  }

  stateDict(): OptimizerStateDict {
    const tensors: Record<string, Tensor> = {};
    const steps: Record<string, number> = {};
    let i = 0;
    const paramGroups = this.paramGroups.map((g) => {
      const { params, ...hyper } = g;
      const idx: number[] = [];
      for (const p of params) {
        const s = this.state.get(p);
        if (s !== undefined) {
          steps[String(i)] = s.step;
          for (const [n, t] of Object.entries(s.tensors)) tensors[`state.${i}.${n}`] = t;
        }
        idx.push(i++);
      }
      return { ...(hyper as unknown as Record<string, number | boolean>), params: idx } as Record<string, number | boolean> & {
        params: number[];
      };
    });
    return { meta: { type: this.typeName, paramGroups, steps }, tensors };
  }

  /**
   * Restores hyperparameters, step counts and state tensors (copied to each parameter's device
   * and dtype). The groups must have the same sizes as this optimizer's.
   */
  loadStateDict(sd: OptimizerStateDict): void {
    const { meta, tensors } = sd;
    if (meta?.type !== this.typeName) {
      throw new Error(`optimizer loadStateDict: state is for '${String(meta?.type)}', this is ${this.typeName}`);
    }
    if (!Array.isArray(meta.paramGroups) || meta.paramGroups.length !== this.paramGroups.length) {
      throw new Error(
        `optimizer loadStateDict: state has ${meta.paramGroups?.length} param groups, optimizer has ${this.paramGroups.length}`,
      );
    }
    const params = this.allParams();
    meta.paramGroups.forEach((sg, gi) => {
      const n = this.paramGroups[gi]!.params.length;
      if (!Array.isArray(sg.params) || sg.params.length !== n) {
        throw new Error(`optimizer loadStateDict: group ${gi} has ${sg.params?.length} params in the state, ${n} here`);
      }
    });
    // Validate every tensor before changing anything.
    const byParam = new Map<number, Record<string, Tensor>>();
    for (const [key, t] of Object.entries(tensors)) {
      const m = /^state\.(\d+)\.(\w+)$/.exec(key);
      if (m === null) throw new Error(`optimizer loadStateDict: unexpected tensor key '${key}'`);
      const i = Number(m[1]);
      const p = params[i];
      if (p === undefined) throw new Error(`optimizer loadStateDict: '${key}' names parameter ${i}, there are ${params.length}`);
      if (!sameShape(t.shape, p.shape)) {
        throw new Error(`optimizer loadStateDict: '${key}' has shape [${t.shape}], parameter ${i} has [${p.shape}]`);
      }
      let rec = byParam.get(i);
      if (rec === undefined) byParam.set(i, (rec = {}));
      rec[m[2]!] = t;
    }
    for (const k of Object.keys(meta.steps ?? {})) {
      if (!byParam.has(Number(k))) throw new Error(`optimizer loadStateDict: step count for parameter ${k} without state tensors`);
    }
    for (const [i, rec] of byParam) {
      const step = meta.steps?.[String(i)];
      if (typeof step !== "number" || !Number.isInteger(step) || step < 0) {
        throw new Error(`optimizer loadStateDict: missing or bad step count for parameter ${i}`);
      }
      this.checkStateNames(i, Object.keys(rec));
    }

    meta.paramGroups.forEach((sg, gi) => {
      const { params: _ignored, ...hyper } = sg;
      Object.assign(this.paramGroups[gi]!, hyper);
    });
    // Copy first, then free the old state: `sd` may hold this optimizer's own tensors
    // (opt.loadStateDict(opt.stateDict())).
    const copies = new Map<number, Record<string, Tensor>>();
    for (const [i, rec] of byParam) {
      const p = params[i]!;
      const own: Record<string, Tensor> = {};
      for (const [n, t] of Object.entries(rec)) {
        // tidy frees the intermediate of to(); clone() makes sure the state never aliases `t`.
        own[n] = torch.keep(torch.tidy(() => torch.noGrad(() => t.to({ device: p.device as never, dtype: p.dtype }).clone())));
      }
      copies.set(i, own);
    }
    this.disposeState();
    for (const [i, own] of copies) {
      const p = params[i]!;
      this.state.set(p, { step: meta.steps[String(i)]!, tensors: own });
      this.afterStateLoaded(p);
    }
  }

  /** Subclasses check that a parameter's state has the tensors they need. */
  protected abstract checkStateNames(index: number, names: string[]): void;

  /** Hook for subclasses that keep derived state (e.g. a step tensor). */
  protected afterStateLoaded(_p: Tensor): void {}

  protected disposeState(): void {
    for (const s of this.state.values()) for (const t of Object.values(s.tensors)) t.dispose();
    this.state.clear();
  }

  /** Frees the optimizer's state tensors. */
  dispose(): void {
    this.disposeState();
  }
}

export function checkNonNegative(name: string, v: number): void {
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0) throw new RangeError(`${name} must be a finite number >= 0, got ${v}`);
}

type NativeZeroGrad = (params: Tensor[]) => void;

/** Sets every gradient to null: one native call where available (reading .grad makes a wrapper). */
export function zeroGrads(params: Tensor[]): void {
  const native = (kernels as { zeroGrad?: NativeZeroGrad }).zeroGrad;
  if (typeof native === "function") {
    native(params);
    return;
  }
  torch.tidy(() => {
    for (const p of params) if (p.grad !== null) p.grad = null;
  });
}
