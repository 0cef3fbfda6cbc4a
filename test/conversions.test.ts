// PyTorch's conversion semantics: torch.tensor infers int64 / float32 / bool as torch.tensor
// does, refuses what PyTorch 2.13 refuses (checked against `torch.tensor(..., dtype=...)` in
// Python: "value cannot be converted to type uint8 without overflow"), never rounds an int64
// silently, and argument errors name the argument and what it accepts.
import { describe, expect, it } from "vitest";
import { torch, TorchError } from "../lib/torch/index.js";

describe("torch.tensor infers the dtype as PyTorch does", () => {
  it.each([
    ["integers", [1, 2], "int64"],
    ["a scalar integer", 3, "int64"],
    ["fractions", [1.5, 2], "float32"],
    ["a scalar fraction", 3.5, "float32"],
    ["mixed integers and fractions", [[1, 2], [3, 4.5]], "float32"],
    ["booleans", [true, false], "bool"],
    ["booleans and integers", [true, 1], "int64"],
    ["booleans and fractions", [true, 1.5], "float32"],
    ["NaN (a float)", [1, NaN], "float32"],
    ["an integral number beyond 2^53 (written 1e20: a float)", [1, 1e20], "float32"],
    ["an empty list", [], "float32"],
    ["BigInts", [1n, 2n], "int64"],
  ] as const)("%s -> %s", (_what, data, dtype) => {
    const t = torch.tensor(data as never);
    expect(t.dtype).toBe(dtype);
    t.dispose();
  });

  it("keeps the values, and an explicit dtype still wins", () => {
    expect(torch.tensor([1, 2]).toArray()).toEqual([1, 2]);
    expect(torch.tensor([1, 2], { dtype: "float32" }).dtype).toBe("float32");
    expect(torch.tensor([1.5, 2.5], { dtype: "int64" }).toArray()).toEqual([1, 2]); // truncated, as PyTorch
    expect(torch.tensor([-1], { dtype: "uint8" }).toArray()).toEqual([255]); // PyTorch wraps -1..-255 for uint8
    expect(torch.tensor([2, 0, NaN], { dtype: "bool" }).toArray()).toEqual([true, false, true]);
  });
});

describe("conversions PyTorch refuses are refused, naming the value and the dtype", () => {
  it.each([
    [[300, -1], "uint8", /value 300 at flat index 0 cannot be converted to uint8 without overflow/],
    [[256], "uint8", /value 256 .* uint8/],
    [[-256], "uint8", /value -256 .* uint8/],
    [[-0.5], "uint8", /value -0.5 .* uint8/],
    [[2.5, 255.9], "uint8", /value 255.9 at flat index 1 .* uint8/],
    [[NaN], "int64", /value NaN .* int64/],
    [[0, Infinity], "int64", /value Infinity at flat index 1 .* int64/],
    [[-Infinity], "int32", /value -Infinity .* int32/],
    [[NaN], "uint8", /value NaN .* uint8/],
    [[2 ** 31], "int32", /value 2147483648 .* int32/],
    [[-(2 ** 31) - 1], "int32", /value -2147483649 .* int32/],
    [[2 ** 63], "int64", /value 9223372036854776000 .* int64/],
    [[2n ** 63n], "int64", /value 9223372036854775808n .* int64/],
  ] as const)("%s as %s", (data, dtype, message) => {
    const before = torch.memory().liveTensors;
    expect(() => torch.tensor(data as never, { dtype })).toThrow(RangeError);
    expect(() => torch.tensor(data as never, { dtype })).toThrow(message);
    expect(torch.memory().liveTensors).toBe(before);
  });

  it("accepts the edges of each range", () => {
    expect(torch.tensor([0, 255], { dtype: "uint8" }).toArray()).toEqual([0, 255]);
    expect(torch.tensor([-(2 ** 31), 2 ** 31 - 1], { dtype: "int32" }).toArray()).toEqual([-(2 ** 31), 2 ** 31 - 1]);
    expect(torch.tensor([-(2n ** 63n), 2n ** 63n - 1n]).toArray({ bigint: true })).toEqual([-(2n ** 63n), 2n ** 63n - 1n]);
    expect(torch.tensor([1e20], { dtype: "float16" }).toArray()).toEqual([Infinity]); // floats overflow to inf, as PyTorch
  });
});

describe("int64 beyond 2^53 is never rounded silently", () => {
  const big = 2n ** 53n + 1n;

  it("BigInt input keeps every bit", () => {
    const t = torch.tensor([big, -big, 5n]);
    expect(t.dtype).toBe("int64");
    expect(Array.from(t.toTypedArray() as BigInt64Array)).toEqual([big, -big, 5n]);
  });

  it("toArray() throws naming the position; toArray({ bigint: true }) returns BigInts", () => {
    const t = torch.tensor([[1n, 2n], [3n, big]]);
    expect(() => t.toArray()).toThrow(RangeError);
    expect(() => t.toArray()).toThrow(/int64 value 9007199254740993 at \[1, 1\] is beyond 2\^53.*toArray\(\{ bigint: true \}\)/);
    expect(t.toArray({ bigint: true })).toEqual([[1n, 2n], [3n, big]]);
    // 2^53 itself is exact, and numbers stay numbers below it.
    expect(torch.tensor([2n ** 53n, -(2n ** 53n)]).toArray()).toEqual([2 ** 53, -(2 ** 53)]);
  });

  it("item() throws; item({ bigint: true }) returns a BigInt", () => {
    const t = torch.tensor(big);
    expect(() => t.item()).toThrow(/item: the int64 value 9007199254740993 is beyond 2\^53.*item\(\{ bigint: true \}\)/);
    expect(t.item({ bigint: true })).toBe(big);
    expect(torch.tensor(7n).item({ bigint: true })).toBe(7n);
    expect(torch.tensor(7n).item()).toBe(7);
    expect(torch.tensor(1.5).item({ bigint: true })).toBe(1.5); // only integers become BigInts
    // Sums computed by libtorch are checked too.
    const s = torch.tensor([2n ** 53n, 1n]).sum();
    expect(() => s.item()).toThrow(/9007199254740993/);
  });
});

describe("argument errors name the argument and what it accepts", () => {
  it("shapes", () => {
    expect(() => torch.zeros(["3"] as never)).toThrow('zeros: shape[0] must be a non-negative integer, got the string "3"');
    expect(() => torch.zeros([2, NaN])).toThrow("zeros: shape[1] must be a non-negative integer, got NaN");
    expect(() => torch.ones([-1])).toThrow("ones: shape[0] must be a non-negative integer, got -1");
    expect(() => torch.empty([1.5])).toThrow("empty: shape[0] must be a non-negative integer, got 1.5");
    expect(() => torch.zeros("3" as never)).toThrow('zeros: shape must be an array of non-negative integers, got the string "3"');
    expect(() => torch.zeros(NaN)).toThrow("zeros: shape must be a non-negative integer or an array of them, got NaN");
  });

  it("shapes of ops name the element and its value", () => {
    const t = torch.zeros([2, 2]);
    expect(() => t.view([NaN])).toThrow("view: element 0 of argument 1 (shape) must be an integer, got NaN");
    expect(() => t.reshape([4, "1"] as never)).toThrow(/reshape: element 1 of argument 1 \(shape\) must be an integer, got the string "1"/);
    expect(() => t.permute([0, 0.5])).toThrow(/permute: element 1 of .* must be an integer, got 0\.5/);
  });

  it("options: null means no options (as an omitted keyword argument); other non-objects are refused", () => {
    const z = torch.zeros([2], null);
    expect(z.dtype).toBe("float32");
    expect(torch.tensor([1, 2], null).dtype).toBe("int64");
    expect(torch.full([1], 2, null).toArray()).toEqual([2]);
    expect(() => torch.zeros([2], "float64" as never)).toThrow('zeros: options must be an object such as { dtype, device, requiresGrad }, got the string "float64"');
    expect(() => torch.ones([2], [] as never)).toThrow(/ones: options must be an object/);
  });

  it("tensor data", () => {
    expect(() => torch.tensor([1, "2"] as never)).toThrow('tensor: data[1] must be a number, a boolean or a BigInt, got the string "2"');
    expect(() => torch.tensor([[1], [null]] as never)).toThrow("tensor: data[1][0] must be a number, a boolean or a BigInt, got null");
    expect(() => torch.tensor("12" as never)).toThrow(/tensor: data must be a number, a boolean, a BigInt, nested arrays or a typed array, got the string "12"/);
  });

  it("autograd errors name the TypeScript option, not Python's", () => {
    const x = torch.tensor([1.5, 2], { requiresGrad: true });
    const y = x.mul(x).sum();
    y.backward();
    let message = "";
    try {
      y.backward();
    } catch (e) {
      expect(e).toBeInstanceOf(TorchError);
      message = (e as Error).message;
    }
    expect(message).toMatch(/Pass \{ retainGraph: true \} to backward\(\) or autograd\.grad\(\)/);
    expect(message).not.toMatch(/retain_graph/);

    const a = torch.tensor([1.5, 2], { requiresGrad: true });
    const b = a.sigmoid();
    torch.noGrad(() => b.add_(1));
    let inplace = "";
    try {
      b.sum().backward();
    } catch (e) {
      inplace = (e as Error).message;
    }
    expect(inplace).toMatch(/modified by an inplace operation/);
    expect(inplace).not.toMatch(/set_detect_anomaly/);
  });
});
