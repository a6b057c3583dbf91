"""The long fault scenarios (`@pytest.mark.reliability_full`) run only when asked for:
`pytest -m reliability_full tests/reliability` or `BESS_RELIABILITY_FULL=1`. CI runs the rest."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "reliability_full" in (config.getoption("markexpr") or "") or os.environ.get(
        "BESS_RELIABILITY_FULL", ""
    ) not in ("", "0"):
        return
    skip = pytest.mark.skip(
        reason="long reliability scenario: run with -m reliability_full or BESS_RELIABILITY_FULL=1"
    )
    for item in items:
        if "reliability_full" in item.keywords:
            item.add_marker(skip)
