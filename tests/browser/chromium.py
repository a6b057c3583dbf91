"""Debian's headless Chromium driven by Playwright (never `playwright install`: the browser is
the system's /usr/bin/chromium). Screenshots go to run/artifacts/ (or $BESS_ARTIFACTS)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("BESS_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(os.environ.get("BESS_ARTIFACTS", "run/artifacts"))


def require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        msg = f"no Chromium at {CHROMIUM}: apt-get install -y chromium (make system-deps does)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


@contextlib.asynccontextmanager
async def browser_page(**context: Any) -> AsyncIterator[Any]:
    """A fresh profile (user-data-dir) per use, closed and removed afterwards."""
    from playwright.async_api import async_playwright

    profile = tempfile.mkdtemp(prefix="bess-chromium-")
    try:
        async with async_playwright() as pw:
            ctx = await pw.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                headless=True,
                args=FLAGS,
                bypass_csp=True,  # lets the test evaluate its own expressions; the page keeps it
                viewport={"width": 1280, "height": 1000},
                **context,
            )
            try:
                page = ctx.pages[0] if ctx.pages else await ctx.new_page()
                yield page
            finally:
                await ctx.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


async def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    await page.screenshot(path=str(path), full_page=True)
    return path
