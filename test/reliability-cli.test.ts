// Every command of the CLI validates what it is given: unknown flags are refused and bad values
// named (one line, exit 2) by every command, not only `train`; a model directory's config.json is
// checked field by field, with an error that names the file and the field (one line, exit 2 as for
// a bad flag, no stack trace unless --verbose). Runs main() in this process with captured output;
// the only training is one step of a tiny model, to have a run directory to resume.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Writable } from "node:stream";
import { main } from "../lib/cli/main.js";
import { listCommands } from "../lib/cli/commands.js";
import { GPT2, saveGPT2, gpt2Config, loadGPT2 } from "../lib/models/index.js";
import { loadPretrained } from "../lib/models/hf.js";
import { ConfigError } from "../lib/index.js";

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
let runDir: string;

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
beforeAll(async () => {
  // A finished run to resume: one step of a tiny model.
  runDir = path.join(tmp, "run");
  const r = await run(["train", "--data", textFile, "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--seq-len", "8", "--batch-size", "2", "--steps", "1", "--eval-every", "0", "--warmup", "0", "--out", runDir]);
  expect(r.code, r.stderr).toBe(0);
}, 60_000);
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe("every command refuses unknown flags and bad values", () => {
  // Every registered command, so that a new one is covered without editing this list.
  const commands = listCommands().map((c) => c.name);
  it("the registry holds the commands this file knows about", () => {
    expect(commands).toEqual(expect.arrayContaining(["train", "sample", "analyze", "report", "reproduce", "bench"]));
  });
  for (const cmd of commands) {
    it(`${cmd}: an unknown flag exits 2 with one line naming it, no stack`, async () => {
      const r = await run([cmd, "--no-such-flag", "1"]);
      expect(r.code).toBe(2);
      expect(lines(r.stderr)).toEqual([`innerloop ${cmd}: unknown flag --no-such-flag (see innerloop ${cmd} --help)`]);
      expect(r.stdout).toBe("");
    });
    it(`${cmd}: an unknown flag given as --flag=value, after valid flags, is refused too`, async () => {
      const r = await run([cmd, "--verbose=false", "--no-such-flag=1"]);
      expect(r.code).toBe(2);
      expect(lines(r.stderr)).toEqual([`innerloop ${cmd}: unknown flag --no-such-flag (see innerloop ${cmd} --help)`]);
    });
    it(`${cmd}: an unknown single-dash flag is refused`, async () => {
      const r = await run([cmd, "-x"]);
      expect(r.code).toBe(2);
      expect(lines(r.stderr)).toEqual([`innerloop ${cmd}: unknown flag -x (see innerloop ${cmd} --help)`]);
    });
  }

  it("a flag of another command is refused, not ignored", async () => {
    const r = await run(["sample", "--model", modelDir, "--prompt", "AB", "--n-layer", "2"]);
    expect(r.code).toBe(2);
    expect(lines(r.stderr)).toEqual(["innerloop sample: unknown flag --n-layer (see innerloop sample --help)"]);
    expect(r.stdout).toBe("");
  });

  it("an unknown flag before the command is refused", async () => {
    const r = await run(["--no-such-flag", "sample"]);
    expect(r.code).toBe(2);
    expect(lines(r.stderr)).toEqual(["innerloop: unknown flag --no-such-flag (see innerloop --help)"]);
  });

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
    ["an unsupported activation", (c) => (c.activation_function = "quick_gelu"), /config\.json: activation_function = "quick_gelu" is not supported/],
    ["an unsupported model_type", (c) => (c.model_type = "bert"), /model_type/],
  ];
  let k = 0;
  for (const [what, edit, re] of cases) {
    it(`${what}: one line naming the field, exit 2, for sample and analyze`, async () => {
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
        expect(r.code, r.stderr).toBe(2);
        expect(lines(r.stderr), r.stderr).toHaveLength(1);
        expect(r.stderr).toContain(`${path.join(dir, "config.json")}: `);
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
    expect(r.code).toBe(2);
    expect(lines(r.stderr)).toHaveLength(1);
    expect(r.stderr).toContain(`${path.join(dir, "config.json")}: invalid JSON`);
    expect(r.stderr).not.toMatch(STACK);
    const v = await run(["sample", "--model", dir, "--prompt", "x", "--verbose"]);
    expect(v.code).toBe(2);
    expect(v.stderr).toMatch(STACK);
  });

  // The LLaMA and GPT-NeoX readers, on the transformers-written fixtures.
  const FIX = path.resolve(import.meta.dirname, "fixtures", "pretrained");
  const hfCases: Array<[string, string, (c: Record<string, unknown>) => void, RegExp]> = [
    ["llama", "hidden_size of the wrong type", (c) => (c.hidden_size = "big"), /config\.json: hidden_size must be a positive integer, got "big"/],
    ["llama", "a missing num_hidden_layers", (c) => delete c.num_hidden_layers, /config\.json: num_hidden_layers is missing \(a positive integer\)/],
    ["llama", "a negative intermediate_size", (c) => (c.intermediate_size = -1), /config\.json: intermediate_size must be a positive integer, got -1/],
    ["neox-seq", "use_parallel_residual as a number", (c) => (c.use_parallel_residual = 1), /config\.json: use_parallel_residual must be true or false, got 1/],
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
      expect(r.code, r.stderr).toBe(2);
      expect(lines(r.stderr)).toHaveLength(1);
      expect(r.stderr).toContain(path.join(dir, "config.json"));
      expect(r.stderr).toMatch(re);
      expect(r.stderr).not.toMatch(STACK);
    });
  }
});

describe("every command that reads a model's config.json refuses a corrupt one with exit 2", () => {
  // [what, how the file is spoiled, what the one line must say after "<file>: "]
  const corrupt: Array<[string, (file: string) => void, RegExp]> = [
    ["not JSON", (f) => fs.writeFileSync(f, '{ "n_layer": 2,\n  oops }'), /^invalid JSON \(/],
    ["not an object", (f) => fs.writeFileSync(f, "[1, 2]"), /^must hold a JSON object, got \[1,2\]/],
    ["n_layer of the wrong type", (f) => edit(f, (c) => (c.n_layer = [2])), /^n_layer must be a positive integer, got \[2\]/],
    ["a negative n_layer", (f) => edit(f, (c) => (c.n_layer = -2)), /^n_layer must be a positive integer, got -2/],
    // (A run directory is GPT-2's: its loader names only gpt2 as supported.)
    ["an unknown model_type", (f) => edit(f, (c) => (c.model_type = "bert")), /^model_type "bert" is not supported (here )?\(supported: gpt2(, gpt_neox, llama, mistral, qwen2, qwen3, gemma2, gemma3_text, phi3, olmo2)?\)/],
    ["a missing model_type", (f) => edit(f, (c) => delete c.model_type), /^model_type is missing \(one of gpt2, gpt_neox, llama, mistral, qwen2, qwen3, gemma2, gemma3_text, phi3, olmo2\)/],
    ["a saved tokenizer that is not one", (f) => edit(f, (c) => (c.innerloop = { tokenizer: { kind: "char", vocab: [] } })), /^innerloop\.tokenizer is not a usable tokenizer: expected \{ kind: "char"/],
  ];
  function edit(file: string, change: (c: Record<string, unknown>) => void): void {
    const c = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>;
    change(c);
    fs.writeFileSync(file, JSON.stringify(c));
  }
  const commands: Array<[string, string, (dir: string) => string[]]> = [
    ["sample", "model", (dir) => ["sample", "--model", dir, "--prompt", "AB", "--max-new-tokens", "1"]],
    ["analyze", "model", (dir) => ["analyze", "--model", dir, "--data", textFile, "--seq-len", "4", "--out", path.join(dir, "analysis-out")]],
    // The resumed run loads its model from the run directory's config.json.
    ["train --resume", "run", (dir) => ["train", "--resume", dir, "--steps", "2"]],
  ];
  let k = 0;
  for (const [cmd, source, argv] of commands) {
    for (const [what, spoil, re] of corrupt) {
      // A run resumes with the tokenizer of trainer_state.json, not the one in config.json, and
      // its GPT-2 loader accepts a config without model_type (older transformers wrote none).
      if (cmd === "train --resume" && (what.includes("tokenizer") || what.includes("missing model_type"))) continue;
      it(`${cmd}: a config.json ${what} is one line naming the file and the field, exit 2`, async () => {
        const dir = path.join(tmp, `corrupt-${k++}`);
        fs.cpSync(source === "run" ? runDir : modelDir, dir, { recursive: true });
        const file = path.join(dir, "config.json");
        spoil(file);
        const before = fs.readdirSync(dir).sort();
        const r = await run(argv(dir));
        expect(r.code, r.stderr).toBe(2);
        const name = cmd.split(" ")[0];
        expect(lines(r.stderr), r.stderr).toHaveLength(1);
        expect(r.stderr.startsWith(`innerloop ${name}: ${file}: `), r.stderr).toBe(true);
        expect(r.stderr.slice(`innerloop ${name}: ${file}: `.length)).toMatch(re);
        expect(r.stderr).not.toMatch(STACK);
        expect(r.stdout).toBe("");
        // Refused before anything was written.
        expect(fs.readdirSync(dir).sort()).toEqual(before);
      });
    }
  }

  it("train --resume: a bad setting in trainer_state.json is one line naming the file and the field, exit 2", async () => {
    const dir = path.join(tmp, `corrupt-${k++}`);
    fs.cpSync(runDir, dir, { recursive: true });
    const file = path.join(dir, "trainer_state.json");
    const state = JSON.parse(fs.readFileSync(file, "utf8")) as { config: Record<string, unknown> };
    state.config.nHead = "two";
    fs.writeFileSync(file, JSON.stringify(state));
    const r = await run(["train", "--resume", dir]);
    expect(r.code, r.stderr).toBe(2);
    expect(lines(r.stderr)).toHaveLength(1);
    expect(r.stderr).toMatch(/trainer_state\.json: config\.nHead must be an integer >= 1 \(got "two"\)/);
    expect(r.stderr).not.toMatch(STACK);
  });

  it("sample: a bad field is reported before a missing tokenizer is looked for", async () => {
    const dir = path.join(tmp, `corrupt-${k++}`);
    fs.cpSync(modelDir, dir, { recursive: true });
    // A Hugging Face folder without a tokenizer (none saved in config.json, no tokenizer.json).
    edit(path.join(dir, "config.json"), (c) => {
      delete c.innerloop;
      c.n_head = 0;
    });
    const r = await run(["sample", "--model", dir, "--prompt", "AB"]);
    expect(r.code, r.stderr).toBe(2);
    expect(lines(r.stderr)).toEqual([`innerloop sample: ${path.join(dir, "config.json")}: n_head must be a positive integer, got 0`]);
  });

  it("--verbose adds the stack to a config error", async () => {
    const dir = path.join(tmp, `corrupt-${k++}`);
    fs.cpSync(modelDir, dir, { recursive: true });
    edit(path.join(dir, "config.json"), (c) => (c.n_layer = -2));
    const r = await run(["sample", "--model", dir, "--prompt", "AB", "--verbose"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/n_layer must be a positive integer, got -2/);
    expect(r.stderr).toMatch(STACK);
  });

  it("a weights file that does not match a valid config.json is a failure (exit 1), not a usage error", async () => {
    const dir = path.join(tmp, `corrupt-${k++}`);
    fs.cpSync(modelDir, dir, { recursive: true });
    edit(path.join(dir, "config.json"), (c) => (c.n_layer = 3));
    const r = await run(["sample", "--model", dir, "--prompt", "AB", "--max-new-tokens", "1"]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/^innerloop sample: error: /);
    expect(r.stderr).not.toMatch(STACK);
  });
});

describe("library callers get the same error as an Error subclass", () => {
  it("ConfigError, exported from the package, carries the file and the field", () => {
    const dir = path.join(tmp, "lib-bad");
    fs.cpSync(modelDir, dir, { recursive: true });
    const file = path.join(dir, "config.json");
    fs.writeFileSync(file, JSON.stringify({ ...baseConfig, n_head: "4" }));
    for (const load of [() => loadPretrained(dir), () => loadGPT2(dir)]) {
      let err: unknown;
      try {
        load();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect(err).toBeInstanceOf(Error);
      const ce = err as ConfigError;
      expect(ce.name).toBe("ConfigError");
      expect(ce.file).toBe(file);
      expect(ce.field).toBe("n_head");
      expect(ce.message).toBe(`${file}: n_head must be a positive integer, got "4"`);
    }
  });

  it("a huge bad value is shortened, so the message stays one short line", () => {
    const dir = path.join(tmp, "lib-huge");
    fs.cpSync(modelDir, dir, { recursive: true });
    fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ...baseConfig, n_embd: "x\n".repeat(10_000) }));
    let message = "";
    try {
      loadPretrained(dir);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/n_embd must be a positive integer, got "x\\nx\\n.*\.\.\.$/);
    expect(message).not.toContain("\n");
    expect(message.length).toBeLessThan(200 + dir.length);
  });
});
