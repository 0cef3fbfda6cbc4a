// CUDA device queries and the caching allocator's statistics.
import { native } from "./native.js";

export function isAvailable(): boolean { return native.cudaIsAvailable(); }
export function deviceCount(): number { return native.cudaDeviceCount(); }
export function deviceName(device = 0): string { return native.cudaDeviceName(device); }
/** Waits for all work queued on the device (all devices when none is given). */
export function synchronize(device = -1): void { native.cudaSynchronize(device); }
/** Returns cached, unused blocks to the driver. */
export function emptyCache(): void { native.cudaEmptyCache(); }
export interface CudaMemoryStats { allocated: number; reserved: number; maxAllocated: number; maxReserved: number }
export function memoryStats(device = 0): CudaMemoryStats { return native.cudaMemoryStats(device); }
export function memoryAllocated(device = 0): number { return memoryStats(device).allocated; }
export function memoryReserved(device = 0): number { return memoryStats(device).reserved; }
export function maxMemoryAllocated(device = 0): number { return memoryStats(device).maxAllocated; }
export function resetPeakMemoryStats(device = 0): void { native.cudaResetPeakMemoryStats(device); }

/**
 * Whether a CUDA graph is capturing now. While it is, work is recorded rather than run, and
 * anything that waits for the device (reading a value, `synchronize`) breaks the capture.
 */
export function isCapturing(): boolean { return native.cudaIsCapturing(); }

/**
 * A CUDA graph (torch.cuda.CUDAGraph): the kernels that `capture(fn)` launches are recorded once
 * and `replay()` launches them all again with one call, on the same memory. Tensors that `fn`
 * creates and keeps (its outputs, gradients made by a backward pass inside it) are the graph's
 * static outputs: every replay rewrites them in place. Inputs are read from the tensors `fn` read:
 * to replay on new data, copy it into those tensors first (`x.copy_(batch)`).
 *
 * Rules, as in PyTorch: run `fn` eagerly a few times before capturing, inside `onStream` (so that
 * lazily created state such as optimizer moments exists before, not inside, the capture, and
 * belongs to the capture's stream); nothing in `fn` may wait for the device or read a value back;
 * shapes are fixed by the capture. A capture that breaks a rule throws, and the graph is left
 * empty and can capture again (with libtorch before 2.14 the memory the failed capture took stays
 * reserved until the process ends).
 */
export class CudaGraph {
  private handle: number | null;
  private capturedFlag = false;

  constructor(device = 0) {
    this.handle = native.cudaGraphCreate(device);
  }

  /** True once a capture has succeeded (until `dispose`). */
  get captured(): boolean {
    return this.capturedFlag;
  }

  /**
   * Runs `fn` eagerly on the graph's own stream (after the work queued so far, and before the work
   * queued after it): the warm-up steps belong there, so that what they set up per stream is the
   * capture's.
   */
  onStream<T>(fn: () => T): T {
    const h = this.live();
    native.cudaGraphStreamEnter(h);
    try {
      return fn();
    } finally {
      native.cudaGraphStreamLeave(h);
    }
  }

  /** Records what `fn` launches, on the graph's stream; returns what `fn` returns. Nothing runs until `replay()`. */
  capture<T>(fn: () => T): T {
    const h = this.live();
    native.cudaGraphCaptureBegin(h);
    let out: T;
    try {
      out = fn();
    } catch (e) {
      native.cudaGraphCaptureEnd(h, true);
      throw e;
    }
    native.cudaGraphCaptureEnd(h, false);
    this.capturedFlag = true;
    return out;
  }

  /** Launches the captured work on the current stream and returns without waiting for it. */
  replay(): void {
    native.cudaGraphReplay(this.live());
  }

  /** Frees the graph and its private memory pool (tensors that still point into it stay valid). */
  dispose(): void {
    if (this.handle !== null) native.cudaGraphDispose(this.handle);
    this.handle = null;
    this.capturedFlag = false;
  }

  private live(): number {
    if (this.handle === null) throw new Error("cuda.CudaGraph: the graph was disposed");
    return this.handle;
  }
}
