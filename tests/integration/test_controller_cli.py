"""`bess-edge cmd` against a running controller on a real broker: reply printed, exit status
0 accepted / 1 refused / 3 no reply; and `bess-edge check-config` on a [controller] section."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from edge.config import load_site
from edge.controller.shell import ControllerService
from tests.broker import Broker

pytestmark = pytest.mark.broker


def _site_file(tmp_path: Path, broker: Broker, site: str = "clitest") -> Path:
    p = tmp_path / f"{site}.toml"
    p.write_text(
        f'[site]\nid = "{site}"\n\n[broker]\nhost = "{broker.host}"\nport = {broker.port}\n\n'
        '[controller]\nprofile = "sunspec_704"\nsoc_high_limit = 95\n'
    )
    return p


def _cmd(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "bess-edge"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=30)


def test_cmd_exit_status_and_reply(broker: Broker, tmp_path: Path) -> None:
    path = _site_file(tmp_path, broker)
    site = load_site(path)
    assert site.controller.soc_high_limit == 95
    stop: asyncio.Event | None = None
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    async def serve() -> None:
        nonlocal stop
        stop = asyncio.Event()
        svc = ControllerService(site.site, site.broker, site.controller)
        task = asyncio.create_task(svc.run(stop))
        while svc.controller is None:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        ready.set()
        await task

    th = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    th.start()
    try:
        assert ready.wait(10)
        ok = _cmd("cmd", "get_state", "-c", str(path))
        assert ok.returncode == 0, ok.stderr
        reply: dict[str, Any] = json.loads(ok.stdout)
        assert reply["ok"] is True and reply["state"] == "stopped"
        refused = _cmd("cmd", "charge", "20000", "-c", str(path))
        assert refused.returncode == 1
        body = json.loads(refused.stdout)
        assert body["error"]["code"] == "not_allowed_in_state" and body["state"] == "stopped"
        bad = _cmd("cmd", "charge", "lots", "-c", str(path))
        assert bad.returncode != 0 and "power_w" in bad.stderr
        other = _site_file(tmp_path, broker, site="nobody")
        timeout = _cmd("cmd", "get_state", "-c", str(other), "-t", "0.5")
        assert timeout.returncode == 3 and "no reply" in timeout.stderr
        check = _cmd("check-config", "-c", str(path))
        assert check.returncode == 0
    finally:
        assert stop is not None
        loop.call_soon_threadsafe(stop.set)
        th.join(10)


def test_cmd_build_body() -> None:
    from edge.controller.cli_cmd import build_body

    assert build_body("charge", ["20000"]) == {"power_w": 20000}
    assert build_body("discharge", ["5000", "0.95"]) == {"power_w": 5000, "pf": 0.95}
    assert build_body("charge", ["10"], "current_a") == {"current_a": 10}
    assert build_body("recover_soc", ["power_w=2000"]) == {"power_w": 2000}
    assert build_body("stop", []) == {}
    with pytest.raises(SystemExit):
        build_body("stop", ["1"])
