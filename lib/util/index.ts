/** Small helpers shared by every layer (no torch imports here). */
export * from "./arrays.js";
export * from "./atomic.js";
export * from "./prng.js";
export * from "./shape.js";
