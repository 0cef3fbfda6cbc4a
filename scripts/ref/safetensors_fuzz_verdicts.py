"""Which corrupted safetensors files Python's safetensors loads, for the fuzz test's cross-check.

The fuzz test in test/safetensors.test.ts generates its corruptions deterministically. To refresh
the reference after changing that generator:

  mkdir -p /tmp/fuzz && INNERLOOP_FUZZ_DUMP=/tmp/fuzz npx vitest run test/safetensors.test.ts -t fuzz
  python3 scripts/ref/safetensors_fuzz_verdicts.py /tmp/fuzz

(the test fails on the stale reference the first time; run it again afterwards). Writes
test/fixtures/safetensors/fuzz_python_verdicts.json: {"loaded": [true/false for c0, c1, ...]}.
"""
import json
import os
import sys

from safetensors.torch import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(folder):
    n = len([f for f in os.listdir(folder) if f.startswith("c") and f.endswith(".safetensors")])
    loaded = []
    for k in range(n):
        try:
            load_file(os.path.join(folder, f"c{k}.safetensors"))
            loaded.append(True)
        except Exception:
            loaded.append(False)
    out = os.path.join(ROOT, "test", "fixtures", "safetensors", "fuzz_python_verdicts.json")
    with open(out, "w") as f:
        json.dump({"reader": "safetensors (Python) load_file", "loaded": loaded}, f)
    print(f"{sum(loaded)} of {n} loaded; wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1])
