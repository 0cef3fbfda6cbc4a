// runWithCache: run a model once and record the activations at selected hook points, and
// optionally the gradients of a loss with respect to them (in the spirit of TransformerLens's
// `run_with_cache`). Built on the models' HookPoints: only the hook points selected by
// `namesFilter` get a hook for the duration of the call, so a model run without a cache pays
// nothing, and the hooks are removed again even when the forward pass throws.

import { torch, F, Tensor } from "../torch/index.js";
import type { HookPoint } from "../nn/index.js";

/** Selects hook points by name: a list of names, a regular expression or a predicate. */
export type NamesFilter<N extends string = string> = readonly N[] | RegExp | ((name: N) => boolean);

/** What runWithCache needs of a model: hook points and a forward pass that returns logits. */
export interface HookedModel {
  hookPoints(): Map<string, HookPoint>;
  forward(ids: Tensor, opts?: Record<string, unknown>): unknown;
}

/** The hook names of a model, as its `hookPoints()` types them (e.g. CausalLMHookName). */
export type HookNameOf<M> = M extends { hookPoints(): Map<infer K, HookPoint> } ? (K extends string ? K : string) : string;

export interface RunWithCacheOptions<N extends string = string> {
  /** Which hook points to record; all of them when absent. */
  namesFilter?: NamesFilter<N>;
  /**
   * Also return gradients of the loss with respect to the recorded activations (and `params`).
   * Needs `targets`.
   */
  withGrads?: boolean;
  /** Restricts gradients to these hook points (default: every recorded one). */
  gradNamesFilter?: NamesFilter<N>;
  /** Next-token targets, shape of `ids`; the loss is cross-entropy of the logits against them. */
  targets?: Tensor;
  /**
   * How the token losses are combined into the scalar that is differentiated: 'sum' (default;
   * the ℓ of docs/analysis.md, summed over the batch's windows) or 'mean'.
   */
  reduction?: "sum" | "mean";
  /** Extra tensors (usually parameters) to differentiate the loss with respect to. */
  params?: readonly Tensor[];
}

export interface ActivationCache<N extends string = string> {
  /** Forward values by hook name. */
  acts: Map<N, Tensor>;
  /** Gradients by hook name (only with `withGrads`). */
  grads: Map<N, Tensor>;
  /** Gradients with respect to `params`, in order (only with `withGrads`). */
  paramGrads: Tensor[];
  /** Logits [B, T, V]. */
  logits: Tensor;
  /** The differentiated scalar (only with `targets`). */
  loss: Tensor | null;
  /** Frees every tensor of the cache. */
  dispose(): void;
}

export function matchNames(filter: NamesFilter | undefined, name: string): boolean {
  if (filter === undefined) return true;
  if (typeof filter === "function") return filter(name);
  if (filter instanceof RegExp) {
    filter.lastIndex = 0;
    return filter.test(name);
  }
  return filter.includes(name);
}

function logitsOf(out: unknown): Tensor {
  if (out instanceof Tensor) return out;
  const o = out as { logits?: unknown } | null;
  if (o && o.logits instanceof Tensor) return o.logits;
  throw new TypeError("runWithCache: model.forward must return logits or { logits }");
}

/**
 * Runs `model` on `ids` [B, T] and returns the selected activations (and gradients). Call it
 * inside `torch.tidy` or call `cache.dispose()` when done. Gradients come from
 * `torch.autograd.grad`, so parameters' `.grad` fields are left untouched.
 */
export function runWithCache<M extends HookedModel>(model: M, ids: Tensor, options: RunWithCacheOptions<HookNameOf<M>> = {}): ActivationCache<HookNameOf<M>> {
  // Inside, names are plain strings; the caller sees the model's hook-name type.
  return runWithCacheImpl(model, ids, options as unknown as RunWithCacheOptions) as unknown as ActivationCache<HookNameOf<M>>;
}

function runWithCacheImpl(model: HookedModel, ids: Tensor, opts: RunWithCacheOptions): ActivationCache {
  const withGrads = opts.withGrads ?? false;
  if (withGrads && !opts.targets) throw new TypeError("runWithCache: withGrads needs targets");
  if (opts.targets && opts.targets.shape.join(",") !== ids.shape.join(",")) {
    throw new RangeError(`runWithCache: targets shape [${opts.targets.shape}] must equal ids shape [${ids.shape}]`);
  }
  const points = model.hookPoints();
  if (Array.isArray(opts.namesFilter)) {
    for (const n of opts.namesFilter as readonly string[]) {
      if (!points.has(n)) throw new RangeError(`runWithCache: the model has no hook point '${n}'`);
    }
  }
  const acts = new Map<string, Tensor>();
  const hooked: HookPoint[] = [];
  for (const [name, hp] of points) {
    if (!matchNames(opts.namesFilter, name)) continue;
    hp.setHook((x) => {
      acts.set(name, x);
      return x;
    });
    hooked.push(hp);
  }
  // Everything the forward and backward passes create is freed here except what the cache holds,
  // so that `cache.dispose()` alone leaves nothing behind (also outside a `torch.tidy`).
  const run = () =>
    torch.tidy(() => {
      // The forward pass in its own scope: its intermediates that are neither recorded nor saved
      // by autograd for the backward pass are freed before the backward pass, as a model run
      // without hooks frees them block by block (and the backward pass reuses their memory).
      const { logits } = torch.tidy(() => {
        try {
          // The recorded activations are returned too, so that they move to the enclosing scope.
          return { logits: logitsOf(model.forward(ids)), recorded: [...acts.values()] };
        } finally {
          for (const hp of hooked) hp.setHook(null);
        }
      });
      let loss: Tensor | null = null;
      if (opts.targets) {
        const v = logits.shape[logits.shape.length - 1]!;
        loss = F.crossEntropy(logits.reshape([-1, v]), opts.targets.reshape([-1]), { reduction: opts.reduction ?? "sum" });
      }
      const names = [...acts.keys()];
      let gradNames: string[] = [];
      let grads: Tensor[] = [];
      let paramGrads: Tensor[] = [];
      if (withGrads && loss) {
        gradNames = names.filter((n) => matchNames(opts.gradNamesFilter, n));
        const params = opts.params ?? [];
        const inputs = [...gradNames.map((n) => acts.get(n)!), ...params];
        if (inputs.length > 0) {
          // An input the loss does not depend on (e.g. a hook after the last use) gets zeros.
          const g = torch.autograd
            .grad([loss], inputs, { retainGraph: false, allowUnused: true })
            .map((t, i) => t ?? torch.zerosLike(inputs[i]!));
          grads = g.slice(0, gradNames.length);
          paramGrads = g.slice(gradNames.length);
        }
      }
      return { names, actList: names.map((n) => acts.get(n)!), gradNames, grads, paramGrads, logits, loss: loss ? [loss] : [] };
    });
  const r = withGrads ? torch.enableGrad(run) : torch.noGrad(run);
  const actMap = new Map<string, Tensor>();
  r.names.forEach((n, i) => actMap.set(n, r.actList[i]!));
  const gradMap = new Map<string, Tensor>();
  r.gradNames.forEach((n, i) => gradMap.set(n, r.grads[i]!));
  const loss = r.loss[0] ?? null;
  return {
    acts: actMap,
    grads: gradMap,
    paramGrads: r.paramGrads,
    logits: r.logits,
    loss,
    dispose() {
      for (const t of new Set([...actMap.values(), ...gradMap.values(), ...r.paramGrads, r.logits, ...(loss ? [loss] : [])])) t.dispose();
    },
  };
}
