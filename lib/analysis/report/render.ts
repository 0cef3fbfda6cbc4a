// Renders Vega-Lite specifications to standalone SVG in Node (no browser, no canvas): Vega's
// scenegraph is laid out headless and serialised by its SVG string renderer. Vega is loaded on
// first use, so that importing innerloop does not load the plotting libraries.

type Vega = typeof import("vega");
type VegaLite = typeof import("vega-lite");
let libs: Promise<[Vega, VegaLite]> | null = null;
const load = (): Promise<[Vega, VegaLite]> => (libs ??= Promise.all([import("vega"), import("vega-lite")]));

// Shared look: readable fonts and sizes, light grid, titles left-aligned.
const CONFIG = {
  font: "DejaVu Sans, Helvetica, Arial, sans-serif",
  background: "white",
  padding: 8,
  title: { fontSize: 15, anchor: "start", offset: 10 },
  axis: { labelFontSize: 12, titleFontSize: 13, gridColor: "#e6e6e6", titlePadding: 8 },
  legend: { labelFontSize: 12, titleFontSize: 13 },
  view: { stroke: "#bbb" },
} as const;

export type VLSpec = Record<string, unknown>;

/** Compiles a Vega-Lite spec (with the shared config merged in) and returns its SVG text. */
export async function renderSvg(spec: VLSpec): Promise<string> {
  const [vega, vl] = await load();
  const full = { ...spec, config: { ...CONFIG, ...((spec.config as object) ?? {}) } };
  const compiled = vl.compile(full as unknown as Parameters<VegaLite["compile"]>[0]).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
