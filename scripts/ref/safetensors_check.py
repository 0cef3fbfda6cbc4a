"""Read a safetensors file with Python's safetensors and print what it holds as JSON.

Usage: python3 scripts/ref/safetensors_check.py FILE
Prints {"metadata": {...}, "tensors": {name: {dtype, shape, hex, values}}} in the format of
safetensors_make_fixtures.py, so a file written by innerloop can be compared with what the
reference reader sees.
"""
import json
import sys

from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from safetensors_make_fixtures import describe  # noqa: E402


def main(path):
    with safe_open(path, framework="pt") as f:
        metadata = f.metadata() or {}
    print(json.dumps({"metadata": metadata, "tensors": describe(load_file(path))}, ensure_ascii=False))


if __name__ == "__main__":
    main(sys.argv[1])
