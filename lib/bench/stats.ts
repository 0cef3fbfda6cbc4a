// Small statistics and memory readings shared by the harness and its worker.

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2]! : 0.5 * (s[n / 2 - 1]! + s[n / 2]!);
}

/** Milliseconds between two process.hrtime.bigint() readings. */
export function msBetween(t0: bigint, t1: bigint): number {
  return Number(t1 - t0) / 1e6;
}

/** Current resident set size in KiB. */
export function rssKB(): number {
  return Math.round(process.memoryUsage().rss / 1024);
}

/** getrusage(RUSAGE_SELF).ru_maxrss in KiB: what Python's resource module reports for its process. */
export function maxRssKB(): number {
  return process.resourceUsage().maxRSS;
}
