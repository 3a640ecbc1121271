"""The lottery routes through the template's API Gateway and the API function (moto).

Members enter, read their status and the draw record, and claim; ops set the
external value, disqualify a winner and cancel a draw. Bad input to any lottery
route is a 4xx with a clear message, and neither the ledger nor the lottery table
changes (not one DynamoDB write request is made).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from autopilot.aws import client
from autopilot.lottery.draw import verify_json

from autopilot_cli.metering import RequestCounter

from .api_support import LEDGER_WRITES, Api, api_config, make_api, token
from .lottery_support import CLOSES, DRAW_ID, DRAWS, OPENS, ctx

ENTER = "/lotteries/weekly/entries"
COST = 5
WEEKLY = {
    "id": "weekly",
    "title": "周五抽奖",
    "schedule": {"opens": "0 0 * * 1", "closes": "55 19 * * 5", "draws": "0 20 * * 5"},
    "entry": {"mode": "enter", "cost_points": COST, "keywords": ["抽奖"]},
    "eligibility": {"min_checkins": 1, "joined_before_open": True, "not_left": True},
    "prizes": [
        {"id": "first", "title": "一等奖", "count": 1, "points": 200},
        {"id": "second", "title": "二等奖", "count": 2, "points": 50},
    ],
    "claim": {"window": "2d", "keywords": ["领奖"]},
    "posts": {"channels": ["group"]},
}


def lottery_config(**changes: Any) -> dict[str, Any]:
    """The API tests' communities, ``sunrise`` with the weekly lottery."""
    doc = api_config()
    doc["communities"][0]["lotteries"] = [{**WEEKLY, **changes}]
    return doc


@pytest.fixture
def api(stack) -> Api:
    api = make_api(stack)  # 2026-11-26 09:00 in Shanghai, before the lottery opens
    api.stack.push(lottery_config())
    return api


def lottery_items(api: Api) -> list[dict[str, Any]]:
    """Every item of the lottery table (to compare before/after)."""
    table = api.stack.runtime.physical_id("LotteryTable")
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = client("dynamodb", "us-east-1").scan(**kwargs)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return sorted(items, key=lambda i: (i["pk"]["S"], i["sk"]["S"]))
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def step(api: Api, name: str, at) -> None:
    """Run one lottery step (open, close, draw, expire) as the dispatcher does."""
    api.stack.clock.set(at)
    app = api.stack.app()
    community = app.config().community("sunrise")
    result = getattr(app.lotteries, name)(ctx(community, community.lottery("weekly"), name, at))
    assert result.ok, result


def check_in(api: Api, member: str) -> None:
    answer = api.call("POST", "/checkins", auth=token(member), body={"community": "sunrise"})
    assert answer.status == 200, answer.body


def balance(api: Api, member: str) -> int:
    answer = api.call("GET", "/me", auth=token(member), query={"community": "sunrise"})
    assert answer.status == 200, answer.body
    return int(answer.json()["balance"])


def enter(api: Api, member: str, key: str | None = None, **body: Any) -> Any:
    return api.call(
        "POST",
        ENTER,
        auth=token(member),
        body={"community": "sunrise", **body},
        headers={"Idempotency-Key": key or f"enter-{member}"},
    )


def opened(api: Api, *members: str) -> None:
    """``members`` check in before the opening (they joined before it), the lottery
    opens, and at Monday 10:00 in Shanghai they check in again (a check-in in the
    window, as ``min_checkins: 1`` asks): :data:`START` points each."""
    for member in members:
        check_in(api, member)
    step(api, "open", OPENS)
    api.stack.clock.set(OPENS + timedelta(hours=10))
    for member in members:
        check_in(api, member)


START = 20


def test_entry_is_201_then_200_on_repeat_and_the_cost_is_paid_once(api):
    assert enter(api, "mia").status == 409  # not opened yet
    opened(api, "mia")
    first = enter(api, "mia")
    assert first.status == 201, first.body
    entry = first.json()
    assert entry["draw_id"] == DRAW_ID and entry["member"] == "mia"
    assert entry["tickets"] == 1 and entry["cost_points"] == COST and not entry["repeat"]
    assert balance(api, "mia") == START - COST
    again = enter(api, "mia", key="another-key")  # a second attempt: the same entry
    assert again.status == 200 and again.json()["repeat"] is True
    assert again.json()["entered_at"] == entry["entered_at"]
    assert balance(api, "mia") == START - COST

    status = api.call(
        "GET", "/lotteries/weekly", auth=token("mia"), query={"community": "sunrise"}
    ).json()
    assert status["state"] == "open" and status["draw_id"] == DRAW_ID
    assert len(status["commitment"]) == 64
    assert status["my_entry"]["tickets"] == 1 and status["my_entry"]["cost_paid"] == COST
    other = api.call(
        "GET", "/lotteries/weekly", auth=token("bob"), query={"community": "sunrise"}
    ).json()
    assert other["my_entry"] is None and other["entries"] == 1


def test_not_eligible_and_broke_members_are_refused_and_nothing_is_written(api):
    # olga is registered by ops before the opening with no points at all.
    assert (
        api.call(
            "PUT", "/members/olga", auth=token("ops1", "ops"), body={"community": "sunrise"}
        ).status
        == 200
    )
    opened(api, "mia")
    check_in(api, "late")  # joins after the opening
    ledger_before, lottery_before = api.ledger_items(), lottery_items(api)
    late = enter(api, "late")
    assert late.status == 403, late.body
    assert late.json()["error"] == "NotEligible"
    assert any("joined" in reason for reason in late.json()["reasons"])
    broke = enter(api, "olga")
    assert broke.status == 409 and broke.json()["error"] == "InsufficientPoints", broke.body
    assert api.ledger_items() == ledger_before and lottery_items(api) == lottery_before


def test_draw_record_verifies_and_the_winner_claims_once(api):
    opened(api, "mia", "bob")
    assert enter(api, "mia").status == 201 and enter(api, "bob").status == 201
    early = api.call(
        "GET", "/lotteries/weekly/record", auth=token("mia"), query={"community": "sunrise"}
    )
    assert early.status == 409, early.body
    step(api, "close", CLOSES)
    step(api, "draw", DRAWS)
    api.stack.clock.set(DRAWS + timedelta(hours=1))

    record = api.call(
        "GET", "/lotteries/weekly/record", auth=token("carl"), query={"community": "sunrise"}
    )
    assert record.status == 200, record.body
    assert verify_json(record.json()["text"]).verified
    same = api.call(
        "GET",
        "/lotteries/weekly/record",
        auth=token("carl"),
        query={"community": "sunrise", "draw": DRAW_ID},
    )
    assert same.json()["sha256"] == record.json()["sha256"]

    status = api.call(
        "GET", "/lotteries/weekly", auth=token("mia"), query={"community": "sunrise"}
    ).json()
    assert status["state"] in ("drawn", "paid") and status["entrants"] == 2
    assert {w["member"] for w in status["winners"]} == {"mia", "bob"}
    prize = status["my_prize"]
    assert prize["status"] == "awaiting_claim"

    before = balance(api, "mia")
    claim = api.call("POST", "/lotteries/weekly/claim", auth=token("mia"), body=SUNRISE)
    assert claim.status == 200, claim.body
    assert claim.json()["status"] == "paid" and claim.json()["prize"] == prize["prize"]
    won = balance(api, "mia") - before
    assert won in (200, 50)
    again = api.call("POST", "/lotteries/weekly/claim", auth=token("mia"), body=SUNRISE)
    assert again.status == 200 and balance(api, "mia") - before == won
    nobody = api.call("POST", "/lotteries/weekly/claim", auth=token("carl"), body=SUNRISE)
    assert nobody.status == 404 and nobody.json()["error"] == "NothingToClaim"


SUNRISE = {"community": "sunrise"}


def test_ops_set_the_external_value_before_the_draw_only(api):
    opened(api, "mia")
    assert enter(api, "mia").status == 201
    path = "/lotteries/weekly/external-value"
    body = {"community": "sunrise", "value": "drand round 4215300"}
    assert api.call("PUT", path, auth=token("mia"), body=body).status == 403
    answer = api.call("PUT", path, auth=token("ops1", "ops"), body=body)
    assert answer.status == 200, answer.body
    assert answer.json() == {"draw_id": DRAW_ID, "external_value": "drand round 4215300"}
    step(api, "close", CLOSES)
    step(api, "draw", DRAWS)
    record = api.call("GET", "/lotteries/weekly/record", auth=token("mia"), query=SUNRISE).json()[
        "record"
    ]
    assert record["external_value"] == "drand round 4215300"
    late = api.call("PUT", path, auth=token("ops1", "ops"), body={**body, "value": "other"})
    assert late.status == 409 and late.json()["error"] == "LotteryConflict"


def test_ops_disqualify_a_winner(api):
    opened(api, "mia", "bob")
    assert enter(api, "mia").status == 201 and enter(api, "bob").status == 201
    step(api, "close", CLOSES)
    step(api, "draw", DRAWS)
    path = "/lotteries/weekly/disqualify"
    body = {"community": "sunrise", "member": "bob", "reason": "two accounts"}
    assert api.call("POST", path, auth=token("mia"), body=body).status == 403
    answer = api.call("POST", path, auth=token("ops1", "ops"), body=body)
    assert answer.status == 200, answer.body
    assert answer.json() == {"draw_id": DRAW_ID, "member": "bob", "status": "disqualified"}
    again = api.call("POST", path, auth=token("ops1", "ops"), body={**body, "draw": DRAW_ID})
    assert again.status == 200 and again.json()["status"] == "disqualified"
    stranger = api.call("POST", path, auth=token("ops1", "ops"), body={**body, "member": "carl"})
    assert stranger.status == 404, stranger.body
    claim = api.call("POST", "/lotteries/weekly/claim", auth=token("bob"), body=SUNRISE)
    assert claim.status == 404 or claim.json()["status"] != "paid"


def test_ops_cancel_refunds_every_entry_once(api):
    opened(api, "mia", "bob")
    assert enter(api, "mia").status == 201 and enter(api, "bob").status == 201
    assert balance(api, "mia") == START - COST
    path = "/lotteries/weekly/cancel"
    body = {"community": "sunrise", "reason": "prize sponsor withdrew"}
    assert api.call("POST", path, auth=token("mia"), body=body).status == 403
    answer = api.call("POST", path, auth=token("ops1", "ops"), body=body)
    assert answer.status == 200, answer.body
    assert answer.json()["state"] == "cancelled"
    again = api.call("POST", path, auth=token("ops1", "ops"), body=body)
    assert again.status == 200 and again.json()["state"] == "cancelled"
    assert balance(api, "mia") == START and balance(api, "bob") == START
    assert enter(api, "carl").status == 409


DEEP = "[" * 100 + "]" * 100
WITH_KEY = {"headers": {"Idempotency-Key": "k-1"}}

# (case id, caller roles, method, path, request kwargs, status, text the message must contain)
CASES: list[tuple[str, tuple[str, ...], str, str, dict[str, Any], int, str]] = [
    # POST /lotteries/{id}/entries
    ("enter-malformed", (), "POST", ENTER, {"body": '{"community": ', **WITH_KEY}, 400, "JSON"),
    ("enter-deep", (), "POST", ENTER, {"body": DEEP, **WITH_KEY}, 400, "deeper than 64"),
    ("enter-array", (), "POST", ENTER, {"body": "[]", **WITH_KEY}, 400, "JSON object"),
    ("enter-empty", (), "POST", ENTER, {"body": "", **WITH_KEY}, 400, "empty"),
    (
        "enter-tickets-string",
        (),
        "POST",
        ENTER,
        {"body": {**SUNRISE, "tickets": "1"}, **WITH_KEY},
        400,
        "tickets must be an integer",
    ),
    (
        "enter-tickets-bool",
        (),
        "POST",
        ENTER,
        {"body": {**SUNRISE, "tickets": True}, **WITH_KEY},
        400,
        "tickets must be an integer",
    ),
    (
        "enter-tickets-float",
        (),
        "POST",
        ENTER,
        {"body": {**SUNRISE, "tickets": 1.0}, **WITH_KEY},
        400,
        "tickets must be an integer",
    ),
    (
        "enter-tickets-huge",
        (),
        "POST",
        ENTER,
        {"body": '{"community": "sunrise", "tickets": ' + "9" * 60 + "}", **WITH_KEY},
        400,
        "tickets must be an integer from 1",
    ),
    (
        "enter-tickets-zero",
        (),
        "POST",
        ENTER,
        {"body": {**SUNRISE, "tickets": 0}, **WITH_KEY},
        400,
        "tickets must be an integer from 1",
    ),
    (
        "enter-tickets-over-max",
        (),
        "POST",
        ENTER,
        {"body": {**SUNRISE, "tickets": 2}, **WITH_KEY},
        400,
        "tickets must be 1..1",
    ),
    (
        "enter-member-in-body",
        (),
        "POST",
        ENTER,
        {"body": {**SUNRISE, "member": "bob"}, **WITH_KEY},
        400,
        "unknown field 'member'",
    ),
    ("enter-no-key", (), "POST", ENTER, {"body": SUNRISE}, 400, "Idempotency-Key"),
    (
        "enter-bad-key",
        (),
        "POST",
        ENTER,
        {"body": SUNRISE, "headers": {"Idempotency-Key": "a#b"}},
        400,
        "'#'",
    ),
    (
        "enter-keys-differ",
        (),
        "POST",
        ENTER,
        {"body": {**SUNRISE, "request_id": "k-2"}, **WITH_KEY},
        400,
        "differ",
    ),
    (
        "enter-control-in-id",
        (),
        "POST",
        "/lotteries/week%01ly/entries",
        {"body": SUNRISE, **WITH_KEY},
        400,
        "the lottery id must be",
    ),
    (
        "enter-newline-in-id",
        (),
        "POST",
        "/lotteries/weekly%0A/entries",
        {"body": SUNRISE, **WITH_KEY},
        400,
        "the lottery id must be",
    ),
    (
        "enter-not-utf8-id",
        (),
        "POST",
        "/lotteries/%FF/entries",
        {"body": SUNRISE, **WITH_KEY},
        400,
        "percent-encoded UTF-8",
    ),
    (
        "enter-long-id",
        (),
        "POST",
        f"/lotteries/{'w' * 5000}/entries",
        {"body": SUNRISE, **WITH_KEY},
        400,
        "the lottery id must be",
    ),
    (
        "enter-unknown-lottery",
        (),
        "POST",
        "/lotteries/monthly/entries",
        {"body": SUNRISE, **WITH_KEY},
        404,
        "no lottery 'monthly'",
    ),
    (
        "enter-unknown-community",
        (),
        "POST",
        ENTER,
        {"body": {"community": "nope"}, **WITH_KEY},
        404,
        "unknown community",
    ),
    (
        "enter-other-community",
        (),
        "POST",
        ENTER,
        {"body": {"community": "other"}, **WITH_KEY},
        404,
        "no lottery 'weekly'",
    ),
    (
        "enter-oversized",
        (),
        "POST",
        ENTER,
        {"body": {**SUNRISE, "pad": "x" * (17 * 1024)}, **WITH_KEY},
        413,
        "bytes",
    ),
    (
        "enter-late-joiner",
        (),
        "POST",
        ENTER,
        {"body": SUNRISE, **WITH_KEY},
        403,
        "joined",
    ),
    # GET /lotteries/{id}
    (
        "status-unknown-param",
        (),
        "GET",
        "/lotteries/weekly",
        {"query": {**SUNRISE, "member": "bob"}},
        400,
        "unknown query parameter 'member'",
    ),
    ("status-no-community", (), "GET", "/lotteries/weekly", {}, 400, "'community'"),
    (
        "status-bad-draw",
        (),
        "GET",
        "/lotteries/weekly",
        {"query": {**SUNRISE, "draw": "weekly#1"}},
        400,
        "draw must be",
    ),
    (
        "status-unknown-draw",
        (),
        "GET",
        "/lotteries/weekly",
        {"query": {**SUNRISE, "draw": "weekly-20200106T0000"}},
        404,
        "no draw",
    ),
    (
        "status-unknown-lottery",
        (),
        "GET",
        "/lotteries/monthly",
        {"query": SUNRISE},
        404,
        "no lottery 'monthly'",
    ),
    # GET /lotteries/{id}/record
    (
        "record-control-draw",
        (),
        "GET",
        "/lotteries/weekly/record",
        {"query": {**SUNRISE, "draw": "weekly-\x01"}},
        400,
        "control characters",
    ),
    (
        "record-other-lotterys-draw",
        (),
        "GET",
        "/lotteries/weekly/record",
        {"query": {**SUNRISE, "draw": "monthly-20261130T0000"}},
        404,
        "no draw",
    ),
    (
        "record-not-drawn",
        (),
        "GET",
        "/lotteries/weekly/record",
        {"query": SUNRISE},
        409,
        "no record yet",
    ),
    # POST /lotteries/{id}/claim
    (
        "claim-extra-field",
        (),
        "POST",
        "/lotteries/weekly/claim",
        {"body": {**SUNRISE, "member": "bob"}},
        400,
        "unknown field 'member'",
    ),
    (
        "claim-nothing",
        (),
        "POST",
        "/lotteries/weekly/claim",
        {"body": SUNRISE},
        404,
        "holds no prize",
    ),
    # POST /lotteries/{id}/disqualify (ops)
    (
        "disqualify-member-role",
        (),
        "POST",
        "/lotteries/weekly/disqualify",
        {"body": {**SUNRISE, "member": "bob", "reason": "r"}},
        403,
        "Forbidden",  # the gateway: a member token lacks the ops scope
    ),
    (
        "disqualify-no-reason",
        ("ops",),
        "POST",
        "/lotteries/weekly/disqualify",
        {"body": {**SUNRISE, "member": "bob"}},
        400,
        "'reason'",
    ),
    (
        "disqualify-bad-member",
        ("ops",),
        "POST",
        "/lotteries/weekly/disqualify",
        {"body": {**SUNRISE, "member": "b\u200bob", "reason": "r"}},
        400,
        "member must be",
    ),
    (
        "disqualify-bad-draw",
        ("ops",),
        "POST",
        "/lotteries/weekly/disqualify",
        {"body": {**SUNRISE, "member": "bob", "reason": "r", "draw": "a b"}},
        400,
        "draw must be",
    ),
    (
        "disqualify-not-a-winner",
        ("ops",),
        "POST",
        "/lotteries/weekly/disqualify",
        {"body": {**SUNRISE, "member": "bob", "reason": "r"}},
        404,
        "holds no prize",
    ),
    # PUT /lotteries/{id}/external-value (ops)
    (
        "external-member-role",
        (),
        "PUT",
        "/lotteries/weekly/external-value",
        {"body": {**SUNRISE, "value": "v"}},
        403,
        "Forbidden",  # the gateway: a member token lacks the ops scope
    ),
    (
        "external-type",
        ("ops",),
        "PUT",
        "/lotteries/weekly/external-value",
        {"body": {**SUNRISE, "value": 42}},
        400,
        "value must be a string",
    ),
    (
        "external-newline",
        ("ops",),
        "PUT",
        "/lotteries/weekly/external-value",
        {"body": {**SUNRISE, "value": "round 1\nround 2"}},
        400,
        "control",
    ),
    (
        "external-spaces",
        ("ops",),
        "PUT",
        "/lotteries/weekly/external-value",
        {"body": {**SUNRISE, "value": " round 1"}},
        400,
        "surrounding spaces",
    ),
    (
        "external-too-long",
        ("ops",),
        "PUT",
        "/lotteries/weekly/external-value",
        {"body": {**SUNRISE, "value": "轮" * 400}},
        400,
        "1-1024 bytes",
    ),
    (
        "external-unknown-lottery",
        ("ops",),
        "PUT",
        "/lotteries/monthly/external-value",
        {"body": {**SUNRISE, "value": "v"}},
        404,
        "no lottery 'monthly'",
    ),
    # POST /lotteries/{id}/cancel (ops)
    (
        "cancel-member-role",
        (),
        "POST",
        "/lotteries/weekly/cancel",
        {"body": {**SUNRISE, "reason": "r"}},
        403,
        "Forbidden",  # the gateway: a member token lacks the ops scope
    ),
    (
        "cancel-no-reason",
        ("ops",),
        "POST",
        "/lotteries/weekly/cancel",
        {"body": SUNRISE},
        400,
        "'reason'",
    ),
    (
        "cancel-reason-type",
        ("ops",),
        "POST",
        "/lotteries/weekly/cancel",
        {"body": {**SUNRISE, "reason": ["r"]}},
        400,
        "reason must be a string",
    ),
]


def test_every_lottery_route_has_bad_input_cases():
    assert len({c[0] for c in CASES}) == len(CASES)
    routes = {(method, path.split("/")[-1]) for _, _, method, path, _, _, _ in CASES}
    assert {
        ("POST", "entries"),
        ("GET", "weekly"),
        ("GET", "record"),
        ("POST", "claim"),
        ("POST", "disqualify"),
        ("PUT", "external-value"),
        ("POST", "cancel"),
    } <= routes


def test_bad_input_gets_a_clear_4xx_and_writes_nothing(api):
    opened(api, "mia")
    assert enter(api, "mia").status == 201  # the draw has content to protect
    check_in(api, "late")  # joined after the opening: not eligible
    ledger_before, lottery_before = api.ledger_items(), lottery_items(api)
    failures = []
    with RequestCounter() as counter:
        for case_id, roles, method, path, kwargs, status, text in CASES:
            member = "late" if case_id == "enter-late-joiner" else "mia"
            answer = api.call(method, path, auth=token(member, *roles), **kwargs)
            try:
                document = answer.json()
            except ValueError:
                document = {}
            message = document.get("message", "")
            # The gateway's own refusals (scope) have only a message; ours name the error.
            named = document.get("error") or answer.status == 403
            if answer.status != status or text not in message or not named:
                failures.append(f"{case_id}: {answer.status} {answer.body[:300]!r}")
    assert not failures, "\n".join(failures)
    writes = sum(counter.count("dynamodb", op) for op in LEDGER_WRITES)
    assert writes == 0, counter.summary()
    assert api.ledger_items() == ledger_before
    assert lottery_items(api) == lottery_before


def test_not_eligible_answer_lists_every_reason(api):
    opened(api, "mia")
    check_in(api, "late")
    answer = enter(api, "late")
    document = json.loads(answer.body)
    assert answer.status == 403
    assert document["error"] == "NotEligible" and document["reasons"]
    assert all(reason in document["message"] for reason in document["reasons"])


def test_every_aws_call_of_the_lottery_routes_is_granted(api, repo_root):
    from .test_api_handler import granted_actions, used_actions

    opened(api, "mia", "bob")
    ops = token("ops1", "ops")
    with RequestCounter() as counter:
        api.stack.runtime.reset_containers()
        assert enter(api, "mia").status == 201
        assert enter(api, "mia").status == 200
        assert enter(api, "bob").status == 201
        path = "/lotteries/weekly/external-value"
        body = {"community": "sunrise", "value": "drand round 1"}
        assert api.call("PUT", path, auth=ops, body=body).status == 200
        counter.stop()
        step(api, "close", CLOSES)
        step(api, "draw", DRAWS)
        counter.start()
        api.stack.runtime.reset_containers()
        ops = token("ops1", "ops")
        assert api.call("GET", "/lotteries/weekly", auth=token("mia"), query=SUNRISE).status == 200
        assert (
            api.call("GET", "/lotteries/weekly/record", auth=token("mia"), query=SUNRISE).status
            == 200
        )
        assert (
            api.call("POST", "/lotteries/weekly/claim", auth=token("mia"), body=SUNRISE).status
            == 200
        )
        disqualify = {"community": "sunrise", "member": "bob", "reason": "r"}
        assert (
            api.call("POST", "/lotteries/weekly/disqualify", auth=ops, body=disqualify).status
            == 200
        )
    used = used_actions(counter)
    granted = granted_actions(repo_root, "ApiFunction")
    assert used <= granted, f"called but not granted: {sorted(used - granted)}"
