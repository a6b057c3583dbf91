"""Counts fuzz cases per category across the test_fuzz_* modules of one pytest session.

Each module calls `count(category)` per case and prints the running totals at its end through
`report` (visible with `pytest -s`), so the last module printed holds the session's totals.

`BESS_FUZZ_SCALE=10 pytest tests/reliability/test_fuzz_*.py` multiplies every max_examples
(through `scaled`) for a deeper run than CI's.
"""

from __future__ import annotations

import os
from collections import Counter

CASES: Counter[str] = Counter()
SCALE = max(1, int(os.environ.get("BESS_FUZZ_SCALE", "1") or "1"))


def scaled(max_examples: int) -> int:
    return max_examples * SCALE


def count(category: str, n: int = 1) -> None:
    CASES[category] += n


def report(module: str) -> str:
    mine = ", ".join(f"{k}={v}" for k, v in sorted(CASES.items()))
    line = f"\nfuzz cases after {module}: {mine} (total {sum(CASES.values())})"
    print(line)
    return line
