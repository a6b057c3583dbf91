"""The one topic builder. Every topic string in the code base comes from here (see topics.md)."""

from __future__ import annotations

import re
from dataclasses import dataclass

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
RESERVED_NAMES = frozenset({"controller", "bridge", "sim", "reply", "operator", "dnp3"})
CONTROLLER_COMMANDS = (
    "start",
    "stop",
    "hold",
    "reset",
    "get_state",
    "charge",
    "discharge",
    "recover_soc",
    "mode",
    "schedule",
    "grid",
    "limit",
)


def check_name(kind: str, name: str) -> str:
    """Return `name` if it is a valid site or device identifier, else raise ValueError."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValueError(f"{kind} {name!r} must match {NAME_RE.pattern}")
    return name


def check_device_name(name: str) -> str:
    check_name("device", name)
    if name in RESERVED_NAMES:
        raise ValueError(f"device name {name!r} is reserved ({', '.join(sorted(RESERVED_NAMES))})")
    return name


def model_key(model: int | str, instance: int = 1) -> str:
    """The `{model}` topic level: `802`, or `802-2` for a second instance in one device."""
    return f"{model}" if instance <= 1 else f"{model}-{instance}"


@dataclass(frozen=True)
class Topics:
    """Topic builder for one site: `Topics("site1").status("battery")`."""

    site: str

    def __post_init__(self) -> None:
        check_name("site", self.site)

    @property
    def root(self) -> str:
        return f"bess/{self.site}"

    @property
    def all(self) -> str:
        return f"{self.root}/#"

    # -- device topics -------------------------------------------------------------------
    def device(self, device: str) -> str:
        return f"{self.root}/{device}"

    def status(self, device: str) -> str:
        return f"{self.root}/{device}/status"

    def meta(self, device: str) -> str:
        return f"{self.root}/{device}/meta"

    def ts(self, device: str) -> str:
        return f"{self.root}/{device}/ts"

    def point(self, device: str, model: int | str, point: str, group: str = "") -> str:
        """`{root}/{device}/{model}/{point}`; `group` is the optional `{group}/{index}` path."""
        middle = f"{model}/{group}/" if group else f"{model}/"
        return f"{self.root}/{device}/{middle}{point}"

    def point_suffix(self, topic: str, device: str) -> str:
        """The part of a point topic after `{root}/{device}/` (the key used in `meta`)."""
        prefix = f"{self.root}/{device}/"
        if not topic.startswith(prefix):
            raise ValueError(f"{topic!r} is not a topic of device {device!r}")
        return topic[len(prefix) :]

    def set(self, device: str, model: int | str, point: str) -> str:
        return f"{self.root}/{device}/set/{model}/{point}"

    def set_filter(self, device: str) -> str:
        return f"{self.root}/{device}/set/#"

    def derc(self, device: str) -> str:
        return f"{self.root}/{device}/set/derc"

    def dderc(self, device: str) -> str:
        return f"{self.root}/{device}/set/dderc"

    def events(self, device: str) -> str:
        return f"{self.root}/{device}/events"

    def parse_set(self, topic: str) -> tuple[str, str, str]:
        """Split `{root}/{device}/set/{model}/{point...}` into (device, model, point)."""
        prefix = f"{self.root}/"
        parts = topic[len(prefix) :].split("/") if topic.startswith(prefix) else []
        if len(parts) < 4 or parts[1] != "set":
            raise ValueError(f"{topic!r} is not a set topic")
        return parts[0], parts[2], "/".join(parts[3:])

    # -- controller ----------------------------------------------------------------------
    def controller_cmd(self, command: str) -> str:
        return f"{self.root}/controller/cmd/{command}"

    @property
    def controller_cmd_filter(self) -> str:
        return f"{self.root}/controller/cmd/+"

    @property
    def controller_state(self) -> str:
        return f"{self.root}/controller/state"

    @property
    def controller_status(self) -> str:
        return f"{self.root}/controller/status"

    @property
    def controller_events(self) -> str:
        return f"{self.root}/controller/events"

    # -- bridge, simulator, replies ------------------------------------------------------
    @property
    def bridge_status(self) -> str:
        return f"{self.root}/bridge/status"

    @property
    def dnp3_status(self) -> str:
        return f"{self.root}/dnp3/status"

    @property
    def dnp3_state(self) -> str:
        return f"{self.root}/dnp3/state"

    def sim_cmd(self, device: str, action: str) -> str:
        return f"{self.root}/sim/{device}/cmd/{action}"

    def bridge_admin(self, op: str) -> str:
        return f"{self.root}/bridge/admin/{op}"

    @property
    def bridge_admin_filter(self) -> str:
        return f"{self.root}/bridge/admin/+"

    @property
    def sim_cmd_filter(self) -> str:
        return f"{self.root}/sim/+/cmd/+"

    @property
    def sim_status(self) -> str:
        return f"{self.root}/sim/status"

    def reply_base(self, client_id: str) -> str:
        """Replies for requester `client_id` arrive under `{root}/reply/{client_id}/...`."""
        return f"{self.root}/reply/{client_id}"

    @staticmethod
    def last_level(topic: str) -> str:
        return topic.rsplit("/", 1)[-1]


# -- Sparkplug B (topics.md, "Sparkplug B") ----------------------------------------------------
SPARKPLUG_NAMESPACE = "spBv1.0"
SPARKPLUG_ID_RE = re.compile(r"^[^/+#]{1,64}$")


@dataclass(frozen=True)
class SparkplugTopics:
    """`spBv1.0/{group}/{type}/{edge_node}[/{device}]` and the host's `spBv1.0/STATE/{host}`."""

    group: str
    node: str

    def __post_init__(self) -> None:
        for kind, value in (("group id", self.group), ("edge node id", self.node)):
            if not SPARKPLUG_ID_RE.match(value):
                raise ValueError(f"{kind} {value!r} must be 1-64 characters without / + #")

    def node_topic(self, kind: str) -> str:
        """NBIRTH, NDEATH, NDATA, NCMD."""
        return f"{SPARKPLUG_NAMESPACE}/{self.group}/{kind}/{self.node}"

    def device_topic(self, kind: str, device: str) -> str:
        """DBIRTH, DDEATH, DDATA, DCMD."""
        return f"{SPARKPLUG_NAMESPACE}/{self.group}/{kind}/{self.node}/{device}"

    @property
    def dcmd_filter(self) -> str:
        return f"{SPARKPLUG_NAMESPACE}/{self.group}/DCMD/{self.node}/+"

    @staticmethod
    def state(host_id: str) -> str:
        return f"{SPARKPLUG_NAMESPACE}/STATE/{host_id}"


# -- Home Assistant MQTT discovery (topics.md, "Home Assistant") --------------------------------
HA_PREFIX = "homeassistant"


def ha_discovery(component: str, node_id: str, object_id: str, prefix: str = HA_PREFIX) -> str:
    """`{prefix}/{component}/{node_id}/{object_id}/config`."""
    return f"{prefix}/{component}/{node_id}/{object_id}/config"


def ha_status(prefix: str = HA_PREFIX) -> str:
    """Home Assistant's own birth/will topic: `online` when it (re)starts."""
    return f"{prefix}/status"
