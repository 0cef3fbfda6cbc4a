import { defineConfig } from "vitest/config";

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
    env: { OMP_NUM_THREADS: "1", MKL_NUM_THREADS: "1" },
  },
});
