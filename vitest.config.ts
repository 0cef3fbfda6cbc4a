import { readFileSync } from "node:fs";
import { defineConfig } from "vitest/config";

// When the addon was built against the torch install put into .libtorch/python (a Python that pip
// may not write to), the tests' Python references import that same torch: one torch for both.
function localTorchPath(): Record<string, string> {
  try {
    const record = JSON.parse(readFileSync(new URL("./build/libtorch.json", import.meta.url), "utf8")) as { source?: string };
    if (record.source !== "local") return {};
  } catch {
    return {};
  }
  const dir = new URL("./.libtorch/python", import.meta.url).pathname;
  return { PYTHONPATH: [dir, process.env.PYTHONPATH].filter(Boolean).join(":") };
}
const pythonPath = localTorchPath();

// Native code runs in forked worker processes, so a crash in libtorch can fail
// a test file but never take the runner down with it.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    pool: "forks",
    poolOptions: { forks: { singleFork: false, maxForks: 2, minForks: 1 } },
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ["default"],
    // Two test processes share the machine's cores: one libtorch thread each
    // (inherited by the CLI processes tests start) avoids oversubscription.
    env: { OMP_NUM_THREADS: "1", MKL_NUM_THREADS: "1", ...pythonPath },
  },
});
