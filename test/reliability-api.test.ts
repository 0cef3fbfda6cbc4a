// Wrong argument types and values in the TypeScript API: each is refused before any native work
// with a TypeError or RangeError whose message names the function, the argument (by name; the
// native ops give the position too: "argument 1 (other)") and the form it expects, and shows what
// it got.
// (test/errors.test.ts checks the error classes across ~80 misuses; this file checks the wording.)
import { describe, expect, it } from "vitest";
import { F, torch, type Tensor } from "../lib/torch/index.js";
import { ops } from "../lib/torch/native.js";

type Kind = typeof TypeError | typeof RangeError;
const t = torch.ones([2, 3]);

const cases: Array<[what: string, call: () => unknown, kind: Kind, message: RegExp]> = [
  ["zeros with a string shape", () => torch.zeros("abc" as unknown as number[]), TypeError, /^zeros: shape must be an array of non-negative integers/],
  ["zeros with a fractional size", () => torch.zeros([2.5]), RangeError, /^zeros: shape\[0\] must be a non-negative integer, got 2\.5/],
  ["zeros with a negative size", () => torch.zeros([-1]), RangeError, /^zeros: shape\[0\] must be a non-negative integer, got -1/],
  ["zeros with an unknown dtype", () => torch.zeros([2], { dtype: "float8" as "float32" }), TypeError, /^zeros: unknown dtype 'float8' \(expected float32, float64, .*bool\)/],
  ["zeros with an unknown device", () => torch.zeros([2], { device: "tpu" as "cpu" }), TypeError, /^zeros: unknown device 'tpu' \(expected 'cpu', 'cuda' or 'cuda:N'\)/],
  ["add a string", () => t.add("1" as unknown as number), TypeError, /^add: argument 1 \(other\) must be a Tensor or a number, got string/],
  ["matmul a number", () => t.matmul(3 as unknown as Tensor), TypeError, /^matmul: argument 1 \(other\) must be a Tensor, got number/],
  ["sum over a string dim", () => t.sum("0" as unknown as number), TypeError, /^sum: argument 1 \(dim\) must be an integer or an array of integers, got string/],
  ["transpose a string dim", () => t.transpose("a" as unknown as number, 1), TypeError, /^transpose: argument 1 \(dim0\) must be an integer, got string/],
  ["view with a fraction", () => t.view([1.5, 4]), TypeError, /^view: element 0 of argument 1 \(shape\) must be an integer, got 1\.5/],
  ["softmax over a string dim", () => F.softmax(t, "x" as unknown as number), TypeError, /^softmax: argument 1 \(dim\) must be an integer, got string/],
  ["crossEntropy with an array target", () => F.crossEntropy(t, [1, 2] as unknown as Tensor), TypeError, /^crossEntropy: argument 1 \(target\) must be a Tensor, got array/],
  ["linear with a number weight", () => F.linear(t, 3 as unknown as Tensor), TypeError, /^linear: argument 1 \(weight\) must be a Tensor, got number/],
  ["dropout with p = 2", () => F.dropout(t, { p: 2 }), RangeError, /^dropout: p must be in \[0, 1\], got 2/],
  ["tensor of strings", () => torch.tensor(["a"] as unknown as number[]), TypeError, /^tensor: data\[0\] must be a number, a boolean or a BigInt, got the string "a"/],
  ["randint with a string bound", () => torch.randint(0, "5" as unknown as number, [2]), TypeError, /^randint: argument 1 \(high\) must be an integer, got string/],
  ["arange with step 0", () => torch.arange(0, 5, 0), RangeError, /^arange: step must not be zero/],
  ["full with a string value", () => torch.full([2], "x" as unknown as number), TypeError, /^full: argument 1 \(fillValue\) must be a number, got string/],
  ["manualSeed with a string", () => torch.manualSeed("x" as unknown as number), RangeError, /^manualSeed: seed must be a non-negative integer, got x/],
  ["cat of a tensor instead of a list", () => torch.cat(t as unknown as Tensor[]), TypeError, /^cat: argument 0 \(tensors\) must be an array of Tensors, got Tensor/],
  ["clamp with a string bound", () => t.clamp("a" as unknown as number), TypeError, /^clamp: argument 1 \(min\) must be a number, got string/],
  ["to an unknown target", () => t.to("gpu" as "cpu"), TypeError, /^to: 'gpu' is neither a dtype nor a device \('cpu', 'cuda', 'cuda:N'\)/],
  ["setNumThreads(0)", () => torch.setNumThreads(0), TypeError, /^setNumThreads: n must be a positive integer, got 0/],
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

// Each native op names its parameters as PyTorch does (camelCase, as in the TypeScript API), so a
// wrong option reads as the option, not as a position in the native call.
const x = torch.ones([2, 3]);
const disposed = torch.ones([3]);
disposed.dispose();
const named: Array<[what: string, call: () => unknown, message: RegExp]> = [
  ["sub with a string alpha", () => x.sub(1, { alpha: "x" as unknown as number }), /^sub: argument 2 \(alpha\) must be a number, got string/],
  ["sum with a string keepdim", () => x.sum(0, { keepdim: "yes" as unknown as boolean }), /^sum: argument 2 \(keepdim\) must be a boolean, got string/],
  ["transpose with a string second dim", () => x.transpose(0, "1" as unknown as number), /^transpose: argument 2 \(dim1\) must be an integer, got string/],
  ["topk with a string k", () => x.topk("2" as unknown as number), /^topk: argument 1 \(k\) must be an integer, got string/],
  ["gather with a number index", () => x.gather(1, 0 as unknown as Tensor), /^gather: argument 2 \(index\) must be a Tensor, got number/],
  ["maskedFill with a string value", () => x.maskedFill(x.gt(0), "0" as unknown as number), /^maskedFill: argument 2 \(value\) must be a Tensor or a number, got string/],
  ["where with a number condition", () => torch.where(3 as unknown as Tensor, x, x), /^where: argument 0 \(condition\) must be a Tensor, got number/],
  ["lerp with a string weight", () => x.lerp(x, "half" as unknown as number), /^lerp: argument 2 \(weight\) must be a Tensor or a number, got string/],
  ["add_ of a disposed tensor", () => torch.ones([3]).add_(disposed), /^add_: argument 1 \(other\) is a tensor that was disposed/],
  ["copy_ with a string nonBlocking", () => x.clone().copy_(x, { nonBlocking: "no" as unknown as boolean }), /^copy_: argument 2 \(nonBlocking\) must be a boolean, got string/],
  ["crossEntropy with a string ignoreIndex", () => F.crossEntropy(x, torch.zeros([2], { dtype: "int64" }), { ignoreIndex: "-1" as unknown as number }), /^crossEntropy: argument \d \(ignoreIndex\) must be an integer, got string/],
  ["linear with a string bias", () => F.linear(x, torch.ones([4, 3]), "b" as unknown as Tensor), /^linear: argument 2 \(bias\) must be a Tensor, got string/],
  ["layerNorm with a string eps", () => F.layerNorm(x, [3], { eps: "1e-5" as unknown as number }), /^layerNorm: argument 4 \(eps\) must be a number, got string/],
  ["scaledDotProductAttention with a string isCausal", () => F.scaledDotProductAttention(x, x, x, { isCausal: "yes" as unknown as boolean }), /^scaledDotProductAttention: argument 5 \(isCausal\) must be a boolean, got string/],
  ["stack with a number among the tensors", () => torch.stack([x, 1 as unknown as Tensor]), /^stack: element 1 of argument 0 \(tensors\) must be a Tensor, got number/],
  ["linspace with a string steps", () => torch.linspace(0, 1, "5" as unknown as number), /^linspace: argument 2 \(steps\) must be an integer, got string/],
  ["the free function of a method on a string", () => torch.exp("x" as unknown as Tensor), /^torch\.exp: argument 0 \(input\) must be a Tensor, got string/],
  ["view with a string size", () => x.view(3, "2" as unknown as number), /^view: shape must be numbers or one array of numbers, got string/],
  ["permute with a string dim", () => x.permute(1, "0" as unknown as number), /^permute: dims must be numbers or one array of numbers, got string/],
  ["tensor of an object", () => torch.tensor({} as unknown as number[]), /^tensor: data must be a number, a boolean, a BigInt, nested arrays or a typed array, got object/],
  ["tidy of a non-function", () => torch.tidy(3 as unknown as () => void), /^tidy: fn must be a function, got number/],
];

describe("errors name the argument as PyTorch does", () => {
  for (const [what, call, message] of named) {
    it(what, () => {
      const before = torch.memory().liveTensors;
      let err: unknown;
      try {
        torch.tidy(() => {
          call();
        });
      } catch (e) {
        err = e;
      }
      expect(err, `${what}: throws`).toBeInstanceOf(TypeError);
      expect((err as Error).message).toMatch(message);
      expect(torch.memory().liveTensors).toBe(before);
    });
  }

  it("every native op names the argument it refuses", () => {
    const unnamed: string[] = [];
    for (const name of Object.keys(ops)) {
      let message = "";
      try {
        (ops[name] as (...a: unknown[]) => unknown)();
      } catch (e) {
        message = (e as Error).message;
      }
      if (!new RegExp(`^${name}: (element \\d+ of )?argument \\d+ \\([A-Za-z0-9]+\\) must be `).test(message)) unnamed.push(`${name}: ${message || "did not throw"}`);
    }
    expect(Object.keys(ops).length).toBeGreaterThan(100);
    expect(unnamed).toEqual([]);
  });
});
