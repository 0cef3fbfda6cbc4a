import type { Device, DType } from "../torch/index.js";

/** Where a layer creates its parameters. */
export interface FactoryOptions {
  device?: Device;
  dtype?: DType;
}
