// Writing analysis results: OUT/analysis.json plus two CSV views (per layer and position; per
// layer), and the training timeline RUN/analysis/timeline.json. Every write is atomic.

import * as fs from "node:fs";
import * as path from "node:path";
import { fsyncDir, writeFileAtomic } from "../util/atomic.js";
import type { AnalysisResult } from "./result.js";

const fmt = (v: number | null | undefined): string => (v === null || v === undefined || !Number.isFinite(v) ? "" : String(v));

/** One row per (layer, position): the (L+1)×T and L×T fields. */
export function positionsCsv(r: AnalysisResult): string {
  const head = [
    "layer", "position", "hiddenNormMean", "hiddenNormStd", "gradNormMean", "gradNormStd",
    "updateNormMean", "updateCosMean", "attnNormMean", "attnCosMean", "mlpNormMean", "mlpCosMean",
  ];
  const lines = [head.join(",")];
  const L = r.layers - 1;
  for (let l = 0; l <= L; l++) {
    for (let t = 0; t < r.seqLen; t++) {
      const blk = (m: number[][]): string => (l < L ? fmt(m[l]![t]) : "");
      lines.push([
        l, t, fmt(r.hiddenNorm.mean[l]![t]), fmt(r.hiddenNorm.std[l]![t]), fmt(r.gradNorm.mean[l]![t]), fmt(r.gradNorm.std[l]![t]),
        blk(r.update.normMean), blk(r.update.cosMean), blk(r.updateParts.attnNormMean), blk(r.updateParts.attnCosMean),
        blk(r.updateParts.mlpNormMean), blk(r.updateParts.mlpCosMean),
      ].join(","));
    }
  }
  return lines.join("\n") + "\n";
}

/** One row per layer l = 0..L: per-layer scalars. */
export function layersCsv(r: AnalysisResult): string {
  const head = [
    "layer", "logitLensLoss", "paramGradNorm", "normFitSlope", "normFitIntercept", "normFitR2",
    "firstTokenRatio", "meanAbsActivation", "topAbsActivation", "topAbsDim",
  ];
  const lines = [head.join(",")];
  for (let l = 0; l < r.layers; l++) {
    const fit = r.normFit[l];
    const top = r.massive.layers[l];
    lines.push([
      l, fmt(r.logitLens.loss[l]), l < r.layers - 1 ? fmt(r.paramGradNorm[l]) : "",
      fmt(fit?.slope), fmt(fit?.intercept), fmt(fit?.r2), fmt(r.firstTokenRatio[l]),
      fmt(r.massive.meanAbs[l]), fmt(top?.values[0]), fmt(top?.dims[0]),
    ].join(","));
  }
  return lines.join("\n") + "\n";
}

/** Writes OUT/analysis.json, OUT/positions.csv and OUT/layers.csv. */
export function writeAnalysis(outDir: string, r: AnalysisResult): void {
  fs.mkdirSync(outDir, { recursive: true });
  writeFileAtomic(path.join(outDir, "analysis.json"), JSON.stringify(r, null, 1) + "\n");
  writeFileAtomic(path.join(outDir, "positions.csv"), positionsCsv(r));
  writeFileAtomic(path.join(outDir, "layers.csv"), layersCsv(r));
}

export interface Snapshot extends AnalysisResult {
  step: number;
}

export interface Timeline {
  snapshots: Snapshot[];
}

export function timelinePath(runDir: string): string {
  return path.join(runDir, "analysis", "timeline.json");
}

export function readTimeline(runDir: string): Timeline | null {
  const p = timelinePath(runDir);
  if (!fs.existsSync(p)) return null;
  const t = JSON.parse(fs.readFileSync(p, "utf8")) as Timeline;
  if (!t || !Array.isArray(t.snapshots)) throw new Error(`${p}: expected { "snapshots": [...] }`);
  return t;
}

export function writeTimeline(runDir: string, t: Timeline): void {
  writeTimelineText(runDir, JSON.stringify(t) + "\n");
}

const TIMELINE_END = "]}\n";

/**
 * Adds snapshots (their JSON texts) to the end of timeline.json without reading it into memory:
 * the file is copied, its closing `]}` cut off, the snapshots appended, and the copy renamed
 * over the original (atomically, as every write). A long timeline then costs disk, not memory.
 */
export function appendTimelineSnapshots(runDir: string, texts: string[]): void {
  if (texts.length === 0) return;
  const p = timelinePath(runDir);
  if (!fs.existsSync(p)) {
    writeTimelineText(runDir, `{"snapshots":[${texts.join(",\n")}${TIMELINE_END}`);
    return;
  }
  const tmp = `${p}.tmp-${process.pid}`;
  try {
    fs.copyFileSync(p, tmp);
    const size = fs.statSync(tmp).size;
    const fd = fs.openSync(tmp, "r+");
    try {
      const end = Buffer.alloc(TIMELINE_END.length + 1);
      if (size < end.length) throw new Error(`${p}: too short to be a timeline`);
      fs.readSync(fd, end, 0, end.length, size - end.length);
      if (end.subarray(1).toString() !== TIMELINE_END) throw new Error(`${p}: does not end in "]}" (not written by innerloop?)`);
      const empty = end[0] === "[".charCodeAt(0);
      const at = size - TIMELINE_END.length;
      fs.ftruncateSync(fd, at);
      fs.writeSync(fd, `${empty ? "" : ",\n"}${texts.join(",\n")}${TIMELINE_END}`, at);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, p);
    fsyncDir(path.dirname(p));
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

/** Writes timeline.json from its text (atomically). */
export function writeTimelineText(runDir: string, text: string): void {
  fs.mkdirSync(path.dirname(timelinePath(runDir)), { recursive: true });
  writeFileAtomic(timelinePath(runDir), text);
}
