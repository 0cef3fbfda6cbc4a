// Measures what the CPU buffer cache (native/cpu_allocator.cc, INNERLOOP_CPU_CACHE_MB) buys and
// what it holds: the median training-step time of the `mid` bench model (GPT-2, 4 x 128, T 128,
// batch 16, AdamW) and the resident memory once the model is disposed and garbage collected.
//
//   INNERLOOP_CPU_CACHE_MB=256 node --expose-gc scripts/cpu-cache-measure.mjs [steps]
//
// Prints one JSON line. Used for the numbers in BENCHMARKS.md ("CPU buffer cache").
import { torch, models, optim } from "innerloop";

const steps = Number(process.argv[2] ?? 40);
const warmup = 5;
torch.setNumThreads(1);
torch.manualSeed(0);
const model = new models.GPT2({ vocabSize: 256, nPositions: 128, nEmbd: 128, nLayer: 4, nHead: 4, dropout: 0, bias: true });
const opt = new optim.AdamW(model.parameters(), { lr: 1e-3 });
const x = torch.keep(torch.randint(0, 256, [16, 128]));
const y = torch.keep(torch.randint(0, 256, [16, 128]));
const times = [];
for (let s = 0; s < warmup + steps; s++) {
  const t0 = performance.now();
  torch.tidy(() => {
    const { loss } = model.forward(x, { targets: y });
    loss.backward();
    optim.clipGradNorm_(model.parameters(), 1.0);
    opt.step();
    opt.zeroGrad();
  });
  if (s >= warmup) times.push(performance.now() - t0);
}
const rssDuring = process.memoryUsage().rss;
opt.dispose?.();
model.dispose();
x.dispose();
y.dispose();
for (let i = 0; i < 3; i++) globalThis.gc?.();
await new Promise((r) => setTimeout(r, 50));
times.sort((a, b) => a - b);
const mb = (b) => Math.round(b / 1048576);
console.log(JSON.stringify({
  cacheMB: process.env.INNERLOOP_CPU_CACHE_MB ?? "default",
  medianStepMs: Number(times[times.length >> 1].toFixed(2)),
  rssDuringMB: mb(rssDuring),
  rssAfterMB: mb(process.memoryUsage().rss),
  cachedAfterMB: mb(torch.memory().cpuCached),
}));
