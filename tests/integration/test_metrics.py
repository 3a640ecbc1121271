"""Daily snapshots on the template's stack: every figure equals the same figure
recomputed by the test from what it did (the reference), over a month of joins,
leaves, streak breaks, make-ups and redemptions across New York's spring-forward;
a re-run is identical; the requests do not grow with the members."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from autopilot.ledger.service import Adjustment, Redemption
from autopilot.metrics.rules import STREAK_BUCKETS

from autopilot_cli.metering import RequestCounter

from .conftest import make_config

NY = ZoneInfo("America/New_York")
FIRST = date(2027, 3, 8)  # New York springs forward on Sunday 2027-03-14
DAYS = 30
RULES = {
    "base_points": 10,
    "milestones": [{"days": 3, "bonus": 20}],
    "freezes": {"every_days": 4, "max_held": 1},
    "makeup_cost": 15,
}
REWARDS = [{"id": "badge", "name": "徽章", "cost_points": 25}]
ADJUSTED = {FIRST + timedelta(days=4), FIRST + timedelta(days=9)}


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=NY).astimezone(UTC)


@pytest.fixture
def month(stack):
    """A month of a New York community (day boundary 04:00) with 12 members."""
    stack.push(
        make_config(
            jobs=[],
            published_at="2027-03-01T00:00:00Z",
            timezone="America/New_York",
            locale="en",
            day_boundary="04:00",
            quiet_hours=None,
            checkins=RULES,
            rewards=REWARDS,
        )
    )
    app = stack.app()
    c = app.config().communities[0]
    rng = random.Random(11)
    members = [f"m{i:02d}" for i in range(12)]
    checked: dict[date, set[str]] = defaultdict(set)  # metrics day -> members
    streak_after: dict[date, list[int]] = defaultdict(list)
    joined: dict[date, int] = defaultdict(int)
    left: dict[date, int] = defaultdict(int)
    balance: dict[str, int] = defaultdict(int)
    outstanding: dict[date, int] = {}
    net: dict[date, int] = defaultdict(int)
    redeemed: dict[date, int] = defaultdict(int)
    makeups: dict[date, int] = defaultdict(int)
    gone: set[str] = set()
    registered: set[str] = set()
    for index in range(DAYS):
        day = FIRST + timedelta(days=index)
        if index == 2:  # ops registers a member who never checks in
            stack.clock.set(local(day, 9))
            app.members.upsert(c, "ops-added", {"display_name": "Ops"}, local(day, 9))
            joined[day] += 1
            registered.add("ops-added")
        for member in members:
            if member in gone or rng.random() < 0.3:
                continue
            # 01:30 counts for the day before (boundary 04:00): "day" is the metrics day.
            i = members.index(member)
            at = local(day, 7 + i) if index % 5 else local(day + timedelta(days=1), 1, i)
            stack.clock.set(at)
            yesterday = day - timedelta(days=1)
            if index % 4 == 3 and member in registered and member not in checked[yesterday]:
                # 补签: yesterday made up today (counted today, where it happens).
                try:
                    made = app.checkins.check_in(c, member, at, makeup=True)
                except Exception:  # not enough points, or nothing to make up
                    made = None
                if made is not None and not made.repeat:
                    makeups[day] += 1
                    checked[day].add(member)
                    streak_after[day].append(made.streak)
                    net[day] += made.balance - balance[member]
                    balance[member] = made.balance
                    at += timedelta(minutes=1)
                    stack.clock.set(at)
            result = app.checkins.check_in(c, member, at)
            if result.repeat:
                continue
            if member not in registered:
                registered.add(member)
                joined[day] += 1
            checked[day].add(member)
            streak_after[day].append(result.streak)
            net[day] += result.balance - balance[member]
            balance[member] = result.balance
        if index in (4, 9):  # a redemption and an adjustment
            for member in sorted(balance):
                if balance[member] >= 25 and member not in gone:
                    at = local(day, 20)
                    stack.clock.set(at)
                    answer = app.ledger.redeem(
                        c,
                        Redemption(member_id=member, reward_id="badge", request_id=f"r{index}"),
                        at,
                    )
                    balance[member] = answer.balance
                    net[day] -= 25
                    redeemed[day] -= 25
                    break
            at = local(day, 21)
            stack.clock.set(at)
            app.ledger.adjust(
                c,
                Adjustment(
                    member_id="m00", amount=5, reason="thanks", ref=f"a{index}", actor="ops:t"
                ),
                at,
            )
            balance["m00"] += 5
            net[day] += 5
        if index == 6:  # two members leave, late in the evening
            for member in ("m10", "m11"):
                stack.clock.set(local(day, 23))
                app.members.leave(c, member, local(day, 23))
                left[day] += 1
                gone.add(member)
        outstanding[day] = sum(balance.values())
    return {
        "app": app,
        "community": c,
        "checked": checked,
        "streaks": streak_after,
        "joined": joined,
        "left": left,
        "net": net,
        "redeemed": redeemed,
        "makeups": makeups,
        "outstanding": outstanding,
    }


def reference(month: dict[str, Any], day: date) -> dict[str, Any]:
    """The figures of ``day`` recomputed from the test's own record of events."""
    checked = month["checked"]

    def active(n: int) -> int:
        return len(set().union(*(checked[day - timedelta(days=k)] for k in range(n))))

    total = sum(
        month["joined"][d] - month["left"][d] for d in month["joined"] | month["left"] if d <= day
    )
    buckets = dict.fromkeys((label for label, *_ in STREAK_BUCKETS), 0)
    for streak in month["streaks"][day]:
        for label, _, first, last in STREAK_BUCKETS:
            if streak >= first and (last is None or streak <= last):
                buckets[label] += 1
    return {
        "members": {"total": total, "joined": month["joined"][day], "left": month["left"][day]},
        "active": {"dau": active(1), "wau": active(7), "mau": active(30)},
        "checkins": len(month["streaks"][day]),
        "makeups": month["makeups"][day],
        "new_streaks": sum(1 for s in month["streaks"][day] if s == 1),
        "streaks": buckets,
        "net": month["net"][day],
        "outstanding": month["outstanding"][day],
    }


def snapshot_all(stack, month) -> list[dict[str, Any]]:
    app, c = month["app"], month["community"]
    out = []
    for index in range(DAYS):
        day = FIRST + timedelta(days=index)
        # Snapshots run after the fortnight: each reads its day's frozen counters.
        snapshot, written, identical = app.metrics.snapshot(c, day)
        assert written and identical
        out.append(snapshot)
    return out


def test_every_figure_equals_the_reference_across_a_dst_change(stack, month):
    snapshots = snapshot_all(stack, month)
    for snapshot in snapshots:
        day = date.fromisoformat(snapshot["day"])
        expected = reference(month, day)
        assert snapshot["members"] == expected["members"], day
        assert snapshot["active"] == expected["active"], day
        assert snapshot["checkins"]["count"] == expected["checkins"], day
        assert snapshot["checkins"]["makeups"] == expected["makeups"], day
        assert snapshot["checkins"]["new_streaks"] == expected["new_streaks"], day
        assert snapshot["streaks"] == expected["streaks"], day
        assert snapshot["points"]["net"] == expected["net"], day
        assert snapshot["points"]["outstanding"] == expected["outstanding"], day
        wau = expected["active"]["wau"]
        assert snapshot["checkins"]["rate"] == (round(expected["checkins"] / wau, 3) if wau else 0)
    # The day of the change (23 hours long) has its check-ins like any other.
    dst = next(s for s in snapshots if s["day"] == "2027-03-14")
    assert dst["checkins"]["count"] == len(month["streaks"][date(2027, 3, 14)])
    for snapshot in snapshots:
        day = date.fromisoformat(snapshot["day"])
        assert snapshot["points"]["redeemed"]["redemption"] == month["redeemed"][day]
        assert snapshot["points"]["adjusted"]["adjustment"] == (5 if day in ADJUSTED else 0)
    assert sum(month["redeemed"].values()) < 0  # the month had redemptions
    assert sum(month["makeups"].values()) > 0  # and make-ups
    assert snapshots[-1]["members"]["total"] == 13 - 2
    assert snapshots[-1]["active"]["mau"] == len(set().union(*month["checked"].values()))


def test_a_rerun_of_a_day_is_identical_and_writes_nothing(stack, month):
    snapshots = snapshot_all(stack, month)
    app, c = month["app"], month["community"]
    # Weeks later, with members still checking in: the past day is unchanged.
    later = local(FIRST + timedelta(days=DAYS + 3), 10)
    stack.clock.set(later)
    app.checkins.check_in(c, "m01", later)
    again, written, identical = app.metrics.snapshot(c, FIRST + timedelta(days=5))
    assert (written, identical) == (False, True)
    assert again == snapshots[5]
    assert app.metrics.store.get(c.id, FIRST + timedelta(days=5)) == snapshots[5]


def test_a_late_first_snapshot_derives_its_totals_from_the_all_time_counters(stack, month):
    app, c = month["app"], month["community"]
    # No snapshot before: day 10 is snapshotted first, days later.
    day = FIRST + timedelta(days=10)
    stack.clock.set(local(FIRST + timedelta(days=DAYS), 12))
    snapshot, written, _ = app.metrics.snapshot(c, day)
    expected = reference(month, day)
    assert written
    assert snapshot["members"]["total"] == expected["members"]["total"]
    assert snapshot["points"]["outstanding"] == expected["outstanding"]


def test_a_snapshot_costs_the_same_requests_for_few_and_many_members(stack):
    stack.push(make_config(jobs=[], published_at="2027-03-01T00:00:00Z", quiet_hours=None))
    app = stack.app()
    c = app.config().communities[0]
    costs = []
    for count in (10, 120):
        day = date(2027, 3, 8) + timedelta(days=len(costs) * 40)
        for i in range(count):
            at = datetime.combine(day, time(2, 0), tzinfo=UTC) + timedelta(seconds=i)
            stack.clock.set(at)
            app.checkins.check_in(c, f"n{len(costs)}-{i}", at)
        stack.clock.set(datetime.combine(day + timedelta(days=1), time(12, 0), tzinfo=UTC))
        app.metrics.snapshot(c, day - timedelta(days=1))  # the day before: the chain's start
        with RequestCounter() as counter:
            snapshot, written, _ = app.metrics.snapshot(c, day)
        assert written and snapshot["checkins"]["count"] == count
        costs.append(counter.by_operation())
    assert costs[0] == costs[1]
    assert ("dynamodb", "Scan") not in costs[0]
