// Fused native kernels that lib/optim and lib/models build on. They take raw positional
// arguments and do no user-facing validation beyond the addon's, so they are not part of the
// public `torch` namespace; the optimizers and models are their public form.
export { fusedAdamW, sgdStep, zeroGrad, hasGrads, clipGradNorm, gpt2Block, gpt2BlockProbe, gpt2HeadLoss, gpt2Embed, smallBlockApplies } from "./fused.js";
export type { AdamWStepOptions, SgdStepOptions, GPT2BlockWeights, GPT2BlockProbeSinks, GPT2BlockProbeOutputs } from "./fused.js";
