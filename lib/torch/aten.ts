// The raw operator namespaces: `torch.aten.<name>` and `torch.ops.<namespace>.<name>` call any
// operator registered with libtorch's dispatcher by its own (snake_case) name, choosing the
// overload from the arguments as Python's `torch.ops` does (native/aten.cc).
import type { AtenOps } from "./aten-ops.generated.js";
import { native } from "./native.js";

export type { AtenOps } from "./aten-ops.generated.js";

/** An operator of a namespace: positional arguments in schema order, then optionally one object of keyword arguments. */
export type OpFunction = (...args: any[]) => any;

/** A namespace of operators, looked up by name on first use. */
export type OpNamespace = Record<string, OpFunction>;

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * An object whose missing properties are resolved through the dispatcher. The resolved function
 * (the generic caller bound to the operator's overload list) is stored on the object itself, so
 * later lookups are plain property reads that never reach the proxy.
 */
function makeNamespace(ns: string): OpNamespace {
  const prefix = ns === "aten" ? "torch.aten" : `torch.ops.${ns}`;
  const resolver = new Proxy(Object.create(null) as object, {
    get(_target, prop, receiver) {
      if (typeof prop !== "string" || prop === "then" || !IDENTIFIER.test(prop)) return undefined;
      const handle = native.atenResolve(`${ns}::${prop}`);
      if (handle === null) {
        // Not stored: a library loaded later may register it.
        return () => {
          throw new TypeError(`${prefix}.${prop}: no operator ${ns}::${prop} is registered in the loaded libtorch`);
        };
      }
      const fn = native.atenCall.bind(null, handle) as OpFunction;
      Object.defineProperty(receiver, prop, { value: fn, enumerable: true, configurable: true, writable: false });
      return fn;
    },
    has(_target, prop) {
      return typeof prop === "string" && IDENTIFIER.test(prop) && native.atenResolve(`${ns}::${prop}`) !== null;
    },
  });
  return Object.create(resolver) as OpNamespace;
}

/** `torch.aten`: every ATen operator by name (`torch.aten.index_select(x, 0, idx)`). */
export const aten = makeNamespace("aten") as AtenOps & OpNamespace;

const namespaces = new Map<string, OpNamespace>([["aten", aten]]);

function namespace(ns: string): OpNamespace {
  let n = namespaces.get(ns);
  if (!n) {
    n = makeNamespace(ns);
    namespaces.set(ns, n);
  }
  return n;
}

/** Functions of `torch.ops` itself; every other property is a namespace of operators. */
export interface OpsFunctions {
  /** Loads a shared library that registers operators (`TORCH_LIBRARY`), as `torch.ops.load_library` does. */
  loadLibrary(path: string): void;
  /** The schemas of an operator's overloads ("aten::add"), in the order calls try them. */
  schemas(qualifiedName: string): string[];
  /** The operator names (without overload) registered in a namespace. */
  names(namespace: string): string[];
  aten: AtenOps & OpNamespace;
}

const opsFunctions: OpsFunctions = {
  loadLibrary(path: string): void {
    if (typeof path !== "string") throw new TypeError(`torch.ops.loadLibrary: argument 0 (path) must be a string, got ${typeof path}`);
    native.loadLibrary(path);
  },
  schemas(qualifiedName: string): string[] {
    if (typeof qualifiedName !== "string") {
      throw new TypeError(`torch.ops.schemas: argument 0 (qualifiedName) must be a string like 'aten::add', got ${typeof qualifiedName}`);
    }
    return native.atenSchemas(qualifiedName);
  },
  names(ns: string): string[] {
    if (typeof ns !== "string") throw new TypeError(`torch.ops.names: argument 0 (namespace) must be a string, got ${typeof ns}`);
    return native.atenOpNames(ns);
  },
  aten,
};

/** `torch.ops`: `torch.ops.<namespace>.<name>(...)` for operators of any namespace, and loadLibrary. */
export const ops = new Proxy(opsFunctions, {
  get(target, prop, receiver) {
    if (typeof prop !== "string" || prop in target) return Reflect.get(target, prop, receiver);
    if (prop === "then" || !IDENTIFIER.test(prop)) return undefined;
    return namespace(prop);
  },
}) as OpsFunctions & Record<string, OpNamespace>;
