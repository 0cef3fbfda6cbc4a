// Containers: ModuleList (indexed children named "0", "1", ...) and Sequential (applies its
// children in order).

import type { Tensor } from "../torch/index.js";
import { Module } from "./module.js";

/** A module whose forward maps one tensor to one tensor. */
export interface UnaryModule extends Module {
  forward(x: Tensor): Tensor;
}

export class ModuleList<M extends Module = Module> extends Module implements Iterable<M> {
  private readonly items: M[] = [];

  constructor(modules: Iterable<M> = []) {
    super();
    for (const m of modules) this.append(m);
  }

  append(m: M): this {
    this.registerModule(String(this.items.length), m);
    this.items.push(m);
    return this;
  }

  get length(): number {
    return this.items.length;
  }

  at(i: number): M {
    const m = this.items[i < 0 ? this.items.length + i : i];
    if (m === undefined) throw new RangeError(`ModuleList index ${i} out of range (length ${this.items.length})`);
    return m;
  }

  [Symbol.iterator](): Iterator<M> {
    return this.items[Symbol.iterator]();
  }
}

export class Sequential extends ModuleList<UnaryModule> {
  constructor(...modules: UnaryModule[]) {
    super(modules);
  }

  forward(x: Tensor): Tensor {
    for (const m of this) x = m.forward(x);
    return x;
  }
}
