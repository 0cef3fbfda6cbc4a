// A custom analysis with hooks: run a tiny GPT-2, record the residual stream at its hook points and
// print the norm of each layer's hidden states and of the loss gradient with respect to them.
//
//   node examples/hook-norms.mjs [--device cpu|cuda]
//
// Two ways to hook in are shown:
//   1. analysis.runWithCache: records the hook points a filter selects, and their gradients;
//   2. a hand-written hook on one HookPoint, which may also change what flows on (here: nothing).
// The last line printed is JSON that the tests read.
import { torch, models, analysis } from "innerloop";

const args = process.argv.slice(2);
const device = args.includes("--device") ? args[args.indexOf("--device") + 1] : "cpu";

const config = { vocabSize: 50, nPositions: 16, nEmbd: 32, nLayer: 3, nHead: 4, dropout: 0 };
const model = new models.GPT2(config, { seed: 0, device }).eval();
const [B, T] = [4, 16];
torch.manualSeed(1);
const ids = torch.randint(0, config.vocabSize, [B, T + 1], { device });
const inputs = ids.narrow(1, 0, T);
const targets = ids.narrow(1, 1, T);

console.log("hook points:", [...model.hookPoints().keys()].filter((n) => n.startsWith("blocks.0.")).join(", "), "...");

// 1. h^0 .. h^L: the input of every block and the output of the last one.
const names = [...Array.from({ length: config.nLayer }, (_, l) => `blocks.${l}.hook_resid_pre`), `blocks.${config.nLayer - 1}.hook_resid_post`];
const result = torch.tidy(() => {
  const cache = analysis.runWithCache(model, inputs, { namesFilter: names, withGrads: true, targets });
  const rows = names.map((name) => {
    const h = cache.acts.get(name); // [B, T, D]
    const g = cache.grads.get(name); // dℓ/dh, same shape; ℓ = the sum of the token losses
    const norms = h.norm(2, -1); // [B, T]: ‖h_t‖ for every window and position
    return {
      name,
      shape: h.shape,
      hiddenNorm: norms.mean().item(),
      firstTokenNorm: norms.narrow(1, 0, 1).mean().item(),
      restNorm: norms.narrow(1, 1, T - 1).mean().item(),
      gradNorm: g.norm(2, -1).mean().item(),
    };
  });
  return { rows, loss: cache.loss.item() / (B * T) };
});

console.log("layer  hook                         ‖h‖ mean   ‖h_0‖    ‖h_t>0‖   ‖∂ℓ/∂h‖");
result.rows.forEach((r, l) => {
  const cols = [r.hiddenNorm, r.firstTokenNorm, r.restNorm, r.gradNorm].map((v) => v.toFixed(4).padStart(9));
  console.log(`${String(l).padStart(5)}  ${r.name.padEnd(27)}${cols.join("")}`);
});
console.log(`mean loss ${result.loss.toFixed(4)}; activations ${JSON.stringify(result.rows[0].shape)}`);

// 2. A hand-written hook: the norm of each block's MLP update, taken as the forward pass runs.
const mlpNorms = [];
const points = model.hookPoints();
for (let l = 0; l < config.nLayer; l++) {
  points.get(`blocks.${l}.hook_mlp_out`).setHook((x, name) => {
    mlpNorms.push({ name, norm: x.norm(2, -1).mean().item() });
    return x; // returning another tensor would patch the activation
  });
}
try {
  torch.tidy(() => torch.noGrad(() => model.forward(inputs)));
} finally {
  for (let l = 0; l < config.nLayer; l++) points.get(`blocks.${l}.hook_mlp_out`).setHook(null);
}
for (const m of mlpNorms) console.log(`${m.name}: ‖mlp update‖ mean ${m.norm.toFixed(4)}`);

console.log(
  JSON.stringify({
    layers: result.rows.length,
    shape: result.rows[0].shape,
    hiddenNorm: result.rows.map((r) => r.hiddenNorm),
    firstTokenNorm: result.rows.map((r) => r.firstTokenNorm),
    gradNorm: result.rows.map((r) => r.gradNorm),
    mlpNorm: mlpNorms.map((m) => m.norm),
    loss: result.loss,
  }),
);
