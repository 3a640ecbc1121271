"""Bad input on every route: a 4xx with a clear message naming the problem, nothing written.

Each case goes through the gateway and the function; afterwards the ledger table
is byte-for-byte what it was and not a single DynamoDB write request was made.
"""

from __future__ import annotations

import base64
import json

import pytest

from autopilot_cli.metering import RequestCounter

from .api_support import LEDGER_WRITES, Api, make_api, token

BIG = {"community": "sunrise", "padding": "x" * (17 * 1024)}
PERIOD = {"community": "sunrise", "since": "2026-11-01", "until": "2026-11-30"}
CRAFTED_CURSOR = base64.urlsafe_b64encode(json.dumps({"after": "garbage"}).encode()).decode()

# (case id, caller roles, method, path, request kwargs, status, text the message must contain)
CASES = [
    # POST /checkins
    (
        "checkin-malformed",
        (),
        "POST",
        "/checkins",
        {"body": '{"community": '},
        400,
        "not valid JSON",
    ),
    ("checkin-array", (), "POST", "/checkins", {"body": "[1, 2]"}, 400, "JSON object"),
    ("checkin-empty", (), "POST", "/checkins", {"body": ""}, 400, "empty"),
    ("checkin-not-utf8", (), "POST", "/checkins", {"body": b'{"community": "\xff"}'}, 400, ""),
    (
        "checkin-type",
        (),
        "POST",
        "/checkins",
        {"body": {"community": 5}},
        400,
        "community must be a string",
    ),
    (
        "checkin-makeup-type",
        (),
        "POST",
        "/checkins",
        {"body": {"community": "sunrise", "makeup": "yes"}},
        400,
        "makeup must be a boolean",
    ),
    (
        "checkin-member-in-body",
        (),
        "POST",
        "/checkins",
        {"body": {"community": "sunrise", "member": "bob"}},
        400,
        "unknown field 'member'",
    ),
    ("checkin-missing", (), "POST", "/checkins", {"body": {}}, 400, "'community'"),
    ("checkin-oversized", (), "POST", "/checkins", {"body": BIG}, 413, "bytes"),
    (
        "checkin-unknown-community",
        (),
        "POST",
        "/checkins",
        {"body": {"community": "nope"}},
        404,
        "unknown community 'nope'",
    ),
    (
        "checkin-makeup-broke",
        (),
        "POST",
        "/checkins",
        {"body": {"community": "sunrise", "makeup": True}},
        409,
        "balance",
    ),
    # GET /me
    ("me-missing-community", (), "GET", "/me", {}, 400, "'community'"),
    (
        "me-unknown-param",
        (),
        "GET",
        "/me",
        {"query": {"community": "sunrise", "member": "bob"}},
        400,
        "unknown query parameter 'member'",
    ),
    (
        "me-unknown-community",
        (),
        "GET",
        "/me",
        {"query": {"community": "nope"}},
        404,
        "unknown community",
    ),
    # POST /redemptions
    (
        "redeem-unknown-reward",
        (),
        "POST",
        "/redemptions",
        {"body": {"community": "sunrise", "reward": "yacht", "request_id": "r1"}},
        404,
        "unknown reward 'yacht'",
    ),
    (
        "redeem-no-key",
        (),
        "POST",
        "/redemptions",
        {"body": {"community": "sunrise", "reward": "badge"}},
        400,
        "Idempotency-Key",
    ),
    (
        "redeem-keys-differ",
        (),
        "POST",
        "/redemptions",
        {
            "body": {"community": "sunrise", "reward": "badge", "request_id": "a"},
            "headers": {"Idempotency-Key": "b"},
        },
        400,
        "differ",
    ),
    (
        "redeem-bad-key",
        (),
        "POST",
        "/redemptions",
        {"body": {"community": "sunrise", "reward": "badge", "request_id": "a#b"}},
        400,
        "'#'",
    ),
    (
        "redeem-reward-type",
        (),
        "POST",
        "/redemptions",
        {"body": {"community": "sunrise", "reward": 7, "request_id": "r1"}},
        400,
        "reward must be a string",
    ),
    (
        "redeem-broke",
        (),
        "POST",
        "/redemptions",
        {"body": {"community": "sunrise", "reward": "badge", "request_id": "r1"}},
        409,
        "balance",
    ),
    ("redeem-oversized", (), "POST", "/redemptions", {"body": BIG}, 413, "bytes"),
    ("redeem-malformed", (), "POST", "/redemptions", {"body": "{"}, 400, "not valid JSON"),
    # GET /ledger
    (
        "ledger-bad-date",
        ("finance",),
        "GET",
        "/ledger",
        {"query": {**PERIOD, "since": "2026-13-01"}},
        400,
        "since must be a date",
    ),
    (
        "ledger-word-date",
        ("finance",),
        "GET",
        "/ledger",
        {"query": {**PERIOD, "until": "yesterday"}},
        400,
        "until must be a date",
    ),
    (
        "ledger-reversed",
        ("finance",),
        "GET",
        "/ledger",
        {"query": {**PERIOD, "since": "2026-12-01"}},
        400,
        "before",
    ),
    (
        "ledger-too-long",
        ("finance",),
        "GET",
        "/ledger",
        {"query": {**PERIOD, "since": "2020-01-01"}},
        400,
        "366",
    ),
    (
        "ledger-missing-until",
        ("finance",),
        "GET",
        "/ledger",
        {"query": {"community": "sunrise", "since": "2026-11-01"}},
        400,
        "'until'",
    ),
    (
        "ledger-limit-zero",
        ("finance",),
        "GET",
        "/ledger",
        {"query": {**PERIOD, "limit": "0"}},
        400,
        "limit",
    ),
    (
        "ledger-limit-word",
        ("finance",),
        "GET",
        "/ledger",
        {"query": {**PERIOD, "limit": "all"}},
        400,
        "limit",
    ),
    (
        "ledger-limit-huge",
        ("finance",),
        "GET",
        "/ledger",
        {"query": {**PERIOD, "limit": "501"}},
        400,
        "limit",
    ),
    (
        "ledger-reason",
        ("finance",),
        "GET",
        "/ledger",
        {"query": {**PERIOD, "reason": "gift"}},
        400,
        "unknown reason 'gift'",
    ),
    (
        "ledger-cursor",
        ("finance",),
        "GET",
        "/ledger",
        {"query": {**PERIOD, "cursor": "!!!"}},
        400,
        "cursor",
    ),
    (
        "ledger-crafted-cursor",
        ("finance",),
        "GET",
        "/ledger",
        {"query": {**PERIOD, "cursor": CRAFTED_CURSOR}},
        400,
        "cursor",
    ),
    (
        "ledger-member",
        ("finance",),
        "GET",
        "/ledger",
        {"query": {**PERIOD, "member": "a#b"}},
        400,
        "member",
    ),
    (
        "ledger-unknown-param",
        ("finance",),
        "GET",
        "/ledger",
        {"query": {**PERIOD, "from": "x"}},
        400,
        "unknown query parameter 'from'",
    ),
    (
        "ledger-unknown-community",
        ("finance",),
        "GET",
        "/ledger",
        {"query": {**PERIOD, "community": "nope"}},
        404,
        "unknown community",
    ),
    # GET /ledger/summary
    (
        "summary-by",
        ("finance",),
        "GET",
        "/ledger/summary",
        {"query": {**PERIOD, "by": "week"}},
        400,
        "by must be one of day, month",
    ),
    (
        "summary-bad-date",
        ("finance",),
        "GET",
        "/ledger/summary",
        {"query": {**PERIOD, "until": "2026-02-30"}},
        400,
        "until must be a date",
    ),
    (
        "summary-unknown-community",
        ("finance",),
        "GET",
        "/ledger/summary",
        {"query": {**PERIOD, "community": "nope"}},
        404,
        "unknown community",
    ),
    # PUT /members/{member_id}
    (
        "member-unknown-field",
        ("ops",),
        "PUT",
        "/members/bob",
        {"body": {"community": "sunrise", "nickname": "B"}},
        400,
        "unknown field 'nickname'",
    ),
    (
        "member-timezone",
        ("ops",),
        "PUT",
        "/members/bob",
        {"body": {"community": "sunrise", "timezone": "Mars/Base"}},
        400,
        "timezone",
    ),
    (
        "member-name-type",
        ("ops",),
        "PUT",
        "/members/bob",
        {"body": {"community": "sunrise", "display_name": 5}},
        400,
        "display_name must be a str",
    ),
    (
        "member-opt-out-type",
        ("ops",),
        "PUT",
        "/members/bob",
        {"body": {"community": "sunrise", "reminders_opt_out": "yes"}},
        400,
        "reminders_opt_out",
    ),
    (
        "member-id",
        ("ops",),
        "PUT",
        "/members/a%23b",
        {"body": {"community": "sunrise"}},
        400,
        "member_id",
    ),
    ("member-oversized", ("ops",), "PUT", "/members/bob", {"body": BIG}, 413, "bytes"),
    ("member-malformed", ("ops",), "PUT", "/members/bob", {"body": "{,}"}, 400, "not valid JSON"),
    (
        "member-no-community",
        ("ops",),
        "PUT",
        "/members/bob",
        {"body": {"display_name": "B"}},
        400,
        "'community'",
    ),
    (
        "member-unknown-community",
        ("ops",),
        "PUT",
        "/members/bob",
        {"body": {"community": "nope"}},
        404,
        "unknown community",
    ),
    # DELETE /members/{member_id}
    (
        "leave-unknown-member",
        ("ops",),
        "DELETE",
        "/members/nobody",
        {"query": {"community": "sunrise"}},
        404,
        "nobody",
    ),
    ("leave-no-community", ("ops",), "DELETE", "/members/bob", {}, 400, "'community'"),
    # POST /ledger/adjustments
    (
        "adjust-amount-string",
        ("ops",),
        "POST",
        "/ledger/adjustments",
        {
            "body": {
                "community": "sunrise",
                "member": "mia",
                "amount": "5",
                "reason": "r",
                "ref": "x",
            }
        },
        400,
        "amount must be an integer",
    ),
    (
        "adjust-amount-bool",
        ("ops",),
        "POST",
        "/ledger/adjustments",
        {
            "body": {
                "community": "sunrise",
                "member": "mia",
                "amount": True,
                "reason": "r",
                "ref": "x",
            }
        },
        400,
        "amount must be an integer",
    ),
    (
        "adjust-amount-float",
        ("ops",),
        "POST",
        "/ledger/adjustments",
        {
            "body": {
                "community": "sunrise",
                "member": "mia",
                "amount": 1.5,
                "reason": "r",
                "ref": "x",
            }
        },
        400,
        "amount must be an integer",
    ),
    (
        "adjust-amount-zero",
        ("ops",),
        "POST",
        "/ledger/adjustments",
        {"body": {"community": "sunrise", "member": "mia", "amount": 0, "reason": "r", "ref": "x"}},
        400,
        "non-zero",
    ),
    (
        "adjust-no-reason",
        ("ops",),
        "POST",
        "/ledger/adjustments",
        {"body": {"community": "sunrise", "member": "mia", "amount": 5, "ref": "x"}},
        400,
        "'reason'",
    ),
    (
        "adjust-bad-ref",
        ("ops",),
        "POST",
        "/ledger/adjustments",
        {
            "body": {
                "community": "sunrise",
                "member": "mia",
                "amount": 5,
                "reason": "r",
                "ref": "a#b",
            }
        },
        400,
        "'#'",
    ),
    (
        "adjust-unknown-member",
        ("ops",),
        "POST",
        "/ledger/adjustments",
        {
            "body": {
                "community": "sunrise",
                "member": "ghost",
                "amount": 5,
                "reason": "r",
                "ref": "x",
            }
        },
        404,
        "ghost",
    ),
    (
        "adjust-overdraw",
        ("ops",),
        "POST",
        "/ledger/adjustments",
        {
            "body": {
                "community": "sunrise",
                "member": "mia",
                "amount": -500,
                "reason": "r",
                "ref": "x",
            }
        },
        409,
        "balance",
    ),
    (
        "adjust-extra-field",
        ("ops",),
        "POST",
        "/ledger/adjustments",
        {
            "body": {
                "community": "sunrise",
                "member": "mia",
                "amount": 5,
                "reason": "r",
                "ref": "x",
                "actor": "someone-else",
            }
        },
        400,
        "unknown field 'actor'",
    ),
]


@pytest.fixture(scope="module")
def case_ids() -> list[str]:
    return [c[0] for c in CASES]


def test_case_ids_are_unique(case_ids):
    assert len(case_ids) == len(set(case_ids))


def test_every_route_has_bad_input_cases():
    routes = {(c[2], c[3].split("/")[1]) for c in CASES}
    assert {
        ("POST", "checkins"),
        ("GET", "me"),
        ("POST", "redemptions"),
        ("GET", "ledger"),
        ("PUT", "members"),
        ("DELETE", "members"),
    } <= routes
    assert any(c[3] == "/ledger/summary" for c in CASES)
    assert any(c[3] == "/ledger/adjustments" for c in CASES)


def test_bad_input_gets_a_clear_4xx_and_writes_nothing(stack):
    api: Api = make_api(stack)
    # mia exists with a zero balance (so "broke" cases reach the ledger's own checks).
    assert (
        api.call(
            "PUT", "/members/mia", auth=token("olga", "ops"), body={"community": "sunrise"}
        ).status
        == 200
    )
    before = api.ledger_items()
    failures = []
    with RequestCounter() as counter:
        for case_id, roles, method, path, kwargs, status, text in CASES:
            answer = api.call(method, path, auth=token("mia", *roles), **kwargs)
            try:
                document = answer.json()
            except ValueError:
                document = {}
            message = document.get("message", "")
            if answer.status != status or text not in message or not document.get("error"):
                failures.append(f"{case_id}: {answer.status} {answer.body[:200]!r}")
    assert not failures, "\n".join(failures)
    writes = sum(counter.count("dynamodb", op) for op in LEDGER_WRITES)
    assert writes == 0, counter.summary()
    assert api.ledger_items() == before
