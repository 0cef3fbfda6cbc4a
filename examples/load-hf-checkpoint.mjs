// Loading a Hugging Face checkpoint: a GPT-2 folder with config.json and model.safetensors, as
// transformers' save_pretrained writes it (and as `innerloop train` writes its run directories).
//
//   node examples/load-hf-checkpoint.mjs [DIR] [--device cpu|cuda]
//
// Without DIR, the example first saves a tiny random GPT-2 with saveGPT2 into a temporary folder.
// With DIR from examples/make_tiny_hf_gpt2.py, DIR/reference.json holds the ids to run and what
// transformers computed on them; the example then prints both side by side.
// The last line printed is JSON that the tests read.
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { torch, models } from "innerloop";

const args = process.argv.slice(2);
const device = args.includes("--device") ? args[args.indexOf("--device") + 1] : "cpu";
let dir = args.find((a, i) => !a.startsWith("--") && args[i - 1] !== "--device");
const madeHere = !dir;

if (madeHere) {
  dir = mkdtempSync(join(tmpdir(), "innerloop-gpt2-"));
  const tiny = new models.GPT2({ vocabSize: 61, nPositions: 32, nEmbd: 24, nLayer: 2, nHead: 3 }, { seed: 0 });
  models.saveGPT2(dir, tiny);
  tiny.dispose();
  console.log(`saved a tiny random GPT-2 to ${dir}`);
}

const model = models.loadGPT2(dir, { device }).eval();
const c = model.config;
console.log(`loaded ${dir}: ${c.nLayer} layers, ${c.nHead} heads, width ${c.nEmbd}, vocabulary ${c.vocabSize}, ${model.numParameters()} parameters`);

const refPath = join(dir, "reference.json");
const ref = existsSync(refPath) ? JSON.parse(readFileSync(refPath, "utf8")) : null;
const ids = ref ? ref.ids : Array.from({ length: 17 }, (_, i) => (7 * i + 3) % c.vocabSize);

const out = torch.tidy(() => {
  const x = torch.tensor([ids], { dtype: "int64", device });
  const T = ids.length - 1;
  const { logits, loss } = model.forward(x.narrow(1, 0, T), { targets: x.narrow(1, 1, T) });
  const generated = model.generate(x.narrow(1, 0, 5), { maxNewTokens: 8, temperature: 0 });
  return {
    logitsShape: logits.shape,
    loss: loss.item(),
    lastLogits: Array.from(logits.narrow(1, T - 1, 1).flatten().narrow(0, 0, 6).toTypedArray()),
    generated: Array.from(generated.flatten().toTypedArray(), Number),
  };
});

console.log(`logits ${JSON.stringify(out.logitsShape)}, mean loss ${out.loss.toFixed(6)}${ref ? ` (transformers: ${ref.loss.toFixed(6)})` : ""}`);
console.log(`greedy continuation of ${JSON.stringify(out.generated.slice(0, 5))}: ${JSON.stringify(out.generated.slice(5))}`);
if (ref) console.log(`transformers' continuation: ${JSON.stringify(ref.generated.slice(5))}`);
console.log(JSON.stringify({ dir, parameters: model.numParameters(), ...out }));
model.dispose();
if (madeHere) rmSync(dir, { recursive: true, force: true });
