"""Counts fuzz cases per category across the test_fuzz_* modules of one pytest session.

Each module calls `count(category)` per case and prints the running totals at its end through
`report` (visible with `pytest -s`), so the last module printed holds the session's totals.

`BESS_FUZZ_SCALE=10 pytest tests/reliability/test_fuzz_*.py` multiplies every max_examples
(through `scaled`) for a deeper run than CI's.
"""

from __future__ import annotations

import os
from collections import Counter

from hypothesis import HealthCheck, settings

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


def live_batch_settings(max_examples: int) -> settings:
    """Settings for batches sent to a live broker or server: few (scaled) examples, no deadline
    or example database, and function-scoped fixtures allowed (one server serves every batch)."""
    return settings(
        max_examples=scaled(max_examples),
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
        ],
    )
