"""Check-ins, redemptions and adjustments on moto: the money path, end to end.

Nothing may be lost or credited twice: repeats, concurrent requests, crashes
and stale caches all end with exactly one credit and a reconciled ledger.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from autopilot.app import App
from autopilot.config.model import parse_config
from autopilot.errors import InsufficientPoints, MemberLeft, RewardOutOfStock
from autopilot.ledger.service import Adjustment, Redemption
from autopilot.settings import Settings

from autopilot_cli.metering import RequestCounter

T0 = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai


def redeem(the_app: Any, community: Any, member: str, reward: str, request_id: str, at: Any) -> Any:
    """``LedgerService.redeem`` of a typed :class:`Redemption`."""
    request = Redemption(member_id=member, reward_id=reward, request_id=request_id)
    return the_app.ledger.redeem(community, request, at)


def adjust(
    the_app: Any,
    community: Any,
    member: str,
    amount: int,
    reason: str,
    ref: str,
    actor: str,
    at: Any,
) -> Any:
    """``LedgerService.adjust`` of a typed :class:`Adjustment`."""
    request = Adjustment(member_id=member, amount=amount, reason=reason, ref=ref, actor=actor)
    return the_app.ledger.adjust(community, request, at)


def community(**checkins):
    rules = {
        "base_points": 10,
        "milestones": [{"days": 3, "bonus": 20}],
        "freezes": {"every_days": 3, "max_held": 1},
        "makeup_cost": 15,
        "tiers": [
            {"id": "bronze", "name": "铜", "min_lifetime_points": 0},
            {"id": "silver", "name": "银", "min_lifetime_points": 40},
        ],
        **checkins,
    }
    doc = {
        "version": 1,
        "communities": [
            {
                "id": "sunrise",
                "name": "晨读社",
                "timezone": "Asia/Shanghai",
                "day_boundary": "04:00",
                "channels": [{"id": "c", "type": "console"}],
                "jobs": [],
                "checkins": rules,
                "rewards": [
                    {"id": "mug", "name": "马克杯", "cost_points": 25, "stock": 1},
                    {"id": "badge", "name": "徽章", "cost_points": 5},
                ],
            }
        ],
    }
    return parse_config(doc).communities[0]


@pytest.fixture
def app(stack):
    return stack.app()


def container(stack) -> App:
    """Another Lambda container: its own caches, same tables."""
    return App(Settings.from_env(stack.env), clock=stack.clock)


def test_first_check_in_answers_day_streak_awards_and_balance(app):
    result = app.checkins.check_in(community(), "alice", T0)
    assert result.day == date(2026, 11, 26) and result.streak == 1 and not result.repeat
    assert [(a.reason, a.amount) for a in result.awards] == [("checkin", 10)]
    assert result.balance == 10 and result.tier == "bronze"


def test_repeat_same_day_credits_nothing_and_answers_the_first_result(app):
    c = community()
    first = app.checkins.check_in(c, "alice", T0)
    again = app.checkins.check_in(
        c, "alice", T0 + timedelta(hours=17, minutes=59)
    )  # 03:59 next day
    assert again == replace(first, repeat=True)
    assert app.checkins.me(c, "alice").balance == 10


def test_day_boundary_starts_a_new_day_at_0400_local(app):
    c = community()
    app.checkins.check_in(c, "alice", T0)
    result = app.checkins.check_in(c, "alice", T0 + timedelta(hours=19))  # 04:00 next day
    assert (result.day, result.streak, result.repeat) == (date(2026, 11, 27), 2, False)


def test_milestone_bonus_freeze_and_tier_change(app):
    c = community()
    for day in range(3):
        result = app.checkins.check_in(c, "alice", T0 + timedelta(days=day))
    assert [(a.reason, a.amount) for a in result.awards] == [
        ("checkin", 10),
        ("streak_bonus", 20),
    ]
    assert result.freeze_earned and result.freezes == 1
    assert result.tier_change == ("bronze", "silver")
    # Skip one day: the freeze bridges it.
    bridged = app.checkins.check_in(c, "alice", T0 + timedelta(days=4))
    assert (bridged.streak, bridged.freezes_used, bridged.freezes) == (4, 1, 0)


def test_make_up_yesterday_at_a_cost(app, stack):
    c = community()
    app.checkins.check_in(c, "alice", T0)
    app.checkins.check_in(c, "alice", T0 + timedelta(days=1))
    made_up = app.checkins.check_in(c, "alice", T0 + timedelta(days=3), makeup=True)
    assert made_up.day == date(2026, 11, 28) and made_up.streak == 3
    assert [a.reason for a in made_up.awards] == ["makeup", "checkin", "streak_bonus"]
    assert made_up.awards[0].amount == -15
    assert app.checkins.check_in(c, "alice", T0 + timedelta(days=3)).streak == 4
    # A retried make-up (before or after today's check-in) answers its first result.
    again = app.checkins.check_in(c, "alice", T0 + timedelta(days=3, hours=1), makeup=True)
    assert again == replace(made_up, repeat=True)
    assert (
        container(stack).checkins.check_in(c, "alice", T0 + timedelta(days=3), makeup=True).repeat
    )
    assert app.checkins.me(c, "alice").balance == 10 + 10 + (10 + 20 - 15) + 10


def test_request_counts_of_the_money_path(stack, app):
    c = community()
    with RequestCounter() as cold:
        app.checkins.check_in(c, "alice", T0)  # container has never seen alice
    with RequestCounter() as warm:
        app.checkins.check_in(c, "alice", T0 + timedelta(days=1))
    with RequestCounter() as repeat_warm:
        app.checkins.check_in(c, "alice", T0 + timedelta(days=1, hours=1))
    other = container(stack)
    with RequestCounter() as repeat_cold:
        other.checkins.check_in(c, "alice", T0 + timedelta(days=1, hours=2))
    with RequestCounter() as me:
        app.checkins.me(c, "alice")
    assert cold.count("dynamodb") == 2  # BatchGetItem (account + today's marker) + transaction
    assert warm.count("dynamodb") == 1 and warm.count("dynamodb", "TransactWriteItems") == 1
    assert repeat_warm.count("dynamodb") == 1 and repeat_cold.count("dynamodb") == 1
    assert me.count("dynamodb") <= 2


def test_stale_cache_never_credits_on_stale_numbers(stack, app):
    c = community()
    app.checkins.check_in(c, "alice", T0)  # container A caches alice (version 1)
    container(stack).checkins.check_in(c, "alice", T0 + timedelta(days=1))  # B moves her on
    with RequestCounter() as counter:
        result = app.checkins.check_in(c, "alice", T0 + timedelta(days=2))
    assert (result.streak, result.balance) == (3, 50)  # 10 + 10 + (10 + 20 bonus)
    # The stale transaction failed and returned the current account: no extra read.
    assert counter.count("dynamodb") == 2
    assert app.ledger.reconcile(c)["ok"]


def test_many_containers_checking_in_the_same_member_at_once_credit_once(stack):
    c = community()
    apps = [container(stack) for _ in range(12)]
    barrier = threading.Barrier(len(apps))
    results, errors = [], []

    def run(app):
        barrier.wait()
        try:
            results.append(app.checkins.check_in(c, "alice", T0))
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(a,)) for a in apps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sum(not r.repeat for r in results) == 1
    assert len({r.awards[0].entry_id for r in results}) == 1
    entries = list(apps[0].ledger_store.member_entries("sunrise", "alice"))
    assert [e.amount for e in entries] == [10]
    assert apps[0].ledger.reconcile(c)["ok"]


@pytest.mark.parametrize("crash_after_commit", [False, True])
def test_a_crash_around_the_transaction_credits_once_on_retry(app, stack, crash_after_commit):
    c = community()
    original = app.ledger_store.commit

    def crashing(movement, now):
        if crash_after_commit:
            original(movement, now)  # written, but the answer is lost
        raise ConnectionError("Lambda timed out")

    app.ledger_store.commit = crashing
    with pytest.raises(ConnectionError):
        app.checkins.check_in(c, "alice", T0)
    retry = container(stack).checkins.check_in(c, "alice", T0 + timedelta(hours=3))
    assert retry.repeat is crash_after_commit
    assert retry.balance == 10
    entries = list(app.ledger_store.member_entries("sunrise", "alice"))
    assert [e.reason for e in entries] == ["checkin"]


def test_redemption_is_atomic_with_balance_and_stock(stack, app):
    c = community()
    for member in ("alice", "bob"):
        app.checkins.check_in(c, member, T0)
        adjust(app, c, member, 30, "welcome gift", f"welcome-{member}", "ops:carol", T0)
    first = redeem(app, c, "alice", "mug", "r-1", T0 + timedelta(hours=1))
    assert (first.balance, first.reward) == (15, "mug")
    assert redeem(app, c, "alice", "mug", "r-1", T0 + timedelta(hours=2)).repeat
    with pytest.raises(RewardOutOfStock):
        redeem(app, c, "bob", "mug", "r-2", T0 + timedelta(hours=1))
    pricier = replace(c, rewards=(replace(c.rewards[1], cost_points=16),))
    with pytest.raises(InsufficientPoints):
        redeem(app, pricier, "alice", "badge", "r-3", T0 + timedelta(hours=3))
    assert app.checkins.me(c, "bob").balance == 40  # bob paid nothing
    assert app.ledger.reconcile(c)["ok"]


def test_concurrent_redemptions_never_overdraw(stack, app):
    c = community()
    app.checkins.check_in(c, "alice", T0)  # balance 10: two badges (5 each) at most
    apps = [container(stack) for _ in range(6)]
    barrier = threading.Barrier(len(apps))
    outcomes = []

    def run(index, the_app):
        barrier.wait()
        try:
            outcomes.append(redeem(the_app, c, "alice", "badge", f"r-{index}", T0).balance)
        except InsufficientPoints:
            outcomes.append("refused")

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(apps)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(o for o in outcomes if o != "refused") == [0, 5]
    assert app.checkins.me(c, "alice").balance == 0
    assert app.ledger.reconcile(c)["ok"]


def test_members_who_left_cannot_check_in(app):
    # One container, its cache never cleared by hand: it caches alice as active.
    c = community()
    app.checkins.check_in(c, "alice", T0)
    app.members.leave(c, "alice", T0 + timedelta(hours=1))
    with pytest.raises(MemberLeft):
        app.checkins.check_in(c, "alice", T0 + timedelta(days=1))
    app.checkins.me(c, "alice")  # now the cache says "left"
    app.members.upsert(c, "alice", {"display_name": "Alice"}, T0 + timedelta(days=1))
    assert app.checkins.check_in(c, "alice", T0 + timedelta(days=1)).streak == 2
    assert [e.amount for e in app.ledger_store.member_entries("sunrise", "alice")] == [10, 10]


def test_ledger_pages_summary_and_export_rerun_is_identical(app):
    import io

    c = community()
    for day in range(4):
        for member in ("alice", "bob", "carol"):
            app.checkins.check_in(c, member, T0 + timedelta(days=day, minutes=len(member)))
    seen, cursor = [], None
    while True:
        page = app.ledger.entries(
            c, since=T0.date(), until=(T0 + timedelta(days=5)).date(), limit=4, cursor=cursor
        )
        seen += page.to_json()["entries"]
        cursor = page.next_cursor
        if not cursor:
            break
    assert len(seen) == len({e["entry_id"] for e in seen}) == 15  # 12 check-ins + 3 bonuses
    assert [e["at_utc"] for e in seen] == sorted(e["at_utc"] for e in seen)
    summary = app.ledger.summary(c, since=T0.date(), until=(T0 + timedelta(days=5)).date())
    assert summary.by_reason == {"checkin": 120, "streak_bonus": 60}
    assert summary.outstanding == 180 and summary.checkins == 12
    first, second = io.BytesIO(), io.BytesIO()
    m1 = app.ledger.export_month(c, "2026-11", first)
    m2 = app.ledger.export_month(c, "2026-11", second)
    assert first.getvalue() == second.getvalue() and m1 == m2
    assert m1["count"] == 15 and m1["net"] == 180


def test_reconcile_reports_a_tampered_balance_loudly(app):
    from autopilot.ledger.store import AccountItem, member_pk

    c = community()
    app.checkins.check_in(c, "alice", T0)
    item = AccountItem.get(member_pk("sunrise", "alice"), "ACCOUNT")
    item.balance = 999  # a write that bypassed the ledger
    item.save()
    report = app.ledger.reconcile(c)
    assert not report["ok"]
    assert report["mismatches"][0]["kind"] == "balance"
