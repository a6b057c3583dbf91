"""The whole simulator site (tests/integration/controller_site.py) plus the live view and,
optionally, the history recorder, in one asyncio loop over a real Mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from edge.history.config import HistorySchema
from edge.history.recorder import RecorderService
from edge.view.auth import hash_password
from edge.view.config import ViewSchema
from edge.view.model import SiteRoles
from edge.view.service import ViewService
from tests.integration.controller_site import SITE, ControllerSite

PASSWORDS = {"op": "operator-secret", "vw": "viewer-secret"}
ROLES = SiteRoles(
    battery="battery", inverter="inverter", refresh_s={"battery": 5.0, "inverter": 5.0}
)


def users() -> list[dict[str, str]]:
    """An operator `op` and a viewer `vw` (cheap scrypt parameters: tests log in often)."""
    roles = {"op": "operator", "vw": "viewer"}
    return [
        {"name": n, "role": r, "password_hash": hash_password(PASSWORDS[n], n=2**10)}
        for n, r in roles.items()
    ]


class ViewSite(ControllerSite):
    """`async with ViewSite(broker, view={...}, history=tmp_path / "h.sqlite") as site:`;
    `site.view.url` is the page."""

    def __init__(
        self,
        broker: Any,
        view: dict[str, Any] | None = None,
        history: Path | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(broker, **kw)
        cfg = ViewSchema().load({"port": 0, "users": users(), **(view or {})})
        history_path = None
        self.recorder: RecorderService | None = None
        if history is not None:
            hcfg = HistorySchema().load({"path": str(history), "flush_s": 0.2})
            self.recorder = RecorderService(SITE, self.bsettings, hcfg)
            history_path = history
        self.view = ViewService(SITE, self.bsettings, cfg, ROLES, history_path)
        self._extra: list[asyncio.Task[Any]] = []

    async def __aenter__(self) -> ViewSite:
        await super().__aenter__()
        if self.recorder is not None:
            self._extra.append(asyncio.create_task(self.recorder.run(self.stop)))
        self._extra.append(asyncio.create_task(self.view.run(self.stop)))
        await asyncio.wait_for(self.view.ready.wait(), 10)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.stop.set()
        for t in self._extra:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(t, 10)
        await super().__aexit__(*exc)
