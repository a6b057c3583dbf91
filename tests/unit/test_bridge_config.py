"""`[bridge]` config: clear errors naming the key; plain HTTP never by default."""

from __future__ import annotations

from typing import Any

import pytest

from edge.bridge.config import BridgeConfig
from edge.config import ConfigError, parse_site

A = "3e4f45ab31edfe5b67e343e5e4562e31984e23e5"
TLS = {"cert_file": "s.pem", "key_file": "s.key", "ca_file": "ca.pem"}


def site(bridge: dict[str, Any]) -> dict[str, Any]:
    return {"site": {"id": "s1"}, "bridge": bridge}


def test_minimal_tls_config_and_defaults() -> None:
    cfg = parse_site(site({"tls": TLS})).bridge
    assert isinstance(cfg, BridgeConfig)
    assert cfg.tls is not None and cfg.tls.ciphers == ("ECDHE-ECDSA-AES128-CCM8",)
    assert cfg.proxy is None and cfg.allow_registration is False and cfg.port == 8443


def test_csipaus_settings_and_legacy_xml() -> None:
    cfg = parse_site(
        site({"tls": TLS, "pen": 28547, "legacy_xml": True, "allow_reregistration": True,
              "poll_rates": {"DERProgramList": 60}, "post_rates": {"MirrorUsagePoint": 30},
              "aggregators": [{"name": "agg", "lfdi": A.upper()}],
              "default_control": {"opModExpLimW": 5000, "setGradW": 27}})
    ).bridge  # fmt: skip
    assert (cfg.pen, cfg.legacy_xml, cfg.allow_reregistration) == (28547, True, True)
    assert cfg.poll_rates == {"DERProgramList": 60} and cfg.post_rates == {"MirrorUsagePoint": 30}
    assert cfg.aggregators[0].lfdi == A and cfg.csipaus_ns == "https://csipaus.org/ns/v1.3"


def test_devices_are_checked() -> None:
    cfg = parse_site(
        site(
            {
                "tls": TLS,
                "devices": [{"name": "bat", "lfdi": A.upper(), "sfdi": 167261211391, "pin": 1}],
            }
        )
    ).bridge
    assert cfg.devices[0].lfdi == A


def test_public_url_defaults_to_the_listen_address() -> None:
    assert parse_site(site({"tls": TLS})).bridge.base_url == "https://0.0.0.0:8443"
    v6 = parse_site(site({"tls": TLS, "host": "::1", "port": 9443})).bridge
    assert v6.public_url is None and v6.base_url == "https://[::1]:9443"
    cfg = parse_site(site({"tls": TLS, "public_url": "https://gw.example:8443/"})).bridge
    assert cfg.public_url == cfg.base_url == "https://gw.example:8443"  # trailing / dropped
    proxied = parse_site(site({"proxy": {}, "public_url": "http://gw.example"})).bridge
    assert proxied.base_url == "http://gw.example"  # http only behind the trusted proxy


@pytest.mark.parametrize(
    ("bridge", "key", "reason"),
    [
        ({}, "bridge.tls", "plain HTTP is never the default"),
        ({"tls": TLS, "proxy": {}}, "bridge.proxy", "not both"),
        ({"tls": TLS, "port": 70000}, "bridge.port", ""),
        ({"tls": TLS, "timezone": "Mars/Olympus"}, "bridge.timezone", "unknown time zone"),
        ({"tls": TLS, "colour": "red"}, "bridge.colour", "Unknown field"),
        ({"tls": {**TLS, "ciphers": []}}, "bridge.tls.ciphers", ""),
        ({"tls": TLS, "default_control": {"opModFixedFlow": 1}}, "bridge.default_control",
         "opModFixedFlow"),
        ({"tls": TLS, "default_control": {"opModMaxLimW": 20000}}, "bridge.default_control",
         "opModMaxLimW"),
        ({"tls": TLS, "devices": [{"name": "bat", "lfdi": A, "sfdi": 167261211392}]},
         "bridge.devices.0.sfdi", "not the SFDI"),
        ({"tls": TLS, "devices": [{"name": "bat", "lfdi": "xyz", "sfdi": 1}]},
         "bridge.devices.0.lfdi", "40 hexadecimal"),
        ({"tls": TLS, "devices": [{"name": "bridge", "lfdi": A, "sfdi": 167261211391}]},
         "bridge.devices.0.name", "reserved"),
        ({"tls": TLS, "devices": [{"name": "a", "lfdi": A, "sfdi": 167261211391},
                                  {"name": "b", "lfdi": A, "sfdi": 167261211391}]},
         "bridge.devices", "unique"),
        ({"tls": TLS, "poll_rates": {"Nope": 10}}, "bridge.poll_rates.Nope.key", "Must be one of"),
        ({"tls": TLS, "poll_rates": {"DERList": 0}}, "bridge.poll_rates.DERList.value", ""),
        ({"tls": TLS, "post_rates": {"DERList": 10}}, "bridge.post_rates.DERList.key",
         "Must be one of"),
        ({"tls": TLS, "pen": -1}, "bridge.pen", ""),
        ({"tls": TLS, "csipaus_ns": "urn:x"}, "bridge.csipaus_ns", "Must be one of"),
        ({"tls": TLS, "aggregators": [{"name": "a", "lfdi": "12"}]},
         "bridge.aggregators.0.lfdi", "40 hexadecimal"),
        ({"tls": TLS, "default_control": {"setGradW": 70000}}, "bridge.default_control",
         "setGradW"),
        ({"tls": TLS, "public_url": "http://gw.example:8443"}, "bridge.public_url",
         "scheme must be https"),
        ({"proxy": {}, "public_url": "ftp://gw.example"}, "bridge.public_url", "https or http"),
        ({"tls": TLS, "public_url": "gw.example:8443"}, "bridge.public_url", "scheme"),
        ({"tls": TLS, "public_url": "https://gw.example/2030.5"}, "bridge.public_url",
         "no path"),
        ({"tls": TLS, "public_url": "https://gw.example?a=1"}, "bridge.public_url", "no path"),
        ({"tls": TLS, "public_url": "https://:8443"}, "bridge.public_url", "needs a host"),
        ({"tls": TLS, "public_url": "https://gw.example:99999"}, "bridge.public_url",
         "not a URL"),
    ],
)  # fmt: skip
def test_errors_name_the_key(bridge: dict[str, Any], key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_site(site(bridge))
    keys = [k for k, _ in e.value.problems]
    assert key in keys, e.value.problems
    assert any(reason in r for k, r in e.value.problems if k == key), e.value.problems
