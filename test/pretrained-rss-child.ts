// Child process of pretrained-memory.test.ts: loads a checkpoint and reports resident memory
// (Linux /proc/self/status) before loading, after, and at the peak in between. Run with
// `node --import tsx test/pretrained-rss-child.ts DIR [DTYPE]`.
import * as fs from "node:fs";
import { torch } from "../lib/torch/index.js";
import type { DType } from "../lib/torch/index.js";
import { loadPretrained } from "../lib/models/hf.js";

function status(field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(fs.readFileSync("/proc/self/status", "utf8"));
  if (!m) throw new Error(`no ${field} in /proc/self/status`);
  return Number(m[1]) * 1024;
}

const [dir, dtype] = process.argv.slice(2) as [string, DType | undefined];
// Bring libtorch fully up (allocator, thread pool) before the baseline is taken.
torch.tidy(() => torch.ones([64, 64]).matmul(torch.ones([64, 64])).sum().item());
const before = status("VmRSS");
fs.writeFileSync("/proc/self/clear_refs", "5"); // resets VmHWM to the current RSS
const t0 = performance.now();
const model = loadPretrained(dir, dtype ? { dtype } : {});
const seconds = (performance.now() - t0) / 1000;
const after = status("VmRSS");
const peak = status("VmHWM");
const paramBytes = model.parameters().reduce((a, p) => a + p.numel * (p.dtype === "float32" ? 4 : 2), 0);
process.stdout.write(JSON.stringify({ before, after, peak, paramBytes, seconds, dtype: model.parameters()[0]!.dtype }) + "\n");
model.dispose();
