/**
 * TensorBoard event files (`innerloop train --tensorboard`): scalars written beside metrics.jsonl
 * as RUN/events.out.tfevents.<seconds>.<host>.<pid>, which TensorBoard (and tf.summary readers)
 * read without a converter.
 *
 * No maintained npm package writes event files without TensorFlow itself (@tensorflow/tfjs-node
 * brings a native TensorFlow), and the format needs little: each record is TFRecord-framed
 *
 *   uint64 length (little-endian) | uint32 masked CRC32C of the length | data | uint32 masked CRC32C of data
 *
 * and its data is a serialized `tensorflow.Event` protobuf: wall_time (field 1, double), step
 * (2, int64), file_version (3, string) or summary (5, Summary { repeated Value value = 1 }, each
 * Value { tag = 1 (string), simple_value = 2 (float) }), or session_log (6, SessionLog { status = 1 }).
 * The first record carries file_version "brain.Event:2".
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { TrainerPlugin, StepContext, EvalContext, TrainerContext } from "./plugins.js";

// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), table-driven.
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

export function crc32c(buf: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** TFRecord's masked CRC: rotated right by 15 bits plus a constant, so CRCs of CRCs stay apart. */
export function maskedCrc32c(buf: Uint8Array): number {
  const c = crc32c(buf);
  return ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/** One TFRecord: length, its CRC, the data, its CRC. */
export function tfRecord(data: Uint8Array): Buffer {
  const head = Buffer.alloc(12);
  head.writeBigUInt64LE(BigInt(data.length), 0);
  head.writeUInt32LE(maskedCrc32c(head.subarray(0, 8)), 8);
  const tail = Buffer.alloc(4);
  tail.writeUInt32LE(maskedCrc32c(data), 0);
  return Buffer.concat([head, data, tail]);
}

// Protocol-buffer wire format: just what Event needs.
function varint(n: number | bigint): Buffer {
  let v = BigInt(n);
  if (v < 0n) v += 1n << 64n; // int64 in two's complement
  const out: number[] = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return Buffer.from(out);
}
const key = (field: number, wire: number) => varint((field << 3) | wire);
const bytesField = (field: number, data: Uint8Array) => Buffer.concat([key(field, 2), varint(data.length), data]);
function doubleField(field: number, v: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeDoubleLE(v, 0);
  return Buffer.concat([key(field, 1), b]);
}
function floatField(field: number, v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeFloatLE(v, 0);
  return Buffer.concat([key(field, 5), b]);
}

/** A serialized Event with wall time and step, plus one of its payload fields (already encoded). */
function event(wallTime: number, step: number, payload: Buffer): Buffer {
  return Buffer.concat([doubleField(1, wallTime), key(2, 0), varint(step), payload]);
}

/** Event.summary with one scalar Value per entry. */
function scalarSummary(scalars: Record<string, number>): Buffer {
  const values = Object.entries(scalars).map(([tag, v]) => bytesField(1, Buffer.concat([bytesField(1, Buffer.from(tag, "utf8")), floatField(2, v)])));
  return bytesField(5, Buffer.concat(values));
}

/** Where a writer sends per-step scalars (the analysis plugin adds its per-layer measures through it). */
export interface ScalarSink {
  addScalars(step: number, scalars: Record<string, number>): void;
}

/** Appends events to a new event file in `dir`. */
export class EventFileWriter implements ScalarSink {
  readonly file: string;
  private fd: number | undefined;

  /** With `purgeFromStep`, TensorBoard drops events of that step and later written by an earlier, interrupted process. */
  constructor(dir: string, opts: { purgeFromStep?: number } = {}) {
    fs.mkdirSync(dir, { recursive: true });
    const now = Date.now() / 1000;
    let name = `events.out.tfevents.${Math.floor(now)}.${os.hostname()}.${process.pid}`;
    for (let i = 1; fs.existsSync(path.join(dir, name)); i++) name = `events.out.tfevents.${Math.floor(now)}.${os.hostname()}.${process.pid}.${i}`;
    this.file = path.join(dir, name);
    this.fd = fs.openSync(this.file, "a");
    const step = opts.purgeFromStep ?? 0;
    this.write(event(now, step, bytesField(3, Buffer.from("brain.Event:2"))));
    // SessionLog { status: START } at step S: TensorBoard discards what it read from steps >= S before it.
    if (opts.purgeFromStep !== undefined) this.write(event(now, step, bytesField(6, Buffer.from([0x08, 0x01]))));
  }

  private write(data: Buffer): void {
    if (this.fd === undefined) throw new Error(`event file ${this.file} is closed`);
    fs.writeSync(this.fd, tfRecord(data));
  }

  /** One event with a scalar per entry; non-finite values are written too (TensorBoard shows NaN and inf). */
  addScalars(step: number, scalars: Record<string, number>, wallTime = Date.now() / 1000): void {
    if (!Number.isSafeInteger(step) || step < 0) throw new Error(`step must be a non-negative integer (got ${step})`);
    if (Object.keys(scalars).length === 0) return;
    this.write(event(wallTime, step, scalarSummary(scalars)));
  }

  flush(): void {
    if (this.fd !== undefined) fs.fsyncSync(this.fd);
  }

  close(): void {
    if (this.fd !== undefined) {
      fs.fsyncSync(this.fd);
      fs.closeSync(this.fd);
      this.fd = undefined;
    }
  }
}

/**
 * Writes each step's loss, learning rate, gradient norm and throughput, and each validation loss,
 * to an event file in the run directory. Other plugins may add scalars through it (ScalarSink).
 */
export class TensorBoardPlugin implements TrainerPlugin, ScalarSink {
  readonly name = "tensorboard";
  private writer: EventFileWriter | undefined;
  private lastFlush = Date.now();
  private closed = false;
  constructor(private readonly runDir: string) {}

  private open(ctx?: TrainerContext): EventFileWriter {
    // A resumed run purges what the interrupted process wrote after its last checkpoint.
    this.writer ??= new EventFileWriter(this.runDir, ctx?.resumed ? { purgeFromStep: ctx.startStep + 1 } : {});
    return this.writer;
  }

  setup(ctx: TrainerContext): void {
    this.open(ctx);
  }

  addScalars(step: number, scalars: Record<string, number>): void {
    if (!this.closed) this.open().addScalars(step, scalars);
  }

  afterStep(ctx: StepContext): void {
    this.addScalars(ctx.step, { "train/loss": ctx.loss, "train/lr": ctx.lr, "train/grad_norm": ctx.gradNorm, "train/tokens_per_sec": ctx.tokensPerSec, "train/step_ms": ctx.stepMs });
    // Readers see new events once they are on disk: sync every few seconds, not every step.
    if (Date.now() - this.lastFlush > 5000) {
      this.writer?.flush();
      this.lastFlush = Date.now();
    }
  }

  afterEval(ctx: EvalContext): void {
    this.addScalars(ctx.step, { "val/loss": ctx.valLoss });
  }

  onCheckpoint(): void {
    this.writer?.flush();
  }

  teardown(): void {
    this.closed = true;
    this.writer?.close();
    this.writer = undefined;
  }
}
