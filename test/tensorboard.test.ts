// `innerloop train --tensorboard`: event files beside metrics.jsonl, read back with a reader written
// here from the format's definition (TFRecord framing, masked CRC32C computed bit by bit, a generic
// protobuf decoder), independently of the writer's table-driven code. (The `tensorboard` Python
// package cannot be installed here: its `protobuf` dependency is not in the package mirror.)

import { describe, it, expect, beforeAll } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { main } from "../lib/cli/main.js";
import { crc32c, maskedCrc32c } from "../lib/train/tensorboard.js";
import { readMetrics, type StepRow, type EvalRow } from "../lib/train/metrics.js";
import { readTimeline } from "../lib/analysis/files.js";

/** CRC32C one bit at a time (no table): the definition, for checking the writer. */
function crc32cBitwise(buf: Uint8Array): number {
  let c = ~0 >>> 0;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0x82f63b78 & -(c & 1));
  }
  return ~c >>> 0;
}
const mask = (c: number) => ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) % 2 ** 32;

type Field = { no: number; wire: number; value: bigint | Buffer };
function decodeProto(buf: Buffer): Field[] {
  const out: Field[] = [];
  let i = 0;
  const varint = (): bigint => {
    let v = 0n;
    let shift = 0n;
    for (;;) {
      const b = buf[i++]!;
      v |= BigInt(b & 0x7f) << shift;
      shift += 7n;
      if ((b & 0x80) === 0) return v;
    }
  };
  while (i < buf.length) {
    const key = Number(varint());
    const no = key >> 3;
    const wire = key & 7;
    if (wire === 0) out.push({ no, wire, value: varint() });
    else if (wire === 1) (out.push({ no, wire, value: buf.subarray(i, i + 8) }), (i += 8));
    else if (wire === 5) (out.push({ no, wire, value: buf.subarray(i, i + 4) }), (i += 4));
    else if (wire === 2) {
      const n = Number(varint());
      out.push({ no, wire, value: buf.subarray(i, i + n) });
      i += n;
    } else throw new Error(`unexpected wire type ${wire}`);
  }
  return out;
}

interface Ev {
  wallTime: number;
  step: number;
  fileVersion?: string;
  sessionStatus?: number;
  scalars: Record<string, number>;
}

function readEvents(file: string): Ev[] {
  const buf = fs.readFileSync(file);
  const events: Ev[] = [];
  for (let i = 0; i < buf.length; ) {
    const lenBytes = buf.subarray(i, i + 8);
    const len = Number(lenBytes.readBigUInt64LE(0));
    if (buf.readUInt32LE(i + 8) !== mask(crc32cBitwise(lenBytes))) throw new Error(`bad length CRC at ${i}`);
    const data = buf.subarray(i + 12, i + 12 + len);
    if (buf.readUInt32LE(i + 12 + len) !== mask(crc32cBitwise(data))) throw new Error(`bad data CRC at ${i}`);
    i += 16 + len;
    const ev: Ev = { wallTime: NaN, step: 0, scalars: {} };
    for (const f of decodeProto(data)) {
      if (f.no === 1) ev.wallTime = (f.value as Buffer).readDoubleLE(0);
      else if (f.no === 2) ev.step = Number(f.value as bigint);
      else if (f.no === 3) ev.fileVersion = (f.value as Buffer).toString("utf8");
      else if (f.no === 6) ev.sessionStatus = Number(decodeProto(f.value as Buffer).find((x) => x.no === 1)!.value);
      else if (f.no === 5) {
        for (const v of decodeProto(f.value as Buffer).filter((x) => x.no === 1)) {
          const parts = decodeProto(v.value as Buffer);
          const tag = (parts.find((x) => x.no === 1)!.value as Buffer).toString("utf8");
          ev.scalars[tag] = (parts.find((x) => x.no === 2)!.value as Buffer).readFloatLE(0);
        }
      }
    }
    events.push(ev);
  }
  return events;
}

const sink = () => ({ write: () => true }) as unknown as NodeJS.WritableStream;
const eventFiles = (dir: string) => fs.readdirSync(dir).filter((f) => f.startsWith("events.out.tfevents.")).sort();

describe("TensorBoard event files", () => {
  let run: string;
  beforeAll(async () => {
    run = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "il-tb-")), "run");
    const args = ["train", "--n-layer", "2", "--n-embd", "32", "--n-head", "2", "--seq-len", "16", "--batch-size", "4", "--steps", "8", "--analyze-every", "4", "--analyze-windows", "2", "--eval-every", "4", "--checkpoint-every", "4", "--tensorboard", "--out", run];
    expect(await main(args, { stdout: sink(), stderr: sink() })).toBe(0);
    expect(await main(["train", "--resume", run, "--steps", "12", "--tensorboard"], { stdout: sink(), stderr: sink() })).toBe(0);
  });

  it("computes the standard CRC32C and its TFRecord mask", () => {
    expect(crc32c(Buffer.from("123456789"))).toBe(0xe3069283); // the check value of CRC-32C
    const b = Buffer.from("innerloop event");
    expect(crc32c(b)).toBe(crc32cBitwise(b));
    expect(maskedCrc32c(b)).toBe(mask(crc32cBitwise(b)));
  });

  it("holds every step's loss, lr and gradient norm, the validation losses and the per-layer measures", () => {
    const files = eventFiles(run);
    expect(files).toHaveLength(2); // the first process and the resumed one
    const first = readEvents(path.join(run, files[0]!));
    expect(first[0]!.fileVersion).toBe("brain.Event:2");
    const second = readEvents(path.join(run, files[1]!));
    // The resumed writer tells TensorBoard to drop anything the first wrote after step 8.
    expect(second[0]!.fileVersion).toBe("brain.Event:2");
    expect(second[1]!.sessionStatus).toBe(1);
    expect(second[1]!.step).toBe(9);

    const all = [...first, ...second];
    const rows = readMetrics(path.join(run, "metrics.jsonl"));
    const steps = rows.filter((r): r is StepRow => "loss" in r);
    expect(steps).toHaveLength(12);
    for (const r of steps) {
      const ev = all.find((e) => e.step === r.step && "train/loss" in e.scalars)!;
      expect(ev.scalars["train/loss"]).toBe(Math.fround(r.loss));
      expect(ev.scalars["train/lr"]).toBe(Math.fround(r.lr));
      expect(ev.scalars["train/grad_norm"]).toBe(Math.fround(r.gradNorm));
      expect(Math.abs(ev.wallTime - Date.now() / 1000)).toBeLessThan(600);
    }
    const evals = rows.filter((r): r is EvalRow => "valLoss" in r);
    expect(evals.map((e) => e.step)).toEqual([4, 8, 12]);
    for (const e of evals) expect(all.find((x) => x.step === e.step && "val/loss" in x.scalars)!.scalars["val/loss"]).toBe(Math.fround(e.valLoss));

    const snaps = readTimeline(run)!.snapshots;
    expect(snaps.map((s) => s.step)).toEqual([4, 8, 12]);
    for (const s of snaps) {
      const ev = all.find((x) => x.step === s.step && "analysis/loss" in x.scalars)!;
      expect(ev.scalars["analysis/loss"]).toBe(Math.fround(s.loss));
      for (let l = 0; l <= 2; l++) {
        expect(ev.scalars[`analysis/norm_slope/l${l}`]).toBe(Math.fround(s.normFit[l]!.slope));
        expect(ev.scalars[`analysis/logit_lens_loss/l${l}`]).toBe(Math.fround(s.logitLens.loss[l]!));
        expect(ev.scalars[`analysis/first_token_ratio/l${l}`]).toBe(Math.fround(s.firstTokenRatio[l]!));
        const meanNorm = s.hiddenNorm.mean[l]!.reduce((a, b) => a + b, 0) / s.seqLen;
        expect(ev.scalars[`analysis/norm_mean/l${l}`]).toBeCloseTo(meanNorm, 4);
      }
      for (let b = 0; b < 2; b++) expect(ev.scalars[`analysis/param_grad_norm/b${b}`]).toBe(Math.fround(s.paramGradNorm[b]!));
    }
  });

  it("writes nothing without --tensorboard", async () => {
    const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "il-tb-")), "run");
    expect(await main(["train", "--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--seq-len", "8", "--batch-size", "2", "--steps", "2", "--out", dir], { stdout: sink(), stderr: sink() })).toBe(0);
    expect(eventFiles(dir)).toEqual([]);
  });
});
