// The data layer: tokenizers against Python/transformers references, token files written by
// numpy, the train/validation split, the random-window sampler (determinism, exact resume) and
// the analysis windows.
import { describe, expect, it, afterAll } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { torch, Tensor } from "../lib/torch/index.js";
import type { Device } from "../lib/torch/index.js";
import {
  ArrayTokenSource,
  BinTokenSource,
  CharTokenizer,
  ConcatTokenSource,
  Gpt2Tokenizer,
  HfTokenizer,
  RandomWindowSampler,
  TEXT_SEPARATOR,
  listTextFiles,
  loadCorpus,
  readMobyDick,
  sequentialWindows,
  splitTrainVal,
  tokenizerFromJSON,
  writeTokenBin,
} from "../lib/data/index.js";
import { Prng } from "../lib/util/prng.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const FIX = path.join(here, "fixtures", "data");
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "innerloop-data-"));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
let k = 0;
const tmp = (name: string) => path.join(tmpRoot, `${k++}-${name}`);
const devices: Device[] = ["cpu", ...(torch.cuda.isAvailable() ? (["cuda"] as Device[]) : [])];

const json = (f: string) => JSON.parse(fs.readFileSync(path.join(FIX, f), "utf8"));
const ints = (t: Tensor): number[] => Array.from(t.toTypedArray() as BigInt64Array, Number);
const rows = (t: Tensor): number[][] => {
  const [b, n] = t.shape as [number, number];
  const flat = ints(t);
  return Array.from({ length: b }, (_, i) => flat.slice(i * n, (i + 1) * n));
};

describe("Prng", () => {
  it("is deterministic, in range, and restores its state exactly", () => {
    const a = new Prng(42);
    const b = new Prng(42);
    const xs = Array.from({ length: 1000 }, () => a.nextInt(10));
    expect(Array.from({ length: 1000 }, () => b.nextInt(10))).toEqual(xs);
    expect(xs.every((x) => Number.isInteger(x) && x >= 0 && x < 10)).toBe(true);
    // roughly uniform: every bucket gets 100 +- 50
    for (let v = 0; v < 10; v++) expect(Math.abs(xs.filter((x) => x === v).length - 100)).toBeLessThan(50);
    expect(new Prng(43).nextUint32()).not.toBe(new Prng(42).nextUint32());
    const big = Array.from({ length: 100 }, () => a.nextInt(2 ** 40));
    expect(big.every((x) => Number.isSafeInteger(x) && x >= 0 && x < 2 ** 40)).toBe(true);
    expect(big.some((x) => x >= 2 ** 32)).toBe(true);
    const saved = JSON.parse(JSON.stringify(a.state()));
    const next = [a.nextUint32(), a.nextFloat(), a.nextInt(7)];
    const c = Prng.fromState(saved);
    expect([c.nextUint32(), c.nextFloat(), c.nextInt(7)]).toEqual(next);
    expect(() => a.setState([0, 0, 0, 0])).toThrow(/all-zero/);
    expect(() => a.setState([1, 2, 3] as unknown as number[])).toThrow(/four unsigned 32-bit/);
    expect(() => a.nextInt(0)).toThrow(RangeError);
  });
});

describe("CharTokenizer", () => {
  it("builds the same vocabulary and ids as Python's sorted(set(text)) on Moby-Dick", () => {
    const ref = json("char_moby.json") as { length: number; vocab: string[]; sliceStart: number; sliceIds: number[] };
    const text = readMobyDick();
    expect(text.length).toBe(ref.length);
    const tok = CharTokenizer.fromText(text);
    expect(tok.vocab).toEqual(ref.vocab);
    expect(tok.vocabSize).toBe(ref.vocab.length);
    expect(Array.from(tok.encode(text.slice(ref.sliceStart, ref.sliceStart + ref.sliceIds.length)))).toEqual(ref.sliceIds);
    const ids = tok.encode(text);
    expect(ids.length).toBe(text.length); // every character here is in the BMP
    expect(tok.decode(ids)).toBe(text);
  });

  it("handles characters outside the BMP as single tokens, sorted by code point", () => {
    const text = "b😀a\uFFFDa😀\u{10FFFF}";
    const tok = CharTokenizer.fromText(text);
    expect(tok.vocab).toEqual(["a", "b", "\uFFFD", "😀", "\u{10FFFF}"]);
    expect(Array.from(tok.encode(text))).toEqual([1, 3, 0, 2, 0, 3, 4]);
    expect(tok.decode(tok.encode(text))).toBe(text);
    expect(tok.decode(new BigInt64Array([3n, 0n]))).toBe("😀a");
  });

  it("saves and restores itself through JSON, and refuses bad input clearly", () => {
    const tok = CharTokenizer.fromText("hello world\n");
    const back = tokenizerFromJSON(JSON.parse(JSON.stringify(tok.toJSON())));
    expect(back.kind).toBe("char");
    expect(Array.from(back.encode("hello"))).toEqual(Array.from(tok.encode("hello")));
    expect(() => tok.encode("hello, world")).toThrow(/character "," \(U\+002C\) at position 5 is not in the vocabulary/);
    expect(Array.from(tok.encode("hel, lo", { onUnknown: "skip" }))).toEqual(Array.from(tok.encode("hel lo")));
    expect(() => tok.decode([0, 99])).toThrow(/id 99 at index 1 is not an integer in \[0, 9\)/);
    expect(() => tokenizerFromJSON({ kind: "char", vocab: ["b", "a"] })).toThrow(/sorted/);
    expect(() => tokenizerFromJSON({ kind: "char", vocab: ["ab"] })).toThrow(/exactly one character/);
    expect(() => tokenizerFromJSON({ kind: "bpe" })).toThrow(/kind must be 'char', 'gpt2' or 'hf'/);
    expect(() => CharTokenizer.fromText("")).toThrow(/empty/);
  });
});

describe("Gpt2Tokenizer", () => {
  it("gives the same ids as transformers' GPT2TokenizerFast, and decodes back to the text", () => {
    const ref = json("gpt2_ids.json") as { cases: { text: string; ids: number[] }[] };
    const tok = new Gpt2Tokenizer();
    expect(tok.vocabSize).toBe(50257);
    expect(tok.eotId).toBe(50256);
    expect(ref.cases.length).toBeGreaterThan(10);
    for (const c of ref.cases) {
      const ids = tok.encode(c.text);
      expect(Array.from(ids), JSON.stringify(c.text.slice(0, 40))).toEqual(c.ids);
      expect(tok.decode(ids)).toBe(c.text);
    }
    const back = tokenizerFromJSON(JSON.parse(JSON.stringify(tok.toJSON())));
    expect(back.kind).toBe("gpt2");
    expect(() => tok.decode([50257])).toThrow(/id 50257 at index 0/);
  });
});

describe("tokenizer.json tokenizers through the common interface", () => {
  it("restores an 'hf' tokenizer from its saved JSON and tokenizes a corpus with it", () => {
    const dir = path.join(here, "fixtures", "pretrained", "tokenizers", "bytelevel");
    const tok = HfTokenizer.fromDir(dir);
    const back = tokenizerFromJSON(JSON.parse(JSON.stringify(tok.toJSON())));
    expect(back.kind).toBe("hf");
    expect(back.vocabSize).toBe(tok.vocabSize);
    const text = "Call me Ishmael.";
    expect(Array.from(back.encode(text))).toEqual(Array.from(tok.encode(text)));
    const f = tmp("hf.txt");
    fs.writeFileSync(f, text);
    const c = loadCorpus(f, tok.toJSON());
    expect(Array.from(c.tokens.read(0, c.tokens.length))).toEqual(Array.from(tok.encode(text)));
    expect(() => loadCorpus(f, "hf")).toThrow(/comes from a model folder/);
  });
});

describe("token files", () => {
  const ref = json("tokens.json") as { u16: number[]; u32: number[]; batch: { T: number; starts: number[]; x: number[][]; y: number[][] } };

  it("reads uint16 and uint32 files written by numpy, in windows at any offset", () => {
    const src = new BinTokenSource(path.join(FIX, "tokens_u16.bin"));
    expect(src.length).toBe(ref.u16.length);
    expect(Array.from(src.read(0, src.length))).toEqual(ref.u16);
    const rng = new Prng(5);
    for (let i = 0; i < 50; i++) {
      const start = rng.nextInt(src.length);
      const count = rng.nextInt(src.length - start + 1);
      expect(Array.from(src.read(start, count))).toEqual(ref.u16.slice(start, start + count));
    }
    expect(() => src.read(src.length - 2, 3)).toThrow(/cannot read 3 tokens at 5001/);
    src.close();
    expect(() => src.read(0, 1)).toThrow(/closed/);
    const s32 = new BinTokenSource(path.join(FIX, "tokens_u32.bin"), { dtype: "uint32" });
    expect(Array.from(s32.read(0, s32.length))).toEqual(ref.u32);
    s32.close();
  });

  it("writes the same bytes as numpy, and checks sizes and vocabulary", () => {
    const f = tmp("w.bin");
    writeTokenBin(f, ref.u16);
    expect(fs.readFileSync(f).equals(fs.readFileSync(path.join(FIX, "tokens_u16.bin")))).toBe(true);
    const g = tmp("w32.bin");
    writeTokenBin(g, ref.u32, { dtype: "uint32" });
    expect(fs.readFileSync(g).equals(fs.readFileSync(path.join(FIX, "tokens_u32.bin")))).toBe(true);
    expect(() => writeTokenBin(tmp("x.bin"), [70000])).toThrow(/does not fit uint16/);
    const odd = tmp("odd.bin");
    fs.writeFileSync(odd, new Uint8Array(7));
    expect(() => new BinTokenSource(odd)).toThrow(/not a multiple of 2/);
    const checked = new BinTokenSource(path.join(FIX, "tokens_u16.bin"), { vocabSize: 50257 });
    expect(() => checked.read(0, 3)).toThrow(/token 65535 at index 1 is outside the vocabulary \(size 50257\)/);
    expect(Array.from(checked.read(2, 1))).toEqual([50256]);
    checked.close();
  });

  it("reads windows beyond 4 GiB of a large file without loading it", () => {
    // A sparse 5 GiB file: 2.5e9 tokens. Only the windows read touch memory.
    const f = tmp("huge.bin");
    const fd = fs.openSync(f, "w");
    fs.ftruncateSync(fd, 5 * 2 ** 30);
    const tail = Buffer.alloc(8);
    [1, 2, 3, 65535].forEach((v, i) => tail.writeUInt16LE(v, i * 2));
    fs.writeSync(fd, tail, 0, 8, 5 * 2 ** 30 - 8);
    fs.closeSync(fd);
    const rss0 = process.memoryUsage().rss;
    const src = new BinTokenSource(f);
    expect(src.length).toBe(5 * 2 ** 29);
    expect(Array.from(src.read(src.length - 5, 5))).toEqual([0, 1, 2, 3, 65535]);
    const sampler = new RandomWindowSampler(src, { seed: 1 });
    const { x, y } = sampler.nextBatch(4, 64);
    expect(x.shape).toEqual([4, 64]);
    x.dispose();
    y.dispose();
    expect(process.memoryUsage().rss - rss0).toBeLessThan(200 * 2 ** 20);
    src.close();
    fs.rmSync(f);
  });

  it("splits the stream: the last floor(n * f) tokens are validation", () => {
    for (const [n, f] of [[1000, 0.1], [1190317, 0.1], [7, 0.5], [10, 0]] as const) {
      const src = new ArrayTokenSource(Int32Array.from({ length: n }, (_, i) => i % 1000));
      const { train, val } = splitTrainVal(src, f);
      const v = Math.floor(n * f);
      expect(val.length).toBe(v);
      expect(train.length).toBe(n - v);
      if (v > 0) {
        expect(val.read(0, 1)[0]).toBe((n - v) % 1000);
        expect(val.read(v - 1, 1)[0]).toBe((n - 1) % 1000);
      }
    }
    expect(splitTrainVal(new ArrayTokenSource(new Int32Array(1190317))).val.length).toBe(119031);
    expect(() => splitTrainVal(new ArrayTokenSource(new Int32Array(5)), 1)).toThrow(/valFraction must be in \[0, 1\)/);
  });
});

describe("RandomWindowSampler", () => {
  const stream = new ArrayTokenSource(Int32Array.from({ length: 5000 }, (_, i) => (i * 7919) % 5003));

  it("x is a window of T tokens and y the same window shifted by one, as nanoGPT's get_batch", () => {
    const ref = json("tokens.json") as { u16: number[]; batch: { T: number; starts: number[]; x: number[][]; y: number[][] } };
    const src = new BinTokenSource(path.join(FIX, "tokens_u16.bin"));
    const s = new RandomWindowSampler(src, { seed: 0 });
    for (const device of devices) {
      const { x, y } = s.batchAt(ref.batch.starts, ref.batch.T, { device });
      expect(x.dtype).toBe("int64");
      expect(x.device.startsWith(device)).toBe(true);
      expect(rows(x)).toEqual(ref.batch.x);
      expect(rows(y)).toEqual(ref.batch.y);
      x.dispose();
      y.dispose();
    }
    src.close();
  });

  it("draws windows inside the stream, deterministically for a seed", () => {
    const a = new RandomWindowSampler(stream, { seed: 7 });
    const b = new RandomWindowSampler(stream, { seed: 7 });
    const c = new RandomWindowSampler(stream, { seed: 8 });
    const T = 32;
    let differs = false;
    for (let i = 0; i < 20; i++) {
      const sa = a.nextStarts(8, T);
      expect(b.nextStarts(8, T)).toEqual(sa);
      if (JSON.stringify(c.nextStarts(8, T)) !== JSON.stringify(sa)) differs = true;
      expect(sa.every((s) => s >= 0 && s + T + 1 <= stream.length)).toBe(true);
    }
    expect(differs).toBe(true);
    const { x, y } = a.nextBatch(4, T);
    const xr = rows(x);
    const yr = rows(y);
    for (let r = 0; r < 4; r++) {
      const start = (stream.tokens as Int32Array).indexOf(xr[r]![0]!); // tokens are distinct
      expect(xr[r]).toEqual(Array.from(stream.read(start, T)));
      expect(yr[r]).toEqual(Array.from(stream.read(start + 1, T)));
    }
    x.dispose();
    y.dispose();
    // The last possible window start is n - T - 1; with n = T + 1 only start 0 exists.
    const tiny = new RandomWindowSampler(new ArrayTokenSource(Int32Array.from([5, 6, 7])), { seed: 1 });
    expect(tiny.nextStarts(5, 2)).toEqual([0, 0, 0, 0, 0]);
    expect(() => tiny.nextStarts(1, 3)).toThrow(/cannot hold one window/);
    expect(() => tiny.nextStarts(0, 1)).toThrow(/batchSize must be a positive integer/);
  });

  it("resumes exactly from a saved state", () => {
    const live0 = torch.memory().liveTensors;
    const a = new RandomWindowSampler(stream, { seed: 123 });
    for (let i = 0; i < 5; i++) torch.dispose(Object.values(a.nextBatch(3, 16)));
    const saved = JSON.parse(JSON.stringify(a.state()));
    expect(saved.batches).toBe(5);
    const after = Array.from({ length: 5 }, () => {
      const { x, y } = a.nextBatch(3, 16);
      const r = [rows(x), rows(y)];
      x.dispose();
      y.dispose();
      return r;
    });
    const b = new RandomWindowSampler(stream, { seed: 123 });
    b.setState(saved);
    const resumed = Array.from({ length: 5 }, () => {
      const { x, y } = b.nextBatch(3, 16);
      const r = [rows(x), rows(y)];
      x.dispose();
      y.dispose();
      return r;
    });
    expect(resumed).toEqual(after);
    expect(b.state()).toEqual(a.state());
    expect(() => new RandomWindowSampler(stream, { seed: 1 }).setState(saved)).toThrow(/saved with seed 123/);
    expect(torch.memory().liveTensors).toBe(live0);
  });
});

describe("sequentialWindows", () => {
  it("cuts consecutive non-overlapping windows of T + 1 tokens from the start", () => {
    const n = 1000;
    const T = 15;
    const src = new ArrayTokenSource(Int32Array.from({ length: n }, (_, i) => i));
    const w = sequentialWindows(src, T);
    expect(w.count).toBe(Math.floor(n / (T + 1))); // 62; tokens 992..999 unused
    expect(Array.from(w.window(0))).toEqual(Array.from({ length: T + 1 }, (_, i) => i));
    expect(Array.from(w.window(61))).toEqual(Array.from({ length: T + 1 }, (_, i) => 61 * 16 + i));
    for (const device of devices) {
      const { x, y } = w.batch(3, 4, { device });
      expect(x.shape).toEqual([4, T]);
      expect(rows(x)).toEqual([3, 4, 5, 6].map((i) => Array.from({ length: T }, (_, j) => i * 16 + j)));
      expect(rows(y)).toEqual([3, 4, 5, 6].map((i) => Array.from({ length: T }, (_, j) => i * 16 + j + 1)));
      x.dispose();
      y.dispose();
    }
    expect([...w.ranges(25)]).toEqual([
      { first: 0, size: 25 },
      { first: 25, size: 25 },
      { first: 50, size: 12 },
    ]);
    expect(sequentialWindows(src, T, { maxWindows: 10 }).count).toBe(10);
    expect(() => w.window(62)).toThrow(/not in \[0, 62\)/);
    expect(() => sequentialWindows(src, 1000)).toThrow(/cannot hold one window/);
  });
});

describe("loadCorpus", () => {
  it("loads the bundled Moby-Dick with either tokenizer, split 90/10", () => {
    const c = loadCorpus("moby-dick", "char");
    expect(c.tokenizer.vocabSize).toBe((json("char_moby.json") as { vocab: string[] }).vocab.length);
    expect(c.tokens.length).toBe(1190317);
    expect(c.val.length).toBe(119031);
    expect(c.train.length + c.val.length).toBe(c.tokens.length);
    const g = loadCorpus("moby-dick", "gpt2");
    expect(g.tokenizer.kind).toBe("gpt2");
    expect(g.tokens.length).toBe(new Gpt2Tokenizer().encode(readMobyDick()).length);
    // A saved tokenizer can be used on new text.
    const again = loadCorpus("moby-dick", c.tokenizer.toJSON());
    expect(Array.from(again.tokens.read(0, 100))).toEqual(Array.from(c.tokens.read(0, 100)));
  });

  it("loads a text file, and a folder of text files in sorted order with a separator", () => {
    const dir = tmp("texts");
    fs.mkdirSync(path.join(dir, "b"), { recursive: true });
    fs.writeFileSync(path.join(dir, "b", "z.txt"), "third");
    fs.writeFileSync(path.join(dir, "a.md"), "first");
    fs.writeFileSync(path.join(dir, "b.txt"), "second");
    fs.writeFileSync(path.join(dir, ".hidden"), "never");
    expect(listTextFiles(dir)).toEqual(["a.md", "b.txt", "b/z.txt"]);
    const c = loadCorpus(dir, "char", { valFraction: 0.25 });
    const text = ["first", "second", "third"].join(TEXT_SEPARATOR);
    expect(c.tokenizer.decode(c.tokens.read(0, c.tokens.length))).toBe(text);
    expect(c.val.length).toBe(Math.floor(text.length * 0.25));
    const one = loadCorpus(path.join(dir, "a.md"), "gpt2");
    expect(one.tokenizer.decode(one.tokens.read(0, one.tokens.length))).toBe("first");
    fs.writeFileSync(path.join(dir, "bad.txt"), new Uint8Array([0xff, 0xfe, 0x00]));
    expect(() => loadCorpus(dir, "char")).toThrow(/bad.txt: not UTF-8 text/);
  });

  it("loads .bin token files and nanoGPT train.bin/val.bin folders", () => {
    const ids = Array.from({ length: 2000 }, (_, i) => (i * 31) % 50257);
    const f = tmp("data.bin");
    writeTokenBin(f, ids);
    const c = loadCorpus(f, "gpt2");
    expect(c.tokens.length).toBe(2000);
    expect(c.val.length).toBe(200);
    expect(Array.from(c.train.read(1790, 10))).toEqual(ids.slice(1790, 1800));
    expect(Array.from(c.val.read(0, 5))).toEqual(ids.slice(1800, 1805));
    c.close();
    expect(() => loadCorpus(f, "char")).toThrow(/a char tokenizer cannot be built/);
    const dir = tmp("nano");
    fs.mkdirSync(dir);
    writeTokenBin(path.join(dir, "train.bin"), ids.slice(0, 1500));
    writeTokenBin(path.join(dir, "val.bin"), ids.slice(1500));
    const n = loadCorpus(dir, "gpt2");
    expect([n.train.length, n.val.length, n.tokens.length]).toEqual([1500, 500, 2000]);
    expect(n.tokens).toBeInstanceOf(ConcatTokenSource);
    expect(Array.from(n.tokens.read(1495, 10))).toEqual(ids.slice(1495, 1505));
    n.close();
    // Ids beyond the vocabulary are caught when read, naming the file.
    const small = loadCorpus(f, "gpt2", { vocabSize: 100 });
    const s = new RandomWindowSampler(small.train, { seed: 3 });
    expect(() => s.nextBatch(4, 64)).toThrow(/outside the vocabulary \(size 100\)/);
    small.close();
    expect(() => loadCorpus(path.join(tmpRoot, "nope"), "char")).toThrow(/no such file or folder/);
    expect(() => loadCorpus("moby-dick", "bpe" as "char")).toThrow(/tokenizer must be 'char' or 'gpt2'/);
  });
});
