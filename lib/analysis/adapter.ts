// What the analysis needs to know about a model, found through its hook points, module tree and
// parameter names rather than a particular class, so that any causal LM with TransformerLens-style
// hook points and Hugging Face parameter names can be analysed:
//   - L (the number of blocks) and the hook names that carry h^0..h^L, the attention and MLP
//     outputs, and the attention queries and keys;
//   - `decode(h)`: final norm + unembedding (the logit lens);
//   - the parameters of each block (for paramGradNorm);
//   - the attention per layer as the model applies it: score scale, soft-cap, sliding window.

import type { Tensor } from "../torch/index.js";
import type { HookPoint, Module } from "../nn/index.js";
import type { HookedModel } from "./capture.js";

export interface AnalysisModel extends HookedModel {
  training: boolean;
  train(mode?: boolean): unknown;
  eval(): unknown;
  namedModules(prefix?: string): IterableIterator<[string, Module]>;
  namedParameters(): Array<[string, Tensor]>;
}

export interface ModelAdapter {
  /** Number of blocks L. */
  nLayer: number;
  nHead: number;
  vocabSize: number;
  /** Hook carrying h^l, l = 0..L. */
  residName(l: number): string;
  attnOutName(l: number): string;
  mlpOutName(l: number): string;
  qName(l: number): string;
  kName(l: number): string;
  hasQK: boolean;
  /** Final norm and unembedding: h [.., D] -> logits [.., V]. */
  decode(h: Tensor): Tensor;
  /** Every parameter of block l (tied parameters counted once). */
  blockParams(l: number): Tensor[];
  /** Factor applied to q·k before the softmax in layer l. */
  attnScale(l: number, headDim: number): number;
  /** Layer l's soft-cap c of the scores (c·tanh(s / c)), or null. */
  attnSoftcap(l: number): number | null;
  /** Layer l's sliding window W (query t sees keys s > t − W), or null for full causal attention. */
  attnWindow(l: number): number | null;
}

type Callable = { forward(x: Tensor): Tensor };

function findModule(model: AnalysisModel, paths: readonly string[]): Callable | null {
  const byPath = new Map<string, Module>([...model.namedModules()]);
  for (const p of paths) {
    const m = byPath.get(p) as unknown as Callable | undefined;
    if (m && typeof m.forward === "function") return m;
  }
  return null;
}

function configOf(model: AnalysisModel): Record<string, unknown> {
  const c = (model as unknown as { config?: unknown }).config;
  return c && typeof c === "object" ? (c as Record<string, unknown>) : {};
}

function num(cfg: Record<string, unknown>, keys: readonly string[]): number | undefined {
  for (const k of keys) if (typeof cfg[k] === "number") return cfg[k] as number;
  return undefined;
}

/** Builds the adapter for a GPT-2-style model (hook points as in lib/models/gpt2.ts). */
export function adaptModel(model: AnalysisModel): ModelAdapter {
  const points: Map<string, HookPoint> = model.hookPoints();
  let nLayer = 0;
  while (points.has(`blocks.${nLayer}.hook_resid_pre`)) nLayer++;
  if (nLayer === 0) throw new TypeError("analysis: the model has no 'blocks.0.hook_resid_pre' hook point");
  const last = `blocks.${nLayer - 1}.hook_resid_post`;
  for (let l = 0; l < nLayer; l++) {
    for (const n of [`blocks.${l}.hook_attn_out`, `blocks.${l}.hook_mlp_out`]) {
      if (!points.has(n)) throw new TypeError(`analysis: the model has no '${n}' hook point`);
    }
  }
  if (!points.has(last)) throw new TypeError(`analysis: the model has no '${last}' hook point`);
  const hasQK = points.has("blocks.0.attn.hook_q") && points.has("blocks.0.attn.hook_k");

  const cfg = configOf(model);
  const params = model.namedParameters();
  const byName = new Map(params);
  const wte = byName.get("transformer.wte.weight");
  const vocabSize = num(cfg, ["vocabSize", "vocab_size"]) ?? wte?.shape[0] ?? 0;
  const nHead = num(cfg, ["nHead", "n_head", "numAttentionHeads", "num_attention_heads"]) ?? 0;

  // A model's own logit-lens decoder (final norm + unembedding without hooks) is preferred.
  const md = (model as unknown as { decode?: (h: Tensor) => Tensor }).decode;
  const modelDecode = typeof md === "function" ? (h: Tensor) => md.call(model, h) : null;

  const lnF = findModule(model, ["transformer.ln_f", "ln_f", "ln_final"]);
  const head = findModule(model, ["lm_head", "lmHead"]);
  if (!md && !lnF) throw new TypeError("analysis: the model has no final norm module 'transformer.ln_f'");
  if (!md && !head && !wte) throw new TypeError("analysis: the model has neither 'lm_head' nor 'transformer.wte.weight' for the unembedding");

  // Block l's parameters: the model's own list where it has one (LLaMA, GPT-NeoX), else by
  // the Hugging Face name prefix of the architecture's blocks.
  const own = (model as unknown as { blockParameters?: (l: number) => Tensor[] }).blockParameters;
  const prefixes = ["transformer.h", "model.layers", "gpt_neox.layers"];
  const blockParams: Tensor[][] = [];
  for (let l = 0; l < nLayer; l++) {
    const ps = typeof own === "function"
      ? own.call(model, l)
      : params.filter(([n]) => prefixes.some((p) => n.startsWith(`${p}.${l}.`))).map(([, p]) => p);
    if (ps.length === 0) throw new TypeError(`analysis: no parameters found for block ${l} (expected names like 'transformer.h.${l}.*')`);
    blockParams.push(ps);
  }
  // GPT-2's attention scale: 1/sqrt(head dim) when scale_attn_weights (the default), further
  // divided by (layer+1) with scale_attn_by_inverse_layer_idx.
  const scaleWeights = cfg.scale_attn_weights ?? cfg.scaleAttnWeights ?? true;
  const byLayerIdx = cfg.scale_attn_by_inverse_layer_idx ?? cfg.scaleAttnByInverseLayerIdx ?? false;
  // Models on the block skeleton say how each layer attends (scale, soft-cap, window).
  const ao = (model as unknown as { attentionOf?: (l: number) => { scale: number; softcap: number | null; window: number | null } }).attentionOf;
  const attentionOf = typeof ao === "function" ? (l: number) => ao.call(model, l) : null;

  return {
    nLayer,
    nHead,
    vocabSize,
    residName: (l) => (l < nLayer ? `blocks.${l}.hook_resid_pre` : last),
    attnOutName: (l) => `blocks.${l}.hook_attn_out`,
    mlpOutName: (l) => `blocks.${l}.hook_mlp_out`,
    qName: (l) => `blocks.${l}.attn.hook_q`,
    kName: (l) => `blocks.${l}.attn.hook_k`,
    hasQK,
    decode(h) {
      if (modelDecode) return modelDecode(h);
      const x = lnF!.forward(h);
      if (head) return head.forward(x);
      return x.matmul(wte!.transpose(0, 1));
    },
    blockParams: (l) => blockParams[l]!,
    attnSoftcap: (l) => attentionOf?.(l).softcap ?? null,
    attnWindow: (l) => attentionOf?.(l).window ?? null,
    attnScale(l, headDim) {
      if (attentionOf !== null) return attentionOf(l).scale;
      let s = scaleWeights === false ? 1 : 1 / Math.sqrt(headDim);
      if (byLayerIdx === true) s /= l + 1;
      return s;
    },
  };
}
