/** Element types, with PyTorch's meanings. */
export type DType =
  | "float32" | "float64" | "bfloat16" | "float16" | "int64" | "int32" | "int16" | "int8" | "uint8" | "bool"
  | "complex64" | "complex128";
/** Extra element types used only for reading raw token files. */
export type RawDType = DType | "uint16";
/** Where a tensor lives. */
export type Device = "cpu" | "cuda" | `cuda:${number}`;
export type Shape = number[];

export const DTYPES: readonly DType[] = [
  "float32", "float64", "bfloat16", "float16", "int64", "int32", "int16", "int8", "uint8", "bool", "complex64", "complex128",
];

export function isDType(x: unknown): x is DType {
  return typeof x === "string" && (DTYPES as readonly string[]).includes(x);
}

export function isDevice(x: unknown): x is Device {
  return typeof x === "string" && (x === "cpu" || x === "cuda" || /^cuda:\d+$/.test(x));
}

/** Options accepted by every factory. */
export interface TensorOptions {
  dtype?: DType;
  device?: Device;
  requiresGrad?: boolean;
}

/** Bytes per element. */
export function itemSize(dtype: RawDType): number {
  switch (dtype) {
    case "complex128": return 16;
    case "float64": case "int64": case "complex64": return 8;
    case "float32": case "int32": return 4;
    case "bfloat16": case "float16": case "int16": case "uint16": return 2;
    case "uint8": case "int8": case "bool": return 1;
  }
}

export type TypedArray =
  | Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array | Int16Array | Int8Array | Uint16Array;
