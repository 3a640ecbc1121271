"""The API function on moto behind the template's gateway: answers, atomicity, costs, IAM.

Requests go through ``LocalHttpApi`` (route, JWT authorizer, scopes) into
``LocalRuntime.invoke("ApiFunction", <payload 2.0 event>)``, as deployed.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from autopilot.ledger.rules import CSV_COLUMNS

from autopilot_cli.local.cfn import function_statements, load_template
from autopilot_cli.local.runtime import http_api_event
from autopilot_cli.metering import RequestCounter

from .api_support import T0, Api, make_api, token

SUNRISE = {"community": "sunrise"}


@pytest.fixture
def api(stack) -> Api:
    return make_api(stack)


def grant(api: Api, member: str, amount: int, ref: str) -> None:
    """Ops register ``member`` (idempotent) and credit ``amount`` points."""
    joined = api.call("PUT", f"/members/{member}", auth=token("olga", "ops"), body=SUNRISE)
    assert joined.status == 200, joined.body
    answer = api.call(
        "POST",
        "/ledger/adjustments",
        auth=token("olga", "ops"),
        body={
            "community": "sunrise",
            "member": member,
            "amount": amount,
            "reason": "welcome gift",
            "ref": ref,
        },
    )
    assert answer.status == 200, answer.body


def test_check_in_answers_day_streak_awards_balance_and_repeat(api):
    first = api.call("POST", "/checkins", auth=token("alice"), body=SUNRISE)
    assert first.status == 200 and first.headers["Content-Type"] == "application/json"
    result = first.json()
    assert (result["day"], result["streak"], result["balance"], result["repeat"]) == (
        "2026-11-26",
        1,
        10,
        False,
    )
    assert [(a["reason"], a["amount"]) for a in result["awards"]] == [("checkin", 10)]
    assert all(a["detail"] and a["entry_id"] for a in result["awards"])
    assert result["member"] == "alice" and result["source"] == "api"

    api.stack.clock.advance(timedelta(hours=3))
    again = api.call("POST", "/checkins", auth=token("alice"), body=SUNRISE).json()
    assert again == {**result, "repeat": True}  # the first answer, nothing credited

    for day in (1, 2):  # day 3 earns the milestone bonus
        api.stack.clock.set(T0 + timedelta(days=day))
        third = api.call("POST", "/checkins", auth=token("alice"), body=SUNRISE).json()
    assert [(a["reason"], a["amount"]) for a in third["awards"]] == [
        ("checkin", 10),
        ("streak_bonus", 20),
    ]
    assert (third["streak"], third["balance"], third["tier_change"]) == (
        3,
        50,
        ["bronze", "silver"],
    )


def test_makeup_check_in_costs_points(api):
    grant(api, "alice", 100, "seed-1")
    api.stack.clock.set(T0 + timedelta(days=1))
    made_up = api.call(
        "POST", "/checkins", auth=token("alice"), body={"community": "sunrise", "makeup": True}
    )
    assert made_up.status == 200, made_up.body
    assert made_up.json()["day"] == "2026-11-26" and made_up.json()["makeup"] is True


def test_me_shows_streak_balance_tier_and_recent_entries(api):
    api.call("POST", "/checkins", auth=token("alice"), body=SUNRISE)
    me = api.call("GET", "/me", auth=token("alice"), query=SUNRISE)
    assert me.status == 200
    body = me.json()
    assert (body["streak"], body["longest_streak"], body["balance"]) == (1, 1, 10)
    assert body["tier"] == {"id": "bronze", "name": "铜"} and "freezes" in body
    assert [e["reason"] for e in body["recent_entries"]] == ["checkin"]
    missing = api.call("GET", "/me", auth=token("nobody"), query=SUNRISE)
    assert missing.status == 404 and missing.json()["error"] == "NotAMember"


def test_redemption_is_atomic_with_balance_and_stock(api):
    for member in ("alice", "bob"):
        grant(api, member, 30, f"seed-{member}")
    key = {"Idempotency-Key": "order-1"}
    first = api.call(
        "POST",
        "/redemptions",
        auth=token("alice"),
        headers=key,
        body={"community": "sunrise", "reward": "mug"},
    )
    assert first.status == 200, first.body
    assert (first.json()["balance"], first.json()["reward"]) == (5, "mug")
    retry = api.call(
        "POST",
        "/redemptions",
        auth=token("alice"),
        headers=key,
        body={"community": "sunrise", "reward": "mug"},
    )
    assert retry.json() == {**first.json(), "repeat": True}  # a retry deducts nothing

    before = api.ledger_items()
    sold_out = api.call(
        "POST",
        "/redemptions",
        auth=token("bob"),
        body={"community": "sunrise", "reward": "mug", "request_id": "b-1"},
    )
    assert sold_out.status == 409 and sold_out.json()["error"] == "RewardOutOfStock"
    poor = api.call(
        "POST",
        "/redemptions",
        auth=token("alice"),
        body={"community": "sunrise", "reward": "badge", "request_id": "a-2"},
    )
    assert poor.status == 200  # 5 points left, badge costs 5
    broke = api.call(
        "POST",
        "/redemptions",
        auth=token("alice"),
        body={"community": "sunrise", "reward": "badge", "request_id": "a-3"},
    )
    assert broke.status == 409 and broke.json()["error"] == "InsufficientPoints"
    after = [i for i in api.ledger_items() if "a-2" not in json.dumps(i)]
    # Only alice's badge redemption (marker, entry, account, aggregates) changed anything.
    changed = {i["sk"]["S"] for i in after} ^ {i["sk"]["S"] for i in before}
    assert not any("b-1" in sk or "a-3" in sk for sk in changed)
    assert api.call("GET", "/me", auth=token("bob"), query=SUNRISE).json()["balance"] == 30


def test_ledger_json_pages_and_csv(api):
    api.call("POST", "/checkins", auth=token("alice"), body=SUNRISE)
    api.call("POST", "/checkins", auth=token("bob"), body=SUNRISE)
    grant(api, "bob", 7, "fix-1")
    finance = token("fay", "finance")
    period = {"community": "sunrise", "since": "2026-11-26", "until": "2026-11-26"}
    page = api.call("GET", "/ledger", auth=finance, query=period).json()
    assert sorted((e["member"], e["reason"], e["amount"]) for e in page["entries"]) == [
        ("alice", "checkin", 10),
        ("bob", "adjustment", 7),
        ("bob", "checkin", 10),
    ]
    assert page["next_cursor"] is None

    first = api.call("GET", "/ledger", auth=finance, query={**period, "limit": "2"}).json()
    assert len(first["entries"]) == 2 and first["next_cursor"]
    rest = api.call(
        "GET",
        "/ledger",
        auth=finance,
        query={**period, "limit": "2", "cursor": first["next_cursor"]},
    ).json()
    assert [e["entry_id"] for e in first["entries"] + rest["entries"]] == [
        e["entry_id"] for e in page["entries"]
    ]

    only_bob = api.call(
        "GET", "/ledger", auth=finance, query={**period, "member": "bob", "reason": "adjustment"}
    ).json()
    assert [(e["member"], e["amount"]) for e in only_bob["entries"]] == [("bob", 7)]

    as_csv = api.call(
        "GET",
        "/ledger",
        auth=finance,
        query={**period, "limit": "2"},
        headers={"Accept": "text/csv"},
    )
    assert as_csv.status == 200 and as_csv.headers["Content-Type"].startswith("text/csv")
    assert as_csv.headers["X-Next-Cursor"] == first["next_cursor"]
    rows = list(csv.reader(io.StringIO(as_csv.body.decode())))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == 3
    assert [r[0] for r in rows[1:]] == [e["entry_id"] for e in first["entries"]]


def test_summary_totals_by_reason_and_outstanding(api):
    api.call("POST", "/checkins", auth=token("alice"), body=SUNRISE)
    grant(api, "alice", 30, "seed")
    api.call(
        "POST",
        "/redemptions",
        auth=token("alice"),
        body={"community": "sunrise", "reward": "mug", "request_id": "r1"},
    )
    finance = token("fay", "finance")
    query = {"community": "sunrise", "since": "2026-11-01", "until": "2026-11-30", "by": "month"}
    summary = api.call("GET", "/ledger/summary", auth=finance, query=query).json()
    assert summary["by_reason"] == {"checkin": 10, "adjustment": 30, "redemption": -25}
    assert summary["by_period"] == {"2026-11": summary["by_reason"]}
    assert summary["outstanding"] == 15 and summary["checkins"] == 1
    by_day = api.call("GET", "/ledger/summary", auth=finance, query={**query, "by": "day"}).json()
    assert list(by_day["by_period"]) == ["2026-11-26"]


def test_ops_register_update_and_remove_members(api):
    ops = token("olga", "ops")
    put = api.call(
        "PUT",
        "/members/bob",
        auth=ops,
        body={"community": "sunrise", "display_name": "Bob", "timezone": "Europe/Paris"},
    )
    assert put.status == 200, put.body
    assert put.json()["profile"]["display_name"] == "Bob"
    gone = api.call("DELETE", "/members/bob", auth=ops, query=SUNRISE)
    assert gone.status == 200 and gone.json()["profile"]["left_at"]
    refused = api.call("POST", "/checkins", auth=token("bob"), body=SUNRISE)
    assert refused.status == 403 and refused.json()["error"] == "MemberLeft"
    unknown = api.call("DELETE", "/members/nobody", auth=ops, query=SUNRISE)
    assert unknown.status == 404


def test_adjustment_is_recorded_once_per_ref(api):
    grant(api, "alice", 12, "ticket-9")
    again = api.call(
        "POST",
        "/ledger/adjustments",
        auth=token("olga", "ops"),
        body={
            "community": "sunrise",
            "member": "alice",
            "amount": 12,
            "reason": "welcome gift",
            "ref": "ticket-9",
        },
    )
    assert again.status == 200 and again.json()["repeat"] is True
    assert api.call("GET", "/me", auth=token("alice"), query=SUNRISE).json()["balance"] == 12


# -- request counts: contract, not timing ----------------------------------------------


def dynamodb_requests(api: Api, method: str, path: str, **kwargs) -> tuple[int, dict]:
    with RequestCounter() as counter:
        answer = api.call(method, path, **kwargs)
    assert answer.status == 200, answer.body
    dynamodb = {k: v for k, v in counter.summary().items() if k.startswith("dynamodb.")}
    return counter.count("dynamodb"), dynamodb


def test_request_counts_of_check_in_repeat_and_me(api):
    api.call("GET", "/me", auth=token("warmup"), query=SUNRISE)  # config loaded, container warm
    new, ops = dynamodb_requests(api, "POST", "/checkins", auth=token("alice"), body=SUNRISE)
    assert new == 2, ops  # unseen member: one BatchGetItem (account + marker), one transaction
    repeat, ops = dynamodb_requests(api, "POST", "/checkins", auth=token("alice"), body=SUNRISE)
    assert repeat <= 2, ops
    api.stack.clock.set(T0 + timedelta(days=1))
    seen, ops = dynamodb_requests(api, "POST", "/checkins", auth=token("alice"), body=SUNRISE)
    assert seen == 1, ops  # the container has seen alice: the transaction alone
    assert ops == {"dynamodb.TransactWriteItems": 1}
    me, ops = dynamodb_requests(api, "GET", "/me", auth=token("alice"), query=SUNRISE)
    assert me <= 2, ops
    # /me caches the account: the next day's check-in is one request as well.
    api.stack.clock.set(T0 + timedelta(days=2))
    seen_again, ops = dynamodb_requests(api, "POST", "/checkins", auth=token("alice"), body=SUNRISE)
    assert seen_again == 1, ops


def test_handler_answers_the_sample_event(api, repo_root):
    event = json.loads((repo_root / "events" / "ApiFunction.json").read_text(encoding="utf-8"))
    event["body"] = json.dumps({"community": "sunrise"})
    answer = api.stack.runtime.invoke("ApiFunction", event)
    assert answer["statusCode"] == 200 and json.loads(answer["body"])["member"] == "alice"


def test_function_refuses_an_event_without_claims(api):
    """Defence in depth: a route deployed without the authorizer still identifies no one."""
    event = http_api_event("POST", "/checkins", body=SUNRISE)
    answer = api.stack.runtime.invoke("ApiFunction", event)
    assert answer["statusCode"] == 401


# -- least privilege: the template grants exactly what the code calls ------------------

# botocore operation -> IAM actions. A transaction is authorised per item: our
# movements put (marker, account, entries) and update (aggregates, stock).
_IAM = {
    ("s3", "ListObjectVersions"): {"s3:ListBucketVersions"},
    ("s3", "GetObject"): {"s3:GetObject", "s3:GetObjectVersion"},
    ("dynamodb", "TransactWriteItems"): {"dynamodb:PutItem", "dynamodb:UpdateItem"},
}


def granted_actions(repo_root, function_id: str) -> set[str]:
    template = load_template(repo_root / "template.yaml")
    actions: set[str] = set()
    for statement in function_statements(template, function_id):
        if statement.get("Sid") == "WriteOwnLogs":
            continue  # the Lambda runtime writes the logs, not the code
        action = statement["Action"]
        actions.update([action] if isinstance(action, str) else action)
    return actions


def used_actions(counter: RequestCounter) -> set[str]:
    used: set[str] = set()
    for service, operation in counter.by_operation():
        used |= _IAM.get((service, operation), {f"{service}:{operation}"})
    return used


def test_every_aws_call_of_the_api_is_granted_and_every_grant_is_used(api, repo_root):
    finance, ops = token("fay", "finance"), token("olga", "ops")
    period = {"community": "sunrise", "since": "2026-11-26", "until": "2026-11-27"}
    with RequestCounter() as counter:
        api.call("POST", "/checkins", auth=token("alice"), body=SUNRISE)
        api.call("POST", "/checkins", auth=token("alice"), body=SUNRISE)
        api.call("GET", "/me", auth=token("alice"), query=SUNRISE)
        grant(api, "bob", 40, "seed")
        api.call(
            "POST",
            "/redemptions",
            auth=token("bob"),
            body={"community": "sunrise", "reward": "mug", "request_id": "r1"},
        )
        api.call("GET", "/ledger", auth=finance, query=period)
        api.call("GET", "/ledger", auth=finance, query={**period, "member": "bob"})
        api.call("GET", "/ledger/summary", auth=finance, query=period)
        api.call("DELETE", "/members/bob", auth=ops, query=SUNRISE)
        counter.stop()  # publishing is the CLI's request, not the function's
        api.stack.push(b"{broken")  # a cold start falls back to the previous config version
        counter.start()
        api.stack.runtime.reset_containers()
        assert api.call("GET", "/me", auth=token("alice"), query=SUNRISE).status == 200
    used, granted = used_actions(counter), granted_actions(repo_root, "ApiFunction")
    assert used <= granted, f"called but not granted: {sorted(used - granted)}"
    assert granted <= used, f"granted but never needed: {sorted(granted - used)}"
