// nn: module naming, state dicts (and their strictness errors), modes, device/dtype moves, hook
// points and the layers' forward computations.
import { describe, it, expect } from "vitest";
import { torch, F, Tensor } from "../lib/torch/index.js";
import type { Device } from "../lib/torch/index.js";
import {
  Module,
  Linear,
  Embedding,
  LayerNorm,
  RMSNorm,
  Dropout,
  GELU,
  ReLU,
  SiLU,
  ModuleList,
  Sequential,
  HookPoint,
} from "../lib/nn/index.js";
import { devices, canonicalDevice } from "./helpers/devices.js";
import { expectClose } from "./helpers/close.js";

// Test files run in parallel processes on few cores: one intra-op thread per process avoids
// oversubscription, which slows libtorch's CPU kernels down by orders of magnitude under load.
torch.setNumThreads(1);

class Block extends Module {
  readonly fc: Linear;
  readonly norm: LayerNorm;
  readonly hook: HookPoint;
  constructor(i: number) {
    super();
    this.fc = this.registerModule("fc", new Linear(4, 4));
    this.norm = this.registerModule("norm", new LayerNorm(4));
    this.hook = this.registerModule("hook_out", new HookPoint(`layers.${i}.hook_out`));
  }
  forward(x: Tensor): Tensor {
    return this.hook.forward(this.norm.forward(this.fc.forward(x)));
  }
}

class Net extends Module {
  readonly emb: Embedding;
  readonly blocks: ModuleList<Block>;
  readonly head: Linear;
  scale: Tensor;
  counts: Tensor;
  scratch: Tensor | null;
  constructor() {
    super();
    this.emb = this.registerModule("emb", new Embedding(10, 4));
    this.blocks = this.registerModule("blocks", new ModuleList([new Block(0), new Block(1)]));
    this.head = this.registerModule("head", new Linear(4, 3, { bias: false }));
    this.scale = this.registerParameter("scale", torch.ones([4]));
    this.counts = this.registerBuffer("counts", torch.zeros([3], { dtype: "int64" }))!;
    this.scratch = this.registerBuffer("scratch", torch.zeros([2]), { persistent: false });
  }
  forward(ids: Tensor): Tensor {
    let h = this.emb.forward(ids).mul(this.scale);
    for (const b of this.blocks) h = b.forward(h);
    return this.head.forward(h);
  }
}

const PARAM_NAMES = [
  "scale",
  "emb.weight",
  "blocks.0.fc.weight",
  "blocks.0.fc.bias",
  "blocks.0.norm.weight",
  "blocks.0.norm.bias",
  "blocks.1.fc.weight",
  "blocks.1.fc.bias",
  "blocks.1.norm.weight",
  "blocks.1.norm.bias",
  "head.weight",
];

describe("Module naming", () => {
  it("gives dotted names in registration order", () => {
    const net = new Net();
    expect(net.namedParameters().map(([n]) => n)).toEqual(PARAM_NAMES);
    expect(net.parameters().length).toBe(PARAM_NAMES.length);
    expect(net.namedBuffers().map(([n]) => n)).toEqual(["counts", "scratch"]);
    const mods = [...net.namedModules()].map(([n]) => n);
    expect(mods).toEqual([
      "",
      "emb",
      "blocks",
      "blocks.0",
      "blocks.0.fc",
      "blocks.0.norm",
      "blocks.0.hook_out",
      "blocks.1",
      "blocks.1.fc",
      "blocks.1.norm",
      "blocks.1.hook_out",
      "head",
    ]);
    expect(net.numParameters()).toBe(4 + 40 + 2 * (16 + 4 + 4 + 4) + 12);
    for (const p of net.parameters()) {
      expect(p.requiresGrad).toBe(true);
      expect(p.isLeaf).toBe(true);
    }
    net.dispose();
  });

  it("refuses duplicate and dotted names", () => {
    const m = new Module();
    m.registerParameter("w", torch.zeros([1]));
    expect(() => m.registerBuffer("w", torch.zeros([1]))).toThrow(/already registered/);
    expect(() => m.registerModule("a.b", new Module())).toThrow(/without '\.'/);
    m.dispose();
  });

  it("lists a tied parameter once, and keeps parameters out of tidy scopes", () => {
    const before = torch.memory().liveTensors;
    const net = torch.tidy(() => {
      const n = new Net();
      torch.randn([100]); // a temporary, collected
      return n;
    });
    // Every parameter survived the scope.
    for (const p of net.parameters()) expect(p.isDisposed).toBe(false);
    const tied = new Module();
    const a = tied.registerModule("a", new Linear(2, 2));
    const b = tied.registerModule("b", new Module());
    b.registerParameter("w", a.weight);
    expect(tied.namedParameters().map(([n]) => n)).toEqual(["a.weight", "a.bias"]);
    expect(Object.keys(tied.stateDict())).toEqual(["a.weight", "a.bias", "b.w"]);
    net.dispose();
    tied.dispose();
    expect(torch.memory().liveTensors).toBe(before);
  });

  it("finds hook points by name", () => {
    const net = new Net();
    const hp = net.hookPoints();
    expect([...hp.keys()]).toEqual(["layers.0.hook_out", "layers.1.hook_out"]);
    const anon = new Module();
    anon.registerModule("x", new Module()).registerModule("hook", new HookPoint());
    expect([...anon.hookPoints().keys()]).toEqual(["x.hook"]);
    net.dispose();
  });
});

describe("state dicts", () => {
  it("holds parameters and persistent buffers only", () => {
    const net = new Net();
    const sd = net.stateDict();
    // PyTorch order: a module's own parameters, then its buffers, then its children.
    expect(Object.keys(sd)).toEqual(["scale", "counts", ...PARAM_NAMES.slice(1)]);
    expect(sd["head.weight"]).toBe(net.head.weight);
    net.dispose();
  });

  it("round-trips values between two modules", () => {
    const a = new Net();
    const b = new Net();
    const res = b.loadStateDict(a.stateDict());
    expect(res).toEqual({ missingKeys: [], unexpectedKeys: [] });
    for (const [n, p] of a.namedParameters()) {
      const q = b.namedParameters().find(([m]) => m === n)![1];
      expect(q.toArray()).toEqual(p.toArray());
      expect(q.requiresGrad).toBe(true);
    }
    a.dispose();
    b.dispose();
  });

  it("names missing, unexpected and mis-shaped keys, and copies nothing on error", () => {
    const net = new Net();
    const src = new Net();
    const sd: Record<string, Tensor> = { ...src.stateDict() };
    delete sd["blocks.1.fc.bias"];
    const extra = torch.zeros([2]);
    const wrong = torch.zeros([5, 4]);
    sd["blocks.9.fc.weight"] = extra;
    sd["blocks.0.fc.weight"] = wrong;
    const before = net.head.weight.toArray();
    let msg = "";
    try {
      net.loadStateDict(sd);
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toMatch(/missing keys: blocks\.1\.fc\.bias/);
    expect(msg).toMatch(/unexpected keys: blocks\.9\.fc\.weight/);
    expect(msg).toMatch(/blocks\.0\.fc\.weight: expected \[4, 4\], got \[5, 4\]/);
    expect(net.head.weight.toArray()).toEqual(before);

    // Non-strict: missing and unexpected keys are reported, shapes must still match.
    sd["blocks.0.fc.weight"] = src.blocks.at(0).fc.weight;
    const res = net.loadStateDict(sd, { strict: false });
    expect(res.missingKeys).toEqual(["blocks.1.fc.bias"]);
    expect(res.unexpectedKeys).toEqual(["blocks.9.fc.weight"]);
    expect(net.head.weight.toArray()).toEqual(src.head.weight.toArray());
    sd["blocks.0.fc.weight"] = wrong;
    expect(() => net.loadStateDict(sd, { strict: false })).toThrow(/mis-shaped/);
    extra.dispose();
    wrong.dispose();
    net.dispose();
    src.dispose();
  });

  it("converts dtype on load", () => {
    const net = new Net();
    const sd: Record<string, Tensor> = {};
    for (const [k, t] of Object.entries(net.stateDict())) sd[k] = t.to(t.dtype === "float32" ? "float64" : t.dtype).add(1);
    net.loadStateDict(sd);
    expect(net.scale.dtype).toBe("float32");
    expectClose(net.scale, [2, 2, 2, 2]);
    for (const t of Object.values(sd)) t.dispose();
    net.dispose();
  });
});

describe("modes, gradients and apply", () => {
  it("train()/eval() reach every module and switch dropout off", () => {
    const seq = new Sequential(new Linear(3, 3), new Dropout(0.5), new ReLU());
    expect(seq.training).toBe(true);
    seq.eval();
    expect([...seq.namedModules()].every(([, m]) => !m.training)).toBe(true);
    const drop = seq.at(1) as Dropout;
    const x = torch.ones([2, 3]);
    expect(drop.forward(x)).toBe(x);
    seq.train();
    expect(drop.training).toBe(true);
    torch.manualSeed(0);
    const y = drop.forward(torch.ones([1000]));
    const zeros = (y.eq(0).sum().item() as number) / 1000;
    expect(zeros).toBeGreaterThan(0.4);
    expect(zeros).toBeLessThan(0.6);
    x.dispose();
    y.dispose();
    seq.dispose();
  });

  it("zeroGrad drops gradients; apply visits children first", () => {
    const net = new Net();
    torch.tidy(() => {
      const ids = torch.tensor([[1, 2, 3]], { dtype: "int64" });
      net.forward(ids).sum().backward();
    });
    expect(net.head.weight.grad).not.toBeNull();
    net.zeroGrad();
    for (const p of net.parameters()) expect(p.grad).toBeNull();
    const order: string[] = [];
    net.blocks.at(0).apply((m) => order.push(m.constructor.name));
    expect(order).toEqual(["Linear", "LayerNorm", "HookPoint", "Block"]);
    net.dispose();
  });
});

describe("Module.to", () => {
  it("casts floating tensors, keeps others, updates fields and disposes the old tensors", () => {
    const net = new Net();
    const oldHead = net.head.weight;
    const oldCounts = net.counts;
    const values = net.head.weight.toArray() as number[][];
    net.to("float64");
    expect(net.head.weight.dtype).toBe("float64");
    expect(net.head.weight).not.toBe(oldHead);
    expect(oldHead.isDisposed).toBe(true);
    expect(net.head.weight.requiresGrad).toBe(true);
    expect(net.head.weight.isLeaf).toBe(true);
    expect(net.parameters()).toContain(net.head.weight);
    expect(net.stateDict()["head.weight"]).toBe(net.head.weight);
    expectClose(net.head.weight, values.flat());
    // Integer buffers keep their dtype and their identity.
    expect(net.counts).toBe(oldCounts);
    expect(net.counts.dtype).toBe("int64");
    // A no-op move keeps every tensor.
    const same = net.parameters();
    net.to({ dtype: "float64", device: "cpu" });
    expect(net.parameters()).toEqual(same);
    const out = torch.tidy(() => net.forward(torch.tensor([[0, 1]], { dtype: "int64" })).dtype);
    expect(out).toBe("float64");
    expect(() => net.to("int64")).toThrow(/floating-point/);
    net.dispose();
  });

  it("replaces a tied tensor by one shared tensor", () => {
    const m = new Module();
    const a = m.registerModule("a", new Linear(2, 2));
    const b = m.registerModule("b", new Module());
    b.registerParameter("weight", a.weight);
    m.to("float64");
    expect(b.stateDict().weight).toBe(a.weight);
    expect(m.stateDict()["b.weight"]).toBe(m.stateDict()["a.weight"]);
    m.dispose();
  });

  for (const device of devices()) {
    it(`moves to ${device} and computes there`, () => {
      const net = new Net();
      net.to(device as Device);
      for (const p of net.parameters()) expect(p.device).toBe(canonicalDevice(device));
      for (const b of net.buffers()) expect(b.device).toBe(canonicalDevice(device));
      const y = torch.tidy(() => {
        const out = net.forward(torch.tensor([[1, 2]], { dtype: "int64", device }));
        return out.sum().item() as number;
      });
      expect(Number.isFinite(y)).toBe(true);
      net.dispose();
    });
  }
});

describe("HookPoint", () => {
  it("is the identity without a hook, and applies a hook's replacement", () => {
    const hp = new HookPoint("h");
    const x = torch.ones([2]);
    expect(hp.forward(x)).toBe(x);
    const seen: string[] = [];
    hp.setHook((t, name) => {
      seen.push(name);
      return t.mul(3);
    });
    const y = hp.forward(x);
    expectClose(y, [3, 3]);
    expect(seen).toEqual(["h"]);
    hp.setHook(null);
    expect(hp.forward(x)).toBe(x);
    expect(() => hp.setHook(42 as never)).toThrow(TypeError);
    x.dispose();
    y.dispose();
  });

  it("lets a hook record activations and their gradients", () => {
    const net = new Net();
    const hp = net.hookPoints().get("layers.1.hook_out")!;
    let captured: Tensor | null = null;
    hp.setHook((t) => {
      t.retainGrad();
      captured = torch.keep(t);
      return t;
    });
    torch.tidy(() => net.forward(torch.tensor([[1, 2, 3]], { dtype: "int64" })).sum().backward());
    hp.setHook(null);
    expect(captured).not.toBeNull();
    const c = captured as unknown as Tensor;
    expect(c.shape).toEqual([1, 3, 4]);
    expect(c.grad).not.toBeNull();
    c.dispose();
    net.dispose();
  });
});

describe("layers", () => {
  for (const device of devices()) {
    it(`compute what their definitions say (${device})`, () => {
      torch.manualSeed(3);
      torch.tidy(() => {
        const x = torch.randn([2, 5, 6], { device });
        const lin = new Linear(6, 4).to(device as Device);
        expectClose(lin.forward(x), x.matmul(lin.weight.transpose(0, 1)).add(lin.bias!).toTypedArray() as Float32Array);
        const nob = new Linear(6, 4, { bias: false });
        expect(nob.bias).toBeNull();
        expect(nob.parameters().length).toBe(1);

        const ln = new LayerNorm(6, { eps: 1e-5 }).to(device as Device);
        torch.noGrad(() => {
          ln.weight!.normal_(1, 0.2);
          ln.bias!.normal_(0, 0.2);
        });
        const mu = x.mean(-1, { keepdim: true });
        const varr = x.var(-1, { keepdim: true, correction: 0 });
        const want = x.sub(mu).div(varr.add(1e-5).sqrt()).mul(ln.weight!).add(ln.bias!);
        expectClose(ln.forward(x), want.toTypedArray() as Float32Array);

        const rms = new RMSNorm(6, { eps: 1e-6 }).to(device as Device);
        torch.noGrad(() => rms.weight!.normal_(1, 0.2));
        const wantR = x.mul(x.pow(2).mean(-1, { keepdim: true }).add(1e-6).rsqrt()).mul(rms.weight!);
        expectClose(rms.forward(x), wantR.toTypedArray() as Float32Array);

        const emb = new Embedding(7, 3).to(device as Device);
        const ids = torch.tensor([[6, 0], [2, 2]], { dtype: "int64", device });
        expectClose(emb.forward(ids), emb.weight.indexSelect(0, ids.flatten()).toTypedArray() as Float32Array);

        expectClose(new GELU().forward(x), F.gelu(x).toTypedArray() as Float32Array);
        expectClose(new GELU({ approximate: "tanh" }).forward(x), F.gelu(x, { approximate: "tanh" }).toTypedArray() as Float32Array);
        expectClose(new ReLU().forward(x), x.clamp(0).toTypedArray() as Float32Array);
        expectClose(new SiLU().forward(x), x.mul(x.sigmoid()).toTypedArray() as Float32Array);

        const seq = new Sequential(lin, new ReLU(), new Linear(4, 2).to(device as Device));
        expect(seq.namedParameters().map(([n]) => n)).toEqual(["0.weight", "0.bias", "2.weight", "2.bias"]);
        const s = seq.forward(x);
        expect(s.shape).toEqual([2, 5, 2]);
        for (const m of [lin, nob, ln, rms, emb, seq]) m.dispose();
      });
    });
  }

  it("validates constructor arguments", () => {
    expect(() => new Linear(0, 3)).toThrow(/inFeatures/);
    expect(() => new Embedding(3, 1.5)).toThrow(/embeddingDim/);
    expect(() => new Dropout(1)).toThrow(/dropout p/);
    expect(() => new GELU({ approximate: "fast" as never })).toThrow(/approximate/);
    const list = new ModuleList([new ReLU()]);
    expect(() => list.at(3)).toThrow(/out of range/);
    expect(list.at(-1)).toBeInstanceOf(ReLU);
  });
});
