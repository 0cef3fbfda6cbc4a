// Autograd semantics against PyTorch (scenarios and values from scripts/golden/make_autograd.py),
// plus the random generator: manualSeed reproducibility on every device and statistics.
import { describe, expect, it } from "vitest";
import { F, torch, Tensor } from "../lib/torch/index.js";
import { expectClose, flatValues, toleranceFor } from "./helpers/close.js";
import { canonicalDevice, devices } from "./helpers/devices.js";
import { loadGolden, makeTensor, type TensorSpec } from "./helpers/golden.js";

type Scenario = Record<string, TensorSpec>;
const golden = loadGolden<{ scenarios: Record<string, Scenario>; rng: Record<string, Record<string, TensorSpec>> }>("autograd.json");
const S = golden.scenarios;
const f32 = toleranceFor("float32");

function close(t: Tensor | null, spec: TensorSpec, label: string): void {
  expect(t, `${label} exists`).toBeInstanceOf(Tensor);
  expect(t!.shape, `${label} shape`).toEqual(spec.shape);
  expectClose(t!, spec.data!, f32, label);
}

for (const device of devices()) {
  describe(`autograd on ${device}`, () => {
    const leaf = (spec: TensorSpec) => makeTensor(spec, device, true);
    const constant = (spec: TensorSpec) => makeTensor(spec, device, false);

    it("backward(gradient) on a non-scalar output", () => {
      torch.tidy(() => {
        const s = S.backwardWithGradient!;
        const x = leaf(s.x!);
        expect(x.isLeaf).toBe(true);
        expect(x.requiresGrad).toBe(true);
        expect(x.grad).toBeNull();
        const y = x.mul(x).mul(constant(s.w!));
        expect(y.isLeaf).toBe(false);
        expect(y.requiresGrad).toBe(true);
        close(y, s.y!, "y");
        y.backward(constant(s.gradient!));
        close(x.grad, s.xGrad!, "x.grad");
        expect(x.grad!.device).toBe(canonicalDevice(device));
      });
    });

    it("retainGraph allows a second backward, and gradients accumulate", () => {
      torch.tidy(() => {
        const s = S.retainGraph!;
        const x = leaf(s.x!);
        const loss = x.tanh().mul(constant(s.w!)).sum();
        close(loss, s.loss!, "loss");
        loss.backward(undefined, { retainGraph: true });
        close(x.grad, s.gradOnce!, "grad after one backward");
        loss.backward();
        close(x.grad, s.gradTwice!, "grad after two backwards");
      });
    });

    it("grad can be set to null, and the next backward starts afresh", () => {
      torch.tidy(() => {
        const s = S.retainGraph!;
        const x = leaf(s.x!);
        const w = constant(s.w!);
        x.tanh().mul(w).sum().backward();
        close(x.grad, s.gradOnce!, "first grad");
        x.grad = null;
        expect(x.grad).toBeNull();
        x.tanh().mul(w).sum().backward();
        close(x.grad, s.gradOnce!, "grad after reset");
        // grad is also settable to a tensor of the right shape
        x.grad = torch.zerosLike(x);
        x.tanh().mul(w).sum().backward();
        close(x.grad, s.gradOnce!, "grad after zeroing");
      });
    });

    it("retainGrad keeps the gradient of a non-leaf; others stay null", () => {
      torch.tidy(() => {
        const s = S.retainGrad!;
        const x = leaf(s.x!);
        const twice = x.mul(2);
        const h = twice.tanh();
        h.retainGrad();
        h.pow(2).mul(constant(s.w!)).sum().backward();
        close(h.grad, s.hGrad!, "h.grad");
        close(x.grad, s.xGrad!, "x.grad");
        expect(twice.grad).toBeNull();
      });
    });

    it("autograd.grad with gradOutputs returns one gradient per input and leaves .grad alone", () => {
      torch.tidy(() => {
        const s = S.gradWithGradOutputs!;
        const x = leaf(s.x!);
        const w = leaf(s.w!);
        const y = x.sin().mul(w);
        const grads = torch.autograd.grad(y, [x, w], { gradOutputs: constant(s.v!) });
        expect(grads).toHaveLength(2);
        close(grads[0]!, s.gx!, "dx");
        close(grads[1]!, s.gw!, "dw");
        expect(x.grad).toBeNull();
        expect(w.grad).toBeNull();
        // outputs as an array, gradOutputs as an array
        const again = torch.autograd.grad([x.sin().mul(w)], [x], { gradOutputs: [constant(s.v!)] });
        close(again[0]!, s.gx!, "dx (array form)");
      });
    });

    it("createGraph gives a differentiable gradient (double backward)", () => {
      torch.tidy(() => {
        const s = S.doubleBackward!;
        const x = leaf(s.x!);
        const f = x.tanh().pow(3).mul(constant(s.w!)).sum();
        const [g] = torch.autograd.grad(f, [x], { createGraph: true });
        close(g!, s.g!, "first derivative");
        expect(g!.requiresGrad).toBe(true);
        const z = g!.mul(constant(s.v!)).sum();
        const [hv] = torch.autograd.grad(z, [x], { retainGraph: true });
        close(hv!, s.hv!, "Hessian-vector product via autograd.grad");
        z.backward();
        close(x.grad, s.xGrad!, "Hessian-vector product via backward");
      });
    });

    it("gradient penalty through matmul and softmax", () => {
      torch.tidy(() => {
        const s = S.gradientPenalty!;
        const a = leaf(s.a!);
        const b = leaf(s.b!);
        const prob = F.softmax(a.matmul(b), -1);
        const f = prob.mul(torch.arange(0, 2, 1, { dtype: "float32", device })).sum();
        const [ga] = torch.autograd.grad(f, [a], { createGraph: true });
        close(ga!, s.ga!, "d f / d a");
        const penalty = ga!.pow(2).sum();
        close(penalty, s.penalty!, "penalty");
        penalty.backward();
        close(a.grad, s.aGrad!, "a.grad");
        close(b.grad, s.bGrad!, "b.grad");
      });
    });

    it("detach stops the gradient", () => {
      torch.tidy(() => {
        const s = S.detach!;
        const x = leaf(s.x!);
        const d = x.detach();
        expect(d.requiresGrad).toBe(false);
        expect(d.isLeaf).toBe(true);
        x.mul(d).sum().backward();
        close(x.grad, s.xGrad!, "x.grad");
      });
    });

    it("noGrad records nothing; enableGrad re-enables inside it", () => {
      torch.tidy(() => {
        const x = torch.ones([3], { device }).requiresGrad_();
        expect(torch.isGradEnabled()).toBe(true);
        const y = torch.noGrad(() => {
          expect(torch.isGradEnabled()).toBe(false);
          const inner = torch.enableGrad(() => {
            expect(torch.isGradEnabled()).toBe(true);
            return x.mul(2);
          });
          expect(inner.requiresGrad).toBe(true);
          expect(torch.isGradEnabled()).toBe(false);
          return x.mul(2);
        });
        expect(y.requiresGrad).toBe(false);
        expect(torch.isGradEnabled()).toBe(true);
        // the grad mode is restored when the callback throws
        expect(() =>
          torch.noGrad(() => {
            throw new Error("boom");
          }),
        ).toThrow("boom");
        expect(torch.isGradEnabled()).toBe(true);
        // in-place updates of a leaf are allowed under noGrad (what optimizers do)
        torch.noGrad(() => x.sub_(torch.onesLike(x)));
        expect(flatValues(x)).toEqual([0, 0, 0]);
        expect(x.requiresGrad).toBe(true);
        expect(x.isLeaf).toBe(true);
      });
    });

    it("every factory honours { requiresGrad: true } and makes a leaf", () => {
      torch.tidy(() => {
        const opts = { device, requiresGrad: true } as const;
        const made: Array<[string, () => Tensor]> = [
          ["tensor", () => torch.tensor([1.5, 2], opts)],
          ["zeros", () => torch.zeros([2], opts)],
          ["ones", () => torch.ones([2], opts)],
          ["empty", () => torch.empty([2], opts)],
          ["full", () => torch.full([2], 3, opts)],
          ["randn", () => torch.randn([2], opts)],
          ["rand", () => torch.rand([2], opts)],
          ["arange", () => torch.arange(0, 2, 1, { ...opts, dtype: "float32" })],
          ["linspace", () => torch.linspace(0, 1, 2, opts)],
          ["eye", () => torch.eye(2, 2, opts)],
          ["zerosLike", () => torch.zerosLike(torch.ones([2], { device }), opts)],
          ["onesLike", () => torch.onesLike(torch.ones([2], { device }), opts)],
        ];
        const failures: string[] = [];
        for (const [name, make] of made) {
          try {
            const t = make();
            if (!t.requiresGrad || !t.isLeaf) failures.push(`${name}: requiresGrad=${t.requiresGrad} isLeaf=${t.isLeaf}`);
          } catch (e) {
            failures.push(`${name} threw: ${(e as Error).message}`);
          }
        }
        expect(failures).toEqual([]);
      });
    });

    it("requiresGrad_ and the requiresGrad setter", () => {
      torch.tidy(() => {
        const x = torch.zeros([2], { device });
        expect(x.requiresGrad).toBe(false);
        expect(x.requiresGrad_()).toBe(x);
        expect(x.requiresGrad).toBe(true);
        x.requiresGrad = false;
        expect(x.requiresGrad).toBe(false);
        x.requiresGrad_(true);
        x.add(1).sum().backward();
        expect(flatValues(x.grad!)).toEqual([1, 1]);
      });
    });
  });

  describe(`random numbers on ${device}`, () => {
    it("manualSeed: the same seed gives the same numbers, a different seed different ones", () => {
      torch.tidy(() => {
        const draw = () => [
          ...flatValues(torch.randn([64], { device })),
          ...flatValues(torch.rand([16], { device })),
          ...flatValues(torch.randint(0, 1000, [16], { device })),
          ...flatValues(torch.empty([8], { device }).normal_(0, 1)),
          ...flatValues(torch.empty([8], { device }).uniform_(-1, 1)),
        ];
        torch.manualSeed(1234);
        const a = draw();
        torch.manualSeed(1234);
        const b = draw();
        torch.manualSeed(4321);
        const c = draw();
        expect(b).toEqual(a);
        expect(c).not.toEqual(a);
      });
    });

    it("dropout in training zeroes about p of the elements and scales the rest by 1/(1-p)", () => {
      torch.tidy(() => {
        torch.manualSeed(3);
        const x = torch.ones([20000], { device }).requiresGrad_();
        const y = F.dropout(x, { p: 0.25 });
        const v = flatValues(y);
        const zeros = v.filter((e) => e === 0).length / v.length;
        expect(Math.abs(zeros - 0.25)).toBeLessThan(0.02);
        expect(v.every((e) => e === 0 || Math.abs(e - 4 / 3) < 1e-6)).toBe(true);
        // the gradient goes through the same mask
        y.sum().backward();
        expect(flatValues(x.grad!)).toEqual(v);
        torch.manualSeed(3);
        expect(flatValues(F.dropout(torch.ones([20000], { device }), { p: 0.25 }))).toEqual(v);
      });
    });

    it("getRngState / setRngState replay the stream", () => {
      torch.tidy(() => {
        torch.manualSeed(5);
        const state = torch.getRngState(device);
        expect(state.dtype).toBe("uint8");
        const a = flatValues(torch.randn([10], { device }));
        torch.setRngState(state, device);
        const b = flatValues(torch.randn([10], { device }));
        expect(b).toEqual(a);
      });
    });

    it("randn, rand, randint, normal_, uniform_ have the right statistics and ranges", () => {
      torch.tidy(() => {
        torch.manualSeed(0);
        const n = 20000;
        const z = torch.randn([n], { device });
        expect(z.dtype).toBe("float32");
        expect(z.device).toBe(canonicalDevice(device));
        expect(Math.abs(z.mean().item() as number)).toBeLessThan(0.05);
        expect(Math.abs((z.std().item() as number) - 1)).toBeLessThan(0.05);
        const u = torch.rand([n], { device, dtype: "float64" });
        expect(u.dtype).toBe("float64");
        expect(u.min().item()).toBeGreaterThanOrEqual(0);
        expect(u.max().item()).toBeLessThan(1);
        expect(Math.abs((u.mean().item() as number) - 0.5)).toBeLessThan(0.02);
        const r = torch.randint(3, 7, [n], { device });
        expect(r.dtype).toBe("int64");
        expect(r.min().item()).toBe(3);
        expect(r.max().item()).toBe(6);
        const ri = torch.randint(0, 5, [100], { device, dtype: "int32" });
        expect(ri.dtype).toBe("int32");
        const g = torch.empty([n], { device }).normal_(2, 0.5);
        expect(Math.abs((g.mean().item() as number) - 2)).toBeLessThan(0.03);
        expect(Math.abs((g.std().item() as number) - 0.5)).toBeLessThan(0.03);
        const v = torch.empty([n], { device }).uniform_(-3, 1);
        expect(v.min().item()).toBeGreaterThanOrEqual(-3);
        expect(v.max().item()).toBeLessThan(1);
        expect(Math.abs((v.mean().item() as number) + 1)).toBeLessThan(0.05);
      });
    });
  });
}

describe("CPU generator matches PyTorch", () => {
  it("manualSeed(42) and manualSeed(7) reproduce PyTorch's numbers", () => {
    torch.tidy(() => {
      const r = golden.rng;
      torch.manualSeed(42);
      expectClose(torch.randn([5]), r.seed42!.randn5!.data!, f32, "randn(5)");
      expectClose(torch.randn([2, 20]), r.seed42!.randn2x20!.data!, f32, "randn(2,20)");
      expectClose(torch.rand([6]), r.seed42!.rand6!.data!, f32, "rand(6)");
      expectClose(torch.randint(0, 10, [8]), r.seed42!.randint!.data!, toleranceFor("int64"), "randint");
      torch.manualSeed(7);
      expectClose(torch.randn([5]), r.seed7!.randn5!.data!, f32, "randn(5)");
      expectClose(torch.randn([4], { dtype: "float64" }), r.seed7!.randnF64!.data!, toleranceFor("float64"), "randn f64");
    });
  });
});
