/**
 * `innerloop --version`: the package version, the libtorch it runs on and
 * whether CUDA works (a tiny computation on the GPU, not only a driver query).
 */
import { readFileSync } from "node:fs";

/** The version in package.json (lib/cli and dist/cli both sit two levels below it). */
export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version?: string };
  return pkg.version ?? "unknown";
}

export async function versionText(): Promise<{ text: string; ok: boolean }> {
  const lines = [`innerloop ${packageVersion()}`];
  let torchMod: typeof import("../torch/index.js");
  try {
    torchMod = await import("../torch/index.js");
  } catch (e) {
    lines.push(`libtorch: not loaded (${firstLine(e)})`);
    return { text: lines.join("\n"), ok: false };
  }
  const { torch } = torchMod;
  const v = torch.version;
  lines.push(`libtorch ${v.libtorch}${v.cuda ? ` (CUDA ${v.cuda})` : " (CPU build)"}`);
  lines.push(`cuda: ${cudaStatus(torch)}`);
  lines.push(`addon: ${addonText((await import("../torch/native.js")).addonOrigin)}`);
  lines.push(`cpu matrix products: ${torch.gemmBackend() === "onednn" ? "oneDNN where faster, else BLAS" : "BLAS"}`);
  return { text: lines.join("\n"), ok: true };
}

function addonText(o: import("../torch/native.js").AddonOrigin): string {
  if (o.prebuild) return `prebuild ${o.prebuild} (chosen at install for the libtorch in ${o.libDir ?? "an unrecorded folder"})`;
  return `built from source${o.builtAt ? ` on ${o.builtAt.slice(0, 10)}` : ""} (${o.file})`;
}

function cudaStatus(torch: typeof import("../torch/index.js").torch): string {
  if (!torch.cuda.isAvailable()) return torch.version.cuda ? "not available (CUDA build, but no usable GPU or driver here)" : "not available";
  try {
    const n = torch.cuda.deviceCount();
    const sum = torch.tidy(() => torch.ones([4], { device: "cuda" }).mul(2).sum().item());
    if (sum !== 8) return `available but a test computation gave ${String(sum)} instead of 8`;
    const names = Array.from({ length: n }, (_, i) => torch.cuda.deviceName(i));
    return `works (${n} device${n === 1 ? "" : "s"}: ${names.join(", ")})`;
  } catch (e) {
    return `available but not working (${firstLine(e)})`;
  }
}

function firstLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.split("\n")[0] ?? msg;
}
