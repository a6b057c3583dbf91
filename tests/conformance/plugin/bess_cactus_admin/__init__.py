"""cactus-client admin plugin for the bess-edge 2030.5 bridge.

cactus-client's procedures carry "admin instructions" (register a device, create a DERControl,
...) that a utility server's operator would carry out. This plugin carries them out through
the bridge's own MQTT interface (topics.md): `{root}/bridge/admin/{op}` and the device's
`set/derc` and `set/dderc`, with the project's request/response helper. It runs inside the
cactus venv (Python >= 3.12), which has bess-edge installed without its dependencies, plus
paho-mqtt. Broker and site come from BESS_MQTT_HOST, BESS_MQTT_PORT and BESS_SITE.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import Any

from cactus_client.admin import hookimpl
from cactus_client.model.execution import ActionResult
from cactus_client.sep2 import lfdi_from_cert_file

from edge.bridge.identity import sfdi_from_lfdi
from edge.mqtt.client import BrokerSettings, MqttClient
from edge.mqtt.rpc import Requester
from edge.mqtt.topics import Topics

TIMEOUT_S = 2.0
RETRIES = 4
ACTIVE_BACKDATE_S = 5  # an "active" control started a moment ago (even a 60 s one is live)
SCHEDULED_GAP_S = 30  # a "scheduled" control starts in the future, stacked one after another
DEFAULT_DURATION_S = 120  # short, so a procedure that waits for "completed" sees it
NOTIFY_SETTLE_S = 2.0  # an instruction is done once the notifications it caused went out


class _Link:
    def __init__(self) -> None:
        self.topics = Topics(os.environ.get("BESS_SITE", "s1"))
        broker = BrokerSettings(
            host=os.environ.get("BESS_MQTT_HOST", "127.0.0.1"),
            port=int(os.environ.get("BESS_MQTT_PORT", "1883")),
        )
        self.client = MqttClient(broker=broker, client_id=f"cactus-admin-{os.getpid()}")
        self.requester = Requester(self.client, self.topics)
        self.started = False

    async def request(self, topic: str, body: dict[str, Any]) -> dict[str, Any]:
        if not self.started:
            await self.client.start(timeout=TIMEOUT_S)
            self.started = True
        for attempt in range(RETRIES):
            try:
                reply = await self.requester.request(topic, body, timeout=TIMEOUT_S)
                break
            except TimeoutError:
                # a device registered a moment ago may not be listening on set/... yet
                if attempt == RETRIES - 1:
                    raise
        if not reply.get("ok"):
            raise RuntimeError(f"{topic}: {reply.get('error')}")
        return reply


class BessAdminPlugin:
    """One instance per cactus run; keeps what it created (mRIDs, schedule) per client."""

    def __init__(self) -> None:
        self.link: _Link | None = None
        self.next_start: dict[str, int] = {}
        self.created: dict[str, list[str]] = {}
        self.fsas: dict[str, list[str]] = {}  # per client: FSA annotations, in order

    def _link(self) -> _Link:
        if self.link is None:
            self.link = _Link()
        return self.link

    @hookimpl
    async def admin_teardown(self, context: Any) -> ActionResult:
        if self.link is not None and self.link.started:
            await self.link.client.stop()
        return ActionResult.done()

    @hookimpl
    async def admin_instruction(self, instruction: Any, step: Any, context: Any) -> ActionResult:
        client = context.client_config_for(step.client_alias)
        kind = str(getattr(instruction.type, "value", instruction.type))
        params: dict[str, Any] = dict(instruction.parameters or {})
        try:
            return await self._do(kind, params, client, context)
        except Exception as exc:  # the reason goes into cactus's report
            return ActionResult.failed(f"bess admin {kind}: {exc}")

    async def _do(self, kind: str, params: dict[str, Any], client: Any, ctx: Any) -> ActionResult:
        link = self._link()
        t = link.topics
        lfdi = client.lfdi.lower()
        name = f"edev-{sfdi_from_lfdi(lfdi)}"
        if kind == "ensure-end-device":
            body: dict[str, Any] = {"lfdi": lfdi, "registered": bool(params["registered"])}
            if params["registered"] and client.pin:
                body["pin"] = int(client.pin)
            if str(client.type) == "aggregator" and params["registered"]:
                body["aggregator"] = lfdi_from_cert_file(client.certificate_file).lower()
            await link.request(t.bridge_admin("edev"), body)
        elif kind == "ensure-mup-list-empty":
            await link.request(t.bridge_admin("mup-clear"), {"lfdi": lfdi})
        elif kind == "ensure-der-program":
            body = {"lfdi": lfdi, "primacy": int(params.get("primacy") or 1)}
            fsas = self.fsas.setdefault(lfdi, [])
            if params.get("fsa_annotation") in fsas:
                body["fsa"] = fsas.index(params["fsa_annotation"]) + 1
            await link.request(t.bridge_admin("program"), body)
        elif kind == "ensure-fsa":
            # FSAs are numbered in the order the procedure names them; a program joins one
            fsas = self.fsas.setdefault(lfdi, [])
            if params.get("annotation") and params["annotation"] not in fsas:
                fsas.append(params["annotation"])
            if params.get("primacy") is not None and params.get("annotation"):
                body = {"lfdi": lfdi, "primacy": int(params["primacy"]),
                        "fsa": fsas.index(params["annotation"]) + 1}  # fmt: skip
                await link.request(t.bridge_admin("program"), body)
        elif kind == "ensure-der-control-list":
            pass  # every DERProgram has a DERControlList
        elif kind == "create-der-control":
            reply = await link.request(t.derc(name), self._derc(lfdi, params))
            self.created.setdefault(lfdi, []).append(reply["mrid"])
        elif kind == "create-default-der-control":
            await link.request(t.dderc(name), params)
        elif kind == "clear-der-controls":
            for mrid in self.created.pop(lfdi, []):
                with contextlib.suppress(RuntimeError):  # already over
                    await link.request(t.derc(name), {"cancel": mrid})
        elif kind == "set-poll-rate":
            body = {"resource": params["resource"], "poll_rate_s": int(params["rate_seconds"])}
            await link.request(t.bridge_admin("rates"), body)
        elif kind == "set-post-rate":
            body = {"resource": params["resource"], "post_rate_s": int(params["rate_seconds"])}
            await link.request(t.bridge_admin("rates"), body)
        elif kind == "set-client-access":
            body = {"lfdi": lfdi, "granted": bool(params["granted"])}
            await link.request(t.bridge_admin("access"), body)
        else:
            return ActionResult.failed(f"bess admin: no translation for {kind}")
        await self._settle(link)
        return ActionResult.done()

    async def _settle(self, link: _Link) -> None:
        """Wait (at most NOTIFY_SETTLE_S) until the bridge has no notification pending, so
        cactus's next check sees what the instruction caused; an endpoint that is down (a
        procedure may disable it) only costs the wait."""
        deadline = time.monotonic() + NOTIFY_SETTLE_S
        while time.monotonic() < deadline:
            stats = await link.request(link.topics.bridge_admin("stats"), {})
            if not stats["notifications"].get("pending"):
                return
            await asyncio.sleep(0.05)

    def _derc(self, lfdi: str, params: dict[str, Any]) -> dict[str, Any]:
        now = int(time.time())
        duration = int(params.get("duration_seconds") or DEFAULT_DURATION_S)
        offset = params.get("start_offset_seconds")
        if params.get("status", "active") == "scheduled":
            if offset is not None:  # an explicit start: now + offset
                start = now + int(offset)
            else:  # otherwise stacked after the previous scheduled one
                start = max(self.next_start.get(lfdi, 0), now + SCHEDULED_GAP_S)
            self.next_start[lfdi] = max(self.next_start.get(lfdi, 0), start + duration)
        else:
            start = now - ACTIVE_BACKDATE_S + int(offset or 0)
        body: dict[str, Any] = {"start": start, "duration": duration}
        for key in ("opModExpLimW", "opModImpLimW", "opModGenLimW", "opModLoadLimW",
                    "opModConnect", "opModEnergize", "rampTms", "primacy"):  # fmt: skip
            if params.get(key) is not None:
                body[key] = params[key]
        if params.get("opModFixedW") is not None:
            body["opModFixedW"] = int(params["opModFixedW"])
        if params.get("randomizeStart_seconds") is not None:
            body["randomizeStart"] = int(params["randomizeStart_seconds"])
        return body
