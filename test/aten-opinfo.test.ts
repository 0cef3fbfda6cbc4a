// torch.aten against PyTorch's OpInfo database: the cases (inputs, the result of
// torch.ops.aten.<name> and gradients from torch.autograd.grad, float32 on the CPU) come from
// scripts/opinfo/gen-aten-cases.py, committed in test/fixtures/aten-opinfo. An operator counts as
// correct when every one of its cases matches in dtype, shape and values (1e-4 relative).
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { torch, type Tensor } from "../lib/torch/index.js";
import { loadSafetensors } from "../lib/torch/safetensors.js";

const DIR = join(__dirname, "fixtures", "aten-opinfo");

type Encoded = null | boolean | number | string | { tensor: string } | { number: string } | Encoded[];
interface Case {
  op: string;
  opinfo: string;
  args: Encoded[];
  kwargs: Record<string, Encoded>;
  expected: Encoded;
  /** empty-like operators: only dtype and shape are defined */
  uninitialized?: boolean;
  grad: null | { weights: { tensor: string }[]; grads: ({ tensor: string } | null)[] };
}
const fixture = JSON.parse(readFileSync(join(DIR, "cases.json"), "utf8")) as {
  summary: { torch: string; skipped: Record<string, string> };
  cases: Case[];
};
const { tensors } = loadSafetensors(join(DIR, "tensors.safetensors"));

const RTOL = 1e-4;
const ATOL = 1e-5;

/** Decodes a value; fresh copies of tensors so that in-place operators cannot change the fixture. */
function decode(v: Encoded, leaves?: Tensor[]): any {
  if (Array.isArray(v)) return v.map((x) => decode(x, leaves));
  if (v !== null && typeof v === "object") {
    if ("number" in v) return v.number === "nan" ? NaN : v.number === "inf" ? Infinity : -Infinity;
    const t = tensors[v.tensor]!.clone();
    if (leaves && t.dtype === "float32") {
      t.requiresGrad = true;
      leaves.push(t);
    }
    return t;
  }
  return v;
}

function callCase(c: Case, leaves?: Tensor[]): unknown {
  const args = decode(c.args, leaves) as unknown[];
  const kwargs: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(c.kwargs)) kwargs[k] = decode(v, leaves);
  const fn = (torch.aten as any)[c.op] as (...a: unknown[]) => unknown;
  return Object.keys(kwargs).length > 0 ? fn(...args, kwargs) : fn(...args);
}

function valuesOf(t: Tensor): number[] {
  const a = t.toTypedArray();
  return Array.from(a as ArrayLike<number | bigint>, (x) => Number(x));
}

/** Why `got` differs from `want`, or null when they agree. */
function compare(got: unknown, want: Encoded, path = "result", values = true): string | null {
  if (Array.isArray(want)) {
    if (!Array.isArray(got) || got.length !== want.length) return `${path}: expected a list of ${want.length}`;
    for (let k = 0; k < want.length; ++k) {
      const why = compare(got[k], want[k]!, `${path}[${k}]`, values);
      if (why) return why;
    }
    return null;
  }
  if (want !== null && typeof want === "object" && "tensor" in want) {
    const w = tensors[want.tensor]!;
    if (!torch.isTensor(got)) return `${path}: expected a Tensor, got ${typeof got}`;
    const g = got as Tensor;
    if (g.dtype !== w.dtype) return `${path}: dtype ${g.dtype}, expected ${w.dtype}`;
    if (g.shape.join(",") !== w.shape.join(",")) return `${path}: shape [${g.shape}], expected [${w.shape}]`;
    return values ? closeValues(valuesOf(g), valuesOf(w), path) : null;
  }
  const wv = decode(want);
  if (typeof wv === "number" && typeof got === "number") {
    return closeValues([got], [wv], path);
  }
  return got === wv ? null : `${path}: ${String(got)}, expected ${String(wv)}`;
}

function closeValues(g: number[], w: number[], path: string): string | null {
  for (let k = 0; k < w.length; ++k) {
    const a = g[k]!, b = w[k]!;
    if (Number.isNaN(b) ? Number.isNaN(a) : a === b || Math.abs(a - b) <= ATOL + RTOL * Math.abs(b)) continue;
    return `${path}: element ${k} is ${a}, expected ${b}`;
  }
  return null;
}

function gradCase(c: Case): string | null {
  const leaves: Tensor[] = [];
  const out = callCase(c, leaves);
  const outs = (Array.isArray(out) ? out.flat(Infinity) : [out]).filter(
    (o): o is Tensor => torch.isTensor(o) && o.dtype === "float32" && o.requiresGrad,
  );
  const g = c.grad!;
  if (outs.length !== g.weights.length) return `grad: ${outs.length} differentiable outputs, expected ${g.weights.length}`;
  const weights = g.weights.map((w) => tensors[w.tensor]!);
  const grads = torch.autograd.grad(outs, leaves, { gradOutputs: weights, allowUnused: true });
  for (let k = 0; k < g.grads.length; ++k) {
    const want = g.grads[k]!;
    const got = grads[k] ?? null;
    if (want === null) {
      if (got !== null) return `grad[${k}]: expected none`;
      continue;
    }
    if (got === null) return `grad[${k}]: none, expected a gradient`;
    const why = compare(got, want, `grad[${k}]`);
    if (why) return why;
  }
  return null;
}

/** The first line of an error, without the schema list (kept short for the report). */
function short(e: unknown): string {
  const m = e instanceof Error ? `${e.constructor.name}: ${e.message}` : String(e);
  return m.split("\n")[0]!.slice(0, 160);
}

describe("torch.aten on PyTorch's OpInfo samples (float32, CPU)", () => {
  const ops = [...new Set(fixture.cases.map((c) => c.op))].sort();
  const forward = new Map<string, string | null>(); // op -> first failure, or null
  const backward = new Map<string, string | null>();

  it("calls every operator like torch.ops.aten does", () => {
    for (const c of fixture.cases) {
      let why: string | null;
      try {
        why = torch.tidy(() => compare(callCase(c), c.expected, "result", !c.uninitialized));
      } catch (e) {
        why = short(e);
      }
      if (!forward.has(c.op) || (forward.get(c.op) === null && why !== null)) forward.set(c.op, why ? `${c.opinfo}: ${why}` : null);
    }
    const passed = ops.filter((op) => forward.get(op) === null).length;
    console.log(`torch.aten OpInfo forward: ${passed}/${ops.length} operators correct (${fixture.cases.length} cases)`);
    expect(forward.size).toBe(ops.length);
    expect(ops.length).toBeGreaterThan(300);
    expect(passed / ops.length).toBeGreaterThanOrEqual(0.9);
  });

  it("matches PyTorch's gradients", () => {
    for (const c of fixture.cases) {
      if (!c.grad) continue;
      let why: string | null;
      try {
        why = torch.tidy(() => gradCase(c));
      } catch (e) {
        why = short(e);
      }
      if (!backward.has(c.op) || (backward.get(c.op) === null && why !== null)) backward.set(c.op, why ? `${c.opinfo}: ${why}` : null);
    }
    const diff = [...backward.keys()].sort();
    const passed = diff.filter((op) => backward.get(op) === null).length;
    console.log(`torch.aten OpInfo gradients: ${passed}/${diff.length} differentiable operators correct`);
    expect(diff.length).toBeGreaterThan(200);
    expect(passed / diff.length).toBeGreaterThanOrEqual(0.8);
  });

  it("reports the failures by operator (ATEN_OPINFO_REPORT=file writes them)", () => {
    const lines = [
      `torch ${fixture.summary.torch}: ${ops.length} operators with cases, ${Object.keys(fixture.summary.skipped).length} without`,
      ...ops.filter((op) => forward.get(op)).map((op) => `forward  ${op}: ${forward.get(op)}`),
      ...[...backward.keys()].sort().filter((op) => backward.get(op)).map((op) => `backward ${op}: ${backward.get(op)}`),
    ];
    console.log(lines.join("\n"));
    if (process.env.ATEN_OPINFO_REPORT) writeFileSync(process.env.ATEN_OPINFO_REPORT, lines.join("\n") + "\n");
    expect(forward.size).toBe(ops.length);
  });
});
