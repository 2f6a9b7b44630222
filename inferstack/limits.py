"""How much input the CLI accepts, and the one way it reads a user's file.

A spec, a saved plan and a pack config arrive from pull requests, so their size, nesting and
alias expansion are bounded before anything is built from them: a few hundred hostile bytes
must end in a clear error (exit 2), not a stalled or killed CI job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# The example specs are 1-2 KiB and 256 generated fleets (benchmarks/plan_scale.py) are ~100 KiB
# and ~11,000 YAML nodes, read in under a second. The pure-Python YAML reader takes tens of
# microseconds a node, so the node bound is what keeps a hostile spec to seconds; the byte bound
# stops a file before it is read at all.
SPEC_BYTES = 256 << 10
MAX_NODES = 50_000
# `plan --out` of the production example is ~210 KiB; 256 fleets are tens of MiB.
PLAN_BYTES = 64 << 20
PACK_CONFIG_BYTES = 1 << 20
# The spec's own shape is under ten levels deep and a plan's resource inputs (IAM policy
# documents inside properties) under twenty; Python's recursion limit is near 1000 frames, and
# the YAML composer spends two of them per level.
MAX_DEPTH = 64
# YAML aliases (and `<<:` merges) may stand for at most this many nodes in all: far beyond a spec
# that shares fleet settings between targets, far below the 9**9 of a "billion laughs".
MAX_ALIAS_NODES = 10_000


class TooLarge(Exception):
    def __init__(self, limit: int):
        super().__init__(f"larger than {_size(limit)}")
        self.limit = limit


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB"


def read_bytes(path: str | Path, limit: int) -> bytes:
    """The file's bytes, or `TooLarge` once more than `limit` arrive.

    Reads at most one byte past the limit, so /dev/zero or a FIFO cannot stall the run either;
    `OSError` passes through for the caller to word.
    """
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(limit)
    return data


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether plain JSON data nests deeper than `limit`, found without recursion."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            node = list(node.values())
        if isinstance(node, list):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in node)
    return False
