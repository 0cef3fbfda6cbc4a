/**
 * Graceful stop on SIGINT/SIGTERM: the first signal asks the training loop
 * to finish its current step, write a checkpoint and exit 0; a second signal
 * exits at once (the last checkpoint on disk stays valid: checkpoint writes
 * are atomic).
 *
 * The loop yields to the event loop once per step, which is when the
 * handlers here get to run.
 */
export class StopRequest {
  requested = false;
  signal: NodeJS.Signals | undefined;
  private readonly handlers = new Map<NodeJS.Signals, () => void>();
  private readonly onFirst: (signal: NodeJS.Signals) => void;

  constructor(onFirst: (signal: NodeJS.Signals) => void = () => {}) {
    this.onFirst = onFirst;
  }

  install(signals: NodeJS.Signals[] = ["SIGINT", "SIGTERM"]): this {
    for (const sig of signals) {
      const h = () => {
        if (this.requested) {
          process.stderr.write(`\n${sig} again: exiting now without a checkpoint\n`);
          // 128 + signal number, as a shell reports a process killed by it.
          process.exit(sig === "SIGINT" ? 130 : 143);
        }
        this.requested = true;
        this.signal = sig;
        this.onFirst(sig);
      };
      this.handlers.set(sig, h);
      process.on(sig, h);
    }
    return this;
  }

  uninstall(): void {
    for (const [sig, h] of this.handlers) process.off(sig, h);
    this.handlers.clear();
  }
}
