"""Render the built-in demo site (edge/demo_site.toml) into a working folder.

The demo bridge needs certificates and a pre-registered device whose LFDI is known, so the site
file is a template filled in from a local PKI made on first use (edge/bridge/pki.py).
"""

from __future__ import annotations

import importlib.resources
import logging
from pathlib import Path

from edge.bridge.pki import load_or_make_pki, openssl_available

log = logging.getLogger(__name__)

BRIDGE_MARKER = "# --- bridge"
DEMO_DEVICE = "der1"


def demo_template() -> str:
    return importlib.resources.files("edge").joinpath("demo_site.toml").read_text()


def render_demo_site(workdir: Path) -> Path:
    """Write `workdir/site.toml` (and `workdir/pki/` for the bridge) and return its path."""
    workdir.mkdir(parents=True, exist_ok=True)
    text = demo_template()
    if openssl_available():
        pki = load_or_make_pki(workdir / "pki", DEMO_DEVICE)
        text = (
            text.replace("@PKI@", str(pki.dir.resolve()))
            .replace("@DER1_LFDI@", pki.lfdi(DEMO_DEVICE))
            .replace("@DER1_SFDI@", str(pki.sfdi(DEMO_DEVICE)))
        )
    else:
        log.warning("openssl not found: the demo runs without the 2030.5 bridge")
        text = text[: text.index(BRIDGE_MARKER)]
    site = workdir / "site.toml"
    site.write_text(text)
    return site
