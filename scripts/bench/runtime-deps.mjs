// Prints the node_modules folders that the given packages need at run time (their dependencies,
// optional dependencies and required peers, transitively), resolved the way Node resolves them.
// Used by prepare-device.sh to ship only what runs, not the whole development tree.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const seen = new Set();

function resolvePkg(name, fromDir) {
  for (let d = fromDir; ; d = dirname(d)) {
    const p = join(d, "node_modules", name);
    if (existsSync(join(p, "package.json"))) return p;
    if (dirname(d) === d) return null;
  }
}

function visit(dir) {
  if (seen.has(dir)) return;
  seen.add(dir);
  const pj = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  const names = [...Object.keys(pj.dependencies ?? {}), ...Object.keys(pj.optionalDependencies ?? {})];
  for (const [n] of Object.entries(pj.peerDependencies ?? {})) if (!pj.peerDependenciesMeta?.[n]?.optional) names.push(n);
  for (const n of names) {
    const p = resolvePkg(n, dir);
    if (p) visit(p); // optional dependencies for other platforms are simply absent
  }
}

let missing = 0;
for (const name of process.argv.slice(2)) {
  const p = resolvePkg(name, root);
  if (p === null) {
    console.error(`runtime-deps: ${name} is not installed`);
    missing++;
    continue;
  }
  visit(p);
}
console.log([...seen].map((p) => relative(root, p)).sort().join("\n"));
process.exit(missing ? 1 : 0);
