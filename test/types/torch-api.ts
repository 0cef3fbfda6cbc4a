// Compiled with `tsc --strict --noEmit` by test/types.test.ts: each line states a typing of the
// public torch API, and each @ts-expect-error a misuse that must not compile.
import { torch, type Device, type Tensor } from "../../lib/index.js";

const t: Tensor = torch.zeros([2, 3]);

// Tensor.device is a Device, so it can be passed where options want one.
const dev: Device = t.device;
torch.zeros([2], { device: t.device });
torch.ones([2], { device: dev, dtype: t.dtype });

// size(dim) is a number, size() the shape.
const rows: number = t.size(0);
const shape: number[] = t.size();
// @ts-expect-error size(dim) is not an array
const wrong: number[] = t.size(0);

// toArray() is a nested array of numbers/booleans, not any; the bigint form may hold BigInts.
const nested = t.toArray();
// @ts-expect-error toArray() is not any: a nested array is not a string
const notString: string = nested;
const withBig = torch.tensor([1n, 2n]).toArray({ bigint: true });
const flatBig: (number | bigint | boolean)[] = withBig as (number | bigint | boolean)[];
// @ts-expect-error the bigint form is not plain numbers
const notNumbers: number | number[] = withBig;

// item() is a number; item({ bigint: true }) may be a BigInt.
const one: number = torch.tensor(1).item();
const big: number | bigint = torch.tensor(1n).item({ bigint: true });
// @ts-expect-error a BigInt is not a number
const notNumber: number = torch.tensor(1n).item({ bigint: true });

// BigInt input and null options compile.
torch.tensor([1n, 2n], null);
torch.zeros([2], null);

// Internal kernels are not on the public namespace.
// @ts-expect-error internal
torch.gpt2Block;
// @ts-expect-error internal
torch.gpt2HeadLoss;
// @ts-expect-error internal
torch._fusedAdamW;
// @ts-expect-error internal
torch.fusedAdamW;
// @ts-expect-error internal
torch.sgdStep;

export { rows, shape, wrong, notString, flatBig, notNumbers, one, big, notNumber };
