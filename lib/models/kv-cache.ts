// A key/value cache for incremental decoding: per layer, the keys and values of every position
// seen so far ([B, H, T, D]), so each new token attends to them without recomputing them.

import { torch } from "../torch/index.js";
import type { Tensor } from "../torch/index.js";

export class KVCache {
  private readonly keys: Array<Tensor | null>;
  private readonly values: Array<Tensor | null>;

  constructor(nLayer: number) {
    this.keys = new Array<Tensor | null>(nLayer).fill(null);
    this.values = new Array<Tensor | null>(nLayer).fill(null);
  }

  /** Number of cached positions. */
  get length(): number {
    const k = this.keys[0];
    return k === null || k === undefined ? 0 : k.shape[2]!;
  }

  /**
   * Appends this step's keys and values for `layer` and returns all of them. The cache owns what it
   * stores (kept from tidy scopes) and frees what it replaces.
   */
  update(layer: number, k: Tensor, v: Tensor): [Tensor, Tensor] {
    const pk = this.keys[layer] ?? null;
    const pv = this.values[layer] ?? null;
    const nk = pk === null ? k : torch.cat([pk, k], 2);
    const nv = pv === null ? v : torch.cat([pv, v], 2);
    this.keys[layer] = torch.keep(nk);
    this.values[layer] = torch.keep(nv);
    pk?.dispose();
    pv?.dispose();
    return [nk, nv];
  }

  clear(): void {
    for (let i = 0; i < this.keys.length; i++) {
      this.keys[i]?.dispose();
      this.values[i]?.dispose();
      this.keys[i] = null;
      this.values[i] = null;
    }
  }

  dispose(): void {
    this.clear();
  }
}
