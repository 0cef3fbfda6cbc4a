// Wrong argument types and values in the TypeScript API: each is refused before any native work
// with a TypeError or RangeError whose message names the function, the argument (by name, or by
// position for positional ones: "argument 1") and the form it expects, and shows what it got.
// (test/errors.test.ts checks the error classes across ~80 misuses; this file checks the wording.)
import { describe, expect, it } from "vitest";
import { F, torch, type Tensor } from "../lib/torch/index.js";

type Kind = typeof TypeError | typeof RangeError;
const t = torch.ones([2, 3]);

const cases: Array<[what: string, call: () => unknown, kind: Kind, message: RegExp]> = [
  ["zeros with a string shape", () => torch.zeros("abc" as unknown as number[]), TypeError, /^zeros: shape must be an array of non-negative integers/],
  ["zeros with a fractional size", () => torch.zeros([2.5]), RangeError, /^zeros: shape must be an array of non-negative integers, got \[2\.5\]/],
  ["zeros with a negative size", () => torch.zeros([-1]), RangeError, /^zeros: shape .* got \[-1\]/],
  ["zeros with an unknown dtype", () => torch.zeros([2], { dtype: "float8" as "float32" }), TypeError, /^zeros: unknown dtype 'float8' \(expected float32, float64, .*bool\)/],
  ["zeros with an unknown device", () => torch.zeros([2], { device: "tpu" as "cpu" }), TypeError, /^zeros: unknown device 'tpu' \(expected 'cpu', 'cuda' or 'cuda:N'\)/],
  ["add a string", () => t.add("1" as unknown as number), TypeError, /^add: argument 1 must be a Tensor or a number, got string/],
  ["matmul a number", () => t.matmul(3 as unknown as Tensor), TypeError, /^matmul: argument 1 must be a Tensor, got number/],
  ["sum over a string dim", () => t.sum("0" as unknown as number), TypeError, /^sum: argument 1 must be an integer or an array of integers, got string/],
  ["transpose a string dim", () => t.transpose("a" as unknown as number, 1), TypeError, /^transpose: argument 1 must be an integer, got string/],
  ["view with a fraction", () => t.view([1.5, 4]), TypeError, /^view: argument 1 must be an array of integers/],
  ["softmax over a string dim", () => F.softmax(t, "x" as unknown as number), TypeError, /^softmax: argument 1 must be an integer, got string/],
  ["crossEntropy with an array target", () => F.crossEntropy(t, [1, 2] as unknown as Tensor), TypeError, /^crossEntropy: argument 1 must be a Tensor, got array/],
  ["linear with a number weight", () => F.linear(t, 3 as unknown as Tensor), TypeError, /^linear: argument 1 must be a Tensor, got number/],
  ["dropout with p = 2", () => F.dropout(t, { p: 2 }), RangeError, /^dropout: p must be in \[0, 1\], got 2/],
  ["tensor of strings", () => torch.tensor(["a"] as unknown as number[]), TypeError, /^tensor: expected numbers at depth 1, got string/],
  ["randint with a string bound", () => torch.randint(0, "5" as unknown as number, [2]), TypeError, /^randint: argument 1 must be an integer, got string/],
  ["arange with step 0", () => torch.arange(0, 5, 0), RangeError, /^arange: step must not be zero/],
  ["full with a string value", () => torch.full([2], "x" as unknown as number), TypeError, /^full: argument 1 must be a number, got string/],
  ["manualSeed with a string", () => torch.manualSeed("x" as unknown as number), RangeError, /^manualSeed: expected a non-negative integer, got x/],
  ["cat of a tensor instead of a list", () => torch.cat(t as unknown as Tensor[]), TypeError, /^cat: argument 0 must be an array of Tensors, got object/],
  ["clamp with a string bound", () => t.clamp("a" as unknown as number), TypeError, /^clamp: argument 1 must be a number, got string/],
  ["to an unknown target", () => t.to("gpu" as "cpu"), TypeError, /^to: 'gpu' is neither a dtype nor a device \('cpu', 'cuda', 'cuda:N'\)/],
  ["setNumThreads(0)", () => torch.setNumThreads(0), TypeError, /^setNumThreads: expected a positive integer/],
];

describe("argument validation names the function, the argument and the expected form", () => {
  for (const [what, call, kind, message] of cases) {
    it(what, () => {
      const before = torch.memory().liveTensors;
      let err: unknown;
      try {
        call();
      } catch (e) {
        err = e;
      }
      expect(err, `${what}: throws`).toBeInstanceOf(kind);
      expect((err as Error).message).toMatch(message);
      expect((err as Error).message).not.toMatch(/Exception raised from|frame #\d/);
      // Refused before anything was made.
      expect(torch.memory().liveTensors).toBe(before);
    });
  }

  it("the process goes on computing after all of them", () => {
    expect(torch.tidy(() => t.add(1).sum().item())).toBe(12);
  });
});
