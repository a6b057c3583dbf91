"""The live view's pure parts: password hashes, the login limiter, sessions, the [view]
section's rules, and the model that turns topics into what the page shows."""

from __future__ import annotations

import json

import pytest

from edge.config import ConfigError, parse_site
from edge.view.auth import RateLimiter, Sessions, check_hash_format, hash_password, verify_password
from edge.view.model import SiteModel, SiteRoles


def test_scrypt_hash_verifies_only_its_password() -> None:
    h = hash_password("correct horse", n=2**10)
    assert h.startswith("scrypt$1024$8$1$") and check_hash_format(h) is None
    assert verify_password("correct horse", h)
    assert not verify_password("correct hors", h)
    assert hash_password("correct horse", n=2**10) != h  # salted
    assert not verify_password("x", "plain-text")
    assert "not a scrypt hash" in (check_hash_format("sha256$abc") or "")
    assert "out of range" in (check_hash_format(h.replace("$1024$", "$1000$", 1)) or "")


def test_rate_limiter_refuses_after_failures_until_the_window_passes() -> None:
    now = [0.0]
    rl = RateLimiter(3, 60, clock=lambda: now[0])
    for _ in range(3):
        assert rl.retry_after("ip:1") == 0
        rl.failure("ip:1")
    assert rl.retry_after("ip:1") == pytest.approx(60)
    assert rl.retry_after("ip:2") == 0  # others are not affected
    now[0] = 59.0
    assert rl.retry_after("ip:1") == pytest.approx(1)
    now[0] = 60.0
    assert rl.retry_after("ip:1") == 0


def test_sessions_expire() -> None:
    now = [0.0]
    s = Sessions(100, clock=lambda: now[0])
    tok = s.create("op", "operator")
    got = s.get(tok)
    assert got is not None and got.role == "operator"
    assert s.get("forged") is None and s.get(None) is None
    now[0] = 100.0
    assert s.get(tok) is None


def _site(view: str) -> None:
    parse_site({"site": {"id": "s1"}, "view": json.loads(view)}, "site.toml")


@pytest.mark.parametrize(
    ("view", "message"),
    [
        ('{"host": "0.0.0.0"}', "site.toml: view.tls: required when host is not loopback"),
        (
            '{"host": "192.0.2.1", "tls": {"cert_file": "c", "key_file": "k"}}',
            "site.toml: view.users: required when host is not loopback",
        ),
        (
            '{"users": [{"name": "a", "role": "admin", "password_hash": "x"}]}',
            "view.users.0.role: Must be one of: viewer, operator.",
        ),
        (
            '{"users": [{"name": "a", "role": "viewer", "password_hash": "secret"}]}',
            "view.users.0.password_hash: not a scrypt hash",
        ),
        ('{"port": 70000}', "view.port: Must be greater than or equal to 0"),
        ('{"colour": "red"}', "view.colour: Unknown field."),
    ],
)
def test_view_section_refuses_unsafe_or_bad_settings(view: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        _site(view)
    assert message in str(exc.value)


def test_view_section_defaults_to_loopback_8080() -> None:
    site = parse_site({"site": {"id": "s1"}, "view": {}})
    cfg = site.section("view")
    assert (cfg.host, cfg.port, cfg.tls, cfg.users) == ("127.0.0.1", 8080, None, ())


ROLES = SiteRoles(
    battery="bat", inverter="inv", meter="m", pv=("pv1",), der=("der1",), refresh_s={"bat": 5.0}
)


def model(now: list[float]) -> SiteModel:
    return SiteModel("s1", ROLES, stale_s=20, max_events=3, clock=lambda: now[0])


def feed(m: SiteModel, topic: str, value: object) -> None:
    m.on_message(
        f"bess/s1/{topic}", value if isinstance(value, bytes) else json.dumps(value).encode()
    )


def test_model_powers_follow_the_sign_convention() -> None:
    now = [1000.0]
    m = model(now)
    for dev in ("bat", "inv", "m", "pv1"):
        feed(m, f"{dev}/status", b"online")
        feed(m, f"{dev}/ts", 999.0)
    feed(m, "bat/802/W", 5200)
    feed(m, "inv/701/W", 5000)  # discharging 5 kW
    feed(m, "m/203/W", 20000)  # importing 20 kW
    feed(m, "pv1/701/W", 3000)
    p = m.snapshot()["power"]
    assert p == {
        "battery_w": 5200,
        "inverter_w": 5000,
        "grid_w": 20000,
        "pv_w": 3000,
        "load_w": 28000,
    }  # load = grid + pv + battery


def test_model_marks_stale_data_and_offline_devices() -> None:
    now = [1000.0]
    m = model(now)
    feed(m, "bat/status", b"online")
    feed(m, "bat/ts", 999.0)
    feed(m, "inv/status", b"online")
    feed(m, "inv/ts", 999.0)
    m.take_delta()
    assert m.devices["bat"]["stale"] is False and m.devices["inv"]["stale"] is False
    now[0] = 1009.5  # bat refreshes every 5 s: stale after 10 s; inv: the default 20 s
    d = m.take_delta()
    assert d is not None and d["devices"]["bat"]["stale"] is True and "inv" not in d["devices"]
    feed(m, "inv/status", b"offline")
    d = m.take_delta()
    assert d is not None and d["devices"]["inv"]["stale"] is True


def test_model_coalesces_a_burst_into_one_delta_and_bounds_events() -> None:
    now = [1000.0]
    m = model(now)
    m.take_delta()
    for i in range(1000):
        feed(m, "bat/802/SoC", 50 + i / 1000)
        feed(m, "bat/802/NotShown", i)  # not a display point: not kept
    for i in range(10):
        feed(m, "controller/events", {"kind": "transition", "n": i})
    d = m.take_delta()
    assert d is not None
    assert d["devices"]["bat"]["values"] == {"802/SoC": 50.999}
    assert [e["n"] for e in d["events"]] == [7, 8, 9]  # bounded like the list itself
    assert [e["n"] for e in m.snapshot()["events"]] == [7, 8, 9]
    assert m.take_delta() is None  # nothing new: nothing pushed


def test_model_shows_controller_state_and_ignores_bad_payloads() -> None:
    now = [1000.0]
    m = model(now)
    feed(
        m,
        "controller/state",
        {
            "state": "fault",
            "faults": [{"code": "battery_alarm"}],
            "mode": {"name": "peak_shaving"},
            "why": "x",
        },
    )
    feed(m, "controller/status", b"online")
    m.on_message("bess/s1/controller/state", b"{not json")
    m.on_message("bess/s1/bat/802/SoC", b"\xff\xfe")
    d = m.take_delta()
    assert d is not None and d["controller"]["state"]["state"] == "fault"
    assert d["controller"]["status"] == "online"


def test_view_password_command_prints_a_usable_hash(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    from edge.cli import main

    monkeypatch.setattr("sys.stdin", io.StringIO("long enough pw\n"))
    assert main(["view-password", "--stdin"]) == 0
    h = capsys.readouterr().out.strip()
    assert check_hash_format(h) is None and verify_password("long enough pw", h)
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["view-password", "--stdin"]) == 2
    assert "at least 8 characters" in capsys.readouterr().err


def test_trend_reads_history_into_one_time_axis(tmp_path: object) -> None:
    from pathlib import Path

    from edge.history.store import HistoryStore, Sample
    from edge.view.trends import read_trend

    path = Path(str(tmp_path)) / "h.sqlite"
    now = 1_764_547_200 + 7200
    s = HistoryStore(path)
    s.write([Sample("controller/soc", now - 3000 + i, 50 + i / 100) for i in range(0, 600, 5)])
    s.write([Sample("inv/701/W", now - 3000 + i, 1000.0) for i in range(0, 600, 5)])
    s.write([Sample("m/203/W", now - 3000 + i, 4000.0) for i in range(300, 600, 5)])
    s.write([Sample("controller/soc", now - 7000, 10.0)])  # older than the hour: not shown
    s.close()
    roles = SiteRoles(battery="bat", inverter="inv", meter="m")
    t = read_trend(path, roles, "hour", now)
    assert t["step"] == 10 and len(t["t"]) == 60
    assert t["t"][0] == now - 3000 and t["soc"][0] == pytest.approx(50.025)
    assert t["grid_w"][0] is None and t["load_w"][0] is None  # no meter data yet
    assert t["grid_w"][-1] == 4000.0 and t["load_w"][-1] == 5000.0  # grid + battery
    week = read_trend(path, roles, "week", now)
    assert week["step"] == 900 and min(week["soc"]) == 10.0


def test_a_page_that_stops_reading_costs_a_bounded_queue() -> None:
    import asyncio

    from edge.view.push import QUEUE_MAX, Hub

    async def main() -> None:
        now = [1000.0]
        m = model(now)
        hub = Hub(m, 0.2)
        slow, first = hub.connect()
        fast, _ = hub.connect()
        assert json.loads(first[6:])["kind"] == "snapshot"
        for i in range(10 * QUEUE_MAX):
            feed(m, "bat/802/SoC", 10 + i / 100)
            hub.push_now()
            if not fast.queue.empty():
                fast.queue.get_nowait()  # this one keeps up
        assert slow.queue.qsize() <= QUEUE_MAX
        kinds = [json.loads(slow.queue.get_nowait()[6:])["kind"] for _ in range(slow.queue.qsize())]
        assert "snapshot" in kinds  # it lost the backlog and gets the whole picture instead
        hub.disconnect(slow)
        hub.disconnect(fast)
        assert hub.clients == set()

    asyncio.run(main())


def test_events_keep_their_own_fields_and_say_where_they_came_from() -> None:
    m = model([1000.0])
    feed(m, "controller/events", {"kind": "mode", "name": "manual", "source": "schedule"})
    feed(m, "der1/events", {"kind": "response", "subject": "abc", "status": 1})
    ev = m.snapshot()["events"]
    assert ev[0]["source"] == "schedule" and ev[0]["origin"] == "controller"
    assert ev[1]["origin"] == "der1" and ev[1]["subject"] == "abc"
