/** An error raised by libtorch (shape mismatch, bad index, ...), with libtorch's message. */
export class TorchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TorchError";
  }
}

/** An allocation failed (CUDA or host). The CUDA cache has already been released. */
export class OutOfMemoryError extends TorchError {
  constructor(message: string) {
    super(message);
    this.name = "OutOfMemoryError";
  }
}
