"""Ledger integrity on moto: commit order, stock, counters, idempotency keys,
reconciliation of the aggregate, forged cursors and the ends of the calendar."""

from __future__ import annotations

import base64
import io
import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from autopilot.errors import (
    BadRequest,
    IdempotencyKeyReused,
    MemberLeft,
    RewardOutOfStock,
)
from autopilot.ledger.rules import MAX_POINTS
from autopilot.ledger.store import AggItem, EntryItem, TierItem, member_pk

from .api_support import Api, make_api, token
from .test_checkins import T0, adjust, community, redeem


@pytest.fixture
def app(stack):
    return stack.app()


@pytest.fixture
def api(stack) -> Api:
    return make_api(stack)


def ledger_rows(app, member: str = "alice") -> list[tuple[str, str]]:
    return sorted(
        (item.sk, item.reason)
        for item in EntryItem.query(member_pk("sunrise", member), EntryItem.sk.startswith("E#"))
    )


def test_a_retried_write_stamped_before_a_later_entry_still_reconciles(app):
    c = community()
    app.members.upsert(c, "alice", {}, T0)
    # Two requests race: the check-in started at T0 (and took its time then), lost the
    # version race to an adjustment stamped a second later, and committed after it.
    adjust(app, c, "alice", 30, "welcome gift", "w-1", "ops:olga", T0 + timedelta(seconds=1))
    result = app.checkins.check_in(c, "alice", T0)
    assert result.balance == 40
    entries = list(app.ledger_store.member_entries("sunrise", "alice"))
    assert [e.at_utc for e in entries] == sorted(e.at_utc for e in entries)  # by time...
    assert [e.reason for e in entries] == ["checkin", "adjustment"]  # ...not commit order
    assert [e.seq for e in entries] == [3, 2]  # the account versions they committed as
    report = app.ledger.reconcile(c)
    assert report["ok"], report["mismatches"]


def test_a_version_race_with_a_leave_refuses_the_redemption(app):
    c = community()
    app.checkins.check_in(c, "alice", T0)
    original = app.ledger_store.account_and_marker

    def read_then_leave(community_id, member_id, marker):
        read = original(community_id, member_id, marker)
        app.members.leave(c, "alice", T0 + timedelta(minutes=1))  # lands before the write
        return read

    app.ledger_store.account_and_marker = read_then_leave
    with pytest.raises(MemberLeft):
        redeem(app, c, "alice", "badge", "r-1", T0 + timedelta(minutes=1))
    assert ledger_rows(app) == [(ledger_rows(app)[0][0], "checkin")]


def test_a_version_race_with_a_leave_refuses_the_check_in(app, stack):
    c = community()
    app.checkins.check_in(c, "alice", T0)  # cached: active, version 1
    stack.app().members.leave(c, "alice", T0 + timedelta(hours=1))  # another container
    with pytest.raises(MemberLeft):
        app.checkins.check_in(c, "alice", T0 + timedelta(days=1))
    assert [reason for _, reason in ledger_rows(app)] == ["checkin"]


def test_a_reward_with_stock_zero_never_sells(app):
    c = community()
    sold_out = replace(c, rewards=(replace(c.rewards[1], stock=0),))
    app.checkins.check_in(c, "alice", T0)
    with pytest.raises(RewardOutOfStock):
        redeem(app, sold_out, "alice", "badge", "r-1", T0 + timedelta(minutes=1))
    assert [reason for _, reason in ledger_rows(app)] == ["checkin"]
    assert app.checkins.me(c, "alice").balance == 10


def test_check_in_counters_count_the_check_in_day(app):
    c = community()  # Shanghai, day boundary 04:00
    # 03:00 on the 27th in Shanghai belongs to the 26th.
    app.checkins.check_in(c, "alice", datetime(2026, 11, 26, 19, 0, tzinfo=UTC))
    assert app.ledger_store.checkins_on("sunrise", date(2026, 11, 26)) == 1
    assert app.ledger_store.checkins_on("sunrise", date(2026, 11, 27)) == 0
    # On the 29th, bob makes up the 28th: counted on the 28th.
    app.checkins.check_in(c, "bob", datetime(2026, 11, 27, 1, 0, tzinfo=UTC))
    adjust(app, c, "bob", 50, "gift", "g-1", "ops:olga", T0 + timedelta(days=1))
    app.checkins.check_in(c, "bob", datetime(2026, 11, 29, 1, 0, tzinfo=UTC), makeup=True)
    assert app.ledger_store.checkins_on("sunrise", date(2026, 11, 28)) == 1
    assert app.ledger_store.checkins_on("sunrise", date(2026, 11, 29)) == 0
    summary = app.ledger.summary(c, since=date(2026, 11, 26), until=date(2026, 11, 29))
    assert summary.checkins == 3


def test_a_reused_idempotency_key_with_another_request_is_refused(app):
    c = community()
    app.checkins.check_in(c, "alice", T0)
    adjust(app, c, "alice", 40, "gift", "t-1", "ops:olga", T0)
    redeem(app, c, "alice", "badge", "order-1", T0)
    assert redeem(app, c, "alice", "badge", "order-1", T0).repeat
    with pytest.raises(IdempotencyKeyReused, match="order-1"):
        redeem(app, c, "alice", "mug", "order-1", T0)
    assert adjust(app, c, "alice", 40, "gift", "t-1", "ops:olga", T0).repeat
    with pytest.raises(IdempotencyKeyReused, match="t-1"):
        adjust(app, c, "alice", 400, "gift", "t-1", "ops:olga", T0)
    assert app.checkins.me(c, "alice").balance == 45


def test_a_reused_idempotency_key_answers_422_through_the_api(api):
    ops = token("olga", "ops")
    body = {"community": "sunrise", "member": "alice", "reason": "gift", "ref": "t-9"}
    assert api.call("PUT", "/members/alice", auth=ops, body={"community": "sunrise"}).status == 200
    first = api.call("POST", "/ledger/adjustments", auth=ops, body={**body, "amount": 30})
    assert first.status == 200, first.body
    before = api.ledger_items()
    reused = api.call("POST", "/ledger/adjustments", auth=ops, body={**body, "amount": 31})
    assert reused.status == 422 and reused.json()["error"] == "IdempotencyKeyReused"
    redeem = {"community": "sunrise", "request_id": "o-1"}
    assert (
        api.call(
            "POST", "/redemptions", auth=token("alice"), body={**redeem, "reward": "badge"}
        ).json()["balance"]
        == 25
    )
    before = api.ledger_items()
    other = api.call("POST", "/redemptions", auth=token("alice"), body={**redeem, "reward": "mug"})
    assert other.status == 422 and "o-1" in other.json()["message"]
    assert api.ledger_items() == before


def test_reconciliation_flags_an_aggregate_that_is_not_the_sum_of_balances(app):
    c = community()
    for member in ("alice", "bob"):
        app.checkins.check_in(c, member, T0)
    assert app.ledger.reconcile(c)["ok"]
    shard = next(a for a in app.ledger_store.aggregates("sunrise", "ALL") if a.net)
    shard.update(actions=[AggItem.net.add(7)])  # a write that bypassed the ledger
    report = app.ledger.reconcile(c)
    assert not report["ok"]
    assert [m["kind"] for m in report["mismatches"]] == ["aggregate"]
    assert "27" in report["mismatches"][0]["detail"] and "20" in report["mismatches"][0]["detail"]


def test_tier_changes_are_recorded(app):
    c = community()  # silver at 40 lifetime points
    for day in range(3):
        app.checkins.check_in(c, "alice", T0 + timedelta(days=day))
    records = list(TierItem.query(member_pk("sunrise", "alice"), TierItem.sk.startswith("TIER#")))
    assert [(r.old_tier, r.new_tier, int(r.lifetime_points)) for r in records] == [
        (None, "bronze", 10),
        ("bronze", "silver", 50),
    ]


def cursor(after: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode()


@pytest.mark.parametrize(
    "position",
    [
        "9999-12-31T23:59:59Z#x",  # +8 h in Shanghai is past year 9999
        "0001-01-01T00:00:00Z#x",
        "not-a-time#x",
        "2026-11-26T01:00:00Z",
    ],
)
@pytest.mark.parametrize("member", [None, "alice"])
def test_forged_cursors_are_refused_cleanly(app, position, member):
    c = community()
    ny = replace(c, timezone="America/New_York")
    for the_community in (c, ny):
        with pytest.raises(BadRequest, match="cursor"):
            app.ledger.entries(
                the_community,
                since=date(2026, 11, 1),
                until=date(2026, 11, 30),
                member_id=member,
                cursor=cursor(position),
            )


def test_forged_cursors_answer_400_through_the_api(api):
    query = {"community": "sunrise", "since": "2026-11-01", "until": "2026-11-30"}
    for position in ("9999-12-31T23:59:59Z#x", "0001-01-01T00:00:00Z#x"):
        answer = api.call(
            "GET",
            "/ledger",
            auth=token("fay", "finance"),
            query={**query, "cursor": cursor(position)},
        )
        assert answer.status == 400, answer.body


def test_periods_at_the_end_of_the_calendar_do_not_overflow(app):
    c = community()
    end = date.max
    assert app.ledger.entries(c, since=end - timedelta(days=3), until=end).entries == ()
    summary = app.ledger.summary(c, since=end - timedelta(days=3), until=end)
    assert summary.checkins == 0
    with pytest.raises(BadRequest, match="month"):
        app.ledger.export_month(c, "9999-12", io.BytesIO())


def test_member_filtered_pages_follow_the_cursor(app):
    c = community()
    for day in range(3):  # 3 check-ins + the day-3 bonus = 4 entries
        app.checkins.check_in(c, "alice", T0 + timedelta(days=day))
        app.checkins.check_in(c, "bob", T0 + timedelta(days=day, minutes=1))
    seen, page_cursor = [], None
    for _ in range(10):
        page = app.ledger.entries(
            c,
            since=date(2026, 11, 1),
            until=date(2026, 11, 30),
            member_id="alice",
            limit=1,
            cursor=page_cursor,
        )
        seen += [e.entry_id for e in page.entries]
        page_cursor = page.next_cursor
        if not page_cursor:
            break
    assert not page_cursor, "paging never ended"
    assert len(seen) == len(set(seen)) == 4


def test_adjustments_beyond_the_bound_are_refused_by_the_domain(app):
    c = community()
    app.members.upsert(c, "alice", {}, T0)
    for amount in (MAX_POINTS + 1, -(MAX_POINTS + 1), 2**64, 10**60):
        with pytest.raises(BadRequest, match="within"):
            adjust(app, c, "alice", amount, "typo", f"big-{amount}", "ops:olga", T0)
    assert adjust(app, c, "alice", MAX_POINTS, "ok", "max", "ops:olga", T0).balance == (MAX_POINTS)
    assert app.ledger.reconcile(c)["ok"]


def test_post_fields_count_the_community_check_in_day(app):
    from autopilot.posts.context import PostContext

    c = community()  # Shanghai, boundary 04:00
    app.checkins.check_in(c, "alice", T0)  # 09:00 on the 26th
    # 02:00 on the 27th in Shanghai is still the check-in day of the 26th.
    ctx = PostContext(c, None, None, None, datetime(2026, 11, 26, 18, 0, tzinfo=UTC))  # type: ignore[arg-type]
    assert app._checkin_fields(ctx) == {"checkins_today": 1, "checkins_yesterday": 0}


def test_the_write_itself_refuses_a_member_who_left(app):
    from autopilot.ledger.rules import Posting, Reason, build_entries
    from autopilot.ledger.store import Movement, StaleAccount

    c = community()
    app.checkins.check_in(c, "alice", T0)
    app.members.leave(c, "alice", T0 + timedelta(hours=1))
    stored = app.ledger_store.account("sunrise", "alice")
    # Same version as stored, but claiming to be active: the condition still refuses.
    pretend = replace(stored, left_at=None)
    entries = build_entries(
        "sunrise",
        "alice",
        [Posting(Reason.ADJUSTMENT, 5, "adjustment:x")],
        balance_before=10,
        at_utc=T0,
        actor="t",
        seq=3,
    )
    movement = Movement(
        account=pretend,
        new_state=replace(stored.state, balance=15),
        marker_sk="REF#adjustment#x",
        result={},
        entries=entries,
        local_day=T0.date(),
        require_active=True,
    )
    with pytest.raises(StaleAccount):
        app.ledger_store.commit(movement, T0 + timedelta(hours=2))
    assert [reason for _, reason in ledger_rows(app)] == ["checkin"]


@pytest.mark.parametrize("path", ["/ledger", "/ledger/summary"])
@pytest.mark.parametrize(
    "since,until", [("9999-12-01", "9999-12-31"), ("0001-01-01", "0001-01-31")]
)
def test_periods_at_the_ends_of_the_calendar_never_answer_500(api, path, since, until):
    for community_id in ("sunrise", "other"):  # Shanghai (+8) and New York (-5)
        answer = api.call(
            "GET",
            path,
            auth=token("fay", "finance"),
            query={"community": community_id, "since": since, "until": until},
        )
        assert answer.status in (200, 400), answer.body
