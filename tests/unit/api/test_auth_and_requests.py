"""Claims to principals, roles, community pins and strict request parsing (no AWS)."""

from __future__ import annotations

import base64
import json

import pytest
from autopilot.api import requests as req
from autopilot.api.auth import (
    Forbidden,
    Unauthorized,
    claim_values,
    principal_from_claims,
    principal_from_event,
)
from autopilot.errors import BadRequest


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, []),
        (["ops", "finance"], ["ops", "finance"]),
        ("[ops finance]", ["ops", "finance"]),  # how API Gateway passes array claims
        ("ops finance", ["ops", "finance"]),
        ("ops,finance", ["ops", "finance"]),
        ('["ops", "finance"]', ["ops", "finance"]),
        ("", []),
        ("[]", []),
    ],
)
def test_claim_values(value, expected):
    assert claim_values(value) == expected


def test_principal_defaults_to_member_and_reads_roles_scopes_community():
    p = principal_from_claims({"sub": "alice"})
    assert (p.member, p.roles, p.community) == ("alice", {"member"}, None)
    p = principal_from_claims(
        {"sub": "bob", "roles": "[ops]", "community": "sunrise", "scope": "autopilot/ops"},
        ["autopilot/member"],
    )
    assert p.roles == {"ops"} and p.scopes == {"autopilot/ops", "autopilot/member"}
    p.require("member")  # every authenticated caller acts for their own sub
    p.require("ops")
    with pytest.raises(Forbidden):
        p.require("finance")
    p.check_community("sunrise")
    with pytest.raises(Forbidden, match="sunrise"):
        p.check_community("other")


@pytest.mark.parametrize(
    ("claims", "error"),
    [
        ({}, Unauthorized),
        ({"sub": "  "}, Unauthorized),
        ({"sub": "a#b"}, Forbidden),
        ({"sub": "x" * 129}, Forbidden),
        ({"sub": "alice", "roles": ["member", "root"]}, Forbidden),
    ],
)
def test_principal_refusals(claims, error):
    with pytest.raises(error):
        principal_from_claims(claims)
    assert error.status in (401, 403)


def test_principal_from_event_without_authorizer_is_unauthorized():
    with pytest.raises(Unauthorized):
        principal_from_event({"requestContext": {}})


def event(body: str | bytes | None, *, b64: bool = False) -> dict:
    if isinstance(body, bytes) or b64:
        raw = body if isinstance(body, bytes) else (body or "").encode()
        return {"body": base64.b64encode(raw).decode(), "isBase64Encoded": True}
    return {"body": body}


def test_json_object_parsing():
    assert req.json_object(event('{"a": 1}')) == {"a": 1}
    assert req.json_object(event(b'{"a": 1}')) == {"a": 1}
    for bad, text in [
        (None, "empty"),
        ("  ", "empty"),
        ("{", "not valid JSON"),
        ("[]", "JSON object"),
        ("1", "JSON object"),
    ]:
        with pytest.raises(BadRequest, match=text):
            req.json_object(event(bad))
    with pytest.raises(BadRequest, match="base64"):
        req.json_object({"body": "***", "isBase64Encoded": True})


def test_body_size_limit_counts_bytes_not_characters():
    at_limit = json.dumps({"a": "x" * (req.MAX_BODY_BYTES - 9)})
    assert len(at_limit.encode()) == req.MAX_BODY_BYTES
    req.raw_body(event(at_limit))
    over = json.dumps({"a": "字" * 6000}, ensure_ascii=False)  # 18,000 bytes in UTF-8
    with pytest.raises(req.PayloadTooLarge) as raised:
        req.raw_body(event(over))
    assert raised.value.status == 413


def test_fields_are_strict():
    spec = {
        "community": req.Field(str, required=True),
        "makeup": req.Field(bool),
        "amount": req.Field(int),
    }
    assert req.fields({"community": "c"}, spec) == {"community": "c"}
    assert req.fields({"community": "c", "makeup": None}, spec) == {"community": "c"}
    cases = [
        ({}, "missing required field 'community'"),
        ({"community": 1}, "community must be a string"),
        ({"community": ""}, "community must be 1-200"),
        ({"community": "c", "makeup": 1}, "makeup must be a boolean"),
        ({"community": "c", "amount": True}, "amount must be an integer"),
        ({"community": "c", "amount": 2.0}, "amount must be an integer"),
        ({"community": "c", "extra": 1}, "unknown field 'extra'"),
    ]
    for document, text in cases:
        with pytest.raises(BadRequest, match=text):
            req.fields(document, spec)
    assert req.fields({"community": "c", "x": 1}, spec, allow_extra=True) == {
        "community": "c",
        "x": 1,
    }


def test_query_dates_integers_choices_member_ids():
    e = {"queryStringParameters": {"community": "c", "since": "2026-01-01"}}
    assert req.query(e, {"community", "since"}, {"community"}) == e["queryStringParameters"]
    with pytest.raises(BadRequest, match="unknown query parameter 'since'"):
        req.query(e, {"community"})
    with pytest.raises(BadRequest, match="missing query parameter 'until'"):
        req.query(e, {"community", "since", "until"}, {"until"})
    assert str(req.day("since", "2026-02-28")) == "2026-02-28"
    for bad in ("2026-02-30", "20260101", "2026-1-01", "today", "2026-01-01T00:00"):
        with pytest.raises(BadRequest, match="since must be a date"):
            req.day("since", bad)
    assert req.integer("limit", "5", 1, 10) == 5
    for bad in ("0", "11", "-1", "1.5", "x", "", "٣"):
        with pytest.raises(BadRequest, match="limit"):
            req.integer("limit", bad, 1, 10)
    assert req.choice("by", "day", ("day", "month")) == "day"
    with pytest.raises(BadRequest):
        req.choice("by", "week", ("day", "month"))
    assert req.member_id("m", "telegram:123") == "telegram:123"
    for bad in ("", "a#b", "a b", "a\nb", "x" * 129):
        with pytest.raises(BadRequest):
            req.member_id("m", bad)
