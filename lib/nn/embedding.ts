// Embedding: a lookup table of shape [numEmbeddings, embeddingDim], initialised N(0, 1).

import { torch, F } from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import { Module } from "./module.js";
import { normal_ } from "./init.js";
import { checkPositiveInt } from "./linear.js";
import type { FactoryOptions } from "./options.js";

export class Embedding extends Module {
  readonly numEmbeddings: number;
  readonly embeddingDim: number;
  weight: Tensor;

  constructor(numEmbeddings: number, embeddingDim: number, opts: FactoryOptions = {}) {
    super();
    checkPositiveInt("numEmbeddings", numEmbeddings);
    checkPositiveInt("embeddingDim", embeddingDim);
    this.numEmbeddings = numEmbeddings;
    this.embeddingDim = embeddingDim;
    this.weight = this.registerParameter("weight", normal_(torch.empty([numEmbeddings, embeddingDim], opts), 0, 1));
  }

  forward(ids: Tensor): Tensor {
    return F.embedding(ids, this.weight);
  }
}
