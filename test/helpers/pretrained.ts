// Shared by the pretrained-checkpoint tests: the fixtures' expected.json (scripts/oracle/
// pretrained_make.py) and transformers' view of exported folders (scripts/oracle/pretrained_check.py).

import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";

export const FIX = path.join(__dirname, "..", "fixtures", "pretrained");
const CHECK = path.join(__dirname, "..", "..", "scripts", "oracle", "pretrained_check.py");

export const modelDir = (name: string): string => path.join(FIX, name, "model");

export interface Expected {
  modelType: string;
  storedDtype: string;
  ids: number[][];
  logits: number[];
  logitsShape: number[];
  numParameters: number;
}

/** expected.json of each named fixture. */
export function readExpected<N extends string>(names: readonly N[]): Record<N, Expected> {
  return Object.fromEntries(names.map((n) => [n, JSON.parse(fs.readFileSync(path.join(FIX, n, "expected.json"), "utf8")) as Expected])) as Record<N, Expected>;
}

export interface TransformersView {
  modelType: string;
  logits: number[];
  missing: string[];
  unexpected: string[];
}

/** Loads each folder with transformers (float64) and returns its logits on `ids` and the load report, by folder. */
export function transformersView(ids: number[][], dirs: string[], scratch: string): Record<string, TransformersView> {
  const idsFile = path.join(scratch, "ids.json");
  fs.writeFileSync(idsFile, JSON.stringify(ids));
  return JSON.parse(execFileSync("python3", [CHECK, idsFile, ...dirs], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 1 << 26 })) as Record<string, TransformersView>;
}
