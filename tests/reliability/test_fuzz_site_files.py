"""Fuzzed site files (issue 6, section 4): TOML *text* through edge.config.load_site, and
`bess-edge check-config` on a handful of them.

tests/reliability/test_fuzz_inputs.py already throws random parsed documents at parse_site;
this file adds what only text can carry: TOML syntax errors, dates and times where numbers
belong, duplicate keys and tables, deep nesting, bad encodings, and mutations of the real
demo site (valid TOML with one wrong thing in it). Invariant: load_site returns a SiteConfig or
raises ConfigError naming the file, a key path and a reason; nothing else escapes.
"""

from __future__ import annotations

import datetime as dt
import json
import string
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import edge
from edge.config import ConfigError, SiteConfig, load_site
from edge.config.site import site_file_schema
from tests.reliability.fuzz_cases import count, report, scaled

DEMO = (Path(edge.__file__).parent / "demo_site.toml").read_text().split("\n# --- bridge")[0]


def _section_keys() -> dict[str, list[str]]:
    """Every key the schemas know, per section, so generated files reach the validators."""
    out: dict[str, list[str]] = {}
    for name, f in site_file_schema()().fields.items():
        inner = getattr(f, "schema", None) or getattr(getattr(f, "inner", None), "schema", None)
        out[name] = list(inner.fields) if inner is not None else []
    return out


KEYS = _section_keys()

# -- TOML text -------------------------------------------------------------------------------


def _toml_str(s: str) -> str:
    return json.dumps(s)  # a JSON string literal is a valid TOML basic string


toml_scalars = st.one_of(
    st.integers(-(2**63), 2**63 - 1).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(
        lambda f: {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(repr(f), repr(f))
    ),
    st.booleans().map(lambda b: "true" if b else "false"),
    st.text(max_size=20).map(_toml_str),
    st.sampled_from(
        [
            '""',
            "''",
            "'''multi\nline'''",
            '"\\u0000"',
            "0x7FFF",
            "0o17",
            "1_000",
            "+inf",
            "-0.0",
            "1e400",
        ]
    ),
    st.datetimes(timezones=st.none() | st.just(dt.UTC)).map(lambda d: d.isoformat()),
    st.dates().map(lambda d: d.isoformat()),
    st.times().map(lambda t: t.isoformat()),
)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.dictionaries(st.sampled_from(["a", "b", "name", "port", "x"]), inner, max_size=3).map(
            lambda d: "{" + ", ".join(f"{k} = {v}" for k, v in d.items()) + "}"
        ),
    ),
    max_leaves=6,
)


@st.composite
def site_texts(draw: st.DrawFn) -> str:
    """A site file built section by section, mostly with keys the schemas know."""
    lines: list[str] = []
    if draw(st.booleans()):
        lines += ["[site]", f"id = {draw(st.one_of(st.just(_toml_str('s1')), toml_values))}"]
    for _ in range(draw(st.integers(0, 4))):
        section = draw(st.sampled_from([*KEYS, "simulator.devices", "bogus"]))
        array = section in ("devices", "simulator.devices") or draw(st.integers(0, 9)) == 0
        lines.append(f"[[{section}]]" if array else f"[{section}]")
        known = KEYS.get(section.split(".")[0], []) or ["name"]
        for _ in range(draw(st.integers(0, 5))):
            key = draw(
                st.one_of(
                    st.sampled_from(known),
                    st.sampled_from(known),
                    st.text(string.ascii_letters + "_-", min_size=1, max_size=8),
                )
            )
            lines.append(f"{key} = {draw(toml_values)}")
    return "\n".join(lines) + "\n"


@st.composite
def demo_mutations(draw: st.DrawFn) -> str:
    """The demo site with a few lines deleted, duplicated, re-valued or garbled."""
    lines = DEMO.splitlines()
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["delete", "duplicate", "revalue", "garble", "insert"]))
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "revalue" and "=" in lines[i]:
            lines[i] = lines[i].split("=", 1)[0] + "= " + draw(toml_values)
        elif op == "garble" and lines[i]:
            j = draw(st.integers(0, len(lines[i]) - 1))
            lines[i] = lines[i][:j] + draw(st.text(max_size=3)) + lines[i][j + 1 :]
        else:
            key = draw(st.sampled_from([k for keys in KEYS.values() for k in keys]))
            lines.insert(i, f"{key} = {draw(toml_values)}")
        if not lines:
            lines = [""]
    return "\n".join(lines) + "\n"


hostile_texts = st.one_of(
    st.integers(1, 3_000).map(lambda n: "[site]\nid = " + "[" * n + "]" * n + "\n"),
    st.integers(1, 2_000).map(lambda n: "a = " + "{b = " * n + "1" + "}" * n + "\n"),
    st.integers(1, 3_000).map(lambda n: "[site]\nid = 's'\n[x" + ".y" * n + "]\n"),
    st.integers(1, 300).map(lambda n: "[site]\nid = 's'\n" + "[[devices]]\nname = 'd'\n" * n),
    st.sampled_from(
        [
            "",
            "\ufeff[site]\nid = 's'\n",
            "[site]\nid = 's'\n[site]\nid = 't'\n",
            "[site]\nid = 's'\nid = 't'\n",
            "[broker]\nport = 1883\n",
        ]
    ),
)


def _check_load(path: Path) -> SiteConfig | None:
    try:
        return load_site(path)
    except ConfigError as exc:
        assert exc.problems, "a refusal lists at least one problem"
        assert all(reason.strip() for _, reason in exc.problems), exc.problems
        assert str(exc).startswith(f"{path}: "), str(exc)[:200]
        return None


FUZZ = settings(
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)


@settings(FUZZ, max_examples=scaled(200))
@given(text=st.one_of(site_texts(), st.text(max_size=300)))
def test_generated_site_files(tmp_path: Path, text: str) -> None:
    count("site_toml_generated")
    path = tmp_path / "site.toml"
    path.write_text(text, encoding="utf-8")
    _check_load(path)


@settings(FUZZ, max_examples=scaled(150))
@given(text=demo_mutations())
def test_mutated_demo_site(tmp_path: Path, text: str) -> None:
    count("site_toml_demo_mutation")
    path = tmp_path / "site.toml"
    path.write_text(text, encoding="utf-8")
    _check_load(path)


@settings(FUZZ, max_examples=scaled(60))
@given(data=st.one_of(hostile_texts.map(str.encode), st.binary(max_size=200)))
def test_hostile_site_files(tmp_path: Path, data: bytes) -> None:
    count("site_toml_hostile")
    path = tmp_path / "site.toml"
    path.write_bytes(data)
    _check_load(path)


def test_the_unmutated_demo_site_loads(tmp_path: Path) -> None:
    """Keeps the mutation test honest: its starting point is a valid site."""
    path = tmp_path / "site.toml"
    path.write_text(DEMO)
    site = load_site(path)
    assert site.site == "demo" and [d.name for d in site.devices] == [
        "battery",
        "inverter",
        "meter",
        "pv",
    ]


BAD_FILES: list[tuple[str, bytes, str]] = [
    ("deep", b"[site]\nid = " + b"[" * 5000 + b"]" * 5000 + b"\n", "nested too deeply"),
    ("latin1", "[site]\nid = 'caf\u00e9'\n".encode("latin-1"), "not valid TOML"),
    ("datetime_port", b"[site]\nid = 's'\n[broker]\nport = 1979-05-27T07:32:00Z\n", "broker.port"),
    ("unknown_key", b"[site]\nid = 's'\n[controller]\nsoc_hi = 1\n", "controller.soc_hi"),
    ("syntax", b"[site\nid = 's'\n", "not valid TOML"),
    ("no_site", b"", "site"),
]


@pytest.mark.parametrize(("name", "data", "expect"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_check_config_exits_2_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, data: bytes, expect: str
) -> None:
    """In-process `bess-edge check-config` (edge.cli.main), the same code the command runs."""
    from edge.cli import main

    count("site_check_config")
    path = tmp_path / f"{name}.toml"
    path.write_bytes(data)
    assert main(["check-config", "-c", str(path)]) == 2
    out = capsys.readouterr()
    text = out.out + out.err
    assert str(path) in text and expect in text, text[-2000:]


@pytest.mark.parametrize("name", ["deep", "datetime_port"])
def test_check_config_command_exits_2(tmp_path: Path, name: str) -> None:
    """The installed `bess-edge` command itself, for two of them (a process start costs ~2 s)."""
    count("site_check_config_process")
    data, expect = next((d, e) for n, d, e in BAD_FILES if n == name)
    path = tmp_path / f"{name}.toml"
    path.write_bytes(data)
    exe = Path(sys.executable).parent / "bess-edge"
    r = subprocess.run(
        [str(exe), "check-config", "-c", str(path)], capture_output=True, text=True, timeout=60
    )
    out = r.stdout + r.stderr
    assert r.returncode == 2, (r.returncode, out[-2000:])
    assert str(path) in out and expect in out and "Traceback" not in out, out[-2000:]


def test_zz_report_counts() -> None:
    report(__name__)
