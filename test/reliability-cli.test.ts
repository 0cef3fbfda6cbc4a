// Every command of the CLI validates what it is given: unknown flags are refused and bad values
// named (one line, exit 2) by every command, not only `train`; a model directory's config.json is
// checked field by field, with an error that names the field (one line, no stack trace unless
// --verbose). Runs main() in this process with captured output; nothing here trains.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Writable } from "node:stream";
import { main } from "../lib/cli/main.js";
import { GPT2, saveGPT2, gpt2Config } from "../lib/models/index.js";

interface Out {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(args: string[]): Promise<Out> {
  const capture = () => {
    const chunks: string[] = [];
    return {
      stream: new Writable({
        write(c, _e, cb) {
          chunks.push(String(c));
          cb();
        },
      }),
      text: () => chunks.join(""),
    };
  };
  const out = capture();
  const err = capture();
  const code = await main(args, { stdout: out.stream, stderr: err.stream });
  return { code, stdout: out.text(), stderr: err.text() };
}

const lines = (s: string) => s.split("\n").filter((l) => l.trim() !== "");
const STACK = /\n\s+at /;

let tmp: string;
let modelDir: string;
let baseConfig: Record<string, unknown>;
let textFile: string;

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "innerloop-relcli-"));
  modelDir = path.join(tmp, "model");
  const m = new GPT2(gpt2Config({ vocabSize: 40, nPositions: 16, nEmbd: 32, nLayer: 2, nHead: 2 }));
  // A character vocabulary saved with the model, as `innerloop train` does, so that the commands
  // get past the tokenizer to the model's fields.
  const vocab = Array.from({ length: 40 }, (_, i) => String.fromCodePoint(48 + i));
  saveGPT2(modelDir, m, { innerloop: { tokenizer: { kind: "char", vocab } } });
  m.dispose();
  textFile = path.join(tmp, "text.txt");
  fs.writeFileSync(textFile, "ABCDEFGHIJ0123456789".repeat(10));
  baseConfig = JSON.parse(fs.readFileSync(path.join(modelDir, "config.json"), "utf8"));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe("every command refuses unknown flags and bad values", () => {
  const commands = ["train", "sample", "analyze", "report", "reproduce", "bench"];
  for (const cmd of commands) {
    it(`${cmd}: an unknown flag exits 2 with one line naming it, no stack`, async () => {
      const r = await run([cmd, "--no-such-flag", "1"]);
      expect(r.code).toBe(2);
      expect(lines(r.stderr)).toEqual([`innerloop ${cmd}: unknown flag --no-such-flag (see innerloop ${cmd} --help)`]);
      expect(r.stdout).toBe("");
    });
  }

  const badValues: Array<[string, string[], RegExp]> = [
    ["sample", ["--model", "m", "--prompt", "x", "--temperature", "hot"], /--temperature must be a number >= 0 \(got "hot"\)/],
    ["sample", ["--model", "m", "--prompt", "x", "--top-k", "0"], /--top-k must be an integer >= 1/],
    ["analyze", ["--model", "m", "--data", "d", "--seq-len", "-4", "--out", "o"], /--seq-len must be an integer >= 1/],
    ["analyze", ["--model", "m", "--data", "d", "--dtype", "float8", "--out", "o"], /--dtype must be one of float32, float64, bfloat16, float16/],
    ["report", ["--run"], /--run needs a value/],
    ["reproduce", ["--steps", "1.5", "--out", "o"], /--steps must be an integer >= 1/],
    ["reproduce", ["--device", "tpu", "--out", "o"], /--device must be cpu, cuda or cuda:N/],
    ["bench", ["--config", "huge"], /--config must be a comma-separated list of micro, tiny, mid, gpt2-124m/],
    ["bench", ["--soak", "0"], /--soak must be an integer >= 1/],
    ["bench", ["--reps", "many"], /--reps must be an integer/],
  ];
  for (const [cmd, args, re] of badValues) {
    it(`${cmd} ${args.join(" ")}: exit 2, one line naming the flag and what is allowed`, async () => {
      const r = await run([cmd, ...args]);
      expect(r.code).toBe(2);
      expect(lines(r.stderr)).toHaveLength(1);
      expect(r.stderr).toMatch(re);
      expect(r.stderr).not.toMatch(STACK);
    });
  }

  it("--verbose adds the stack to a usage error, and only then", async () => {
    const r = await run(["analyze", "--bogus", "--verbose"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(STACK);
  });
});

describe("a model directory's config.json is validated field by field", () => {
  const cases: Array<[string, (c: Record<string, unknown>) => void, RegExp]> = [
    ["n_layer of the wrong type", (c) => (c.n_layer = "two"), /config\.json: n_layer must be a positive integer, got "two"/],
    ["a negative n_embd", (c) => (c.n_embd = -3), /config\.json: n_embd must be a positive integer, got -3/],
    ["a fractional vocab_size", (c) => (c.vocab_size = 0.5), /config\.json: vocab_size must be a positive integer, got 0\.5/],
    ["a missing n_layer", (c) => delete c.n_layer, /config\.json: n_layer is missing \(a positive integer\)/],
    ["a missing n_positions", (c) => delete c.n_positions, /config\.json: n_positions is missing/],
    ["heads that do not divide the width", (c) => (c.n_head = 5), /config\.json: n_embd \(32\) must be divisible by n_head \(5\)/],
    ["a dropout of 2", (c) => (c.resid_pdrop = 2), /config\.json: resid_pdrop must be a number in \[0, 1\), got 2/],
    ["a zero layer_norm_epsilon", (c) => (c.layer_norm_epsilon = 0), /config\.json: layer_norm_epsilon must be a positive number, got 0/],
    ["bias as a string", (c) => (c.bias = "yes"), /config\.json: bias must be true or false, got "yes"/],
    ["an unsupported activation", (c) => (c.activation_function = "relu"), /config\.json: activation_function "relu" is not supported/],
    ["an unsupported model_type", (c) => (c.model_type = "bert"), /model_type/],
  ];
  let k = 0;
  for (const [what, edit, re] of cases) {
    it(`${what}: one line naming the field, exit 1, for sample and analyze`, async () => {
      const dir = path.join(tmp, `bad-${k++}`);
      fs.cpSync(modelDir, dir, { recursive: true });
      const c = structuredClone(baseConfig);
      edit(c);
      fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(c));
      for (const args of [
        ["sample", "--model", dir, "--prompt", "AB", "--max-new-tokens", "1"],
        ["analyze", "--model", dir, "--data", textFile, "--seq-len", "4", "--out", path.join(tmp, "never")],
      ]) {
        const r = await run(args);
        expect(r.code, r.stderr).toBe(1);
        expect(lines(r.stderr), r.stderr).toHaveLength(1);
        expect(r.stderr).toMatch(re);
        // One line of reasonable length (not a dump of every missing weight).
        expect(r.stderr.length).toBeLessThan(300);
        expect(r.stderr).not.toMatch(STACK);
        expect(fs.existsSync(path.join(tmp, "never"))).toBe(false);
      }
    });
  }

  it("a config.json that is not JSON names the file", async () => {
    const dir = path.join(tmp, "bad-json");
    fs.cpSync(modelDir, dir, { recursive: true });
    fs.writeFileSync(path.join(dir, "config.json"), "{ nope");
    const r = await run(["sample", "--model", dir, "--prompt", "x"]);
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toHaveLength(1);
    expect(r.stderr).toContain(`${path.join(dir, "config.json")}: invalid JSON`);
    const v = await run(["sample", "--model", dir, "--prompt", "x", "--verbose"]);
    expect(v.stderr).toMatch(STACK);
  });

  // The LLaMA and GPT-NeoX readers, on the transformers-written fixtures.
  const FIX = path.resolve(import.meta.dirname, "fixtures", "pretrained");
  const hfCases: Array<[string, string, (c: Record<string, unknown>) => void, RegExp]> = [
    ["llama", "hidden_size of the wrong type", (c) => (c.hidden_size = "big"), /config\.json: hidden_size must be a positive integer, got "big"/],
    ["llama", "a missing num_hidden_layers", (c) => delete c.num_hidden_layers, /config\.json: num_hidden_layers must be a positive integer, got undefined/],
    ["llama", "an unsupported rope_scaling type", (c) => (c.rope_scaling = { rope_type: "yarn", factor: 2 }), /config\.json: rope_scaling\.rope_type = "yarn" is not supported \(supported: default, linear, llama3\)/],
    ["neox-seq", "heads that do not divide the width", (c) => (c.num_attention_heads = 5), /config\.json: hidden_size \(48\) must be divisible by num_attention_heads \(5\)/],
  ];
  for (const [arch, what, edit, re] of hfCases) {
    it(`${arch}: ${what} is one line naming the file and the field`, async () => {
      const dir = path.join(tmp, `hf-${k++}`);
      fs.cpSync(path.join(FIX, arch, "model"), dir, { recursive: true });
      const c = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8")) as Record<string, unknown>;
      edit(c);
      fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(c));
      const r = await run(["analyze", "--model", dir, "--data", path.join(FIX, "tokens.bin"), "--seq-len", "8", "--max-windows", "2", "--out", path.join(tmp, "never")]);
      expect(r.code, r.stderr).toBe(1);
      expect(lines(r.stderr)).toHaveLength(1);
      expect(r.stderr).toContain(path.join(dir, "config.json"));
      expect(r.stderr).toMatch(re);
      expect(r.stderr).not.toMatch(STACK);
    });
  }
});
