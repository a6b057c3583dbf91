"""The topic builder produces exactly the topics of topics.md and refuses bad names."""

from __future__ import annotations

import pytest

from edge.mqtt.topics import Topics, check_device_name, model_key

T = Topics("site1")


def test_device_topics_match_the_contract() -> None:
    assert T.status("battery") == "bess/site1/battery/status"
    assert T.meta("battery") == "bess/site1/battery/meta"
    assert T.ts("battery") == "bess/site1/battery/ts"
    assert T.point("battery", 802, "SoC") == "bess/site1/battery/802/SoC"
    assert T.point("inv", 160, "DCA", group="module/2") == "bess/site1/inv/160/module/2/DCA"
    assert T.set("battery", 802, "SetOp") == "bess/site1/battery/set/802/SetOp"
    assert T.derc("der1") == "bess/site1/der1/set/derc"
    assert T.events("der1") == "bess/site1/der1/events"


def test_controller_and_service_topics() -> None:
    assert T.controller_cmd("charge") == "bess/site1/controller/cmd/charge"
    assert T.controller_cmd_filter == "bess/site1/controller/cmd/+"
    assert T.controller_state == "bess/site1/controller/state"
    assert T.controller_status == "bess/site1/controller/status"
    assert T.controller_events == "bess/site1/controller/events"
    assert T.bridge_status == "bess/site1/bridge/status"
    assert T.sim_cmd("battery", "freeze") == "bess/site1/sim/battery/cmd/freeze"
    assert T.reply_base("op-1") == "bess/site1/reply/op-1"


def test_parse_set_round_trips_and_rejects_other_topics() -> None:
    assert T.parse_set(T.set("battery", 802, "SetOp")) == ("battery", "802", "SetOp")
    assert T.parse_set("bess/site1/inv/set/160/module/2/DCA") == ("inv", "160", "module/2/DCA")
    for bad in ("bess/site1/battery/802/SoC", "bess/other/battery/set/802/SetOp", "x"):
        with pytest.raises(ValueError):
            T.parse_set(bad)


def test_point_suffix_is_the_meta_key() -> None:
    assert T.point_suffix(T.point("battery", 802, "SoC"), "battery") == "802/SoC"
    with pytest.raises(ValueError):
        T.point_suffix("bess/site1/meter/203/W", "battery")


@pytest.mark.parametrize("name", ["", "Battery", "a/b", "a+", "#", "x" * 33, "bat tery"])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        check_device_name(name)
    with pytest.raises(ValueError):
        Topics(name)


@pytest.mark.parametrize("name", ["controller", "bridge", "sim", "reply", "operator"])
def test_reserved_device_names(name: str) -> None:
    with pytest.raises(ValueError, match="reserved"):
        check_device_name(name)


def test_model_key_instances() -> None:
    assert model_key(802) == "802"
    assert model_key(160, 2) == "160-2"
