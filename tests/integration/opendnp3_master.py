"""opendnp3's master (through its Python binding, PyPI `dnp3-python`) as a read-only oracle.

The reference C++ implementation decodes what our outstation sends: static points, events
with their time, IIN bits. It runs in a child process (`python -m` this module), because the
binding's only build for this Python (0.3.0b1) is unsafe in-process: any command callback
aborts the process (pybind11 cast of a non-copyable result), and `DNP3Manager.Shutdown()`
can deadlock on the GIL. The child answers one JSON line per request on stdin and ends with
`os._exit`. Only reads are used; controls are tested with nfm-dnp3 (dnp3_master.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

ANSWER = "@@ "  # prefix of the child's answer lines
Row = tuple[str, int, Any, int]  # (group-variation name, index, value, time in ms)


class OpenDnp3Master:
    """`with OpenDnp3Master(port) as m: m.integrity(); m.rows("Group2")`"""

    def __init__(
        self,
        port: int,
        master_address: int = 1,
        outstation_address: int = 10,
        unsolicited: bool = False,
    ) -> None:
        """`unsolicited`: the master enables unsolicited responses at startup."""
        self.args = [str(port), str(master_address), str(outstation_address), str(int(unsolicited))]
        self._seen: list[Row] = []

    def __enter__(self) -> OpenDnp3Master:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.opendnp3_master", *self.args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        return self

    def __exit__(self, *_: Any) -> None:
        with contextlib.suppress(OSError, ValueError, TimeoutError):
            self._ask("quit")
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def _ask(self, what: str, timeout: float = 10.0) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(what + "\n")
        self.proc.stdin.flush()
        box: list[str] = []
        reader = threading.Thread(target=self._read_answer, args=(box,), daemon=True)
        reader.start()
        reader.join(timeout)
        if not box:
            raise TimeoutError(f"opendnp3 master did not answer {what!r}")
        return json.loads(box[0])

    def _read_answer(self, box: list[str]) -> None:
        """The next answer line; opendnp3's own log lines on stdout are skipped."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(ANSWER):
                box.append(line[len(ANSWER) :])
                return

    def integrity(self, wait_s: float = 1.0) -> None:
        """Class 1, 2, 3 events then class 0 (static), as one integrity poll."""
        self._ask(f"integrity {wait_s}")

    def events(self, wait_s: float = 1.0) -> None:
        self._ask(f"events {wait_s}")

    def rows(self, gv_prefix: str = "") -> list[Row]:
        """Everything received since the last `clear()`, in order, filtered by header."""
        got = [tuple(r) for r in self._ask("dump")]
        return [r for r in got if r[0].startswith(gv_prefix)]  # type: ignore[misc]

    def clear(self) -> None:
        self._ask("clear")

    def count(self) -> int:
        """How many values arrived since the last `clear()` (cheaper than `rows()`)."""
        return int(self._ask("count"))


# -- the child process ---------------------------------------------------------------------
def _child(port: int, local: int, remote: int, unsolicited: bool) -> None:
    from pydnp3 import asiodnp3, asiopal, opendnp3, openpal

    seen: list[Row] = []
    lock = threading.Lock()

    def visitor(base: type, gv: str) -> Any:
        class V(base):  # type: ignore[misc, valid-type]
            def OnValue(self, iv: Any) -> None:
                with lock:
                    seen.append((gv, iv.index, iv.value.value, iv.value.time.value))

        return V()

    class SOE(opendnp3.ISOEHandler):  # type: ignore[misc]
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
                values.Foreach(visitor(base, gv))

    mgr = asiodnp3.DNP3Manager(1, asiodnp3.ConsoleLogger(False).Create())
    retry = asiopal.ChannelRetry(
        openpal.TimeDuration.Milliseconds(100), openpal.TimeDuration.Milliseconds(500)
    )
    channel = mgr.AddTCPClient(
        "oracle", opendnp3.levels.NOTHING, retry, "127.0.0.1", "0.0.0.0", port,
        asiodnp3.PrintingChannelListener().Create(),
    )  # fmt: skip
    cfg = asiodnp3.MasterStackConfig()
    cfg.link.LocalAddr = local
    cfg.link.RemoteAddr = remote
    cfg.master.responseTimeout = openpal.TimeDuration().Seconds(3)
    cfg.master.disableUnsolOnStartup = not unsolicited
    if unsolicited:
        cfg.master.unsolClassMask = opendnp3.ClassField().AllEventClasses()
    soe = SOE()
    master = channel.AddMaster("oracle", soe, asiodnp3.DefaultMasterApplication().Create(), cfg)
    master.Enable()
    for line in sys.stdin:
        cmd, *arg = line.split()
        answer: Any = "ok"
        if cmd == "integrity":
            master.ScanClasses(opendnp3.ClassField().AllClasses(), opendnp3.TaskConfig().Default())
            time.sleep(float(arg[0]))
        elif cmd == "events":
            classes = opendnp3.ClassField().AllEventClasses()
            master.ScanClasses(classes, opendnp3.TaskConfig().Default())
            time.sleep(float(arg[0]))
        elif cmd == "count":
            with lock:
                answer = len(seen)
        elif cmd == "dump":
            with lock:
                answer = list(seen)
        elif cmd == "clear":
            with lock:
                seen.clear()
        sys.stdout.write(ANSWER + json.dumps(answer) + "\n")
        sys.stdout.flush()
        if cmd == "quit":
            os._exit(0)


if __name__ == "__main__":
    _child(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1")
