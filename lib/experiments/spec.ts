/**
 * A sweep's spec (sweep.json): settings shared by all runs, and a grid of values to combine or a
 * list of runs; expanded into named runs, each a set of `train` settings.
 */
import * as fs from "node:fs";

/** Settings of one run: train flag names (kebab-case or camelCase) to values, as in `train --config FILE`. */
export type RunSettings = Record<string, string | number | boolean>;

export interface SweepSpec {
  /** Settings every run shares. */
  base?: RunSettings;
  /** Every combination of these values (the cartesian product, in key order). */
  grid?: Record<string, Array<string | number | boolean>>;
  /** Or an explicit list of runs (each merged over base); `name` names a run's folder. */
  runs?: Array<RunSettings & { name?: string }>;
  /** Runs at a time (default 1; bounded by CPU cores, or by CUDA devices for CUDA runs). */
  parallel?: number;
  /** Write TensorBoard event files in every run (train --tensorboard). */
  tensorboard?: boolean;
}


const SAFE = /[^A-Za-z0-9._=+-]+/g;

/** The runs of a spec, each with its settings (base merged under the run's own) and a folder name. */
export function expandSweep(spec: SweepSpec): Array<{ name: string; settings: RunSettings }> {
  if (spec === null || typeof spec !== "object" || Array.isArray(spec)) throw new Error("a sweep spec must be a JSON object");
  const known = new Set(["base", "grid", "runs", "parallel", "tensorboard"]);
  for (const k of Object.keys(spec)) if (!known.has(k)) throw new Error(`sweep spec: unknown field "${k}"; allowed: ${[...known].join(", ")}`);
  if ((spec.grid === undefined) === (spec.runs === undefined)) throw new Error('sweep spec: give exactly one of "grid" (values to combine) or "runs" (a list of settings)');
  const base = spec.base ?? {};
  let list: Array<{ name?: string; own: RunSettings }>;
  if (spec.grid !== undefined) {
    if (typeof spec.grid !== "object" || Array.isArray(spec.grid) || Object.keys(spec.grid).length === 0) throw new Error('sweep spec: "grid" must be an object of setting -> list of values');
    list = [{ own: {} }];
    for (const [k, vals] of Object.entries(spec.grid)) {
      if (!Array.isArray(vals) || vals.length === 0) throw new Error(`sweep spec: grid field "${k}" must be a non-empty list of values`);
      list = list.flatMap((r) => vals.map((v) => ({ own: { ...r.own, [k]: v } })));
    }
  } else {
    if (!Array.isArray(spec.runs) || spec.runs.length === 0) throw new Error('sweep spec: "runs" must be a non-empty list of settings objects');
    list = spec.runs.map((r, i) => {
      if (r === null || typeof r !== "object" || Array.isArray(r)) throw new Error(`sweep spec: runs[${i}] must be an object of settings`);
      const { name, ...own } = r;
      if (name !== undefined && (typeof name !== "string" || name.replace(SAFE, "") !== name || name === "" || name.startsWith("."))) {
        throw new Error(`sweep spec: runs[${i}].name must be a folder name of letters, digits and . _ = + - (got ${JSON.stringify(name)})`);
      }
      return { name, own: own as RunSettings };
    });
  }
  const width = String(list.length - 1).length;
  const runs = list.map((r, i) => {
    const desc = Object.entries(r.own).map(([k, v]) => `${k}=${String(v)}`).join("_").replace(SAFE, "-").slice(0, 80);
    return { name: r.name ?? `${String(i).padStart(width, "0")}${desc ? `_${desc}` : ""}`, settings: { ...base, ...r.own } };
  });
  const names = new Set<string>();
  for (const r of runs) {
    if (names.has(r.name)) throw new Error(`sweep spec: two runs are named ${r.name}`);
    names.add(r.name);
    for (const k of ["out", "resume"]) if (k in r.settings) throw new Error(`sweep spec: run ${r.name} sets "${k}"; the sweep chooses each run's folder`);
  }
  return runs;
}

/** Reads a sweep spec from a JSON file. */
export function readSweepSpec(file: string): SweepSpec {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new Error(`--config: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  try {
    return JSON.parse(text) as SweepSpec;
  } catch (e) {
    throw new Error(`--config: ${file} is not valid JSON (${(e as Error).message})`);
  }
}
