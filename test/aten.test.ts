// torch.aten / torch.ops: argument rules, overload choice, returns, complex dtypes and errors.
// Values are checked against PyTorch (computed here through python3 where they are not obvious).
import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";
import { existsSync, mkdirSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { torch, TorchError, type Tensor } from "../lib/torch/index.js";
import { native } from "../lib/torch/native.js";

const arr = (t: Tensor) => t.toArray();

describe("torch.aten: calls", () => {
  const a = torch.tensor([1, 2, 3]);
  const b = torch.tensor([10, 20, 30]);
  const m = torch.tensor([[1, 2], [3, 4]]);

  it("chooses the overload from the arguments, first match wins", () => {
    expect(arr(torch.aten.add(a, b))).toEqual([11, 22, 33]); // add.Tensor
    expect(arr(torch.aten.add(a, 2))).toEqual([3, 4, 5]); // add.Scalar
    expect(arr(torch.aten.add(a, b, { alpha: 2 }))).toEqual([21, 42, 63]);
    expect(arr(torch.aten.sum(m, 1))).toEqual([3, 7]); // int[1]: a bare number is broadcast
    expect(arr(torch.aten.sum(m, { dim: [0], keepdim: true }))).toEqual([[4, 6]]);
    expect(torch.aten.sum(m).item()).toBe(10);
    expect(torch.aten.sum(m, { dtype: "float64" }).dtype).toBe("float64");
  });

  it("takes every argument type of the interface", () => {
    const z = torch.aten.zeros([2, 3], { dtype: "int32", layout: "strided", device: "cpu" });
    expect([z.dtype, z.shape]).toEqual(["int32", [2, 3]]);
    expect(torch.aten.clone(m, { memory_format: "contiguous_format" }).isContiguous()).toBe(true);
    const idx = torch.tensor([1, 0], { dtype: "int64" });
    expect(arr(torch.aten.index(m, [null, idx]))).toEqual([[2, 1], [4, 3]]); // Tensor?[]
    expect(arr(torch.aten.cat([a, b]))).toEqual([1, 2, 3, 10, 20, 30]); // Tensor[]
    expect(arr(torch.aten.cat([a, b], { dim: 0 }))).toEqual([1, 2, 3, 10, 20, 30]);
    expect(arr(torch.aten.full([2], 1.5))).toEqual([1.5, 1.5]);
    expect(torch.aten.full([2], 7).dtype).toBe("int64"); // an integral number is an integer Scalar
    expect(torch.aten.full([2], true).dtype).toBe("bool");
    expect(arr(torch.aten.einsum("ij,j->i", [m, torch.tensor([1, 1])]))).toEqual([3, 7]); // str
    expect(arr(torch.aten.flip(m, [0]))).toEqual([[3, 4], [1, 2]]);
    expect(arr(torch.aten.roll(a, 1))).toEqual([3, 1, 2]);
    expect(torch.aten.view(m, [4]).shape).toEqual([4]);
    expect(torch.aten.empty([0], { dtype: "float64" }).shape).toEqual([0]); // empty list
  });

  it("returns tuples, lists, numbers, booleans and dtypes", () => {
    const [values, indices] = torch.aten.topk(a, 2);
    expect([arr(values), arr(indices)]).toEqual([[3, 2], [2, 1]]);
    expect(torch.aten.split(torch.arange(5), 2).map(arr)).toEqual([[0, 1], [2, 3], [4]]);
    expect(torch.aten.size(m, 1)).toBe(2);
    expect(torch.aten.is_nonzero(torch.tensor([1]))).toBe(true);
    expect(torch.aten.result_type(a, 2.5)).toBe("float32");
  });

  it("runs in-place variants and autograd", () => {
    const x = torch.tensor([1, 2, 3]);
    const y = torch.aten.mul_(x, 2);
    expect(arr(x)).toEqual([2, 4, 6]);
    expect(arr(y)).toEqual([2, 4, 6]);
    const w = torch.tensor([0.5, -1, 2], { requiresGrad: true });
    const loss = torch.aten.sum(torch.aten.erf(w));
    const [g] = torch.autograd.grad(loss, w);
    // d/dx erf(x) = 2/sqrt(pi) exp(-x^2)
    const want = [0.5, -1, 2].map((v) => (2 / Math.sqrt(Math.PI)) * Math.exp(-v * v));
    const got = Array.from(g!.toTypedArray() as Float32Array);
    got.forEach((v, k) => expect(v).toBeCloseTo(want[k]!, 5));
  });

  it("lists the namespace and the schemas", () => {
    expect("add" in torch.aten).toBe(true);
    expect("no_such_operator" in torch.aten).toBe(false);
    const names = torch.ops.names("aten");
    expect(names.length).toBeGreaterThan(1500);
    // Every dispatcher operator resolves (its overload list is built from the schemas).
    expect(names.filter((n) => !(n in torch.aten))).toEqual([]);
    expect(torch.ops.schemas("aten::add")[0]).toBe("aten::add.Tensor(Tensor self, Tensor other, *, Scalar alpha=1) -> Tensor");
    expect(torch.ops.aten).toBe(torch.aten);
    expect(torch.ops.aten.add).toBe(torch.aten.add); // resolved once, then a plain property
  });
});

describe("camelCase forms of common operators (values from PyTorch 2.13)", () => {
  const close = (t: Tensor, want: number[]) => Array.from(t.toTypedArray() as Float32Array).forEach((v, k) => expect(v).toBeCloseTo(want[k]!, 6));
  const x = torch.tensor([[1, 2, 0], [3, 0, 4]], { dtype: "float32" });
  const y = torch.tensor([[1, 0, 1], [2, 2, 2]], { dtype: "float32" });

  it("erf, flip, roll, argsort, nonzero, maskedSelect, einsum", () => {
    close(torch.erf(torch.tensor([0.5, -1])), [0.5204998850822449, -0.8427007794380188]);
    const m = torch.tensor([[1, 2], [3, 4]]);
    expect(arr(torch.flip(m, [1]))).toEqual([[2, 1], [4, 3]]);
    expect(arr(torch.roll(m, 1))).toEqual([[4, 1], [2, 3]]);
    expect(arr(torch.roll(m, 1, 0))).toEqual([[3, 4], [1, 2]]);
    expect(arr(torch.argsort(torch.tensor([3, 1, 2])))).toEqual([1, 2, 0]);
    expect(arr(torch.argsort(torch.tensor([3, 1, 2, 1]), -1, { descending: true, stable: true }))).toEqual([0, 2, 1, 3]);
    expect(arr(torch.nonzero(x))).toEqual([[0, 0], [0, 1], [1, 0], [1, 2]]);
    expect(arr(torch.maskedSelect(x, torch.aten.gt(x, 1)))).toEqual([2, 3, 4]);
    expect(arr(torch.einsum("ij,ij->i", x, y))).toEqual([1, 14]);
  });

  it("F.cosineSimilarity and F.mseLoss", () => {
    close(torch.F.cosineSimilarity(x, y), [0.3162277638912201, 0.8082903623580933]);
    close(torch.F.cosineSimilarity(x, y, { dim: 0 }), [0.9899494647979736, 0, 0.8944271802902222]);
    close(torch.F.mseLoss(x, y), [2.3333332538604736]);
    expect(torch.F.mseLoss(x, y, { reduction: "sum" }).item()).toBe(14);
    expect(arr(torch.F.mseLoss(x, y, { reduction: "none" }))).toEqual([[0, 4, 1], [1, 4, 4]]);
    expect(() => torch.F.mseLoss(x, y, { reduction: "avg" as "mean" })).toThrow(/mseLoss: reduction/);
    expect(() => torch.flip(x, ["a" as unknown as number])).toThrow(/torch\.aten\.flip.*argument 'dims'/s);
  });
});

describe("complex tensors", () => {
  it("views real pairs as complex and back; toTypedArray interleaves", () => {
    const c = torch.viewAsComplex(torch.tensor([[1, 2], [3, -4]], { dtype: "float32" }));
    expect([c.dtype, c.shape]).toEqual(["complex64", [2]]);
    expect(Array.from(c.toTypedArray() as Float32Array)).toEqual([1, 2, 3, -4]);
    const abs = torch.aten.abs(c);
    expect(abs.dtype).toBe("float32");
    expect(Array.from(abs.toTypedArray() as Float32Array)).toEqual([Math.hypot(1, 2), 5].map(Math.fround));
    // conj is lazy in libtorch: toTypedArray applies it
    expect(Array.from(torch.aten.conj(c).toTypedArray() as Float32Array)).toEqual([1, -2, 3, 4]);
    const r = torch.viewAsReal(torch.aten.mul(c, c));
    expect(arr(r)).toEqual([[-3, 4], [-7, -24]]);
    const d = torch.aten.zeros([3], { dtype: "complex128" });
    expect(d.dtype).toBe("complex128");
    expect((d.toTypedArray() as Float64Array).length).toBe(6);
    expect(torch.aten.view_as_real(d).shape).toEqual([3, 2]);
  });

  it("makes every listed dtype", () => {
    for (const dtype of ["float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool", "complex64", "complex128"] as const) {
      expect(torch.aten.ones([2], { dtype }).dtype).toBe(dtype);
      expect(torch.zeros([2], { dtype }).dtype).toBe(dtype);
    }
  });
});

describe("torch.aten: wrong calls never crash", () => {
  const a = torch.tensor([1, 2, 3]);
  const expectTypeError = (fn: () => unknown, ...parts: string[]) => {
    let err: unknown;
    try {
      fn();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TypeError);
    for (const p of parts) expect((err as Error).message).toContain(p);
  };

  it("wrong types, arity, keywords and names are TypeErrors naming the operator and argument", () => {
    expectTypeError(() => torch.aten.add(a, "x"), "torch.aten.add", "argument 'other'", "aten::add.Tensor(", "aten::add.Scalar(");
    expectTypeError(() => torch.aten.add(), "torch.aten.add", "missing argument 'self'");
    expectTypeError(() => torch.aten.add(a, a, 1, 2, 3), "torch.aten.add", "positional arguments");
    expectTypeError(() => torch.aten.add(a, a, { beta: 1 }), "unexpected keyword argument 'beta'");
    expectTypeError(() => torch.aten.add(a, a, { other: a }), "both by position and by name");
    expectTypeError(() => torch.aten.add(a, a, { alpha: "2" }), "argument 'alpha'");
    expectTypeError(() => torch.aten.sum(a, [0.5]), "argument 'dim'", "element 0");
    expectTypeError(() => torch.aten.zeros([2], { dtype: "float99" }), "unknown dtype 'float99'");
    expectTypeError(() => torch.aten.zeros([2], { device: "gpu" }), "unknown device 'gpu'");
    expectTypeError(() => torch.aten.zeros([2], { layout: "dense" }), "unknown layout 'dense'");
    expectTypeError(() => torch.aten.cat([a, 3]), "argument 'tensors'", "element 1");
    expectTypeError(() => torch.aten.neg(null), "argument 'self'", "may not be null");
    expectTypeError(() => torch.aten.neg(a, { self: a }), "torch.aten.neg");
    expectTypeError(() => torch.aten.neg(() => 1), "argument 'self'");
    expectTypeError(() => torch.aten.neg(10n as unknown as number), "argument 'self'");
    expectTypeError(() => torch.aten.no_such_operator(a), "torch.aten.no_such_operator", "aten::no_such_operator");
    expectTypeError(() => torch.ops.innerloop_nowhere.f(a), "torch.ops.innerloop_nowhere.f");
    expectTypeError(() => torch.ops.loadLibrary("/nonexistent/lib.so"), "torch.ops.loadLibrary", "/nonexistent/lib.so");
    const d = torch.tensor([1]);
    d.dispose();
    expectTypeError(() => torch.aten.neg(d), "argument 'self'", "disposed");
  });

  it("every operator refuses arguments of the wrong kinds with a TypeError", () => {
    // Five wrong calls for each of the ~1,600 ATen names: a string (only _print and from_file take
    // one alone), an unknown keyword, a list mixing kinds, a symbol, ten nulls.
    const wrong: unknown[][] = [["x"], [{ no_such_argument: 1 }], [[1, "a"]], [Symbol.iterator], Array(10).fill(null)];
    const accepted: string[] = [];
    let refused = 0;
    for (const name of torch.ops.names("aten")) {
      for (const [k, args] of wrong.entries()) {
        try {
          torch.tidy(() => void (torch.aten as any)[name](...args));
          accepted.push(`${name}#${k}`);
        } catch (e) {
          expect(e, name).toBeInstanceOf(TypeError);
          expect((e as Error).message.startsWith(`torch.aten.${name}:`), name).toBe(true);
          ++refused;
        }
      }
    }
    expect(accepted.sort()).toEqual(["_print#0", "from_file#0"]); // _print("x") prints, from_file("x") maps 0 bytes
    expect(refused).toBeGreaterThan(7500);
  });

  it("errors thrown inside libtorch are TorchErrors naming the operator", () => {
    const cases: [() => unknown, string][] = [
      [() => torch.aten.mm(a, a), "torch.aten.mm"],
      [() => torch.aten.view(a, [2]), "torch.aten.view"],
      [() => torch.aten.index_select(a, 3, torch.tensor([0], { dtype: "int64" })), "torch.aten.index_select"],
      [() => torch.aten.cat([]), "torch.aten.cat"],
      [() => torch.aten.zeros([-1]), "torch.aten.zeros"],
      [() => torch.aten.view_as_complex(a), "torch.aten.view_as_complex"],
      [() => torch.aten.reshape(a, [7]), "torch.aten.reshape"],
    ];
    for (const [fn, name] of cases) {
      let err: unknown;
      try {
        fn();
      } catch (e) {
        err = e;
      }
      expect(err, name).toBeInstanceOf(TorchError);
      expect((err as Error).message).toContain(name);
    }
  });

  it("the raw caller refuses anything but an operator handle", () => {
    for (const [k, bad] of [undefined, null, {}, 3, native.tensorList([a])].entries()) {
      expect(() => native.atenCall(bad, a), `case ${k}`).toThrow(TypeError);
    }
    expect(() => native.atenResolve(42)).toThrow(/argument 0 \(name\)/);
    expect(native.atenResolve("aten::no_such_operator")).toBeNull();
    expect(native.atenResolve("not a name")).toBeNull();
    // TorchScript-only overloads (aten::add.int) are not called: numbers alone match no ATen kernel.
    expectTypeError(() => torch.aten.add(1, 2), "torch.aten.add", "argument 'self'");
  });
});

describe("torch.ops with an extension library", () => {
  // A custom operator library built from C++ with TORCH_LIBRARY, loaded like torch.ops.load_library.
  const dir = join(tmpdir(), "innerloop-custom-op");
  const so = join(dir, "scale_add.so");
  // Compiled asynchronously: a minute of blocked event loop would time out the test worker's RPC.
  const build = async () => {
    if (existsSync(so)) return;
    mkdirSync(dir, { recursive: true });
    const src = join(dir, "scale_add.cc");
    writeFileSync(
      src,
      `#include <ATen/ATen.h>
#include <torch/library.h>
at::Tensor scale_add(const at::Tensor& x, const at::Tensor& y, double alpha) { return x + y * alpha; }
TORCH_LIBRARY(innerloop_test, m) { m.def("scale_add(Tensor x, Tensor y, float alpha=1.0) -> Tensor", &scale_add); }
`,
    );
    const [root, abi] = execFileSync("python3", ["-c", "import torch,os;print(os.path.dirname(torch.__file__));print(int(torch._C._GLIBCXX_USE_CXX11_ABI))"], { encoding: "utf8" })
      .trim()
      .split("\n");
    await promisify(execFile)("c++", [
      "-shared", "-fPIC", "-O1", "-std=c++17", "-w", `-D_GLIBCXX_USE_CXX11_ABI=${abi}`,
      `-I${root}/include`, src, `-L${root}/lib`, "-lc10", "-ltorch_cpu", `-Wl,-rpath,${root}/lib`, "-o", `${so}.tmp`,
    ]);
    renameSync(`${so}.tmp`, so);
  };

  it("loads the library and calls its operator by namespace, with autograd", { timeout: 600_000 }, async () => {
    await build();
    expect("scale_add" in torch.ops.innerloop_test).toBe(false);
    torch.ops.loadLibrary(so);
    expect(torch.ops.schemas("innerloop_test::scale_add")).toEqual([
      "innerloop_test::scale_add(Tensor x, Tensor y, float alpha=1.) -> Tensor",
    ]);
    const x = torch.tensor([1, 2], { dtype: "float32", requiresGrad: true });
    const out = torch.ops.innerloop_test.scale_add(x, torch.tensor([10, 20], { dtype: "float32" }), { alpha: 0.5 });
    expect(arr(out)).toEqual([6, 12]);
    const [g] = torch.autograd.grad(torch.aten.sum(out), x);
    expect(arr(g!)).toEqual([1, 1]);
    expect(() => torch.ops.innerloop_test.scale_add(x)).toThrow(/torch\.ops\.innerloop_test\.scale_add.*missing argument 'y'/s);
  });
});
