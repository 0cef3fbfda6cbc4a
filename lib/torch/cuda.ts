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
