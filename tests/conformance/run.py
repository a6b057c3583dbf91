"""Run cactus-client's CSIP-AUS server procedures against the bridge and print a table.

    .venv/bin/python -m tests.conformance.run --cactus .venv-conformance/bin [--strict] [IDs...]

(`make conformance` creates that venv.) For each procedure: a fresh bridge (TLS, our test PKI,
in-band registration open) on a free port, a broker, a `.cactus.yaml` with three clients
(two devices, one aggregator), then `cactus run --headless`. One cactus-client-notifications
webhook server (tests/conformance/webhook.py, TLS) serves the whole run. The admin plugin
(tests/conformance/plugin) turns the procedure's admin instructions into the bridge's MQTT
requests. Procedures that need what this environment cannot provide are "n/a" with the reason.
Not part of `make test`: it needs Python >= 3.12 and takes minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from edge.bridge.config import BridgeAggregator, BridgeConfig
from edge.bridge.identity import sfdi_from_lfdi
from edge.bridge.pki import Pki, make_pki
from tests.broker import make_broker
from tests.integration.test_bridge_exchange import SITE, bridge_cfg, running_bridge

PEN = 28547  # the Private Enterprise Number the test server and clients use
PIN = 111115  # a 6-digit registration PIN with its check digit
AGG_DER = "a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0"  # LFDI of the DER the aggregator registers

# Procedures that wait between steps (postRate, schedules): they get a longer budget.
LONG_S = 330
LONG = {"S-ALL-04", "S-ALL-06", "S-ALL-07", "S-ALL-41", "S-ALL-42", "S-ALL-44", "S-ALL-45",
        "S-ALL-47", "S-ALL-50", "S-OPT-05"}  # fmt: skip

# Procedures that apply but take far longer than a run should (pass --all to run them anyway).
TOO_LONG: dict[str, str] = {
    "S-ALL-50": "72-hour soak (4320 polls a minute apart)",
}
BUDGET = {"S-ALL-41": 900, "S-ALL-46": 480}  # 8.5 min of scheduled events; a 300 s outage

# Procedures (from cactus-test-definitions) that do not apply here, and why.
NOT_APPLICABLE: dict[str, str] = {}

# Warnings cactus logs whatever the server does: (every warning must match, why unavoidable).
# Such a run, every step passed, is "pass (cactus warns)" under --strict; any other warning fails.
UNAVOIDABLE_WARNINGS: dict[str, tuple[str, str]] = {
    "S-ALL-49": (
        r"Skipping DERProgram \S+ - primacy \d+ != expected \d+\.",
        "the procedure requires two DERPrograms of different primacy, and cactus's der-program "
        "check with a primacy filter warns for each program it skips, so every conforming server "
        "gets these warnings under --strict",
    ),
}


def procedures(cactus_bin: Path) -> list[str]:
    out = subprocess.run(
        [str(cactus_bin / "python"), "-c",
         "from cactus_test_definitions.server.test_procedures import TestProcedureId as T;"
         "print(' '.join(t.value for t in T))"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return [p for p in out.stdout.split() if p.startswith(("S-ALL", "S-OPT"))]


def client_yaml(pki: Pki, alias: str, cert: str, kind: str, lfdi: str, sfdi: int) -> str:
    c, k = pki.devices[cert]
    return (
        f"- id: {alias}\n  type: {kind}\n  certificate_file: {c}\n  key_file: {k}\n"
        f"  lfdi: {lfdi.upper()}\n  sfdi: {sfdi}\n  pen: {PEN}\n  pin: {PIN}\n"
        "  max_watts: 5000\n"
    )


@contextlib.contextmanager
def webhook_server(cactus_bin: Path, pki: Pki) -> Iterator[dict[str, int]]:
    """cactus-client-notifications on loopback (tests/conformance/webhook.py): its ports."""
    cert, key = pki.server
    proc = subprocess.Popen(
        [str(cactus_bin / "python"), str(Path(__file__).with_name("webhook.py")), str(cert),
         str(key)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline() if ready else ""
        if not line:
            raise RuntimeError("cactus-client-notifications did not start within 30 s")
        yield json.loads(line)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def write_config(d: Path, pki: Pki, port: int, hooks: dict[str, int]) -> Path:
    out = d / "out"
    out.mkdir(exist_ok=True)
    clients = "".join(
        client_yaml(pki, a, a, "device", pki.lfdi(a), pki.sfdi(a)) for a in ("dev1", "dev2")
    )
    # the aggregator's certificate is agg1's; the EndDevice it registers has another LFDI
    clients += client_yaml(pki, "agg1", "agg1", "aggregator", AGG_DER, sfdi_from_lfdi(AGG_DER))
    cfg = d / ".cactus.yaml"
    cfg.write_text(
        f"output_dir: {out}\n"
        "server:\n"
        f"  device_capability_uri: https://127.0.0.1:{port}/dcap\n"
        "  verify_ssl: true\n"
        f"  serca_pem_file: {pki.ca}\n"
        f"  pen: {PEN}\n"
        f"  notification_uri: https://127.0.0.1:{hooks['webhook']}/\n"
        f"  notification_admin_uri: http://127.0.0.1:{hooks['admin']}/\n"
        f"clients:\n{clients}"
    )
    return cfg


def clients_for(proc_yaml: str) -> list[str]:
    ids = re.findall(r"required_clients:\s*((?:\s*- id: \S+(?:\s+client_type: \S+)?)+)", proc_yaml)
    if ids and "client_type: aggregator" in ids[0]:
        return ["agg1"]
    n = len(re.findall(r"- id:", ids[0])) if ids else 1
    return ["dev1", "dev2"][:n]


def run_one(
    cactus_bin: Path, proc: str, base_cfg: BridgeConfig, pki: Pki, broker: object, work: Path,
    strict: bool, timeout: int, hooks: dict[str, int],
) -> tuple[str, str]:  # fmt: skip
    d = work / proc
    d.mkdir()
    with running_bridge(base_cfg, broker) as svc:
        assert svc.port is not None
        cfg = write_config(d, pki, svc.port, hooks)
        src = subprocess.run(
            [str(cactus_bin / "python"), "-c",
             "import sys, importlib.resources as r;"
             "print((r.files('cactus_test_definitions.server')/'procedures'/"
             f"'{proc}.yaml').read_text())"],
            capture_output=True, text=True, timeout=60,
        ).stdout  # fmt: skip
        args = [str(cactus_bin / "cactus"), "run", "-c", str(cfg), "--headless",
                "--timeout", str(timeout), proc, *clients_for(src)]  # fmt: skip
        if strict:
            args.insert(args.index("--headless") + 1, "--strict")
        env = {**os.environ, "BESS_MQTT_HOST": "127.0.0.1", "BESS_MQTT_PORT": str(broker.port),  # type: ignore[attr-defined]
               "BESS_SITE": SITE, "COLUMNS": "200"}  # fmt: skip
        try:
            res = subprocess.run(args, cwd=d, capture_output=True, text=True, env=env,
                                 timeout=timeout + 60)  # fmt: skip
        except subprocess.TimeoutExpired:
            return "fail", f"cactus did not finish within {timeout + 60} s"
    log = res.stdout + res.stderr
    (d / "cactus.log").write_text(log)
    if res.returncode == 0:
        return "pass", ""
    if "all_steps_passed=True" in log and "no_warnings=False" in log:
        warnings = sorted({re.sub(r".*(Attempt \d+|log_stored_resource_warning -) ?:? ?", "", ln)
                           for ln in log.splitlines()
                           if re.search(r"log_(step|stored_resource)_warning", ln)})  # fmt: skip
        known = UNAVOIDABLE_WARNINGS.get(proc)
        if known and warnings and all(re.search(known[0], w) for w in warnings):
            return "pass (cactus warns)", known[1]
        return "fail (strict)", "every step passed; warnings: " + " / ".join(warnings)[:300]
    return "fail", reason(log)


def reason(log: str) -> str:
    """The failure cactus reports (its step log), squeezed onto one line."""
    lines = [re.sub(r"[│┃║]+", " ", ln).strip() for ln in log.splitlines()]
    hits = [ln for ln in lines if re.search(r"Failure:|Error:|Exception|rejected|expected", ln)]
    if hits:
        line = re.sub(r"^\S+ \S+ [A-Z]+ \S+ \S+ - ", "", hits[-1])  # log prefix
        line = re.sub(r"^\+[\d.]+m?s\s*|\[\d+\] Attempt \d+:", "", line)
        return re.sub(r"\s+", " ", line).strip()[:200]
    tail = [ln for ln in lines if ln and not set(ln) <= set("─━╭╮╰╯┌┐└┘├┤┬┴┼ ")]
    return (tail[-1] if tail else "no output")[:200]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cactus", type=Path, required=True, help="bin/ of the cactus venv")
    ap.add_argument("--strict", action="store_true", help="warnings are failures (mRID PEN...)")
    ap.add_argument("--timeout", type=int, default=45, help="per procedure, seconds")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    ap.add_argument("--all", action="store_true", help="also the very long procedures")
    ap.add_argument("ids", nargs="*", help="procedures (default: every S-ALL and S-OPT)")
    a = ap.parse_args(argv)
    a.cactus = a.cactus.absolute()  # cactus runs in each procedure's directory
    ids = a.ids or procedures(a.cactus)
    work = Path(tempfile.mkdtemp(prefix="bess-conformance-"))
    pki = make_pki(work / "pki", "dev1", "dev2", "agg1")
    broker = make_broker(work / "broker")
    # cactus 1.3.3 speaks CSIP-AUS 1.2; its Time check assumes dstOffset applies all year, so
    # the site is in a zone without DST
    aggs = (BridgeAggregator("agg1", pki.lfdi("agg1")),)
    base = replace(
        bridge_cfg(pki, allow_registration=True, aggregators=aggs),
        pen=PEN,
        csipaus_ns="https://csipaus.org/ns",
        timezone="Australia/Brisbane",
    )
    rows: list[tuple[str, str, str]] = []
    with contextlib.ExitStack() as stack:
        if not a.keep:
            stack.callback(shutil.rmtree, work, ignore_errors=True)
        stack.callback(broker.cleanup)  # type: ignore[attr-defined]
        hooks = stack.enter_context(webhook_server(a.cactus, pki))
        for proc in ids:
            if proc in NOT_APPLICABLE:
                rows.append((proc, "n/a", NOT_APPLICABLE[proc]))
                continue
            if proc in TOO_LONG and not a.all:
                rows.append((proc, "not run", TOO_LONG[proc]))
                continue
            t0 = time.monotonic()
            budget = max(a.timeout, LONG_S) if proc in LONG else a.timeout
            budget = BUDGET.get(proc, budget)
            status, why = run_one(a.cactus, proc, base, pki, broker, work, a.strict, budget,
                                  hooks)  # fmt: skip
            rows.append((proc, status, why))
            print(f"{proc:9} {status:5} {time.monotonic() - t0:5.1f}s {why}", flush=True)
    print("\n| procedure | result | reason |\n|---|---|---|")
    for proc, status, why in rows:
        print(f"| {proc} | {status} | {why} |")
    kinds = ("pass", "pass (cactus warns)", "fail", "fail (strict)", "n/a", "not run")
    counts = {s: sum(1 for r in rows if r[1] == s) for s in kinds}
    print(f"\n{counts['pass']} pass, {counts['pass (cactus warns)']} pass with unavoidable "
          f"cactus warnings, {counts['fail']} fail, {counts['fail (strict)']} fail only "
          f"by warnings, {counts['n/a']} n/a, {counts['not run']} not run"
          f"{' (--strict)' if a.strict else ''}"
          f"{f'; logs in {work}' if a.keep else ''}")  # fmt: skip
    return 0 if counts["fail"] + counts["fail (strict)"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
