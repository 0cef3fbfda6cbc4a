// `npm install` entry: use a matching prebuilt addon when one is present,
// otherwise build from source against the libtorch found (or installed).
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { findLibtorch, root } from "./find-libtorch.mjs";

function matchingPrebuild() {
  const dir = join(root, "prebuilds", `${process.platform}-${process.arch}`);
  if (!existsSync(dir)) return null;
  const torch = findLibtorch();
  if (!torch) return null;
  const flavour = torch.cuda ? `cu${torch.cuda.replace(".", "")}` : "cpu";
  const tag = `torch${torch.version}.${flavour}`;
  const hit = readdirSync(dir).find((f) => f.endsWith(".node") && f.includes(tag));
  return hit ? join(dir, hit) : null;
}

if (process.env.INNERLOOP_SKIP_BUILD) {
  console.log("innerloop: INNERLOOP_SKIP_BUILD is set; not building the addon");
} else {
  const prebuild = matchingPrebuild();
  if (prebuild) {
    console.log(`innerloop: using prebuilt addon ${prebuild}`);
  } else {
    execFileSync(process.execPath, [join(root, "scripts", "build-native.mjs")], { stdio: "inherit", cwd: root });
  }
}
