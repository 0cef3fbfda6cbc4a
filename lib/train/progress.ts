/**
 * Training progress on stderr: a bar redrawn in place on a terminal (step,
 * loss, tokens/s, ETA), plain periodic lines otherwise (logs, CI, pipes).
 */
export interface ProgressUpdate {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  stepMs: number;
  tokensPerSec: number;
}

export interface ProgressOptions {
  totalSteps: number;
  startStep: number;
  stream?: NodeJS.WriteStream | NodeJS.WritableStream;
  /** Force the bar (true) or plain lines (false); default: bar when the stream is a TTY. */
  tty?: boolean;
  /** Print nothing (library use). */
  quiet?: boolean;
}

export function formatDuration(sec: number): string {
  if (!Number.isFinite(sec) || sec < 0) return "?";
  sec = Math.round(sec);
  const h = Math.floor(sec / 3600);
  const m = Math.floor((sec % 3600) / 60);
  const s = sec % 60;
  if (h > 0) return `${h}h${String(m).padStart(2, "0")}m`;
  if (m > 0) return `${m}m${String(s).padStart(2, "0")}s`;
  return `${s}s`;
}

export function formatRate(tokensPerSec: number): string {
  if (tokensPerSec >= 1e6) return `${(tokensPerSec / 1e6).toFixed(2)}M`;
  if (tokensPerSec >= 1e3) return `${(tokensPerSec / 1e3).toFixed(1)}k`;
  return tokensPerSec.toFixed(0);
}

export class Progress {
  private readonly stream: NodeJS.WritableStream;
  private readonly tty: boolean;
  private readonly quiet: boolean;
  private readonly total: number;
  private readonly start: number;
  private readonly t0 = Date.now();
  private lastPrint = 0;
  private readonly interval: number;
  private lastVal: number | undefined;
  private barShown = false;
  private lastLine = "";
  private lastUpdate: ProgressUpdate | undefined;

  constructor(opts: ProgressOptions) {
    this.stream = opts.stream ?? process.stderr;
    this.tty = opts.tty ?? Boolean((this.stream as NodeJS.WriteStream).isTTY);
    this.quiet = opts.quiet ?? false;
    this.total = opts.totalSteps;
    this.start = opts.startStep;
    // Plain mode: about 20 lines per run, at most one per step, at least one every 30 s.
    this.interval = Math.max(1, Math.round((this.total - this.start) / 20));
  }

  private eta(step: number): string {
    const done = step - this.start;
    if (done <= 0) return "?";
    const perStep = (Date.now() - this.t0) / 1000 / done;
    return formatDuration(perStep * (this.total - step));
  }

  update(u: ProgressUpdate): void {
    if (this.quiet) return;
    const now = Date.now();
    if (this.tty) {
      this.lastUpdate = u;
      if (now - this.lastPrint < 100 && u.step !== this.total) return; // redraw at most 10x per second
      this.lastPrint = now;
      this.lastLine = this.barLine(u);
      this.stream.write(`\r${this.lastLine}\x1b[K`);
      this.barShown = true;
      return;
    }
    const due = u.step === this.start + 1 || u.step === this.total || u.step % this.interval === 0 || now - this.lastPrint >= 30_000;
    if (!due) return;
    this.lastPrint = now;
    this.stream.write(
      `step ${u.step}/${this.total} loss ${u.loss.toFixed(4)} lr ${u.lr.toExponential(2)} grad-norm ${u.gradNorm.toFixed(3)} ` +
        `${u.stepMs.toFixed(1)} ms/step ${formatRate(u.tokensPerSec)} tok/s ETA ${this.eta(u.step)}\n`,
    );
  }

  private barLine(u: ProgressUpdate): string {
    const width = 24;
    const frac = Math.min(1, u.step / this.total);
    const filled = Math.round(frac * width);
    const bar = "█".repeat(filled) + "░".repeat(width - filled);
    const val = this.lastVal !== undefined ? ` val ${this.lastVal.toFixed(4)}` : "";
    return `${bar} ${u.step}/${this.total} loss ${u.loss.toFixed(4)}${val} ${formatRate(u.tokensPerSec)} tok/s ETA ${this.eta(u.step)}`;
  }

  /** A message on its own line (evals, checkpoints), keeping the bar below it. */
  log(message: string): void {
    if (this.quiet) return;
    if (this.tty && this.barShown) {
      this.stream.write(`\r\x1b[K${message}\n${this.lastLine}`);
    } else {
      this.stream.write(message + "\n");
    }
  }

  eval(step: number, valLoss: number): void {
    this.lastVal = valLoss;
    if (this.lastUpdate) this.lastLine = this.barLine(this.lastUpdate);
    this.log(`step ${step}: val loss ${valLoss.toFixed(4)}`);
  }

  /** Ends the bar's line so later output starts on a fresh line. */
  done(): void {
    if (this.quiet) return;
    if (this.tty && this.barShown) this.stream.write("\n");
    this.barShown = false;
  }
}
