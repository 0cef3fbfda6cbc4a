// Memory: loading a checkpoint reads each tensor's bytes straight into the model's memory (no copy
// through JS numbers, no staging of the whole file), so resident memory grows by about the size of
// the weights. Measured in a child process on a synthetic ~110 MB bfloat16 LLaMA checkpoint
// (the 1B-parameter model scaled down to CI size).

import { describe, it, expect, beforeAll } from "vitest";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

const ROOT = path.join(__dirname, "..");
const CHILD = path.join(__dirname, "pretrained-rss-child.ts");

const CONFIG = {
  model_type: "llama",
  vocab_size: 8192,
  hidden_size: 1024,
  intermediate_size: 2816,
  num_hidden_layers: 3,
  num_attention_heads: 8,
  num_key_value_heads: 8,
  max_position_embeddings: 256,
  rms_norm_eps: 1e-5,
  tie_word_embeddings: false,
  torch_dtype: "bfloat16",
};

/** Writes a bfloat16 safetensors file of the model's tensors (filled with a constant) without holding it in memory. */
function writeCheckpoint(dir: string): number {
  const c = CONFIG;
  const shapes: Array<[string, number[]]> = [["model.embed_tokens.weight", [c.vocab_size, c.hidden_size]]];
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `model.layers.${l}`;
    for (const n of ["q_proj", "k_proj", "v_proj", "o_proj"]) shapes.push([`${p}.self_attn.${n}.weight`, [c.hidden_size, c.hidden_size]]);
    shapes.push([`${p}.mlp.gate_proj.weight`, [c.intermediate_size, c.hidden_size]], [`${p}.mlp.up_proj.weight`, [c.intermediate_size, c.hidden_size]]);
    shapes.push([`${p}.mlp.down_proj.weight`, [c.hidden_size, c.intermediate_size]]);
    shapes.push([`${p}.input_layernorm.weight`, [c.hidden_size]], [`${p}.post_attention_layernorm.weight`, [c.hidden_size]]);
  }
  shapes.push(["model.norm.weight", [c.hidden_size]], ["lm_head.weight", [c.vocab_size, c.hidden_size]]);
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  let at = 0;
  for (const [name, shape] of shapes) {
    const bytes = shape.reduce((a, b) => a * b, 1) * 2;
    header[name] = { dtype: "BF16", shape, data_offsets: [at, at + bytes] };
    at += bytes;
  }
  let json = Buffer.from(JSON.stringify(header));
  json = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const fd = fs.openSync(path.join(dir, "model.safetensors"), "w");
  fs.writeSync(fd, len);
  fs.writeSync(fd, json);
  const chunk = Buffer.alloc(1 << 22);
  for (let i = 0; i < chunk.length; i += 2) chunk.writeUInt16LE(0x3f80, i); // bfloat16 1.0
  for (let left = at; left > 0; left -= chunk.length) fs.writeSync(fd, chunk, 0, Math.min(left, chunk.length));
  fs.closeSync(fd);
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(CONFIG));
  return at;
}

interface Report {
  before: number;
  after: number;
  peak: number;
  paramBytes: number;
  seconds: number;
  dtype: string;
}

function measure(dir: string, dtype?: string): Report {
  const out = execFileSync(process.execPath, ["--import", "tsx", CHILD, dir, ...(dtype ? [dtype] : [])], {
    cwd: ROOT,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
  return JSON.parse(out.trim().split("\n").pop()!) as Report;
}

describe("resident memory while loading (Linux /proc)", () => {
  let dir: string;
  let dataBytes: number;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "innerloop-rss-"));
    dataBytes = writeCheckpoint(dir);
  });

  it("a bfloat16 checkpoint loaded as bfloat16 costs about 1x its size (at most 1.2x at the peak)", () => {
    const r = measure(dir);
    expect(r.dtype).toBe("bfloat16");
    expect(r.paramBytes).toBe(dataBytes);
    const peakRatio = (r.peak - r.before) / dataBytes;
    const keptRatio = (r.after - r.before) / dataBytes;
    console.log(`bf16 -> bf16: ${(dataBytes / 2 ** 20).toFixed(1)} MiB of weights; RSS +${((r.after - r.before) / 2 ** 20).toFixed(1)} MiB after (x${keptRatio.toFixed(3)}), peak +${((r.peak - r.before) / 2 ** 20).toFixed(1)} MiB (x${peakRatio.toFixed(3)}), ${r.seconds.toFixed(2)} s`);
    expect(keptRatio).toBeGreaterThan(0.9);
    expect(peakRatio).toBeLessThanOrEqual(1.2);
  });

  it("cast to float32 while loading: the float32 model plus one tensor in flight", () => {
    const r = measure(dir, "float32");
    expect(r.dtype).toBe("float32");
    const peakRatio = (r.peak - r.before) / r.paramBytes;
    console.log(`bf16 -> f32: model ${(r.paramBytes / 2 ** 20).toFixed(1)} MiB; peak +${((r.peak - r.before) / 2 ** 20).toFixed(1)} MiB (x${peakRatio.toFixed(3)} of the float32 model), ${r.seconds.toFixed(2)} s`);
    expect(peakRatio).toBeLessThanOrEqual(1.2);
  });
});
