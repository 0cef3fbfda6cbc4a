// A training loop written against the API: a tiny character-level GPT-2 learns a short text.
//
//   node examples/train-char-gpt2.mjs [--steps N] [--device cpu|cuda]
//
// Prints the loss every 10 steps, a sample from the trained model, and finally one JSON line
// ({ firstLoss, lastLoss, ... }) that the tests read.
import { torch, optim, models, data } from "innerloop";

const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const steps = Number(flag("steps", "80"));
const device = flag("device", "cpu");

// The corpus: any text will do; this one is short enough to be learned in a few dozen steps.
const text = `Call me Ishmael. Some years ago, never mind how long precisely, having little or no money
in my purse, and nothing particular to interest me on shore, I thought I would sail about a little
and see the watery part of the world. It is a way I have of driving off the spleen and regulating
the circulation. `.repeat(4);
const tokenizer = data.CharTokenizer.fromText(text);
const ids = tokenizer.encode(text); // Int32Array of character ids

const seqLen = 32;
const batchSize = 8;
const model = new models.GPT2(
  { vocabSize: tokenizer.vocabSize, nPositions: seqLen, nEmbd: 48, nLayer: 2, nHead: 4, dropout: 0 },
  { seed: 0, device },
);
console.log(`model: ${model.numParameters()} parameters, vocabulary of ${tokenizer.vocabSize} characters`);

// AdamW with weight decay on matrices only (biases, norms and other 1-D parameters are left alone),
// a linear warmup and a cosine decay of the learning rate.
const optimizer = new optim.AdamW(optim.weightDecayGroups(model, 0.1), { lr: 3e-3, beta2: 0.99 });
const schedule = optim.warmupCosine({ lr: 3e-3, minLr: 3e-4, warmupSteps: 10, decaySteps: steps });

/** A batch of random windows: inputs x and next-character targets y, both [batchSize, seqLen]. */
function batch(rng) {
  const x = new BigInt64Array(batchSize * seqLen);
  const y = new BigInt64Array(batchSize * seqLen);
  for (let b = 0; b < batchSize; b++) {
    const start = Math.floor(rng() * (ids.length - seqLen - 1));
    for (let t = 0; t < seqLen; t++) {
      x[b * seqLen + t] = BigInt(ids[start + t]);
      y[b * seqLen + t] = BigInt(ids[start + t + 1]);
    }
  }
  return [torch.tensor(x, { device }).view([batchSize, seqLen]), torch.tensor(y, { device }).view([batchSize, seqLen])];
}

// A small seeded generator, so that the run is the same every time.
let state = 12345;
const rng = () => ((state = (state * 1103515245 + 12345) % 2147483648) / 2147483648);

const losses = [];
model.train();
for (let step = 0; step < steps; step++) {
  optimizer.setLr(schedule(step));
  // Everything created inside tidy is freed at its end: activations, gradients' graph, the batch.
  const loss = torch.tidy(() => {
    const [x, y] = batch(rng);
    const out = model.forward(x, { targets: y });
    out.loss.backward();
    optim.clipGradNorm_(model.parameters(), 1.0);
    optimizer.step();
    optimizer.zeroGrad();
    return out.loss.item();
  });
  losses.push(loss);
  if (step % 10 === 0 || step === steps - 1) console.log(`step ${String(step).padStart(3)}  loss ${loss.toFixed(4)}`);
}

model.eval();
const prompt = torch.tensor(BigInt64Array.from(tokenizer.encode("Call me "), BigInt), { device }).view([1, -1]);
const sample = torch.tidy(() => model.generate(prompt, { maxNewTokens: 40, temperature: 0, seed: 0 }).toTypedArray());
console.log(`sample: ${JSON.stringify(tokenizer.decode(sample))}`);

// The mean of the first and last five steps, so that one noisy batch does not decide.
const avg = (a) => a.reduce((s, v) => s + v, 0) / a.length;
console.log(
  JSON.stringify({
    firstLoss: avg(losses.slice(0, 5)),
    lastLoss: avg(losses.slice(-5)),
    steps,
    liveTensors: torch.memory().liveTensors,
    parameters: model.numParameters(),
  }),
);
