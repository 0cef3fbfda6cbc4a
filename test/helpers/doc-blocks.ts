// Fenced code blocks of a Markdown file, with the line each starts on, for the test that runs the
// documentation's code (test/docs.test.ts).

export interface DocBlock {
  /** The Markdown file, as given. */
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  /** The info string after the fence (e.g. "ts", "ts no-run", "sh"). */
  info: string;
  /** Its first word, lower-cased ("" when there is none). */
  lang: string;
  code: string;
  /** "ts" or "js" for a block to execute; null for others and for blocks marked no-run. */
  runAs: "ts" | "js" | null;
}

const TS = new Set(["ts", "typescript", "tsx", "mts"]);
const JS = new Set(["js", "javascript", "mjs"]);

/** Every fenced block of `text`; an unclosed fence is an error naming the file and line. */
export function docBlocks(file: string, text: string): DocBlock[] {
  const lines = text.split(/\r?\n/);
  const out: DocBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^ {0,3}(`{3,}|~{3,})\s*([^`]*)$/.exec(lines[i]!);
    if (!open) continue;
    const fence = open[1]!;
    const info = open[2]!.trim();
    const body: string[] = [];
    let j = i + 1;
    const closes = (l: string) => new RegExp(`^ {0,3}${fence[0] === "`" ? "`" : "~"}{${fence.length},}\\s*$`).test(l);
    while (j < lines.length && !closes(lines[j]!)) body.push(lines[j++]!);
    if (j >= lines.length) throw new Error(`${file}:${i + 1}: code block opened here is never closed`);
    const lang = (info.split(/\s+/)[0] ?? "").toLowerCase();
    const noRun = /(^|\s)no-run(\s|$)/.test(info);
    const runAs = noRun ? null : TS.has(lang) ? "ts" : JS.has(lang) ? "js" : null;
    out.push({ file, line: i + 1, info, lang, code: body.join("\n") + "\n", runAs });
    i = j;
  }
  return out;
}
