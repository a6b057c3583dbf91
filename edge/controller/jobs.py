"""The shell's task runner: every asyncio task of the controller is made here.

The core asks for device writes as actions; the driver (driver.py) performs each one in a task
made by this runner, owned by the shell (ControllerService creates it and closes it), which
keeps track of it and cancels whatever is left when the service stops. The core never makes a
task.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any


class Jobs:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(work, name=f"controller:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def pending(self) -> list[asyncio.Task[None]]:
        return [t for t in self._tasks if not t.done()]

    async def idle(self, timeout: float) -> None:
        """Wait until no work is in progress (tests, shutdown). Bounded."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while tasks := self.pending():
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError("controller still busy")
            await asyncio.wait(tasks, timeout=left)

    async def close(self) -> None:
        """Cancel every task and wait for each to finish."""
        for task in self.pending():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
