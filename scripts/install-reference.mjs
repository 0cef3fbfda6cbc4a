// Before the tests (`npm test` runs this as its pretest step): makes sure the Python the tests call
// can import the reference stack (transformers, safetensors, numpy, and torch, which compute the
// values the tests compare against), installing what is missing with pip into the Python the addon
// was built against, so that the addon and the references use one torch. Quiet when all is there;
// pip's own output goes to a log file, and a failure is one line with the command to run by hand.
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { root } from "./find-libtorch.mjs";

const python = process.env.PYTHON || "python3";
let record = {};
try {
  record = JSON.parse(readFileSync(join(root, "build", "libtorch.json"), "utf8"));
} catch {
  // No build record: the tests will say the addon is missing; the references go into python3.
}
// An addon built against the torch that install put into .libtorch/python (a Python pip may not
// write to): the references go beside it, where vitest.config.ts points the tests' PYTHONPATH.
const localDir = record.source === "local" ? join(root, ".libtorch", "python") : null;
const env = localDir ? { ...process.env, PYTHONPATH: [localDir, process.env.PYTHONPATH].filter(Boolean).join(":") } : process.env;

function missing() {
  const probe = "import importlib.util as u; print(' '.join(m for m in ('torch', 'transformers', 'safetensors', 'numpy') if u.find_spec(m) is None))";
  try {
    return execFileSync(python, ["-c", probe], { env, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim().split(/\s+/).filter(Boolean);
  } catch {
    console.error(`innerloop tests: cannot run ${python}; install Python 3 (or set PYTHON) for the reference values the tests compare against`);
    process.exit(1);
  }
}

const need = missing();
if (need.length > 0) {
  // torch at the addon's version, so that a torch installed here is the one the addon loads.
  const torchVersion = typeof record.version === "string" ? record.version.split("+")[0] : null;
  const specs = need.map((m) => (m === "torch" && torchVersion ? `torch==${torchVersion}` : m));
  console.log(`innerloop tests: installing the Python reference stack (${specs.join(", ")}) with pip into ${localDir ?? `${python}'s environment`}`);
  // One retry per index: where an index cannot be reached, pip otherwise waits through five
  // retries for every package before it takes the next index.
  const args = ["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--retries", "1", ...(localDir ? ["--target", localDir] : []), ...specs];
  const res = spawnSync(python, args, { env, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 << 20 });
  if (res.status !== 0 || missing().length > 0) {
    const logFile = join(tmpdir(), `innerloop-pip-reference-${process.pid}.log`);
    try {
      writeFileSync(logFile, `${res.stdout ?? ""}${res.stderr ?? ""}`);
    } catch {
      // The log is a courtesy; the message below still says what to run.
    }
    console.error(`innerloop tests: pip could not install the reference stack (pip's output: ${logFile}); run \`${[python, ...args.filter((a) => a !== "--quiet")].join(" ")}\` by hand`);
    process.exit(1);
  }
}
