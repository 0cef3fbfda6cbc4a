// What `innerloop report --compare` reads from each of its inputs: a training run directory
// (trainer_state.json, metrics.jsonl, analysis/timeline.json, a final analysis.json) or an
// `analyze` output (a folder with analysis.json, or the file itself), and what it says about
// the model, the data and the windows for the comparison table.

import * as fs from "node:fs";
import * as path from "node:path";
import { readMetrics, METRICS_FILE, type StepRow, type EvalRow } from "../../train/metrics.js";
import { TRAINER_STATE_FILE, CONFIG_FILE } from "../../train/checkpoint.js";
import { readTimeline, type Snapshot } from "../files.js";
import type { AnalysisResult } from "../result.js";
import { findAnalysis } from "./html.js";

export interface CompareInput {
  label: string;
  path: string;
  kind: "training run" | "analysis";
  /** The final analysis (analysis.json, else the timeline's last snapshot); null for a run without analysis. */
  analysis: AnalysisResult | null;
  analysisSource: string | null;
  timeline: Snapshot[];
  steps: StepRow[];
  evals: EvalRow[];
  /** "2 layers × 64, 4 heads", or what the model folder's config.json says. */
  model: string;
  data: string;
  vocab: number | null;
  /** Optimizer steps a training run has done (its last checkpoint). */
  trainedSteps: number | null;
}

const readJson = (p: string): Record<string, unknown> | null => {
  try {
    return JSON.parse(fs.readFileSync(p, "utf8")) as Record<string, unknown>;
  } catch {
    return null;
  }
};

const numField = (o: Record<string, unknown> | null, ...keys: string[]): number | null => {
  for (const k of keys) if (typeof o?.[k] === "number") return o[k] as number;
  return null;
};

/** "12 layers × 768, 12 heads (gpt2)" from a Hugging Face config.json of any of the supported families. */
function describeHfConfig(hf: Record<string, unknown> | null): string | null {
  if (!hf) return null;
  const layers = numField(hf, "n_layer", "num_hidden_layers");
  const width = numField(hf, "n_embd", "hidden_size");
  const heads = numField(hf, "n_head", "num_attention_heads");
  if (layers === null || width === null) return null;
  return `${layers} layers × ${width}${heads !== null ? `, ${heads} heads` : ""}${typeof hf.model_type === "string" ? ` (${hf.model_type})` : ""}`;
}

/** Reads one input of a comparison; `label` names it in the figures. */
export function readCompareInput(p: string, label: string): CompareInput {
  if (!fs.existsSync(p)) throw new Error(`--compare ${p}: no such file or directory`);
  const isFile = fs.statSync(p).isFile();
  const dir = isFile ? path.dirname(p) : p;
  const timeline = isFile ? [] : (readTimeline(dir)?.snapshots ?? []);
  const found = findAnalysis(dir, timeline, isFile ? p : undefined);
  const state = isFile ? null : readJson(path.join(dir, TRAINER_STATE_FILE));
  const rows = isFile ? [] : readMetrics(path.join(dir, METRICS_FILE));
  const steps = rows.filter((r): r is StepRow => "loss" in r);
  const evals = rows.filter((r): r is EvalRow => "valLoss" in r);
  if (!found && timeline.length === 0 && steps.length === 0) {
    throw new Error(`--compare ${p}: found no analysis.json, analysis/timeline.json or metrics.jsonl (not a run or analyze output)`);
  }
  const analysis = found?.result ?? null;
  const meta = (analysis?.meta ?? {}) as Record<string, unknown>;
  // The model's config.json: the run's own, or the checkpoint folder an analysis names.
  const modelDir = state || fs.existsSync(path.join(dir, CONFIG_FILE)) ? dir : typeof meta.model === "string" ? meta.model : null;
  const hf = modelDir ? readJson(path.join(modelDir, CONFIG_FILE)) : null;
  const cfg = (state?.config ?? null) as Record<string, unknown> | null;
  const model =
    cfg && typeof cfg.nLayer === "number"
      ? `${cfg.nLayer} layers × ${cfg.nEmbd}, ${cfg.nHead} heads`
      : (describeHfConfig(hf) ?? (typeof meta.model === "string" ? path.basename(meta.model) : analysis ? `${analysis.layers - 1} layers` : "unknown"));
  const dataName = (v: unknown) => (typeof v === "string" ? (v.includes(path.sep) ? path.basename(v) : v) : null);
  const data = dataName(cfg?.data) ?? dataName(meta.data) ?? "unknown";
  return {
    label,
    path: p,
    kind: state || steps.length > 0 ? "training run" : "analysis",
    analysis,
    analysisSource: found?.source ?? null,
    timeline,
    steps,
    evals,
    model,
    data: cfg?.tokenizer ? `${data} (${String(cfg.tokenizer)} tokens)` : data,
    vocab: numField(hf, "vocab_size"),
    trainedSteps: typeof state?.step === "number" ? state.step : null,
  };
}

/** Labels for the inputs: the given ones (as many as inputs), else the folder names, made unique. */
export function compareLabels(paths: readonly string[], labels?: readonly string[]): string[] {
  if (labels) {
    if (labels.length !== paths.length) throw new Error(`--labels gives ${labels.length} labels for ${paths.length} inputs`);
    if (new Set(labels).size !== labels.length) throw new Error(`--labels must be distinct (got ${labels.join(",")})`);
    return [...labels];
  }
  const names = paths.map((p) => {
    const abs = path.resolve(p);
    return path.basename(abs) === "analysis.json" ? path.basename(path.dirname(abs)) : path.basename(abs);
  });
  return names.map((n, i) => (names.indexOf(n) !== i || names.lastIndexOf(n) !== i ? `${n} (${i + 1})` : n));
}
