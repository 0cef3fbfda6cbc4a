#!/usr/bin/env node
// Where the small path of GPT-2's fused nodes (native/small_gpt2.cc) pays: the fused block's and
// the fused head's forward and backward timed with it at every size (INNERLOOP_SMALL_PATH=all) and
// without it (INNERLOOP_SMALL_PATH=0, libtorch's kernels), each side in its own process, one
// thread, at sizes around the limits in small_gpt2.cc; a third process says which sizes take it by
// default. Prints microseconds per forward + backward, median of 5
// rounds. The limits kSmallWork and kSmallHeadWork came from this table (BENCHMARKS.md).
//
//   npm run build:ts && node scripts/bench/small-path.mjs
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const blockSizes = [[1, 8, 64], [4, 16, 64], [1, 64, 64], [2, 64, 64], [8, 64, 64], [1, 32, 128], [1, 128, 64]];
const headSizes = [[1, 8, 64, 256], [1, 64, 64, 256], [4, 64, 64, 256], [8, 64, 64, 256], [1, 8, 64, 8192]];

if (process.argv[2] === "--side") {
  const { torch } = await import("../../dist/index.js");
  const kernels = await import("../../dist/torch/internal.js");
  torch.setNumThreads(1);
  const p = (s) => torch.randn(s).mul(0.02).requiresGrad_();
  const time = (run, reps) => {
    for (let i = 0; i < Math.max(20, reps / 10); i++) run();
    const rounds = [];
    for (let k = 0; k < 5; k++) {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < reps; i++) run();
      rounds.push(Number(process.hrtime.bigint() - t0) / 1e3 / reps);
    }
    return rounds.sort((a, b) => a - b)[2];
  };
  const out = { block: [], head: [] };
  for (const [B, T, C] of blockSizes) {
    const w = {
      ln1Weight: torch.ones([C]).requiresGrad_(), ln1Bias: p([C]), attnWeight: p([C, 3 * C]), attnBias: p([3 * C]),
      projWeight: p([C, C]), projBias: p([C]), ln2Weight: torch.ones([C]).requiresGrad_(), ln2Bias: p([C]),
      fcWeight: p([C, 4 * C]), fcBias: p([4 * C]), mlpWeight: p([4 * C, C]), mlpBias: p([C]),
    };
    const h = torch.randn([B, T, C]).requiresGrad_();
    const leaves = [h, ...Object.values(w)];
    const g = torch.randn([B, T, C]);
    const run = () => {
      torch.tidy(() => kernels.gpt2Block(h, w, 4, 1e-5).backward(g));
      for (const t of leaves) t.grad = null;
    };
    const small = kernels.smallBlockApplies(h, 4);
    out.block.push({ size: [B, T, C], small, us: process.argv[3] === "--which" ? 0 : time(run, Math.max(50, Math.round(2e5 / (B * T * C)))) });
  }
  for (const [B, T, C, V] of process.argv[3] === "--which" ? [] : headSizes) {
    const h = torch.randn([B, T, C]).requiresGrad_();
    const wte = p([V, C]);
    const lw = torch.ones([C]).requiresGrad_();
    const lb = p([C]);
    const targets = torch.randint(0, V, [B, T]);
    const run = () => {
      torch.tidy(() => kernels.gpt2HeadLoss(h, lw, lb, wte, targets, -100, 1e-5)[1].backward());
      for (const t of [h, wte, lw, lb]) t.grad = null;
    };
    out.head.push({ size: [B, T, C, V], us: time(run, Math.max(50, Math.round(2e6 / (B * T * C * V) * 100))) });
  }
  console.log(JSON.stringify(out));
} else {
  const self = fileURLToPath(import.meta.url);
  const side = (env, ...more) => JSON.parse(execFileSync(process.execPath, [self, "--side", ...more], { env: { ...process.env, ...env }, encoding: "utf8" }).trim().split("\n").pop());
  const which = side({}, "--which");
  const on = side({ INNERLOOP_SMALL_PATH: "all" });
  const off = side({ INNERLOOP_SMALL_PATH: "0" });
  console.log("fused GPT-2 block, forward + backward, us (one thread; 4 heads):");
  console.log("| B x T x C | B·T·C² | small path | libtorch's kernels | small / libtorch | taken by default |");
  console.log("|---|---|---|---|---|---|");
  on.block.forEach((r, i) => {
    const [B, T, C] = r.size;
    const o = off.block[i].us;
    console.log(`| ${B} x ${T} x ${C} | 2^${Math.log2(B * T * C * C).toFixed(1)} | ${r.us.toFixed(1)} | ${o.toFixed(1)} | ${(r.us / o).toFixed(2)}x | ${which.block[i].small ? "yes" : "no"} |`);
  });
  console.log("\nfused head and loss, forward + backward, us (one thread):");
  console.log("| B x T x C x V | B·T·C·V | small path | libtorch's kernels | small / libtorch | taken by default |");
  console.log("|---|---|---|---|---|---|");
  on.head.forEach((r, i) => {
    const [B, T, C, V] = r.size;
    const o = off.head[i].us;
    console.log(`| ${B} x ${T} x ${C} x ${V} | 2^${Math.log2(B * T * C * V).toFixed(1)} | ${r.us.toFixed(1)} | ${o.toFixed(1)} | ${(r.us / o).toFixed(2)}x | ${B * T * C * V <= 2 ** 22 ? "yes" : "no"} |`);
  });
}
