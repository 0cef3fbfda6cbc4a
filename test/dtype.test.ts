// Dtypes, devices and getting data in and out of tensors: typed arrays, nested arrays, item(),
// async data(), raw buffers, casts between dtypes and moves between devices.
// (Cast values and type promotion against PyTorch live in the golden cases of ops.test.ts.)
import { describe, expect, it } from "vitest";
import { torch, Tensor } from "../lib/torch/index.js";
import type { DType } from "../lib/torch/index.js";
import { decodeNumber, expectClose, flatValues, toleranceFor } from "./helpers/close.js";
import { canonicalDevice, devices } from "./helpers/devices.js";
import { loadGolden } from "./helpers/golden.js";

const typedArrayOf: Record<DType, string> = {
  float32: "Float32Array",
  float64: "Float64Array",
  bfloat16: "Float32Array",
  float16: "Float32Array",
  int64: "BigInt64Array",
  int32: "Int32Array",
  uint8: "Uint8Array",
  bool: "Uint8Array",
};

const golden = loadGolden("ops.json");
const castCase = (id: string) => golden.cases.find((c) => c.id === id)!;

for (const device of devices()) {
  describe(`dtypes and conversion on ${device}`, () => {
    it("typed arrays in: the array type decides the dtype", () => {
      torch.tidy(() => {
        const cases: Array<[ArrayLike<number | bigint>, DType]> = [
          [new Float32Array([1.5, -2]), "float32"],
          [new Float64Array([0.1, 2]), "float64"],
          [new Int32Array([7, -8]), "int32"],
          [new BigInt64Array([9n, -10n]), "int64"],
          [new Uint8Array([0, 255]), "uint8"],
        ];
        for (const [arr, dtype] of cases) {
          const t = torch.tensor(arr as Float32Array, { device });
          expect(t.dtype, dtype).toBe(dtype);
          expect(t.shape).toEqual([2]);
          expect(t.device).toBe(canonicalDevice(device));
          expect(flatValues(t)).toEqual(Array.from(arr as ArrayLike<number>, Number));
        }
        // Plain numbers follow torch.tensor: integers are int64, anything else float32.
        expect(torch.tensor([1, 2], { device }).dtype).toBe("int64");
        expect(torch.tensor([1, 2.5], { device }).dtype).toBe("float32");
        expect(torch.tensor([[true], [false]], { device }).dtype).toBe("bool");
      });
    });

    it("toTypedArray gives the documented array type for every dtype", () => {
      torch.tidy(() => {
        for (const dtype of Object.keys(typedArrayOf) as DType[]) {
          const t = torch.tensor([1, 0, 1], { dtype, device });
          expect(t.dtype).toBe(dtype);
          const ta = t.toTypedArray();
          expect(ta.constructor.name, dtype).toBe(typedArrayOf[dtype]);
          expect(Array.from(ta as ArrayLike<number>, Number), dtype).toEqual([1, 0, 1]);
        }
      });
    });

    it("toTypedArray and toArray read non-contiguous tensors in logical order", () => {
      torch.tidy(() => {
        const t = torch.arange(0, 6, 1, { device }).reshape([2, 3]).transpose(0, 1);
        expect(flatValues(t)).toEqual([0, 3, 1, 4, 2, 5]);
        expect(t.toArray()).toEqual([
          [0, 3],
          [1, 4],
          [2, 5],
        ]);
        const sliced = torch.arange(0, 10, 1, { device }).slice(0, 1, 9, 3);
        expect(flatValues(sliced)).toEqual([1, 4, 7]);
      });
    });

    it("toArray nests like the shape; int64 as numbers, bool as booleans, 0-d as a scalar", () => {
      torch.tidy(() => {
        expect(torch.tensor([[1.5, 2], [3, 4]], { device }).toArray()).toEqual([
          [1.5, 2],
          [3, 4],
        ]);
        expect(torch.tensor([[[1]], [[2]]], { dtype: "int64", device }).toArray()).toEqual([[[1]], [[2]]]);
        expect(torch.tensor([true, false], { device }).toArray()).toEqual([true, false]);
        expect(torch.tensor([2.5], { device }).reshape([]).toArray()).toBe(2.5);
      });
    });

    it("item() returns a JS number (bool as true/false or 1/0) and refuses several elements", () => {
      torch.tidy(() => {
        expect(torch.tensor([2.5], { device }).item()).toBe(2.5);
        expect(torch.tensor([[7]], { dtype: "int64", device }).item()).toBe(7);
        expect(torch.tensor([-3], { dtype: "int32", device }).item()).toBe(-3);
        expect(torch.tensor([0.1], { dtype: "float64", device }).item()).toBe(0.1);
        expect(torch.tensor([1.5], { dtype: "bfloat16", device }).item()).toBe(1.5);
        const b: unknown = torch.tensor([true], { device }).item();
        expect(b === true || b === 1).toBe(true);
        expect(() => torch.tensor([1, 2], { device }).item()).toThrow(Error);
      });
    });

    it("data() resolves to the same values as toTypedArray()", async () => {
      const t = torch.randn([1000], { device });
      const d = await t.data();
      expect(d.constructor.name).toBe("Float32Array");
      expect(Array.from(d as Float32Array)).toEqual(Array.from(t.toTypedArray() as Float32Array));
      const i = torch.arange(0, 5, 1, { device });
      const di = await i.data();
      expect(Array.from(di as BigInt64Array, Number)).toEqual([0, 1, 2, 3, 4]);
      t.dispose();
      i.dispose();
    });

    it("to(dtype), to({dtype}), float(), long() cast and keep the device", () => {
      torch.tidy(() => {
        const x = torch.tensor([1.7, -1.7, 0.5], { device });
        const l = x.to("int64");
        expect(l.dtype).toBe("int64");
        expect(l.device).toBe(canonicalDevice(device));
        expect(flatValues(l)).toEqual([1, -1, 0]);
        expect(x.to({ dtype: "float64" }).dtype).toBe("float64");
        expect(l.float().dtype).toBe("float32");
        expect(x.long().dtype).toBe("int64");
        // a cast to the same dtype keeps the values
        expectClose(x.to("float32"), [1.7, -1.7, 0.5], toleranceFor("float32"), "same dtype");
      });
    });

    it("bfloat16 and float16 round like PyTorch and read back as Float32Array", () => {
      torch.tidy(() => {
        for (const id of ["to/float32->bfloat16", "to/float32->float16"]) {
          const c = castCase(id);
          const src = c.inputs.x!;
          const x = torch.tensor(src.data as number[], { device });
          const y = x.to((c.out as { dtype: DType }).dtype);
          const ta = y.toTypedArray();
          expect(ta).toBeInstanceOf(Float32Array);
          // conversions are exact: compare with zero tolerance
          expect(Array.from(ta as Float32Array)).toEqual((c.out as { data: Array<number | string> }).data.map(decodeNumber));
        }
        // float16 overflow becomes infinity, bf16 keeps the range of float32
        expect(flatValues(torch.tensor([70000], { device }).to("float16"))).toEqual([Infinity]);
        expect(flatValues(torch.tensor([1e38], { device }).to("bfloat16"))[0]).toBeGreaterThan(9e37);
      });
    });
  });
}

describe("moving between devices", () => {
  for (const device of devices()) {
    it(`to('${device}') and back keeps values, dtype and shape`, () => {
      torch.tidy(() => {
        for (const dtype of ["float32", "float64", "bfloat16", "float16", "int64", "int32", "uint8", "bool"] as DType[]) {
          const x = torch.tensor([[1, 0], [0, 1]], { dtype });
          const moved = x.to(device);
          expect(moved.device).toBe(canonicalDevice(device));
          expect(moved.dtype).toBe(dtype);
          const back = moved.cpu();
          expect(back.device).toBe("cpu");
          expect(back.shape).toEqual([2, 2]);
          expect(flatValues(back)).toEqual([1, 0, 0, 1]);
        }
        const both = torch.tensor([1.25]).to({ device, dtype: "float64" });
        expect(both.device).toBe(canonicalDevice(device));
        expect(both.dtype).toBe("float64");
        if (device !== "cpu") {
          expect(torch.tensor([1]).cuda().device).toBe("cuda:0");
          expect(torch.tensor([1]).cuda(0).device).toBe("cuda:0");
        }
      });
    });
  }
});

describe("raw bytes", () => {
  it("fromBuffer copies little-endian bytes once into a tensor of the given dtype and shape", () => {
    torch.tidy(() => {
      const f = new Float32Array([1, -2.5, 3, 4, 5, 6]);
      const buf = new Uint8Array(f.buffer.slice(0));
      const t = torch.fromBuffer(buf, "float32", [2, 3]);
      expect(t.shape).toEqual([2, 3]);
      expect(t.dtype).toBe("float32");
      expect(flatValues(t)).toEqual([1, -2.5, 3, 4, 5, 6]);
      buf.fill(0); // the tensor owns a copy
      expect(flatValues(t)).toEqual([1, -2.5, 3, 4, 5, 6]);
      // bfloat16 1.0 is 0x3f80, -2.0 is 0xc000 (little-endian)
      const bf = torch.fromBuffer(new Uint8Array([0x80, 0x3f, 0x00, 0xc0]), "bfloat16", [2]);
      expect(flatValues(bf)).toEqual([1, -2]);
      const i64 = torch.fromBuffer(new Uint8Array(new BigInt64Array([2n ** 40n, -1n]).buffer), "int64", [2]);
      expect(flatValues(i64)).toEqual([2 ** 40, -1]);
      // a view into a larger buffer (byteOffset != 0), as safetensors readers produce
      const big = new Uint8Array(12);
      new Float32Array(big.buffer, 4, 2).set([7, 8]);
      expect(flatValues(torch.fromBuffer(big.subarray(4, 12), "float32", [2]))).toEqual([7, 8]);
      for (const device of devices()) {
        const d = torch.fromBuffer(new Uint8Array(new Float32Array([9]).buffer), "float32", [1], { device });
        expect(d.device).toBe(canonicalDevice(device));
        expect(flatValues(d)).toEqual([9]);
      }
    });
  });

  it("bytes() is a writable zero-copy view of a contiguous CPU tensor", () => {
    torch.tidy(() => {
      const t = torch.zeros([4]);
      const b = t.bytes();
      expect(b.byteLength).toBe(16);
      new Float32Array(b.buffer, b.byteOffset, 4).set([1, 2, 3, 4]);
      expect(flatValues(t)).toEqual([1, 2, 3, 4]);
      t.mul_(2);
      expect(Array.from(new Float32Array(b.buffer, b.byteOffset, 4))).toEqual([2, 4, 6, 8]);
    });
  });
});
