// Every op family against PyTorch: cases come from scripts/golden/make_ops.py
// (test/golden/ops.json) and are replayed generically on every device.
import { describe, expect, it } from "vitest";
import { torch } from "../lib/torch/index.js";
import { devices } from "./helpers/devices.js";
import { checkCase, loadGolden } from "./helpers/golden.js";

const { cases } = loadGolden("ops.json");

describe("golden ops from PyTorch", () => {
  it("covers every op family", () => {
    const families = new Set(cases.map((c) => c.id.split("/")[0]));
    for (const f of ["factory", "unary", "binary", "compare", "where", "promotion", "to", "matmul", "reduce", "shape", "index", "join", "inplace", "inplace-autograd", "F"]) {
      expect(families.has(f), f).toBe(true);
    }
    expect(cases.length).toBeGreaterThan(300);
  });

  for (const device of devices()) {
    describe(device, () => {
      for (const c of cases) {
        it(c.id, () => {
          checkCase(c, device);
        });
      }
      it("leaves no live tensors behind", () => {
        const before = torch.memory().liveTensors;
        for (const c of cases.slice(0, 50)) {
          try {
            checkCase(c, device);
          } catch {
            // a failing case is reported by its own test; here only the count matters
          }
        }
        expect(torch.memory().liveTensors).toBe(before);
      });
    });
  }
});
