// The live report (`innerloop report --watch RUN`): served on 127.0.0.1, and in a real headless
// Chromium the page fills in by itself while a training run writes metrics and analysis snapshots:
// the latest step and the number of figures shown grow without a reload.
//
// Chromium comes from Debian's `chromium` package (.ci/run installs it); without /usr/bin/chromium
// the browser test is skipped with a message saying so.

import { describe, it, expect, afterAll } from "vitest";
import { spawn, type ChildProcess } from "node:child_process";
import { createRequire } from "node:module";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { serveLive } from "../lib/analysis/report/live.js";
import { spawnCli } from "./helpers/cli-process.js";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const haveChromium = fs.existsSync(CHROMIUM);
if (!haveChromium) console.warn(`live-report browser test skipped: no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM=/path/to/chromium)`);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const started: ChildProcess[] = [];
afterAll(() => {
  for (const c of started) {
    if (c.exitCode !== null || c.signalCode !== null) continue;
    try {
      process.kill(-c.pid!, "SIGKILL"); // the browser's whole process group
    } catch {
      c.kill("SIGKILL"); // a process that leads no group of its own
    }
  }
});

interface CdpClient {
  Page: { enable(): Promise<void>; navigate(o: { url: string }): Promise<unknown>; loadEventFired(): Promise<unknown> };
  Runtime: { evaluate(o: { expression: string; returnByValue: boolean; awaitPromise?: boolean }): Promise<{ result: { value: unknown } }> };
  close(): Promise<void>;
}
type Cdp = ((o: { port: number }) => Promise<CdpClient>) & { List(o: { port: number }): Promise<unknown[]> };

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

/** Resolves with the first stdout line of `child` that matches `re`. */
function waitForLine(child: ChildProcess, re: RegExp, timeoutMs = 60_000): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let buf = "";
    let err = "";
    const timer = setTimeout(() => reject(new Error(`no line matching ${re} within ${timeoutMs} ms; stderr: ${err}`)), timeoutMs);
    child.stderr?.on("data", (d: Buffer) => (err += d.toString()));
    child.stdout?.on("data", (d: Buffer) => {
      buf += d.toString();
      const m = re.exec(buf);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before printing ${re}; stderr: ${err}`));
    });
  });
}

describe("live report server", () => {
  it("listens on 127.0.0.1 only by default and serves the page, the status and nothing outside RUN/live", async () => {
    const run = fs.mkdtempSync(path.join(os.tmpdir(), "il-live-"));
    const server = await serveLive(run, { port: 0, intervalMs: 100 });
    try {
      expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
      const page = await (await fetch(server.url)).text();
      expect(page).toContain('new EventSource("/events")');
      const status = (await (await fetch(new URL("/status.json", server.url))).json()) as { step: number | null; figures: number };
      expect(status).toMatchObject({ step: null, figures: 0 });
      expect((await fetch(new URL("/figures/..%2F..%2Fetc%2Fpasswd", server.url))).status).toBe(404);
      expect((await fetch(new URL("/nothing", server.url))).status).toBe(404);
    } finally {
      await server.close();
    }
    await expect(serveLive(path.join(run, "missing"))).rejects.toThrow(/--watch .*missing: not a directory/);
  });

  it.skipIf(!haveChromium)("updates an open page in headless Chromium while a run trains", async () => {
    const run = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "il-live-")), "run");
    fs.mkdirSync(run);
    const watcher = spawnCli(["report", "--watch", run, "--port", "0", "--interval", "0.2"]);
    started.push(watcher);
    const url = (await waitForLine(watcher, /at (http:\/\/127\.0\.0\.1:\d+\/)/))[1]!;

    const port = await freePort();
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), "il-chromium-"));
    const browser = spawn(CHROMIUM, ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync", `--remote-debugging-port=${port}`, `--user-data-dir=${profile}`, "about:blank"], {
      stdio: "ignore",
      // Its own process group, so that the renderer and helper processes are stopped with it.
      detached: true,
    });
    started.push(browser);
    const CDP = createRequire(import.meta.url)("chrome-remote-interface") as Cdp;
    let client: CdpClient | undefined;
    for (let i = 0; i < 100 && !client; i++) {
      try {
        if ((await CDP.List({ port })).length > 0) client = await CDP({ port });
      } catch {
        await sleep(200);
      }
    }
    expect(client, "connected to Chromium's DevTools").toBeDefined();
    try {
      await client!.Page.enable();
      const loaded = client!.Page.loadEventFired();
      await client!.Page.navigate({ url });
      await loaded;
      const read = async () =>
        (await client!.Runtime.evaluate({
          expression: `({ step: document.getElementById("latest-step").textContent, figures: document.querySelectorAll("#report figure").length, count: document.getElementById("figure-count").textContent, images: [...document.querySelectorAll("#report img")].map((i) => i.complete && i.naturalWidth > 0) })`,
          returnByValue: true,
        })).result.value as { step: string; figures: number; count: string; images: boolean[] };

      const first = await read();
      expect(first.step).toBe("–");
      expect(first.figures).toBe(0);

      const steps = 4000;
      const train = spawnCli(["train", "--n-layer", "2", "--n-embd", "16", "--n-head", "2", "--seq-len", "8", "--batch-size", "2", "--steps", String(steps), "--analyze-every", "1000", "--analyze-windows", "2", "--checkpoint-every", "1000", "--eval-every", "0", "--out", run]);
      started.push(train);
      const seen: Array<{ step: number; figures: number }> = [];
      const t0 = Date.now();
      let trainExit: number | null = null;
      train.on("exit", (c) => (trainExit = c ?? -1));
      for (;;) {
        const s = await read();
        const step = s.step === "–" ? 0 : Number(s.step);
        const last = seen[seen.length - 1];
        if (!last || last.step !== step || last.figures !== s.figures) seen.push({ step, figures: s.figures });
        if (step === steps && trainExit !== null) {
          // The last snapshot may land a moment after the last metrics row, and images load after the page's text.
          await sleep(1500);
          let fin = await read();
          for (let i = 0; i < 50 && !(fin.images.length > 0 && fin.images.every(Boolean)); i++) {
            await sleep(200);
            fin = await read();
          }
          seen.push({ step: Number(fin.step), figures: fin.figures });
          expect(fin.images.length).toBe(fin.figures);
          expect(fin.images.every(Boolean), `every figure's SVG loaded: ${JSON.stringify(fin.images)}`).toBe(true);
          expect(fin.count).toBe(String(fin.figures));
          break;
        }
        if (Date.now() - t0 > 120_000) throw new Error(`the page did not reach step ${steps}: ${JSON.stringify(seen)}`);
        await sleep(100);
      }
      expect(trainExit).toBe(0);
      // The page changed by itself several times, never going back.
      const stepsSeen = [...new Set(seen.map((s) => s.step))];
      expect(stepsSeen.length, JSON.stringify(seen)).toBeGreaterThanOrEqual(3);
      for (let i = 1; i < seen.length; i++) expect(seen[i]!.step).toBeGreaterThanOrEqual(seen[i - 1]!.step);
      const figuresSeen = [...new Set(seen.map((s) => s.figures))];
      expect(figuresSeen.length, JSON.stringify(seen)).toBeGreaterThanOrEqual(3);
      expect(seen[seen.length - 1]!.figures).toBe(Math.max(...figuresSeen));
      // The loss figure alone first, then the analysis and timeline figures.
      expect(figuresSeen).toContain(1);
      expect(seen[seen.length - 1]!.figures).toBeGreaterThan(10);
    } finally {
      await client?.close();
      try {
        process.kill(-browser.pid!, "SIGKILL");
      } catch {
        browser.kill("SIGKILL");
      }
      watcher.kill("SIGTERM");
      await new Promise((r) => (browser.exitCode !== null || browser.signalCode !== null ? r(null) : browser.on("exit", r)));
      // A helper process may still be writing its last files into the profile for a moment.
      fs.rmSync(profile, { recursive: true, force: true, maxRetries: 20, retryDelay: 100 });
    }
    const code = await new Promise((r) => (watcher.exitCode !== null ? r(watcher.exitCode) : watcher.on("exit", r)));
    expect(code).toBe(0);
  });
});
