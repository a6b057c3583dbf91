"""The outstation on a real broker without a controller: select-before-operate and its
timeout, a controller that does not answer, remote control switched off. Master: nfm-dnp3."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from edge.dnp3.config import Dnp3Schema
from edge.dnp3.service import Dnp3Service
from edge.mqtt import BrokerSettings
from tests.broker import Broker
from tests.integration.dnp3_master import Master

pytestmark = [pytest.mark.broker]


async def _with_service(broker: Broker, session: Any, **cfg: Any) -> Any:
    conf = Dnp3Schema().load({"enabled": True, "port": 0, **cfg})
    svc = Dnp3Service("lonely", BrokerSettings(broker.host, broker.port), conf)
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    await asyncio.wait_for(svc.ready.wait(), 10)
    try:
        return await asyncio.to_thread(session, svc.port)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def test_sbo_timeout_and_a_silent_controller(broker: Broker) -> None:
    def session(port: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        with Master(port) as m:
            out["select"] = m.crob(0, True, "select")
            time.sleep(0.6)  # past select_timeout_s
            out["late_operate"] = m.crob(0, True, "operate")
            t = time.monotonic()
            out["sbo"] = m.crob(0, True, "sbo")  # reaches the handler: start, no controller
            out["sbo_s"] = time.monotonic() - t
            out["hold"] = m.crob(3, True)
            out["param"] = m.analog_out(1, 70)  # stored locally: no controller needed
        return out

    r = asyncio.run(_with_service(broker, session, select_timeout_s=0.3, command_timeout_s=0.5))
    assert r["select"] == "SUCCESS"
    assert r["late_operate"] == "NO_SELECT"
    assert r["sbo"] == "DOWNSTREAM_FAIL" and 0.4 < r["sbo_s"] < 3
    assert r["hold"] == "DOWNSTREAM_FAIL"
    assert r["param"] == "SUCCESS"


def test_remote_control_off_answers_local(broker: Broker) -> None:
    def session(port: int) -> dict[str, Any]:
        with Master(port) as m:
            return {"hold": m.crob(3, True), "ao": m.analog_out(0, 1000), "poll": m.integrity()}

    r = asyncio.run(_with_service(broker, session, remote_control=False))
    assert r["hold"] == "LOCAL" and r["ao"] == "LOCAL"
    assert r["poll"].ok  # monitoring still works
    assert r["poll"].binary[0] is False  # no controller status retained: unknown (COMM_LOST)
