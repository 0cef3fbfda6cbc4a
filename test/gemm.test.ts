// Float32 matrix products on the CPU go to oneDNN where it is faster than MKL (native/gemm.cc):
// linear (forward and its own autograd node), mm and matmul (and the fused GPT-2 block's products) of at least 2^24
// multiply-adds. Checked here against the same products in float64 (which always take at::mm):
// values, gradients, second-order gradients through linear, transposed operands, and that
// small products, other dtypes and tracked mm/matmul keep libtorch's own ops. INNERLOOP_GEMM=blas
// turns the route off.
import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { torch, F, type Tensor } from "../lib/torch/index.js";

const onednn = torch.gemmBackend() === "onednn";

function maxRelDiff(a: Tensor, b: Tensor): number {
  return torch.tidy(() => {
    const d = a.double().sub(b.double()).abs().max().item();
    return d / Math.max(b.double().abs().max().item(), 1e-30);
  });
}

describe("float32 matrix products through oneDNN", () => {
  it("reports its backend", () => {
    expect(["onednn", "blas"]).toContain(torch.gemmBackend());
  });

  it("linear with a bias: values and every gradient agree with float64, through the package's own node", () => {
    torch.manualSeed(1);
    const x = torch.randn([4, 512, 128]);
    const w = torch.randn([384, 128]).mul(0.1);
    const b = torch.randn([384]);
    for (const t of [x, w, b]) t.requiresGrad = true;
    const y = F.linear(x, w, b);
    expect(y.shape).toEqual([4, 512, 384]);
    if (onednn) expect(y.gradFn).toBe("LinearBiasBackward");
    const g = torch.randn([4, 512, 384]);
    y.backward(g);

    const x64 = x.detach().double();
    const w64 = w.detach().double();
    const b64 = b.detach().double();
    for (const t of [x64, w64, b64]) t.requiresGrad = true;
    const y64 = F.linear(x64, w64, b64);
    y64.backward(g.double());
    expect(maxRelDiff(y, y64)).toBeLessThan(1e-5);
    expect(maxRelDiff(x.grad!, x64.grad!)).toBeLessThan(1e-5);
    expect(maxRelDiff(w.grad!, w64.grad!)).toBeLessThan(1e-5);
    expect(maxRelDiff(b.grad!, b64.grad!)).toBeLessThan(1e-5);
  });

  it("linear without a bias, with a transposed weight (GPT-2's Conv1D layout), only the weight tracked", () => {
    torch.manualSeed(2);
    const x = torch.randn([1024, 256]);
    const wIn = torch.randn([256, 512]).mul(0.05); // [in, out], used as its transpose
    wIn.requiresGrad = true;
    const y = F.linear(x, wIn.transpose(0, 1));
    if (onednn) expect(y.gradFn).toBe("LinearBackward");
    y.square().sum().backward();
    const w64 = wIn.detach().double();
    w64.requiresGrad = true;
    F.linear(x.double(), w64.transpose(0, 1)).square().sum().backward();
    expect(maxRelDiff(wIn.grad!, w64.grad!)).toBeLessThan(1e-5);
    expect(x.grad).toBeNull();
  });

  it("second-order gradients through linear (create_graph) agree with float64", () => {
    torch.manualSeed(3);
    const run = (dtype: "float32" | "float64") => {
      const x = torch.randn([512, 128]).to({ dtype });
      const w = torch.randn([256, 128]).mul(0.1).to({ dtype });
      x.requiresGrad = true;
      w.requiresGrad = true;
      const y = F.linear(x, w).tanh().sum();
      const [gx] = torch.autograd.grad([y], [x], { createGraph: true });
      const [gw] = torch.autograd.grad([gx!.square().sum()], [w]);
      return gw!;
    };
    torch.manualSeed(3);
    const g32 = run("float32");
    torch.manualSeed(3);
    const g64 = run("float64");
    expect(maxRelDiff(g32, g64)).toBeLessThan(1e-4);
  });

  it("mm and matmul without autograd, plain and transposed operands, agree with float64", () => {
    torch.manualSeed(4);
    const a = torch.randn([700, 300]);
    const b = torch.randn([300, 900]);
    const a64 = a.double();
    const b64 = b.double();
    expect(maxRelDiff(a.mm(b), a64.mm(b64))).toBeLessThan(1e-5);
    expect(maxRelDiff(a.matmul(b), a64.matmul(b64))).toBeLessThan(1e-5);
    const at = a.transpose(0, 1).contiguous().transpose(0, 1); // a, stored transposed
    const bt = b.transpose(0, 1).contiguous().transpose(0, 1);
    expect(maxRelDiff(at.mm(bt), a64.mm(b64))).toBeLessThan(1e-5);
    // A strided view that is neither plain nor transposed takes at::mm.
    const every2nd = torch.randn([700, 600]).narrow(1, 0, 300);
    expect(maxRelDiff(every2nd.mm(b), every2nd.double().mm(b64))).toBeLessThan(1e-5);
  });

  it("keeps libtorch's own ops for tracked mm, small products and other dtypes", () => {
    const a = torch.randn([600, 300]);
    a.requiresGrad = true;
    const b = torch.randn([300, 600]);
    expect(a.mm(b).gradFn).toBe("MmBackward0");
    const s = torch.randn([8, 64]);
    s.requiresGrad = true;
    expect(F.linear(s, torch.randn([256, 64])).gradFn).not.toMatch(/Linear(Bias)?Backward$/);
    const h = torch.randn([600, 300]).double();
    h.requiresGrad = true;
    expect(F.linear(h, torch.randn([300, 300]).double()).gradFn).not.toMatch(/^Linear(Bias)?Backward$/);
  });

  it("INNERLOOP_GEMM=blas keeps every product on at::mm, with the same values to float32 precision", () => {
    const script = `
      import { torch, F } from ${JSON.stringify(new URL("../lib/torch/index.ts", import.meta.url).pathname)};
      torch.manualSeed(5);
      const x = torch.randn([512, 128]); const w = torch.randn([384, 128]);
      x.requiresGrad = true;
      const y = F.linear(x, w);
      console.log(JSON.stringify({ backend: torch.gemmBackend(), gradFn: y.gradFn, sum: y.detach().double().sum().item() }));`;
    const out = execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      env: { ...process.env, INNERLOOP_GEMM: "blas" },
      encoding: "utf8",
    });
    const r = JSON.parse(out.trim().split("\n").pop()!) as { backend: string; gradFn: string; sum: number };
    expect(r.backend).toBe("blas");
    expect(r.gradFn).not.toMatch(/^Linear(Bias)?Backward$/);
    torch.manualSeed(5);
    const x = torch.randn([512, 128]);
    const w = torch.randn([384, 128]);
    const here = F.linear(x, w).double().sum().item();
    expect(Math.abs(here - r.sum)).toBeLessThan(1e-3 * Math.max(1, Math.abs(r.sum)));
  });
});
