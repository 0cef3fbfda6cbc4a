// Every misuse of the torch API becomes a JS Error with a clear message and no C++ backtrace,
// and the process carries on: each group ends with a successful op.
import { describe, expect, it } from "vitest";
import { F, OutOfMemoryError, Tensor, TorchError, torch } from "../lib/torch/index.js";
import { flatValues } from "./helpers/close.js";
import { devices, hasCuda } from "./helpers/devices.js";

type ErrorClass = abstract new (...args: never[]) => Error;

interface Misuse {
  what: string;
  call: () => unknown;
  /** Acceptable error classes: libtorch's own check (TorchError) or validation before the native call. */
  kinds: ErrorClass[];
  message?: RegExp;
}

const shapeKinds = [TorchError, RangeError];
const typeKinds = [TypeError, TorchError];
const rangeKinds = [RangeError, TorchError];

function caught(call: () => unknown): unknown {
  try {
    call();
  } catch (e) {
    return e;
  }
  return undefined;
}

function expectCleanError(err: unknown, m: Pick<Misuse, "what" | "kinds" | "message">): void {
  expect(err, `${m.what}: throws`).toBeInstanceOf(Error);
  const e = err as Error;
  const ok = m.kinds.some((k) => e instanceof k);
  expect(ok, `${m.what}: ${e.constructor.name} "${e.message}" is one of ${m.kinds.map((k) => k.name).join("/")}`).toBe(true);
  expect(e.message.length, `${m.what}: has a message`).toBeGreaterThan(5);
  // libtorch's backtrace, and its dispatcher's table of kernel registrations, must not leak into
  // the message (PyTorch's own "[enforce fail at file.cpp:N]" prefix is part of the message proper)
  expect(e.message, `${m.what}: no C++ backtrace`).not.toMatch(/Exception raised from|frame #\d|registered at \S+\.cpp:\d+/);
  if (m.message) expect(e.message, `${m.what}: message`).toMatch(m.message);
}

function checkAll(misuses: Misuse[]): void {
  // Every misuse is tried, and all failures are reported together.
  const failures: string[] = [];
  for (const m of misuses) {
    torch.tidy(() => {
      try {
        expectCleanError(caught(m.call), m);
      } catch (e) {
        failures.push((e as Error).message.split("\n")[0]!.slice(0, 400));
      }
    });
  }
  expect(failures).toEqual([]);
  // the process and the library still work
  torch.tidy(() => {
    expect(flatValues(torch.ones([2]).add(1))).toEqual([2, 2]);
  });
}

describe("error classes", () => {
  it("TorchError and OutOfMemoryError are Errors", () => {
    expect(new TorchError("x")).toBeInstanceOf(Error);
    expect(OutOfMemoryError.prototype).toBeInstanceOf(Error);
  });
});

for (const device of devices()) {
  describe(`errors on ${device}`, () => {
    const t = (shape: number[], dtype?: "float32" | "int64" | "bool" | "float64" | "int32") => torch.ones(shape, { device, dtype });

    it("shape mismatches", () => {
      checkAll([
        { what: "add broadcast", call: () => t([2, 3]).add(t([4])), kinds: shapeKinds, message: /size|shape/i },
        { what: "matmul inner dims", call: () => t([2, 3]).matmul(t([4, 5])), kinds: shapeKinds, message: /shape|size|multipl/i },
        { what: "bmm batch", call: () => t([2, 3, 4]).bmm(t([3, 4, 5])), kinds: shapeKinds },
        { what: "bmm rank", call: () => t([3, 4]).bmm(t([4, 5])), kinds: shapeKinds },
        { what: "view size", call: () => t([2, 3]).view([4]), kinds: shapeKinds, message: /shape|size|invalid/i },
        { what: "view non-contiguous", call: () => t([2, 3]).transpose(0, 1).view([6]), kinds: shapeKinds },
        { what: "reshape two -1", call: () => t([2, 3]).reshape([-1, -1]), kinds: shapeKinds },
        { what: "expand", call: () => t([2, 3]).expand([4, 3]), kinds: shapeKinds },
        { what: "cat mismatch", call: () => torch.cat([t([2, 3]), t([2, 4])], 0), kinds: shapeKinds },
        { what: "cat of nothing", call: () => torch.cat([], 0), kinds: [TorchError, RangeError, TypeError] },
        { what: "stack mismatch", call: () => torch.stack([t([2]), t([3])]), kinds: shapeKinds },
        { what: "where broadcast", call: () => torch.where(t([2], "bool"), t([3]), t([4])), kinds: shapeKinds },
        { what: "maskedFill mask shape", call: () => t([2, 3]).maskedFill(t([4], "bool"), 0), kinds: shapeKinds },
        { what: "split sizes", call: () => t([5]).split([2, 2]), kinds: shapeKinds },
        { what: "linear weight", call: () => F.linear(t([2, 3]), t([4, 5])), kinds: shapeKinds },
        { what: "layerNorm shape", call: () => F.layerNorm(t([2, 3]), [4]), kinds: shapeKinds },
        { what: "crossEntropy batch", call: () => F.crossEntropy(t([3, 5]), torch.zeros([4], { dtype: "int64", device })), kinds: shapeKinds },
        { what: "sdpa head dim", call: () => F.scaledDotProductAttention(t([1, 2, 3, 4]), t([1, 2, 3, 5]), t([1, 2, 3, 4])), kinds: shapeKinds },
        { what: "in-place broadcast into smaller", call: () => t([3]).add_(t([2, 3])), kinds: shapeKinds },
        { what: "copy_ shape", call: () => t([3]).copy_(t([4])), kinds: shapeKinds },
        { what: "backward gradient shape", call: () => t([3]).requiresGrad_().mul(2).backward(t([4])), kinds: shapeKinds },
      ]);
    });

    it("wrong dtypes", () => {
      checkAll([
        { what: "indexSelect float index", call: () => t([4, 2]).indexSelect(0, t([2])), kinds: typeKinds, message: /index|Long|Int|dtype|type/i },
        { what: "gather float index", call: () => t([4, 2]).gather(1, t([4, 1])), kinds: typeKinds },
        { what: "embedding float ids", call: () => F.embedding(t([3]), t([10, 4])), kinds: typeKinds },
        { what: "crossEntropy float target of class shape", call: () => F.crossEntropy(t([3, 5]), t([3])), kinds: typeKinds },
        { what: "maskedFill float mask", call: () => t([3]).maskedFill(t([3]), 0), kinds: typeKinds, message: /bool|mask|type/i },
        { what: "where float condition", call: () => torch.where(t([3]), t([3]), t([3])), kinds: typeKinds },
        { what: "float into int64 in place", call: () => t([3], "int64").add_(t([3]).mul(0.5)), kinds: typeKinds, message: /cast|type|Long|Float/i },
        { what: "matmul mixed dtypes", call: () => t([2, 2]).matmul(t([2, 2], "float64")), kinds: typeKinds },
        { what: "requiresGrad on int64", call: () => torch.zeros([2], { dtype: "int64", device, requiresGrad: true }), kinds: typeKinds },
        { what: "mean of int64", call: () => t([3], "int64").mean(), kinds: typeKinds },
        { what: "unknown dtype", call: () => torch.zeros([2], { dtype: "float8" as "float32", device }), kinds: typeKinds.concat(RangeError), message: /float8|dtype/i },
        { what: "to unknown dtype", call: () => t([2]).to("complex256" as "float32"), kinds: typeKinds.concat(RangeError) },
      ]);
    });

    it("indices out of range", () => {
      checkAll([
        { what: "transpose dim", call: () => t([2, 3]).transpose(0, 5), kinds: rangeKinds, message: /range|dim/i },
        { what: "sum dim", call: () => t([2, 3]).sum(2), kinds: rangeKinds },
        { what: "softmax dim", call: () => F.softmax(t([2, 3]), 3), kinds: rangeKinds },
        { what: "narrow past the end", call: () => t([4]).narrow(0, 3, 2), kinds: rangeKinds },
        { what: "unsqueeze dim", call: () => t([2]).unsqueeze(5), kinds: rangeKinds },
        { what: "permute wrong length", call: () => t([2, 3]).permute([0]), kinds: rangeKinds.concat(TypeError) },
        { what: "permute repeated", call: () => t([2, 3]).permute([0, 0]), kinds: rangeKinds },
        { what: "cat dim", call: () => torch.cat([t([2]), t([2])], 3), kinds: rangeKinds },
        { what: "slice step 0", call: () => t([4]).slice(0, 0, 4, 0), kinds: rangeKinds },
        { what: "chunk 0", call: () => t([4]).chunk(0), kinds: rangeKinds },
        { what: "item of many", call: () => t([2]).item(), kinds: rangeKinds.concat(TypeError), message: /element|one|numel/i },
        { what: "topk too large", call: () => t([3]).topk(5), kinds: rangeKinds },
        ...(device === "cpu"
          ? // On CUDA an out-of-bounds index is a device-side assert that poisons the context; only the CPU checks it eagerly.
            [
              { what: "indexSelect index", call: () => t([4]).indexSelect(0, torch.tensor([7], { dtype: "int64" })), kinds: rangeKinds, message: /range|bounds/i },
              { what: "gather index", call: () => t([2, 2]).gather(1, torch.tensor([[0], [9]], { dtype: "int64" })), kinds: rangeKinds },
              { what: "embedding id", call: () => F.embedding(torch.tensor([10], { dtype: "int64" }), t([10, 4])), kinds: rangeKinds },
              { what: "crossEntropy class", call: () => F.crossEntropy(t([2, 3]), torch.tensor([0, 5], { dtype: "int64" })), kinds: rangeKinds },
            ]
          : []),
      ]);
    });

    it("wrong argument types and shapes given as values", () => {
      checkAll([
        { what: "shape is a string", call: () => torch.zeros("abc" as unknown as number[], { device }), kinds: [TypeError] },
        { what: "shape has a fraction", call: () => torch.zeros([2.5], { device }), kinds: [TypeError, RangeError] },
        { what: "shape is negative", call: () => torch.zeros([-1], { device }), kinds: [RangeError, TorchError] },
        { what: "shape has NaN", call: () => torch.ones([NaN], { device }), kinds: [TypeError, RangeError] },
        { what: "add a string", call: () => t([2]).add("1" as unknown as number), kinds: [TypeError] },
        // An empty object is what a tensor of another thread becomes through postMessage: a TorchError saying so.
        { what: "mul an object", call: () => t([2]).mul({} as unknown as number), kinds: [TypeError, TorchError] },
        { what: "matmul a number", call: () => t([2]).matmul(3 as unknown as Tensor), kinds: [TypeError] },
        { what: "sum dim a string", call: () => t([2]).sum("0" as unknown as number), kinds: [TypeError] },
        { what: "tensor of strings", call: () => torch.tensor(["a", 1] as unknown as number[], { device }), kinds: [TypeError] },
        { what: "ragged nested array", call: () => torch.tensor([[1, 2], [3]] as unknown as number[], { device }), kinds: [TypeError, RangeError] },
        { what: "tensor of nothing", call: () => torch.tensor(undefined as unknown as number[], { device }), kinds: [TypeError] },
        { what: "cat of non-tensors", call: () => torch.cat([1, 2] as unknown as Tensor[]), kinds: [TypeError] },
        { what: "unknown device", call: () => torch.zeros([2], { device: "tpu" as "cpu" }), kinds: [TypeError, RangeError, TorchError], message: /tpu|device/i },
        { what: "to an unknown device", call: () => t([2]).to("gpu" as "cpu"), kinds: [TypeError, RangeError, TorchError] },
        { what: "fromBuffer byte count", call: () => torch.fromBuffer(new Uint8Array(7), "float32", [2]), kinds: [RangeError, TypeError, TorchError], message: /byte|size|length/i },
        { what: "fromBuffer not a buffer", call: () => torch.fromBuffer([1, 2] as unknown as Uint8Array, "uint8", [2]), kinds: [TypeError] },
        { what: "set grad to a number", call: () => { t([2]).requiresGrad_().grad = 3 as unknown as Tensor; }, kinds: [TypeError] },
        { what: "set grad of wrong shape", call: () => { t([2]).requiresGrad_().grad = t([3]); }, kinds: [TorchError, RangeError, TypeError] },
        { what: "F.gelu approximate", call: () => F.gelu(t([2]), { approximate: "fast" as "tanh" }), kinds: [TypeError, RangeError, TorchError] },
        { what: "crossEntropy reduction", call: () => F.crossEntropy(t([2, 3]), torch.zeros([2], { dtype: "int64", device }), { reduction: "avg" as "mean" }), kinds: [TypeError, RangeError, TorchError] },
        { what: "tidy without a function", call: () => torch.tidy(3 as unknown as () => void), kinds: [TypeError] },
      ]);
    });

    it("autograd misuse", () => {
      checkAll([
        {
          what: "backward twice without retainGraph",
          call: () => {
            const x = t([3]).requiresGrad_();
            const loss = x.mul(x).sum();
            loss.backward();
            loss.backward();
          },
          kinds: [TorchError],
          message: /second time|retain/i,
        },
        { what: "backward of non-scalar without gradient", call: () => t([3]).requiresGrad_().mul(2).backward(), kinds: [TorchError, TypeError, RangeError], message: /scalar|more than one element/i },
        { what: "backward without a graph", call: () => t([1]).sum().backward(), kinds: [TorchError], message: /grad/i },
        { what: "in-place on a leaf that requires grad", call: () => t([2]).requiresGrad_().add_(1), kinds: [TorchError], message: /leaf|in-place/i },
        {
          what: "autograd.grad of an unused input",
          call: () => {
            const x = t([2]).requiresGrad_();
            const y = t([2]).requiresGrad_();
            torch.autograd.grad(x.sum(), [y]);
          },
          kinds: [TorchError],
        },
        {
          what: "in-place change of a saved tensor",
          call: () => {
            const x = t([2]).requiresGrad_();
            const h = x.mul(2);
            const y = h.sin(); // sin saves its input for backward
            h.add_(1);
            y.sum().backward();
          },
          kinds: [TorchError],
          message: /modified|inplace|in-place/i,
        },
      ]);
    });

    it("disposed tensors", () => {
      const d = torch.ones([2], { device });
      d.dispose();
      checkAll([
        { what: "method", call: () => d.exp(), kinds: [Error], message: /disposed/i },
        { what: "argument", call: () => torch.ones([2], { device }).mul(d), kinds: [Error], message: /disposed/i },
        { what: "in a list", call: () => torch.stack([d, d]), kinds: [Error], message: /disposed/i },
        { what: "F", call: () => F.relu(d), kinds: [Error], message: /disposed/i },
        { what: "to", call: () => d.to("float64"), kinds: [Error], message: /disposed/i },
      ]);
    });
  });
}

describe("wrong devices and out of memory", () => {
  it("mixing devices, or a CUDA device that does not exist, is an Error", () => {
    const misuses: Misuse[] = [
      { what: "cuda:99", call: () => torch.zeros([2], { device: "cuda:99" }), kinds: [TorchError, RangeError, TypeError] },
    ];
    if (hasCuda()) {
      misuses.push(
        { what: "add cpu + cuda", call: () => torch.ones([2, 2]).matmul(torch.ones([2, 2], { device: "cuda" })), kinds: [TorchError, TypeError], message: /device|cuda|cpu/i },
        { what: "indexSelect cuda index on cpu tensor", call: () => torch.ones([3]).indexSelect(0, torch.zeros([1], { dtype: "int64", device: "cuda" })), kinds: [TorchError, TypeError] },
        { what: "cat across devices", call: () => torch.cat([torch.ones([1]), torch.ones([1], { device: "cuda" })]), kinds: [TorchError, TypeError] },
        { what: "bytes() of a CUDA tensor", call: () => torch.ones([1], { device: "cuda" }).bytes(), kinds: [TorchError, TypeError, RangeError] },
      );
    } else {
      misuses.push({ what: "cuda without CUDA", call: () => torch.zeros([2], { device: "cuda" }), kinds: [TorchError, RangeError, TypeError], message: /cuda|CUDA|device/ });
    }
    checkAll(misuses);
  });

  it("an impossible CPU allocation is an Error, and the process goes on", () => {
    // 2^48 float32 elements = 1 PiB: beyond the address space, so the allocation cannot succeed
    const err = caught(() => torch.empty([2 ** 48]));
    expectCleanError(err, { what: "1 PiB on CPU", kinds: [OutOfMemoryError, TorchError, RangeError], message: /memory|alloc|bytes/i });
    checkAll([]);
  });

  it("CUDA out of memory is an OutOfMemoryError and the cache is usable afterwards", () => {
    if (!hasCuda()) {
      expect(typeof OutOfMemoryError).toBe("function");
      return;
    }
    const err = caught(() => torch.empty([2 ** 40], { device: "cuda" })); // 4 TiB
    expectCleanError(err, { what: "4 TiB on CUDA", kinds: [OutOfMemoryError], message: /memory/i });
    torch.cuda.emptyCache();
    torch.tidy(() => {
      expect(flatValues(torch.ones([4], { device: "cuda" }).sum())).toEqual([4]);
    });
  });
});
