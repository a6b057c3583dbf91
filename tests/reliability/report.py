"""Run the fault scenarios and print the results table (markdown).

    .venv/bin/python -m tests.reliability.report            # the CI subset (~2-3 min)
    .venv/bin/python -m tests.reliability.report --full     # every scenario (~5 min)
    .venv/bin/python -m tests.reliability.report --full --write docs/reliability.md

The scenarios are ordinary pytest tests (tests/reliability/test_broker_restart.py,
test_devices.py, test_controller_crash.py, test_load.py); each appends what it measured to a
JSON-lines file (tests/reliability/results.py) that this command turns into the table.
Exit status: pytest's (non-zero when a scenario failed; its row is then missing).
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.reliability.results import ENV, load, table

SCENARIOS = (
    "tests/reliability/test_broker_restart.py",
    "tests/reliability/test_devices.py",
    "tests/reliability/test_controller_crash.py",
    "tests/reliability/test_load.py",
)
BEGIN = "<!-- results:begin -->"
END = "<!-- results:end -->"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.reliability.report", description=__doc__)
    ap.add_argument("--full", action="store_true", help="include @reliability_full scenarios")
    ap.add_argument("--write", metavar="MD", help="replace the results block in this file")
    ap.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bess-reliability-") as tmp:
        results = Path(tmp) / "results.jsonl"
        results.touch()
        cmd = [sys.executable, "-m", "pytest", "-q", *SCENARIOS]
        if args.full:
            cmd += ["-m", "reliability_full or not reliability_full"]
        cmd += args.pytest_args
        env = {**os.environ, ENV: str(results)}
        started = datetime.datetime.now(datetime.UTC)
        proc = subprocess.run(cmd, env=env, check=False)
        rows = load(results)
    text = table(rows)
    how = "python -m tests.reliability.report" + (" --full" if args.full else "")
    scope = "all scenarios" if args.full else "CI subset"
    stamp = (
        f"Measured {started:%Y-%m-%d %H:%M} UTC with `{how}` ({scope}; "
        f"pytest exit {proc.returncode}, {len(rows)} rows)."
    )
    print()
    print(text)
    print()
    print(stamp)
    if args.write:
        path = Path(args.write)
        doc = path.read_text()
        block = f"{BEGIN}\n{text}\n\n{stamp}\n{END}"
        new, n = re.subn(re.escape(BEGIN) + r".*?" + re.escape(END), block, doc, flags=re.S)
        if n != 1:
            print(f"{path}: no {BEGIN} ... {END} block to replace", file=sys.stderr)
            return 2
        path.write_text(new)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
