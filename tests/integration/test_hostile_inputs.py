"""The hostile-input corpus: every API route and every chat webhook platform, through the
real handlers on moto (``LocalHttpApi`` in front of the template's functions).

Each input is something a careless or hostile client sends: JSON nested 5,000 levels,
``NaN``/``1e309``/``10**60``, lone surrogates, control characters in ids and keys, a
byte order mark, bytes that are not UTF-8, time zones that name a folder of the zone
database, dates at the ends of the calendar, percent-escapes that decode to nothing
valid, chat user ids that would collide once truncated... Webhook requests carry
valid signatures, so their bodies are really parsed.

Asserted for every case: no 500 (each answer is the expected 4xx, or a 2xx that is
correct and writes nothing), a JSON error body saying what is wrong, and not a single
DynamoDB write: every table of the stack is identical before and after.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any
from urllib.parse import urlencode

import pytest
from autopilot.aws import client
from autopilot.webhooks.signatures import sign_generic, slack_signature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autopilot_cli.metering import RequestCounter

from .api_support import LEDGER_WRITES, Api, make_api, token
from .test_chat_webhook import BRIDGE_SECRET, SLACK_SECRET, TELEGRAM_TOKEN, put_secret

NESTED_ARRAYS = "[" * 5000 + "]" * 5000  # 10 KB: RecursionError in json.loads
NESTED_OBJECTS = '{"a":' * 2500 + "1" + "}" * 2500
NESTED_IN_FIELD = '{"community": "sunrise", "makeup": ' + NESTED_ARRAYS + "}"
HUGE_INT = "1" + "0" * 5000  # more digits than int() converts
LONG_ID = "u" * 127  # with a platform prefix: over 128 characters
CHECKIN = {"community": "sunrise"}
ADJUST = {"community": "sunrise", "member": "mia", "amount": 5, "reason": "r", "ref": "x"}
REDEEM = {"community": "sunrise", "reward": "badge", "request_id": "r-1"}
PERIOD = {"community": "sunrise", "since": "2026-11-01", "until": "2026-11-30"}

# Bodies no route may accept; each is sent to every route that takes a body.
BAD_BODIES: list[tuple[str, bytes, str]] = [
    ("nested-arrays", NESTED_ARRAYS.encode(), "deeper than"),
    ("nested-objects", NESTED_OBJECTS.encode(), "deeper than"),
    ("nested-in-field", NESTED_IN_FIELD.encode(), "deeper than"),
    ("nan", b'{"community": NaN}', "NaN"),
    ("infinity", b'{"community": "sunrise", "x": -Infinity}', "Infinity"),
    ("float-overflow", b'{"community": "sunrise", "x": 1e309}', "out of range"),
    ("huge-int", ('{"community": "sunrise", "x": ' + HUGE_INT + "}").encode(), "not valid JSON"),
    ("lone-surrogate", b'{"community": "\\ud800"}', "surrogate"),
    ("surrogate-key", b'{"\\udfff": 1}', "surrogate"),
    ("nul-value", b'{"community": "sun\\u0000rise"}', "control character"),
    ("c1-value", b'{"community": "sun\\u0085rise"}', "control character"),
    ("bom", b'\xef\xbb\xbf{"community": "sunrise"}', "byte order mark"),
    ("utf16", '{"community": "sunrise"}'.encode("utf-16"), "UTF-8"),
    ("latin1", b'{"community": "caf\xe9"}', "UTF-8"),
    ("empty", b"", "empty"),
    ("blank", b" \n\t ", "empty"),
    ("null", b"null", "JSON object"),
    ("true", b"true", "JSON object"),
    ("number", b"0", "JSON object"),
    ("string", b'"sunrise"', "JSON object"),
    ("array", b'[{"community": "sunrise"}]', "JSON object"),
    ("truncated", b'{"community": "sunr', "not valid JSON"),
    ("trailing", b'{"community": "sunrise"} {}', "not valid JSON"),
    ("oversized", json.dumps({"community": "sunrise", "x": "y" * 17000}).encode(), "bytes"),
]
BODY_ROUTES = [
    ("PUT", "/me/preferences", ()),
    ("POST", "/checkins", ()),
    ("POST", "/redemptions", ()),
    ("PUT", "/members/mia", ("ops",)),
    ("POST", "/ledger/adjustments", ("ops",)),
    ("POST", "/lotteries/weekly/entries", ()),
    ("POST", "/lotteries/weekly/claim", ()),
    ("POST", "/lotteries/weekly/disqualify", ("ops",)),
    ("PUT", "/lotteries/weekly/external-value", ("ops",)),
    ("POST", "/lotteries/weekly/cancel", ("ops",)),
]


def _cursor(position: Any) -> str:
    data = position if isinstance(position, bytes) else json.dumps(position).encode()
    return base64.urlsafe_b64encode(data).decode()


def adjust(**changes: Any) -> dict[str, Any]:
    return {**ADJUST, **changes}


# (case id, roles, method, path, request kwargs, expected status, text in the message)
CASES: list[tuple[str, tuple[str, ...], str, str, dict[str, Any], int, str]] = [
    (
        f"{route}-{name}",
        roles,
        method,
        route,
        {"body": body},
        413 if name == "oversized" else 400,
        text,
    )
    for method, route, roles in BODY_ROUTES
    for name, body, text in BAD_BODIES
]
CASES += [
    # Wrong content types change nothing: the body must still be a JSON object.
    (
        "checkin-form-content-type",
        (),
        "POST",
        "/checkins",
        {
            "body": b"community=sunrise",
            "headers": {"Content-Type": "application/x-www-form-urlencoded"},
        },
        400,
        "not valid JSON",
    ),
    (
        "checkin-json-as-text-plain",
        (),
        "POST",
        "/checkins",
        {"body": NESTED_ARRAYS, "headers": {"Content-Type": "text/plain"}},
        400,
        "deeper than",
    ),
    # Integers: beyond any sane bound (DynamoDB refuses more than 38 digits), or not ints.
    *(
        (
            f"adjust-amount-{label}",
            ("ops",),
            "POST",
            "/ledger/adjustments",
            {"body": adjust(amount=value)},
            400,
            "amount",
        )
        for label, value in [
            ("2**64", 2**64),
            ("10**60", 10**60),
            ("-2**64", -(2**64)),
            ("1e9+1", 1_000_000_001),
            ("true", True),
            ("false", False),
            ("float", 1e3),
            ("list", [5]),
            ("object", {"value": 5}),
            ("string", "5"),
        ]
    ),
    # Idempotency keys and refs: the error says control characters are refused, so they are.
    *(
        (
            f"redeem-request-id-{label}",
            (),
            "POST",
            "/redemptions",
            {"body": {**REDEEM, "request_id": value}},
            400,
            "request_id",
        )
        for label, value in [
            ("nul", "r\x001"),
            ("tab", "r\t1"),
            ("newline", "r\n1"),
            ("c1", "r\x851"),
            ("zero-width", "r\u200b1"),
            ("bidi", "r\u202e1"),
            ("hash", "r#1"),
            ("padded", " r1 "),
            ("long", "r" * 129),
            ("noncharacter", "r\ufdd0"),
        ]
    ),
    (
        "redeem-idempotency-header-nul",
        (),
        "POST",
        "/redemptions",
        {
            "body": {"community": "sunrise", "reward": "badge"},
            "headers": {"Idempotency-Key": "k\x00"},
        },
        400,
        "Idempotency-Key",
    ),
    (
        "redeem-idempotency-header-c1",
        (),
        "POST",
        "/redemptions",
        {
            "body": {"community": "sunrise", "reward": "badge"},
            "headers": {"Idempotency-Key": "k\x9f"},
        },
        400,
        "Idempotency-Key",
    ),
    *(
        (
            f"adjust-ref-{label}",
            ("ops",),
            "POST",
            "/ledger/adjustments",
            {"body": adjust(ref=value)},
            400,
            "ref",
        )
        for label, value in [
            ("nul", "x\x00"),
            ("c1", "x\x80"),
            ("cr", "x\ry"),
            ("format", "x\ufeff"),
        ]
    ),
    # Member ids: one rule wherever they enter (path, query, body).
    *(
        (
            f"put-member-path-{label}",
            ("ops",),
            "PUT",
            f"/members/{raw}",
            {"body": CHECKIN},
            400,
            "member_id",
        )
        for label, raw in [
            ("nul", "a%00b"),
            ("c1", "a%C2%80b"),
            ("c1-nel", "a%C2%85b"),
            ("ff", "a%FFb"),
            ("truncated-utf8", "a%E2%80"),
            ("encoded-surrogate", "a%ED%A0%80"),
            ("overlong-utf8", "a%C0%AFb"),
            ("zero-width-space", "a%E2%80%8Bb"),
            ("bom", "%EF%BB%BFa"),
            ("noncharacter", "a%EF%B7%90"),
            ("nbsp", "a%C2%A0b"),
            ("line-separator", "a%E2%80%A8b"),
            ("space", "a%20b"),
            ("hash", "a%23b"),
            ("long", "m" * 129),
        ]
    ),
    (
        "delete-member-path-ff",
        ("ops",),
        "DELETE",
        "/members/a%FF",
        {"query": {"community": "sunrise"}},
        400,
        "member_id",
    ),
    (
        "delete-member-path-c1",
        ("ops",),
        "DELETE",
        "/members/a%C2%9F",
        {"query": {"community": "sunrise"}},
        400,
        "member_id",
    ),
    (
        "delete-unknown-member",
        ("ops",),
        "DELETE",
        "/members/ghost",
        {"query": {"community": "sunrise"}},
        404,
        "ghost",
    ),
    *(
        (
            f"adjust-member-{label}",
            ("ops",),
            "POST",
            "/ledger/adjustments",
            {"body": adjust(member=value)},
            400,
            "member",
        )
        for label, value in [
            ("c1", "m\x85"),
            ("format", "m\u2066"),
            ("space", "m ia"),
            ("long", "m" * 129),
        ]
    ),
    (
        "ledger-member-c1",
        ("finance",),
        "GET",
        "/ledger",
        {"query": {**PERIOD, "member": "m\u0080"}},
        400,
        "member",
    ),
    # Time zones that name a folder of the zone database, paths and junk.
    *(
        (
            f"member-timezone-{label}",
            ("ops",),
            "PUT",
            "/members/mia",
            {"body": {**CHECKIN, "timezone": value}},
            400,
            "unknown time zone",
        )
        for label, value in [
            ("america", "America"),
            ("etc", "Etc"),
            ("argentina", "America/Argentina"),
            ("trailing-slash", "Asia/"),
            ("dotdot", ".."),
            ("dot-path", "America/../Asia/Tokyo"),
            ("not-a-zone-file", "zone1970.tab"),
            ("long", "Asia/" + "x" * 150),
        ]
    ),
    (
        "member-timezone-nul",
        ("ops",),
        "PUT",
        "/members/mia",
        {"body": {**CHECKIN, "timezone": "Asia/Shang\u0000hai"}},
        400,
        "control character",
    ),
    # Dates at the ends of the calendar.
    *(
        (
            f"{route.strip('/').replace('/', '-')}-{label}",
            ("finance",),
            "GET",
            route,
            {"query": {**PERIOD, **dates}},
            400,
            text,
        )
        for route in ("/ledger", "/ledger/summary")
        for label, dates, text in [
            ("year-9999", {"since": "9999-12-30", "until": "9999-12-31"}, "2999-12-31"),
            ("until-9999", {"since": "9999-01-01", "until": "9999-12-31"}, "2999-12-31"),
            ("year-1", {"since": "0001-01-01", "until": "0001-01-02"}, "1970-01-01"),
            ("year-0", {"since": "0000-01-01", "until": "0000-01-02"}, "since must be a date"),
            ("five-digit-year", {"since": "+10000-01-01"}, "since must be a date"),
            ("unicode-digits", {"since": "２０２６-11-01"}, "since must be a date"),
            ("repeated-key", {"since": ["2026-11-01", "2026-11-02"]}, "since must be a date"),
            ("nul", {"until": "2026-11-30\x00"}, "control character"),
        ]
    ),
    (
        "metrics-year-9999",
        ("finance",),
        "GET",
        "/metrics",
        {"query": {"community": "sunrise", "from": "9999-12-30", "to": "9999-12-31"}},
        400,
        "2999-12-31",
    ),
    (
        "ledger-limit-digits",
        ("finance",),
        "GET",
        "/ledger",
        {"query": {**PERIOD, "limit": "0" * 5000 + "1"}},
        400,
        "limit",
    ),
    (
        "ledger-limit-arabic-digits",
        ("finance",),
        "GET",
        "/ledger",
        {"query": {**PERIOD, "limit": "١٠"}},
        400,
        "limit",
    ),
    (
        "ledger-long-query-value",
        ("finance",),
        "GET",
        "/ledger",
        {"query": {**PERIOD, "reason": "r" * 5000}},
        400,
        "reason",
    ),
    # Cursors that decode to nesting or to instants at the ends of the calendar.
    *(
        (
            f"ledger-cursor-{label}{suffix}",
            ("finance",),
            "GET",
            "/ledger",
            {"query": {**PERIOD, "cursor": cursor, **extra}},
            400,
            "cursor",
        )
        for label, cursor in [
            ("nested", _cursor(b"[" * 760)),
            ("year-1-east", _cursor({"after": "0001-01-01T00:00:00+14:00#x"})),
            ("year-9999-west", _cursor({"after": "9999-12-31T23:59:59-12:00#x"})),
            ("year-9999", _cursor({"after": "9999-12-31T23:59:59Z#x"})),
        ]
        for suffix, extra in [("", {}), ("-member", {"member": "mia"})]
    ),
    # Unknown communities, odd query strings.
    (
        "me-repeated-community",
        (),
        "GET",
        "/me",
        {"query": {"community": ["sunrise", "other"]}},
        404,
        "unknown community",
    ),
    (
        "me-community-nul",
        (),
        "GET",
        "/me",
        {"query": {"community": "sunrise\x00"}},
        400,
        "control character",
    ),
    (
        "me-community-c1",
        (),
        "GET",
        "/me",
        {"query": {"community": "sunrise\x85"}},
        400,
        "control character",
    ),
    (
        "me-unknown-community",
        (),
        "GET",
        "/me",
        {"query": {"community": "n" * 1000}},
        404,
        "unknown community",
    ),
    (
        "checkin-unknown-community",
        (),
        "POST",
        "/checkins",
        {"body": {"community": "nope"}},
        404,
        "unknown community",
    ),
    (
        "checkin-makeup-object",
        (),
        "POST",
        "/checkins",
        {"body": {**CHECKIN, "makeup": {}}},
        400,
        "makeup",
    ),
    (
        "checkin-makeup-int",
        (),
        "POST",
        "/checkins",
        {"body": {**CHECKIN, "makeup": 1}},
        400,
        "makeup",
    ),
]

# Lottery routes: ids in the path and the query, integers, the external value.
CASES += [
    (
        f"lottery-{label}",
        (),
        "GET",
        f"/lotteries/{raw_id}",
        {"query": CHECKIN},
        400,
        text,
    )
    for label, raw_id, text in [
        ("id-nul", "week%00ly", "lottery id"),
        ("id-c1", "week%C2%85ly", "lottery id"),
        ("id-bidi", "week%E2%80%AEly", "lottery id"),
        ("id-not-utf8", "week%FFly", "percent-encoded UTF-8"),
        ("id-surrogate", "week%ED%A0%80ly", "percent-encoded UTF-8"),
        ("id-huge", "w" * 5000, "lottery id"),
        ("id-hash", "week%23ly", "lottery id"),
    ]
]
CASES += [
    (
        "lottery-unknown",
        (),
        "GET",
        "/lotteries/weekly",
        {"query": CHECKIN},
        404,
        "no lottery",
    ),
    (
        "lottery-record-draw-nul",
        (),
        "GET",
        "/lotteries/weekly/record",
        {"query": {**CHECKIN, "draw": "weekly-\x00"}},
        400,
        "control character",
    ),
    (
        "lottery-record-draw-huge",
        (),
        "GET",
        "/lotteries/weekly/record",
        {"query": {**CHECKIN, "draw": "d" * 1000}},
        400,
        "draw must be",
    ),
    *(
        (
            f"lottery-tickets-{label}",
            (),
            "POST",
            "/lotteries/weekly/entries",
            {"body": {**CHECKIN, "tickets": value}, "headers": {"Idempotency-Key": "k"}},
            400,
            "tickets",
        )
        for label, value in [("10**60", 10**60), ("-1", -1), ("true", True), ("float", 1.5)]
    ),
    (
        "lottery-external-value-huge",
        ("ops",),
        "PUT",
        "/lotteries/weekly/external-value",
        {"body": {**CHECKIN, "value": "v" * 2000}},
        400,
        "value must be",
    ),
]

# Valid requests at the edges: a correct 2xx (they read, never write).
OK_CASES = [
    (
        "ledger-far-future",
        ("finance",),
        "GET",
        "/ledger",
        {"query": {**PERIOD, "since": "2999-01-01", "until": "2999-12-31"}},
    ),
    (
        "ledger-epoch",
        ("finance",),
        "GET",
        "/ledger",
        {"query": {**PERIOD, "since": "1970-01-01", "until": "1970-12-31"}},
    ),
    (
        "summary-far-future",
        ("finance",),
        "GET",
        "/ledger/summary",
        {"query": {**PERIOD, "since": "2999-12-01", "until": "2999-12-31", "by": "month"}},
    ),
    (
        "summary-epoch",
        ("finance",),
        "GET",
        "/ledger/summary",
        {"query": {**PERIOD, "since": "1970-01-01", "until": "1970-01-31"}},
    ),
]


def _slack(api: Api, fields: dict[str, str] | bytes) -> tuple[bytes, dict[str, str]]:
    body = (
        fields
        if isinstance(fields, bytes)
        else urlencode({"command": "/checkin", "text": "", **fields}).encode()
    )
    ts = str(int(api.stack.clock.now().timestamp()))
    return body, {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": slack_signature(SLACK_SECRET, ts, body),
    }


def _telegram(api: Api, update: dict[str, Any] | bytes) -> tuple[bytes, dict[str, str]]:
    body = update if isinstance(update, bytes) else json.dumps(update).encode()
    return body, {
        "Content-Type": "application/json",
        "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_TOKEN,
    }


def _bridge(api: Api, document: dict[str, Any] | bytes) -> tuple[bytes, dict[str, str]]:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    ts = str(int(api.stack.clock.now().timestamp()))
    return body, {"Content-Type": "application/json", **sign_generic(BRIDGE_SECRET, ts, body)}


def _update(sender: Any, text: Any = "打卡", **message: Any) -> dict[str, Any]:
    return {
        "update_id": 1,
        "message": {"message_id": 1, "from": sender, "chat": {"id": -1}, "text": text, **message},
    }


SIGNERS = {"slack": _slack, "telegram": _telegram, "bridge": _bridge}
# (case id, platform, payload, expected status, text in the message)
WEBHOOK_CASES: list[tuple[str, str, Any, int, str]] = [
    *(
        (f"{platform}-{name}", platform, body, 413 if name == "oversized" else 400, text)
        for platform in ("telegram", "bridge")
        for name, body, text in BAD_BODIES
        if name not in ("empty", "blank", "null", "true", "number", "string", "array")
    ),
    ("slack-nested", "slack", NESTED_ARRAYS.encode(), 400, "user_id"),
    ("slack-not-utf8", "slack", b"user_id=U1&text=\xff", 400, "UTF-8"),
    ("slack-percent-ff", "slack", b"command=%2Fcheckin&user_id=U%FF", 400, "UTF-8"),
    ("slack-user-nul", "slack", {"user_id": "U\x001"}, 400, "control character"),
    ("slack-user-c1", "slack", {"user_id": "U\u00851"}, 400, "control character"),
    ("slack-user-space", "slack", {"user_id": "U 1"}, 400, "slack user id"),
    ("slack-user-hash", "slack", {"user_id": "U#1"}, 400, "slack user id"),
    ("slack-user-zero-width", "slack", {"user_id": "U\u200b1"}, 400, "slack user id"),
    ("slack-user-long", "slack", {"user_id": LONG_ID + "A"}, 400, "slack user id"),
    ("slack-user-long-twin", "slack", {"user_id": LONG_ID + "B"}, 400, "slack user id"),
    ("slack-user-missing", "slack", {"user_name": "x"}, 400, "user_id"),
    ("slack-name-nul", "slack", {"user_id": "U1", "user_name": "a\x00"}, 400, "control character"),
    ("telegram-from-object", "telegram", _update({"id": {"id": 5}}), 400, "from.id"),
    ("telegram-from-float", "telegram", _update({"id": 5.0}), 400, "from.id"),
    ("telegram-from-bool", "telegram", _update({"id": True}), 400, "from.id"),
    ("telegram-from-string", "telegram", _update({"id": "5 5"}), 400, "from.id"),
    ("telegram-from-list", "telegram", _update({"id": [5]}), 400, "from.id"),
    ("telegram-from-negative", "telegram", _update({"id": -5}), 400, "from.id"),
    ("telegram-from-zero", "telegram", _update({"id": 0}), 400, "from.id"),
    ("telegram-from-huge", "telegram", _update({"id": 2**70}), 400, "from.id"),
    ("telegram-from-null", "telegram", _update({"id": None}), 400, "from.id"),
    (
        "telegram-chat-object",
        "telegram",
        {**_update({"id": 5}), "message": {**_update({"id": 5})["message"], "chat": {"id": {}}}},
        400,
        "chat.id",
    ),
    (
        "telegram-message-id-float",
        "telegram",
        _update({"id": 5}, message_id=1.5),
        400,
        "message_id",
    ),
    (
        "telegram-name-surrogate",
        "telegram",
        json.dumps(_update({"id": 5, "first_name": "\ud800"})).encode(),
        400,
        "surrogate",
    ),
    (
        "telegram-text-nul",
        "telegram",
        _update({"id": 5}, text="打卡\x00"),
        400,
        "control character",
    ),
    ("bridge-user-space", "bridge", {"user_id": "u 1", "text": "checkin"}, 400, "bridge user id"),
    ("bridge-user-hash", "bridge", {"user_id": "u#1", "text": "checkin"}, 400, "bridge user id"),
    (
        "bridge-user-long",
        "bridge",
        {"user_id": LONG_ID + "A", "text": "checkin"},
        400,
        "bridge user id",
    ),
    (
        "bridge-user-format",
        "bridge",
        {"user_id": "u\u2060", "text": "checkin"},
        400,
        "bridge user id",
    ),
    ("bridge-user-c1", "bridge", {"user_id": "u\x9b", "text": "checkin"}, 400, "control character"),
    (
        "bridge-user-int",
        "bridge",
        {"user_id": 5, "text": "checkin"},
        400,
        "user_id must be a string",
    ),
    (
        "bridge-user-bool",
        "bridge",
        {"user_id": True, "text": "checkin"},
        400,
        "user_id must be a string",
    ),
    (
        "bridge-text-list",
        "bridge",
        {"user_id": "u1", "text": ["checkin"]},
        400,
        "text must be a string",
    ),
    ("bridge-array", "bridge", [{"user_id": "u1", "text": "checkin"}], 400, "JSON object"),
]
# Updates Telegram really sends that are not a check-in: acknowledged (200), nothing written.
WEBHOOK_OK_CASES = [
    ("telegram-no-text", "telegram", _update({"id": 5}, text={"nested": True})),
    ("telegram-no-sender", "telegram", {"update_id": 1, "message": {"text": "打卡"}}),
    ("telegram-edit", "telegram", {"update_id": 1, "edited_message": {"text": "打卡"}}),
    ("slack-ssl-check", "slack", {"ssl_check": "1", "user_id": ""}),
    ("slack-other-text", "slack", {"user_id": "U1", "command": "/x", "text": "[[[["}),
]


def dump_tables() -> dict[str, list[Any]]:
    """Every item of every DynamoDB table, sorted (to compare before/after)."""
    dynamodb = client("dynamodb", "us-east-1")
    out = {}
    for name in dynamodb.list_tables()["TableNames"]:
        items = []
        kwargs: dict[str, Any] = {"TableName": name}
        while True:
            page = dynamodb.scan(**kwargs)
            items += page["Items"]
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        out[name] = sorted(items, key=lambda i: json.dumps(i, sort_keys=True))
    return out


@pytest.fixture
def api(stack) -> Api:
    api = make_api(stack)
    put_secret("slack", {"signing_secret": SLACK_SECRET})
    put_secret("telegram", {"signing_secret": TELEGRAM_TOKEN})
    put_secret("bridge", {"signing_secret": BRIDGE_SECRET})
    # mia exists and has checked in, so every route has something to (not) change.
    assert api.call("PUT", "/members/mia", auth=token("olga", "ops"), body=CHECKIN).status == 200
    assert api.call("POST", "/checkins", auth=token("mia"), body=CHECKIN).status == 200
    return api


def _problem(answer: Any, status: int, text: str) -> str | None:
    """What is wrong with an answer that should be a clear ``status`` refusal, or None."""
    try:
        document = answer.json()
    except ValueError:
        return f"{answer.status} not JSON: {answer.body[:120]!r}"
    if answer.status != status:
        return f"{answer.status} (wanted {status}): {answer.body[:200]!r}"
    if not isinstance(document, dict) or not document.get("error") or not document.get("message"):
        return f"{answer.status} without an error document: {answer.body[:200]!r}"
    if text.lower() not in document["message"].lower():
        return f"message {document['message'][:200]!r} does not mention {text!r}"
    return None


def test_case_ids_are_unique_and_every_route_and_platform_is_covered(local_runtime):
    ids = [c[0] for c in CASES] + [c[0] for c in OK_CASES]
    ids += [c[0] for c in WEBHOOK_CASES] + [c[0] for c in WEBHOOK_OK_CASES]
    assert len(ids) == len(set(ids))
    from autopilot_cli.local.gateway import http_routes

    routes = {(r.method, r.path) for r in http_routes(local_runtime)}
    covered = {(c[2], c[3]) for c in CASES}
    covered = {(m, "/members/{member_id}" if p.startswith("/members/") else p) for m, p in covered}
    covered = {(m, re.sub(r"^/lotteries/[^/]+", "/lotteries/{lottery_id}", p)) for m, p in covered}
    covered.add(("POST", "/webhooks/{platform}"))
    assert routes <= covered, routes - covered
    assert {c[1] for c in WEBHOOK_CASES} == set(SIGNERS)


def test_hostile_requests_get_a_clear_4xx_and_write_nothing(api):
    before = dump_tables()
    failures = []
    with RequestCounter() as counter:
        for case_id, roles, method, path, kwargs, status, text in CASES:
            answer = api.call(method, path, auth=token("mia", *roles), **kwargs)
            problem = _problem(answer, status, text)
            if problem:
                failures.append(f"{case_id}: {problem}")
        for case_id, roles, method, path, kwargs in OK_CASES:
            answer = api.call(method, path, auth=token("mia", *roles), **kwargs)
            if answer.status != 200:
                failures.append(f"{case_id}: {answer.status} {answer.body[:200]!r}")
    assert not failures, "\n".join(failures)
    assert sum(counter.count("dynamodb", op) for op in LEDGER_WRITES) == 0, counter.summary()
    assert dump_tables() == before


def _webhook(api: Api, platform: str, payload: Any) -> Any:
    body, headers = SIGNERS[platform](api, payload)
    return api.call(
        "POST", f"/webhooks/{platform}", body=body, headers=headers, query={"community": "sunrise"}
    )


def test_hostile_signed_webhooks_get_a_clear_4xx_and_write_nothing(api):
    before = dump_tables()
    failures = []
    with RequestCounter() as counter:
        for case_id, platform, payload, status, text in WEBHOOK_CASES:
            problem = _problem(_webhook(api, platform, payload), status, text)
            if problem:
                failures.append(f"{case_id}: {problem}")
        for case_id, platform, payload in WEBHOOK_OK_CASES:
            answer = _webhook(api, platform, payload)
            if answer.status != 200:
                failures.append(f"{case_id}: {answer.status} {answer.body[:200]!r}")
        body, headers = _bridge(api, {"user_id": "u1", "text": "checkin"})
        for case_id, query, status, text in [
            ("webhook-unknown-community", {"community": "nope"}, 404, "unknown community"),
            ("webhook-community-nul", {"community": "sunrise\x00"}, 400, "control character"),
            ("webhook-two-communities", {"community": ["sunrise", "other"]}, 404, "unknown"),
            ("webhook-no-community", {}, 400, "'community'"),
            ("webhook-extra-param", {"community": "sunrise", "member": "x"}, 400, "'member'"),
        ]:
            answer = api.call(
                "POST", "/webhooks/bridge", body=body, headers=headers, query=query or None
            )
            problem = _problem(answer, status, text)
            if problem:
                failures.append(f"{case_id}: {problem}")
        for case_id, path in [
            ("webhook-platform-nul", "/webhooks/bri%00dge"),
            ("webhook-platform-upper", "/webhooks/BRIDGE"),
            ("webhook-platform-long", "/webhooks/" + "b" * 40),
        ]:
            answer = api.call(
                "POST", path, body=body, headers=headers, query={"community": "sunrise"}
            )
            problem = _problem(answer, 404, "unknown platform")
            if problem:
                failures.append(f"{case_id}: {problem}")
    assert not failures, "\n".join(failures)
    assert sum(counter.count("dynamodb", op) for op in LEDGER_WRITES) == 0, counter.summary()
    assert dump_tables() == before


def test_two_chat_users_sharing_128_characters_never_become_one_member(api):
    """The bug: ids were cut to 128 characters, so these two were one member."""
    first = _webhook(api, "bridge", {"user_id": "A" * 128 + "1", "text": "checkin"})
    second = _webhook(api, "bridge", {"user_id": "A" * 128 + "2", "text": "checkin"})
    assert (first.status, second.status) == (400, 400)
    fits = "A" * (128 - len("bridge:"))
    assert _webhook(api, "bridge", {"user_id": fits, "text": "checkin"}).status == 200
    account = api.stack.app().ledger_store.account("sunrise", f"bridge:{fits}")
    assert account is not None and account.state.balance == 10


def test_telegram_numeric_ids_still_check_in(api):
    answer = _webhook(api, "telegram", _update({"id": 2**52, "first_name": "Zoë"}))
    assert answer.status == 200 and "打卡成功" in answer.json()["text"]
    assert api.stack.app().ledger_store.account("sunrise", f"telegram:{2**52}") is not None


# Any JSON value, with the strings and numbers hostile clients like.
_NASTY_TEXT = st.text(
    alphabet=st.characters(codec=None, categories=None), max_size=20
) | st.sampled_from(["\x00", "\x85", "\ud800", "\ufeff", "#", " ", "America", "9999-12-31"])
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _NASTY_TEXT,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(_NASTY_TEXT, children, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def _hostile_bodies(draw: Any) -> bytes:
    kind = draw(st.sampled_from(["json", "bytes", "deep", "escaped"]))
    if kind == "bytes":
        return bytes(draw(st.binary(max_size=200)))
    if kind == "deep":
        depth = draw(st.integers(min_value=60, max_value=4000))
        opener = draw(st.sampled_from(["[", '{"a":', '{"community":"sunrise","x":[']))
        return (opener * depth).encode()
    document = {
        "unexpected_field": draw(_JSON),
        **draw(st.dictionaries(_NASTY_TEXT, _JSON, max_size=3)),
    }
    text = json.dumps(document, ensure_ascii=kind == "escaped")
    return text.encode("utf-8", "surrogatepass")


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=_hostile_bodies(),
    target=st.sampled_from(["checkins", "members", "adjust", "bridge", "telegram"]),
)
def test_generated_hostile_bodies_never_get_a_500_nor_write(api, body, target):
    before = api.ledger_items()
    with RequestCounter() as counter:
        if target in ("bridge", "telegram"):
            answer = _webhook(api, target, body)
        else:
            method, path, roles = {
                "checkins": ("POST", "/checkins", ()),
                "members": ("PUT", "/members/mia", ("ops",)),
                "adjust": ("POST", "/ledger/adjustments", ("ops",)),
            }[target]
            answer = api.call(method, path, auth=token("mia", *roles), body=body)
    assert answer.status < 500, answer.body[:300]
    if answer.status >= 400:
        document = answer.json()
        assert document["error"] and document["message"]
    assert sum(counter.count("dynamodb", op) for op in LEDGER_WRITES) == 0
    assert api.ledger_items() == before
