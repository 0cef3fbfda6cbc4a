// The devices every device test runs on: always the CPU, and CUDA where it works.
import { torch } from "../../lib/torch/index.js";
import type { Device } from "../../lib/torch/index.js";

export function hasCuda(): boolean {
  return torch.cuda.isAvailable();
}

export function devices(): Device[] {
  return hasCuda() ? ["cpu", "cuda"] : ["cpu"];
}

/** The canonical device string a tensor reports when created on `device`. */
export function canonicalDevice(device: string): string {
  return device === "cuda" ? "cuda:0" : device;
}
