/**
 * `RUN/metrics.jsonl`: one JSON object per line.
 *
 *   step rows: { step, loss, lr, stepMs, tokensPerSec, gradNorm }
 *   eval rows: { step, valLoss }
 *
 * Rows are appended as they happen (a line at a time, so a crash loses at
 * most a partial last line). When a run resumes from a checkpoint at step S,
 * rows after S (written after that checkpoint by the interrupted process)
 * are dropped first, atomically, so that the file reads as one run.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { writeFileAtomic } from "../util/atomic.js";

export interface StepRow {
  step: number;
  loss: number;
  lr: number;
  stepMs: number;
  tokensPerSec: number;
  gradNorm: number;
}

export interface EvalRow {
  step: number;
  valLoss: number;
}

export type MetricsRow = StepRow | EvalRow;

export const METRICS_FILE = "metrics.jsonl";

/** Reads the rows of a metrics file; a partial last line (from a crash) is skipped. */
export function readMetrics(file: string): MetricsRow[] {
  if (!fs.existsSync(file)) return [];
  const rows: MetricsRow[] = [];
  for (const line of fs.readFileSync(file, "utf8").split("\n")) {
    if (line.trim() === "") continue;
    try {
      rows.push(JSON.parse(line) as MetricsRow);
    } catch {
      // Only the last line can be cut short by a crash; a bad line elsewhere is skipped too.
    }
  }
  return rows;
}

export class MetricsWriter {
  readonly file: string;
  private fd: number | undefined;

  /** Opens `runDir/metrics.jsonl`; with `keepUpToStep`, keeps only rows of steps <= it (resume). */
  constructor(runDir: string, opts: { keepUpToStep?: number } = {}) {
    this.file = path.join(runDir, METRICS_FILE);
    fs.mkdirSync(runDir, { recursive: true });
    if (opts.keepUpToStep === undefined) {
      writeFileAtomic(this.file, "");
    } else {
      const kept = readMetrics(this.file).filter((r) => r.step <= opts.keepUpToStep!);
      writeFileAtomic(this.file, kept.map((r) => JSON.stringify(r) + "\n").join(""));
    }
    this.fd = fs.openSync(this.file, "a");
  }

  write(row: MetricsRow): void {
    if (this.fd === undefined) throw new Error(`metrics file ${this.file} is closed`);
    fs.writeSync(this.fd, JSON.stringify(row) + "\n");
  }

  close(): void {
    if (this.fd !== undefined) {
      fs.fsyncSync(this.fd);
      fs.closeSync(this.fd);
      this.fd = undefined;
    }
  }
}
