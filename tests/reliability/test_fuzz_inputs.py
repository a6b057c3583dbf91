"""Fuzzed bad input: site files and request envelopes. Zero crashes; every refusal is a
ConfigError / RpcError naming a key. Case counts are printed (run with -s to see them);
test_fuzz_*.py next to this file cover the rest of issue 6's bad input."""

from __future__ import annotations

import string
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.config import ConfigError, parse_site
from edge.mqtt.client import Message
from edge.mqtt.rpc import parse_request
from tests.reliability.fuzz_cases import count, report, scaled

SECTIONS = ["site", "broker", "simulator", "devices", "controller", "bridge"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(string.ascii_lowercase + "_", max_size=12), inner, max_size=4),
    ),
    max_leaves=12,
)
documents = st.dictionaries(
    st.one_of(st.sampled_from(SECTIONS), st.text(max_size=8)), values, max_size=6
)


@settings(max_examples=scaled(200), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_random_site_documents_never_crash(doc: dict[str, Any]) -> None:
    count("site_document")
    try:
        parse_site(doc, "fuzz.toml")
    except ConfigError as exc:
        assert exc.problems, "a refusal must list at least one problem"
        for key, reason in exc.problems:
            assert reason, f"empty reason for {key!r}"
            assert str(exc).startswith("fuzz.toml: ")


@settings(max_examples=scaled(200), deadline=None)
@given(
    payload=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)),
    response_topic=st.one_of(st.none(), st.text(min_size=1, max_size=20)),
)
def test_random_request_envelopes_never_crash(payload: bytes, response_topic: str | None) -> None:
    count("request_envelope")
    req, err = parse_request(
        Message("bess/s/controller/cmd/charge", payload, response_topic=response_topic)
    )
    assert isinstance(req.body, dict)
    if response_topic:
        assert req.reply_to is not None and req.reply_to.topic == response_topic
    if err is not None:
        assert err.code == "invalid_payload" and err.message.startswith("body:")


def test_report_case_counts() -> None:
    report(__name__)
