// The live report (`innerloop report --watch RUN`): an HTTP server on 127.0.0.1 (unless another
// host is asked for) that re-renders a run's report into RUN/live/ whenever metrics.jsonl or the
// analysis files change, and tells open pages over server-sent events, which fetch the new figures
// without a reload by hand.
//
// Files are polled (stat every interval) rather than watched: the analysis files are replaced by
// atomic renames, which fs.watch follows differently on each platform.

import * as fs from "node:fs";
import * as http from "node:http";
import * as path from "node:path";
import { METRICS_FILE, type StepRow } from "../../train/metrics.js";
import { timelinePath } from "../files.js";
import { compareTimelineFigures } from "./compare-figures.js";
import { reportHead, reportSections, writePage, type ReportOptions, type Section } from "./html.js";
import { readCompareInput } from "./inputs.js";

export interface LiveOptions extends Pick<ReportOptions, "perLayerHeatmaps"> {
  /** TCP port (0: any free port). Default 8765. */
  port?: number;
  /** Interface to listen on. Default 127.0.0.1 (this machine only). */
  host?: string;
  /** How often the run's files are checked, in milliseconds. Default 1000. */
  intervalMs?: number;
  log?: (msg: string) => void;
}

export interface LiveStatus {
  /** Increases with every re-render. */
  version: number;
  /** Latest optimizer step in metrics.jsonl (null before the first). */
  step: number | null;
  loss: number | null;
  figures: number;
  snapshots: number;
  updatedAt: string | null;
  error: string | null;
}

export interface LiveServer {
  url: string;
  status(): LiveStatus;
  close(): Promise<void>;
}

/** The last complete step row of metrics.jsonl, read from the file's tail (the file grows with the run). */
function lastStep(file: string): StepRow | null {
  let fd: number;
  try {
    fd = fs.openSync(file, "r");
  } catch {
    return null;
  }
  try {
    const size = fs.fstatSync(fd).size;
    const n = Math.min(size, 1 << 16);
    const buf = Buffer.alloc(n);
    fs.readSync(fd, buf, 0, n, size - n);
    const lines = buf.toString("utf8").split("\n");
    for (let i = lines.length - 1; i >= 0; i--) {
      try {
        const row = JSON.parse(lines[i]!) as Record<string, unknown>;
        if (typeof row.step === "number" && typeof row.loss === "number") return row as unknown as StepRow;
      } catch {
        // a partial line (being written) or the cut-off first line of the tail
      }
    }
    return null;
  } finally {
    fs.closeSync(fd);
  }
}

/** Sizes and modification times of the files the report is made from: changes when any of them does. */
function signature(runDir: string): string {
  const files = [path.join(runDir, METRICS_FILE), timelinePath(runDir), path.join(runDir, "analysis.json"), path.join(runDir, "analysis", "analysis.json")];
  return files
    .map((f) => {
      try {
        const s = fs.statSync(f);
        return `${s.size}:${s.mtimeMs}`;
      } catch {
        return "-";
      }
    })
    .join("|");
}

const PAGE = (runDir: string) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>live: ${path.basename(path.resolve(runDir)).replace(/[<>&"]/g, "")}</title>
<style>
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; max-width: 980px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
#status { position: sticky; top: 0; background: #f4f8ff; border: 1px solid #cde; padding: 4px 10px; font-size: 0.95em; }
figure { margin: 2em 0; } figure img { max-width: 100%; } figcaption { font-size: 0.95em; }
table { border-collapse: collapse; font-size: 0.9em; } td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; } th { background: #f4f4f4; }
</style></head><body>
<div id="status">Step <b id="latest-step">–</b>, loss <span id="latest-loss">–</span>; <span id="figure-count">0</span> figures, <span id="snapshot-count">0</span> analysis snapshots; <span id="updated">waiting for the run's first metrics</span></div>
<div id="report"></div>
<script>
const $ = (id) => document.getElementById(id);
let shown = -1;
async function show(s) {
  $("latest-step").textContent = s.step === null ? "–" : String(s.step);
  $("latest-loss").textContent = s.loss === null ? "–" : s.loss.toFixed(4);
  $("snapshot-count").textContent = String(s.snapshots);
  $("updated").textContent = s.error ? "error: " + s.error : s.updatedAt ? "updated " + new Date(s.updatedAt).toLocaleTimeString() : "waiting for the run's first metrics";
  if (s.version === shown) return;
  const r = await fetch("/fragment?v=" + s.version);
  if (!r.ok) return;
  $("report").innerHTML = await r.text();
  $("figure-count").textContent = String(document.querySelectorAll("#report figure").length);
  shown = s.version;
}
const events = new EventSource("/events");
events.onmessage = (e) => show(JSON.parse(e.data));
</script>
</body></html>
`;

/** Starts the live report of `runDir`; resolves once the server listens. */
export async function serveLive(runDir: string, opts: LiveOptions = {}): Promise<LiveServer> {
  if (!fs.existsSync(runDir) || !fs.statSync(runDir).isDirectory()) throw new Error(`--watch ${runDir}: not a directory`);
  const outDir = path.join(runDir, "live");
  const status: LiveStatus = { version: 0, step: null, loss: null, figures: 0, snapshots: 0, updatedAt: null, error: null };
  let fragment = "<p>No metrics or analysis yet: the page fills in as the run writes them.</p>";
  const clients = new Set<http.ServerResponse>();
  let sig = "";
  let rendering = false;
  let closed = false;

  const broadcast = () => {
    const msg = `data: ${JSON.stringify(status)}\n\n`;
    for (const c of clients) c.write(msg);
  };

  async function render(): Promise<void> {
    const sections: Section[] = [];
    let summary = "";
    try {
      const loss = compareTimelineFigures([readCompareInput(runDir, path.basename(path.resolve(runDir)))]).filter((f) => f.name === "compare_loss");
      if (loss.length > 0) sections.push({ heading: "Training", intro: "Loss of every optimizer step so far (metrics.jsonl).", figs: loss });
    } catch {
      // nothing written yet
    }
    const rep = reportSections(runDir, opts);
    if (rep) {
      sections.push(...rep.sections);
      summary = rep.summary;
    }
    const res = await writePage(outDir, { ...reportHead(runDir), summary, sections, log: opts.log });
    const body = /<body>([\s\S]*)<\/body>/.exec(res.html)?.[1] ?? "";
    const v = status.version + 1;
    fragment = body.replace(/src="report\/([A-Za-z0-9_]+\.svg)"/g, (_, f: string) => `src="/figures/${f}?v=${v}"`);
    const last = lastStep(path.join(runDir, METRICS_FILE));
    Object.assign(status, {
      version: v,
      step: last?.step ?? null,
      loss: last?.loss ?? null,
      figures: res.figures.length,
      snapshots: rep?.snapshots ?? 0,
      updatedAt: new Date().toISOString(),
      error: null,
    });
  }

  async function tick(): Promise<void> {
    if (rendering || closed) return;
    const now = signature(runDir);
    if (now === sig) return;
    rendering = true;
    try {
      sig = now;
      await render();
    } catch (e) {
      // A file caught mid-write by a non-atomic writer, or a bad file: say so and try again next change.
      status.error = (e as Error).message.split("\n")[0]!;
      sig = "";
    } finally {
      rendering = false;
    }
    if (!closed) broadcast();
  }

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (url.pathname === "/") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
      res.end(PAGE(runDir));
    } else if (url.pathname === "/fragment") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
      res.end(fragment);
    } else if (url.pathname === "/status.json") {
      res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" });
      res.end(JSON.stringify(status));
    } else if (url.pathname === "/events") {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store", connection: "keep-alive" });
      res.write(`retry: 1000\ndata: ${JSON.stringify(status)}\n\n`);
      clients.add(res);
      req.on("close", () => clients.delete(res));
    } else if (/^\/figures\/[A-Za-z0-9_]+\.svg$/.test(url.pathname)) {
      // Names are checked above: no path leaves RUN/live/report/.
      fs.readFile(path.join(outDir, "report", path.basename(url.pathname)), (err, data) => {
        if (err) {
          res.writeHead(404).end();
          return;
        }
        res.writeHead(200, { "content-type": "image/svg+xml", "cache-control": "no-store" });
        res.end(data);
      });
    } else {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
    }
  });
  const host = opts.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e: NodeJS.ErrnoException) => reject(new Error(e.code === "EADDRINUSE" ? `--port ${opts.port ?? 8765}: already in use on ${host}` : `cannot listen on ${host}:${opts.port ?? 8765}: ${e.message}`)));
    server.listen(opts.port ?? 8765, host, () => resolve());
  });
  await tick();
  const timer = setInterval(() => void tick(), opts.intervalMs ?? 1000);
  const addr = server.address() as { port: number };
  return {
    url: `http://${host.includes(":") ? `[${host}]` : host}:${addr.port}/`,
    status: () => ({ ...status }),
    close: async () => {
      closed = true;
      clearInterval(timer);
      for (const c of clients) c.end();
      clients.clear();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
