// Loading a Hugging Face weights folder (model.safetensors, or shards listed in
// model.safetensors.index.json) into a model's existing parameters, one tensor at a time.
//
// Memory: the model is built first, in its final dtype and device, and each tensor's bytes are
// read from the file straight into the parameter's memory when it is a CPU tensor of the file's
// dtype (no staging copy at all); otherwise into a staging CPU tensor of the file's dtype (one,
// reused), from which it is cast/moved into the parameter. Peak resident memory is the model plus
// the largest single tensor; nothing passes through JS numbers.

import * as fs from "node:fs";
import * as path from "node:path";
import { torch } from "../torch/index.js";
import { itemSize } from "../torch/index.js";
import type { DType, Tensor } from "../torch/index.js";
import type { Module } from "../nn/index.js";
import {
  readSafetensorsHeader,
  readShardIndex,
  SAFETENSORS_FILE,
  SAFETENSORS_INDEX_FILE,
  type SafetensorsEntry,
} from "../torch/safetensors.js";

/** The safetensors files of a folder: the shards of the index (sorted), or model.safetensors. */
export function weightFiles(dir: string): string[] {
  const indexPath = path.join(dir, SAFETENSORS_INDEX_FILE);
  if (fs.existsSync(indexPath)) {
    const { weightMap } = readShardIndex(indexPath);
    const shards = [...new Set(Object.values(weightMap))].sort();
    if (shards.length === 0) throw new Error(`${indexPath}: weight_map is empty`);
    return shards.map((s) => path.join(dir, s));
  }
  const single = path.join(dir, SAFETENSORS_FILE);
  if (fs.existsSync(single)) return [single];
  if (fs.existsSync(path.join(dir, "pytorch_model.bin"))) {
    throw new Error(`${dir}: only pytorch_model.bin (pickle) weights found; convert them to safetensors (transformers: save_pretrained(..., safe_serialization=True))`);
  }
  throw new Error(`${dir}: neither ${SAFETENSORS_FILE} nor ${SAFETENSORS_INDEX_FILE} found`);
}

/** The dtype most of a folder's floating-point bytes are stored in (its "native" dtype). */
export function storedDtype(dir: string): DType {
  const bytes = new Map<DType, number>();
  for (const f of weightFiles(dir)) {
    for (const e of readSafetensorsHeader(f).entries) {
      if (e.dtype === "float32" || e.dtype === "bfloat16" || e.dtype === "float16" || e.dtype === "float64") {
        bytes.set(e.dtype, (bytes.get(e.dtype) ?? 0) + e.byteLength);
      }
    }
  }
  let best: DType = "float32";
  let most = -1;
  for (const [d, n] of bytes) if (n > most) [best, most] = [d, n];
  return best;
}

export interface LoadWeightsOptions {
  /** Maps a file's tensor name to the model's, or null to skip it (e.g. rotary inv_freq buffers). */
  rename?: (name: string) => string | null;
}

function readInto(fd: number, file: string, dst: Uint8Array, e: SafetensorsEntry): void {
  if (dst.byteLength !== e.byteLength) throw new Error(`${file}: tensor ${e.name}: ${e.byteLength} bytes in the file, ${dst.byteLength} expected`);
  let done = 0;
  while (done < e.byteLength) {
    const n = fs.readSync(fd, dst, done, Math.min(e.byteLength - done, 1 << 30), e.fileOffset + done);
    if (n === 0) throw new Error(`${file}: tensor ${e.name}: file is truncated`);
    done += n;
  }
}

/**
 * Fills every parameter and persistent buffer of `model` from the folder. Every model tensor must
 * be found once, with its shape; file tensors that map to no model tensor are an error (after
 * `rename`), so a wrong architecture never loads silently.
 */
export function loadWeightsInto(model: Module, dir: string, opts: LoadWeightsOptions = {}): { files: string[] } {
  const own = model.stateDict();
  const loaded = new Set<string>();
  const unexpected: string[] = [];
  const files = weightFiles(dir);
  const headers = files.map((f) => readSafetensorsHeader(f));
  // One staging tensor per file dtype, as large as the largest tensor that needs staging, reused
  // for every such tensor: a Buffer over tensor memory keeps that memory alive until it is garbage
  // collected, so a fresh temporary per tensor would hold on to all of them.
  const stageBytes = new Map<DType, number>();
  for (const h of headers) {
    for (const e of h.entries) {
      const key = opts.rename ? opts.rename(e.name) : e.name;
      const dst = key === null ? undefined : own[key];
      if (dst === undefined || e.byteLength === 0) continue;
      if (dst.device === "cpu" && dst.dtype === e.dtype && dst.isContiguous()) continue;
      stageBytes.set(e.dtype, Math.max(stageBytes.get(e.dtype) ?? 0, e.byteLength));
    }
  }
  const stages = new Map<DType, { tensor: Tensor; bytes: Buffer }>();
  const stage = (dtype: DType): { tensor: Tensor; bytes: Buffer } => {
    let s = stages.get(dtype);
    if (s === undefined) {
      const t = torch.empty([stageBytes.get(dtype)! / itemSize(dtype)], { dtype });
      s = { tensor: t, bytes: t.bytes() };
      stages.set(dtype, s);
    }
    return s;
  };
  try {
    torch.noGrad(() => {
      files.forEach((file, fi) => {
        const header = headers[fi]!;
        const fd = fs.openSync(file, "r");
        try {
          for (const e of header.entries) {
            const key = opts.rename ? opts.rename(e.name) : e.name;
            if (key === null) continue;
            const dst = own[key];
            if (dst === undefined) {
              unexpected.push(e.name);
              continue;
            }
            if (loaded.has(key)) throw new Error(`${file}: tensor ${e.name} appears twice in ${dir}`);
            if (dst.shape.join(",") !== e.shape.join(",")) {
              throw new Error(`${file}: tensor ${e.name} has shape [${e.shape}], the model expects [${dst.shape}] (does config.json match the weights?)`);
            }
            if (e.byteLength > 0) {
              if (dst.device === "cpu" && dst.dtype === e.dtype && dst.isContiguous()) {
                readInto(fd, file, dst.bytes(), e);
              } else {
                const s = stage(e.dtype);
                readInto(fd, file, s.bytes.subarray(0, e.byteLength), e);
                torch.tidy(() => {
                  dst.copy_(s.tensor.narrow(0, 0, e.numel).view(e.shape));
                });
              }
            }
            loaded.add(key);
          }
        } finally {
          fs.closeSync(fd);
        }
      });
    });
  } finally {
    for (const s of stages.values()) s.tensor.dispose();
  }
  const missing = Object.keys(own).filter((k) => !loaded.has(k));
  const problems: string[] = [];
  if (missing.length > 0) problems.push(`missing tensors: ${missing.slice(0, 8).join(", ")}${missing.length > 8 ? ` and ${missing.length - 8} more` : ""}`);
  if (unexpected.length > 0) problems.push(`unexpected tensors: ${unexpected.slice(0, 8).join(", ")}${unexpected.length > 8 ? ` and ${unexpected.length - 8} more` : ""}`);
  if (problems.length > 0) throw new Error(`${dir}: weights do not match the model built from config.json: ${problems.join("; ")}`);
  return { files };
}

/**
 * Checks a config against the weights before the model is allocated: every tensor the config
 * implies (`expected`, model names) must be in the folder's safetensors headers with that shape,
 * and every tensor there must be expected (after `rename`). Only the headers are read, so a
 * config.json whose sizes disagree with the file is refused in one line naming `configFile` and
 * the first tensor at fault, before anything is allocated. A plain Error, not a ConfigError: each
 * file may be valid on its own (the CLI exits 1, as for any weights that do not load).
 */
export function checkConfigAgainstWeights(
  configFile: string,
  dir: string,
  expected: ReadonlyMap<string, readonly number[]>,
  rename: (name: string) => string | null,
): void {
  const seen = new Set<string>();
  const unexpected: string[] = [];
  for (const file of weightFiles(dir)) {
    for (const e of readSafetensorsHeader(file).entries) {
      const key = rename(e.name);
      if (key === null) continue;
      const want = expected.get(key);
      if (want === undefined) {
        unexpected.push(e.name);
        continue;
      }
      if (want.join(",") !== e.shape.join(",")) {
        throw new Error(`${configFile}: does not match the weights: ${path.basename(file)} holds ${e.name} as [${e.shape.join(", ")}], the config gives [${want.join(", ")}]`);
      }
      seen.add(key);
    }
  }
  const missing = [...expected.keys()].filter((k) => !seen.has(k));
  const list = (xs: string[]) => `${xs.slice(0, 4).join(", ")}${xs.length > 4 ? ` and ${xs.length - 4} more` : ""}`;
  if (missing.length > 0 || unexpected.length > 0) {
    const parts = [missing.length > 0 ? `the weights lack ${list(missing)}` : "", unexpected.length > 0 ? `the weights have tensors the config does not: ${list(unexpected)}` : ""];
    throw new Error(`${configFile}: does not match the weights: ${parts.filter((p) => p !== "").join("; ")}`);
  }
}
