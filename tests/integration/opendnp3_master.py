"""opendnp3's master (through its Python binding, PyPI `dnp3-python`) as a read-only oracle.

The reference C++ implementation decodes what our outstation sends: static points, events
with their time, IIN bits. Only reads are used: in the binding's only build for this Python
(0.3.0b1), any command callback aborts the process (pybind11 cast of a non-copyable result),
so controls are tested with nfm-dnp3 (tests/integration/dnp3_master.py) instead.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from pydnp3 import asiodnp3, asiopal, opendnp3, openpal


@dataclass
class Seen:
    """What the SOE handler received, by header: (group-variation name, index, value, time)."""

    rows: list[tuple[str, int, Any, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def of(self, gv_prefix: str) -> list[tuple[str, int, Any, int]]:
        with self.lock:
            return [r for r in self.rows if r[0].startswith(gv_prefix)]

    def clear(self) -> None:
        with self.lock:
            self.rows.clear()


def _visitor(base: type, seen: Seen, gv: str) -> Any:
    class V(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__()

        def OnValue(self, iv: Any) -> None:
            with seen.lock:
                seen.rows.append((gv, iv.index, iv.value.value, iv.value.time.value))

    return V()


class _SOE(opendnp3.ISOEHandler):  # type: ignore[misc]
    def __init__(self, seen: Seen) -> None:
        super().__init__()
        self.seen = seen

    def Start(self) -> None:
        pass

    def End(self) -> None:
        pass

    def Process(self, info: Any, values: Any) -> None:
        gv = str(info.gv).removeprefix("GroupVariation.")
        kinds = {
            opendnp3.ICollectionIndexedBinary: opendnp3.IVisitorIndexedBinary,
            opendnp3.ICollectionIndexedAnalog: opendnp3.IVisitorIndexedAnalog,
        }
        base = kinds.get(type(values))
        if base is not None:
            values.Foreach(_visitor(base, self.seen, gv))


class OpenDnp3Master:
    """`with OpenDnp3Master(port) as m: m.integrity(); m.seen.of("Group2")`"""

    def __init__(self, port: int, master_address: int = 1, outstation_address: int = 10) -> None:
        self.port = port
        self.local, self.remote = master_address, outstation_address
        self.seen = Seen()

    def __enter__(self) -> OpenDnp3Master:
        self.mgr = asiodnp3.DNP3Manager(1, asiodnp3.ConsoleLogger(False).Create())
        self.channel = self.mgr.AddTCPClient(
            "oracle",
            opendnp3.levels.NOTHING,
            asiopal.ChannelRetry(
                openpal.TimeDuration.Milliseconds(100), openpal.TimeDuration.Milliseconds(500)
            ),
            "127.0.0.1",
            "0.0.0.0",
            self.port,
            asiodnp3.PrintingChannelListener().Create(),
        )
        cfg = asiodnp3.MasterStackConfig()
        cfg.link.LocalAddr = self.local
        cfg.link.RemoteAddr = self.remote
        cfg.master.responseTimeout = openpal.TimeDuration().Seconds(3)
        cfg.master.disableUnsolOnStartup = True
        self.soe = _SOE(self.seen)
        self.master = self.channel.AddMaster(
            "oracle", self.soe, asiodnp3.DefaultMasterApplication().Create(), cfg
        )
        self.master.Enable()
        return self

    def __exit__(self, *_: Any) -> None:
        self.master.Disable()
        self.mgr.Shutdown()

    def integrity(self, wait_s: float = 1.0) -> None:
        """Class 1, 2, 3 events then class 0 (static), as one integrity poll."""
        self.master.ScanClasses(opendnp3.ClassField().AllClasses(), opendnp3.TaskConfig().Default())
        time.sleep(wait_s)

    def events(self, wait_s: float = 1.0) -> None:
        self.master.ScanClasses(opendnp3.ClassField().AllEventClasses(),
                                opendnp3.TaskConfig().Default())  # fmt: skip
        time.sleep(wait_s)
