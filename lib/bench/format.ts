// Human-readable output of a benchmark report: a table per section, the same on a terminal and in
// BENCHMARKS.md (Markdown tables read fine as plain text).

import { ANALYSIS_GOAL, CPU_GOALS, fmtMs, threadsLabel, type BenchReport, type ConfigResult } from "./run.js";
import { FIELD_TOLERANCE, type AnalysisComparison } from "./analysis-compare.js";
import { ATEN_CALL_GOAL, type AtenCallReport } from "./aten-call.js";
import { median } from "./stats.js";

function mb(kb: number | null | undefined): string {
  return kb == null ? "-" : `${(kb / 1024).toFixed(0)} MB`;
}

function gib(bytes: number | undefined): string {
  return bytes === undefined ? "-" : `${(bytes / 2 ** 30).toFixed(2)} GiB`;
}

function table(head: string[], rows: string[][]): string {
  const all = [head, ...rows];
  const w = head.map((_, i) => Math.max(...all.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) => `| ${r.map((c, i) => (c ?? "").padEnd(w[i]!)).join(" | ")} |`;
  return [line(head), `|${w.map((n) => "-".repeat(n + 2)).join("|")}|`, ...rows.map(line)].join("\n");
}

export function formatReport(r: BenchReport): string {
  const out: string[] = [];
  const dev = r.device === "cuda" ? `cuda (${r.deviceName ?? "?"})` : "cpu";
  const il0 = r.configs[0]?.innerloop;
  const pt0 = r.configs[0]?.pytorch;
  out.push(
    `innerloop bench: ${r.date}, ${r.machine.cpu}, ${r.machine.cores} cores, device ${dev}, ${r.threads.map(threadsLabel).join(" and ")}, ` +
      `median of ${r.reps} steps after ${r.warmup} warmup${r.rounds > 1 ? ` in each of ${r.rounds} alternating rounds` : ""}; libtorch ${il0?.torch ?? "?"} (innerloop, Node ${r.machine.node}) vs torch ${pt0?.torch ?? "?"} (PyTorch eager)`,
  );
  if (r.configs.length) {
    out.push("");
    const goals = r.device === "cpu";
    if (goals) {
      out.push(
        "step goals: ratio = innerloop's median step time / PyTorch's (below 1: innerloop faster), the same goal at every thread setting:",
        ...Object.entries(CPU_GOALS).map(([name, g]) => `  ${name}: <= ${g.toFixed(2)}x`),
        "\"default threads\": neither side sets a thread count (what `innerloop train` and a plain PyTorch script run with; the",
        "count each used is in brackets); \"1 thread\": both sides set one intra-op thread. Losses must agree at every step.",
        "",
      );
    }
    out.push(
      table(
        ["config", "threads", "layers x width", "T", "batch", "params", "innerloop", "PyTorch", "ratio", "CPU-time ratio", "min-step ratio", ...(goals ? ["goal"] : []), "same config", "loss@1 diff", "final loss il / pt"],
        r.configs.map((c) => [
          c.name,
          threadsCell(c),
          `${c.innerloop.config.nLayer} x ${c.innerloop.config.nEmbd}`,
          String(c.innerloop.config.seqLen),
          String(c.innerloop.config.batch),
          c.innerloop.config.params.toLocaleString("en-US"),
          fmtMs(c.innerloop.medianMs),
          fmtMs(c.pytorch.medianMs),
          `${c.ratio.toFixed(3)}x`,
          `${c.cpuRatio.toFixed(3)}x (${fmtMs(c.innerloop.medianCpuMs)} / ${fmtMs(c.pytorch.medianCpuMs)})`,
          `${(Math.min(...c.innerloop.stepMs) / Math.min(...c.pytorch.stepMs)).toFixed(3)}x`,
          ...(goals ? [CPU_GOALS[c.name] !== undefined ? `<= ${CPU_GOALS[c.name]!.toFixed(2)}x ${c.ratio <= CPU_GOALS[c.name]! ? "met" : "NOT met"}` : "-"] : []),
          c.sameConfig ? "yes" : "NO",
          c.firstLossDiff === null ? "-" : c.firstLossDiff.toExponential(1),
          `${c.innerloop.losses.at(-1)?.toFixed(4)} / ${c.pytorch.losses.at(-1)?.toFixed(4)}`,
        ]),
      ),
    );
    const cuda = r.configs.filter((c) => c.tokensPerSec);
    if (cuda.length) {
      out.push("");
      out.push(
        table(
          ["config", "precision", "tokens/s innerloop", "tokens/s PyTorch", "MFU innerloop", "MFU PyTorch", "FLOPs/token", "peak"],
          cuda.map((c) => [
            c.name,
            c.innerloop.config.precision,
            c.tokensPerSec!.innerloop.toFixed(0),
            c.tokensPerSec!.pytorch.toFixed(0),
            c.mfu ? `${(100 * c.mfu.innerloop).toFixed(1)}%` : "-",
            c.mfu ? `${(100 * c.mfu.pytorch).toFixed(1)}%` : "-",
            c.mfu ? c.mfu.flopsPerToken.toExponential(3) : "-",
            c.mfu ? `${(c.mfu.peakFlops / 1e12).toFixed(0)} TFLOP/s` : "unknown card",
          ]),
        ),
      );
    }
    out.push("");
    out.push(
      table(
        ["config", "threads", "max RSS innerloop", "max RSS PyTorch", "RSS after setup il / pt", ...(r.device === "cuda" ? ["CUDA max allocated il / pt"] : [])],
        r.configs.map((c) => [
          c.name,
          threadsCell(c),
          mb(c.innerloop.maxRssKB),
          mb(c.pytorch.maxRssKB),
          `${mb(c.innerloop.rssReadyKB)} / ${mb(c.pytorch.rssReadyKB)}`,
          ...(r.device === "cuda" ? [`${gib(c.innerloop.cudaMaxAllocated)} / ${gib(c.pytorch.cudaMaxAllocated)}`] : []),
        ]),
      ),
    );
    const prof = r.configs.filter((c) => c.innerloop.profile && c.pytorch.profile);
    if (prof.length) {
      out.push("");
      out.push("phase profile (median ms per phase, device synchronised between phases; calls = host -> native calls per step):");
      const phases = ["forwardMs", "backwardMs", "clipMs", "optimMs", "zeroGradMs"] as const;
      out.push(
        table(
          ["config", "threads", "side", "forward+loss", "backward", "clip", "AdamW", "zero-grad", "calls/step", "us/op add", "add_", "mm 8x64x64", "view"],
          prof.flatMap((c) =>
            (["innerloop", "pytorch"] as const).map((side) => {
              const p = c[side].profile!;
              const u = p.opOverheadUs;
              return [c.name, threadsCell(c), side, ...phases.map((k) => p[k].toFixed(3)), String(p.callsPerStep), ...["add", "add_", "matmul8x64x64", "view"].map((k) => u[k]?.toFixed(2) ?? "-")];
            }),
          ),
        ),
      );
    }
  }
  if (r.analysis?.length) {
    out.push("");
    out.push("analysis overhead (analysis plugin after every step, i.e. --analyze-every 1; \"rides along\": the snapshot's windows");
    out.push("go through the next step as extra rows and \"analysis alone\" is its measures, the rest being in the step;");
    out.push("\"paired\": the median over steps of (step with analysis / the plain step just before it) - 1):");
    out.push(
      table(
        ["config", "windows", "snapshot", "step", "step + analysis", "analysis alone", "overhead (paired)", "ratio of medians"],
        r.analysis.map((a) =>
          a.available
            ? [a.config, String(a.windows), a.rodeAlong ? "rides along" : "own pass", fmtMs(a.medianStepMs!), fmtMs(a.medianWithAnalysisMs!), fmtMs(a.medianAnalysisMs!), `${(100 * a.overhead!).toFixed(1)}%`, a.overheadOfMedians === undefined ? "-" : `${(100 * a.overheadOfMedians).toFixed(1)}%`]
            : [a.config, "-", "-", "-", "-", "-", `unavailable: ${a.reason}`, "-"],
        ),
      ),
    );
  }
  if (r.memory) {
    const m = r.memory;
    out.push("");
    out.push(`memory over ${m.innerloop?.steps ?? "?"} steps (${m.config}):`);
    const row = (name: string, s: typeof m.innerloop, live: boolean) => [
      name,
      mb(s?.rssStartKB),
      mb(s?.rssEndKB),
      s?.rssStartKB && s?.rssEndKB ? `${((100 * (s.rssEndKB - s.rssStartKB)) / s.rssStartKB).toFixed(1)}%` : "-",
      live ? `${s?.liveTensorsStart} -> ${s?.liveTensorsEnd}` : "-",
      s ? `${s.seconds.toFixed(1)} s` : "-",
    ];
    const rows = [row("innerloop", m.innerloop, true), row("PyTorch", m.pytorch, false)];
    const sl = m.innerloop?.syncLoop;
    if (sl && m.innerloop?.rssStartKB) {
      const start = m.innerloop.rssStartKB;
      rows.push([
        `innerloop, then ${m.innerloop.steps} more without yielding`,
        mb(start),
        mb(sl.rssEndKB),
        sl.rssEndKB ? `${((100 * (sl.rssEndKB - start)) / start).toFixed(1)}%` : "-",
        `${m.innerloop.liveTensorsStart} -> ${sl.liveTensorsEnd}`,
        "-",
      ]);
    }
    out.push(table(["side", "RSS start", "RSS end", "growth", "live tensors", "time"], rows));
    out.push("(innerloop yields to the event loop after each step, as the trainer does; PyTorch runs one loop)");
  }
  if (r.atenCalls) out.push("", ...formatAtenCalls(r.atenCalls));
  if (r.analysisVsTorch?.length) out.push("", ...formatAnalysisVsTorch(r.analysisVsTorch));
  return out.join("\n");
}

/** The per-call cost of torch.aten against Python's torch.ops.aten. */
export function formatAtenCalls(a: AtenCallReport): string[] {
  const ns = (x: number) => `${Math.round(x).toLocaleString("en-US")} ns`;
  return [
    `torch.aten per call against Python's torch.ops.aten (CPU time per call, median of ${a.rounds} rounds of ${a.calls.toLocaleString("en-US")} calls in each`,
    `of ${a.processes} processes per side, [4, 4] float32 tensors, 1 thread; each result released inside the clock, as Python`,
    `frees it). Goal: ratio = innerloop / Python <= ${ATEN_CALL_GOAL.toFixed(2)}x for the torch.aten rows. "in tidy": the results held`,
    `until the scope ends (its end inside the clock); "hand-written": the camelCase fast path against Python's torch.add.`,
    table(
      ["call", "Python", "innerloop", "Python's", "ratio", "goal"],
      a.rows.map((r) => [
        r.name,
        r.python,
        ns(r.innerloopNs),
        ns(r.pytorchNs),
        `${r.ratio.toFixed(3)}x`,
        r.goal ? `<= ${ATEN_CALL_GOAL.toFixed(2)}x ${r.ratio <= ATEN_CALL_GOAL ? "met" : "NOT met"}` : "-",
      ]),
    ),
  ];
}

/** The row's thread setting, with the count each side ran with where the libraries chose it. */
function threadsCell(c: ConfigResult): string {
  if (c.threads !== 0) return threadsLabel(c.threads);
  const il = c.innerloop.threads;
  const pt = c.pytorch.threads;
  return `default (${il === pt ? il : `${il} / ${pt}`})`;
}

/** The analysis against the PyTorch hooks script: fields first (the times mean nothing unless they agree), then times and memory. */
function formatAnalysisVsTorch(rs: AnalysisComparison[]): string[] {
  const out = [
    "analysis vs a PyTorch hooks script (scripts/bench/torch_analysis.py: transformers' GPT-2, forward hooks with retain_grad,",
    "one backward per batch, logit lens under no_grad) on the same random GPT-2 folder and tokens, both at default threads.",
    `1. design fields: max |innerloop - PyTorch| / the field's largest |value|; they agree when <= ${FIELD_TOLERANCE}:`,
  ];
  out.push(
    table(
      ["size", ...rs[0]!.fields.map((f) => f.field), "agree"],
      rs.map((a) => [a.name, ...a.fields.map((f) => f.relDiff.toExponential(1)), a.agree ? "yes" : "NO: times below are not comparable"]),
    ),
  );
  out.push(
    "",
    `2. time of the analysis (windows read, every field computed; process start-up and loading the model excluded, whole`,
    `   process in brackets), its CPU time (all threads; what counts on a busy machine) and peak RSS; goal: time ratio`,
    `   <= ${ANALYSIS_GOAL.toFixed(2)}x, peak RSS no higher than PyTorch's. GFLOP/s: the matrix products any computation of these fields`,
    `   must do (blocks forward and backward, output layer forward and back to its input, logit lens; BENCHMARKS.md) per second:`,
  );
  const secs = (xs: Array<{ seconds: number; wallSeconds: number }>) => xs.map((x) => `${x.seconds.toFixed(1)} s (${x.wallSeconds.toFixed(1)} s)`).join(", ");
  const rss = (xs: Array<{ maxRssKB: number }>) => mb(Math.max(...xs.map((x) => x.maxRssKB)));
  out.push(
    table(
      ["size", "model", "windows x T, batch", "innerloop", "PyTorch", "time ratio", "time goal", "CPU time il / pt", "CPU ratio", "GFLOP/s il / pt", "peak RSS il / pt", "RSS ratio", "RSS goal"],
      rs.map((a) => [
        a.name,
        `${a.model.nLayer} x ${a.model.nEmbd}, vocab ${a.model.vocabSize}`,
        `${a.windows} x ${a.model.seqLen}, ${a.batchSize}`,
        secs(a.innerloop),
        secs(a.pytorch),
        `${a.ratio.toFixed(3)}x`,
        a.agree ? (a.ratio <= ANALYSIS_GOAL ? "met" : "NOT met") : "-",
        `${median(a.innerloop.map((x) => x.cpuSeconds)).toFixed(1)} / ${median(a.pytorch.map((x) => x.cpuSeconds)).toFixed(1)} s`,
        `${a.cpuRatio.toFixed(3)}x`,
        `${(a.flops / median(a.innerloop.map((x) => x.seconds)) / 1e9).toFixed(0)} / ${(a.flops / median(a.pytorch.map((x) => x.seconds)) / 1e9).toFixed(0)}`,
        `${rss(a.innerloop)} / ${rss(a.pytorch)}`,
        `${a.rssRatio.toFixed(2)}x`,
        a.rssRatio <= 1 ? "met" : "NOT met",
      ]),
    ),
  );
  return out;
}
