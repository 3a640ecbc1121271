"""Parsing of the lottery routes' input: ids, draw ids, external values, keys (no AWS)."""

from __future__ import annotations

import pytest
from autopilot.api import requests as req
from autopilot.api.requests import Field
from autopilot.api.responses import error_document
from autopilot.errors import BadRequest, NotEligible, UnknownLottery


@pytest.mark.parametrize("text", ["weekly", "w", "a-b_c", "0" * 48])
def test_config_ids_accepted(text):
    assert req.config_id("the lottery id", text) == text


@pytest.mark.parametrize(
    "text",
    ["", "Weekly", "week ly", "week\x01ly", "weekly\n", "-weekly", "w" * 49, "周五", "a#b", "a/b"],
)
def test_config_ids_refused_with_the_name(text):
    with pytest.raises(BadRequest, match="the lottery id must be 1-48 characters"):
        req.config_id("the lottery id", text)


def test_draw_ids():
    assert req.draw_id("draw", "weekly-20261130T0000") == "weekly-20261130T0000"
    for bad in ("", "a#b", "a b", "a\x00b", "a\u0085b", "x" * 97):
        with pytest.raises(BadRequest, match="draw must be 1-96 characters"):
            req.draw_id("draw", bad)


def test_external_values():
    assert req.external_value("value", "drand round 4215300: 6f1c") == "drand round 4215300: 6f1c"
    assert req.external_value("value", "轮" * 341) == "轮" * 341  # 1023 bytes
    for bad, message in [
        ("轮" * 342, "1-1024 bytes"),  # 1026 bytes: the draw's limit is in bytes
        (" x", "surrounding spaces"),
        ("x\t", "surrounding spaces"),
        ("a\nb", "control"),
        ("a\u200bb", "control"),
        ("a\u2028b", "control"),
    ]:
        with pytest.raises(BadRequest, match=message):
            req.external_value("value", bad)


def test_string_fields_can_be_longer_than_the_default_when_declared():
    spec = {"value": Field(str, max_chars=1024)}
    assert req.fields({"value": "x" * 1024}, spec) == {"value": "x" * 1024}
    with pytest.raises(BadRequest, match="value must be 1-1024 characters"):
        req.fields({"value": "x" * 1025}, spec)
    with pytest.raises(BadRequest, match="name must be 1-200 characters"):
        req.fields({"name": "x" * 201}, {"name": Field(str)})


def test_idempotency_key_from_header_or_body():
    event = {"headers": {"idempotency-key": "k-1"}}
    assert req.idempotency_key(event, None) == "k-1"
    assert req.idempotency_key({}, "k-2") == "k-2"
    assert req.idempotency_key(event, "k-1") == "k-1"
    with pytest.raises(BadRequest, match="differ"):
        req.idempotency_key(event, "k-2")
    with pytest.raises(BadRequest, match="send a request_id"):
        req.idempotency_key({}, None)
    with pytest.raises(BadRequest, match="Idempotency-Key header must be"):
        req.idempotency_key({"headers": {"idempotency-key": ""}}, None)


def test_error_documents_carry_reasons_when_the_error_has_them():
    refused = NotEligible("may not enter: joined late; left", reasons=["joined late", "left"])
    assert error_document(refused) == {
        "error": "NotEligible",
        "message": "may not enter: joined late; left",
        "reasons": ["joined late", "left"],
    }
    assert error_document(UnknownLottery("no lottery 'x'")) == {
        "error": "UnknownLottery",
        "message": "no lottery 'x'",
    }
