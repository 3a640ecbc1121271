"""Lottery eligibility and weights: each rule at its boundaries, day boundaries in
the community's zone, the stored verdict's JSON, weights' bounds, and impossible
rule sets for config validation. Pure: no AWS, no clock."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from autopilot.lottery.draw import MAX_WEIGHT
from autopilot.lottery.eligibility import (
    RULE_KINDS,
    Eligibility,
    EligibilityRules,
    InvalidEligibility,
    JoinedBeforeOpen,
    LotteryWindow,
    MemberFacts,
    MinCheckins,
    MinStreak,
    MinTier,
    NotLeft,
    NotRecentWinner,
    Weighting,
    WeightMode,
    count_window_checkins,
    evaluate,
    impossible_rules,
    streak_at_close,
    weight_of,
    window_for,
)
from hypothesis import given, settings
from hypothesis import strategies as st

SHANGHAI = ZoneInfo("Asia/Shanghai")
TIERS = ("bronze", "silver", "gold")


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0, tz=SHANGHAI):
    return datetime(year, month, day, hour, minute, tzinfo=tz).astimezone(UTC)


# A weekly lottery in Shanghai: opens Monday 2026-11-23 00:00, closes Friday 19:55.
OPENS = local(2026, 11, 23)
CLOSES = local(2026, 11, 27, 19, 55)
WINDOW = LotteryWindow(OPENS, CLOSES, SHANGHAI)
FRIDAY = date(2026, 11, 27)


def facts(**changes) -> MemberFacts:
    """A member who passes every rule below unless a test changes a fact."""
    base = MemberFacts(
        member_id="alice",
        joined_at=local(2026, 1, 1),
        checkins_in_window=5,
        streak=10,
        last_checkin_day=FRIDAY,
        tier="silver",
        tickets=3,
    )
    return replace(base, **changes)


def verdict(rule, member: MemberFacts, window: LotteryWindow = WINDOW) -> Eligibility:
    return evaluate(EligibilityRules((rule,)), member, window, tier_ids=TIERS)


# -- the window ---------------------------------------------------------------------------


def test_window_days_of_a_weekly_lottery():
    assert (WINDOW.first_day, WINDOW.last_day, WINDOW.close_day) == (
        date(2026, 11, 23),
        FRIDAY,
        FRIDAY,
    )
    assert WINDOW.day_count == 5


def test_a_close_at_the_day_boundary_does_not_add_the_day_it_begins():
    window = LotteryWindow(OPENS, local(2026, 11, 28), SHANGHAI)  # Saturday 00:00
    assert window.last_day == FRIDAY
    assert window.day_count == 5
    # ...but streaks are judged on Saturday: a check-in at the close counts for it.
    assert window.close_day == date(2026, 11, 28)


def test_window_days_follow_the_day_boundary():
    # With a 04:00 boundary, Monday 00:00-03:59 still belongs to Sunday.
    window = LotteryWindow(OPENS, CLOSES, SHANGHAI, time(4))
    assert window.first_day == date(2026, 11, 22)
    assert window.day_count == 6


@pytest.mark.parametrize(
    ("opens_at", "closes_at", "message"),
    [
        (CLOSES, CLOSES, "closes_at: the window is empty"),
        (CLOSES, OPENS, "closes_at: the window is empty"),
        (OPENS.replace(tzinfo=None), CLOSES, "opens_at: must be a timezone-aware datetime"),
    ],
)
def test_an_empty_or_naive_window_is_refused(opens_at, closes_at, message):
    with pytest.raises(InvalidEligibility, match=message):
        LotteryWindow(opens_at, closes_at, SHANGHAI)


def test_window_for_uses_the_community_zone_name():
    assert window_for(OPENS, CLOSES, "Asia/Shanghai", time(0)) == WINDOW


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        ([], 0),
        ([date(2026, 11, 22)], 0),  # Sunday: before the window
        ([date(2026, 11, 23), date(2026, 11, 27)], 2),  # first and last day
        ([date(2026, 11, 28)], 0),  # Saturday: after the last day
        ([date(2026, 11, 24), date(2026, 11, 24)], 1),  # a day counts once
    ],
)
def test_count_window_checkins(days, expected):
    assert count_window_checkins(days, WINDOW) == expected


# -- each rule at its boundaries ----------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "have", "eligible"),
    [(5, 5, True), (5, 4, False), (5, 6, True), (0, 0, True), (1, 0, False)],
)
def test_min_checkins(count, have, eligible):
    result = verdict(MinCheckins(count), facts(checkins_in_window=have))
    assert result.eligible is eligible
    if not eligible:
        assert result.failures[0].rule == "min_checkins"
        assert result.reasons() == [
            f"{have} check-in{'' if have == 1 else 's'} in the window "
            f"(2026-11-23 to 2026-11-27), {count} needed"
        ]


@pytest.mark.parametrize(
    ("streak", "last_day", "freezes", "alive"),
    [
        (5, FRIDAY, 0, 5),  # checked in on the close day
        (5, FRIDAY - timedelta(days=1), 0, 5),  # the day before: can still check in
        (5, FRIDAY - timedelta(days=2), 0, 0),  # missed Thursday: broken
        (5, FRIDAY - timedelta(days=2), 1, 5),  # ...unless a freeze bridges it
        (5, FRIDAY - timedelta(days=3), 1, 0),  # two missed days, one freeze
        (5, FRIDAY + timedelta(days=1), 0, 5),  # a day after the close (member's zone east)
        (0, None, 0, 0),  # never checked in
    ],
)
def test_streak_alive_at_close(streak, last_day, freezes, alive):
    member = facts(streak=streak, last_checkin_day=last_day, freezes=freezes)
    assert streak_at_close(member, FRIDAY) == alive


@pytest.mark.parametrize(
    ("need", "streak", "last_day", "eligible", "reason"),
    [
        (5, 5, FRIDAY, True, None),
        (5, 4, FRIDAY, False, "streak of 4 days at the close, 5 needed"),
        (5, 6, date(2026, 11, 26), True, None),
        (
            5,
            9,
            date(2026, 11, 25),
            False,
            "streak of 9 days ended with the last check-in on 2026-11-25 and was broken "
            "by the close day 2026-11-27; a streak of 5 needed",
        ),
        (1, 0, None, False, "streak of 0 days at the close, 1 needed"),
        (0, 0, None, True, None),
    ],
)
def test_min_streak(need, streak, last_day, eligible, reason):
    result = verdict(MinStreak(need), facts(streak=streak, last_checkin_day=last_day))
    assert result.eligible is eligible
    assert result.reasons() == ([reason] if reason else [])


@pytest.mark.parametrize(
    ("checkin_local", "alive"),
    [
        # A close at Saturday 00:00: the close day is Saturday, so Friday keeps the
        # streak alive and Thursday does not, decided to the minute in local time.
        (datetime(2026, 11, 26, 23, 59), False),  # Thursday 23:59 local
        (datetime(2026, 11, 27, 0, 1), True),  # Friday 00:01 local
    ],
)
def test_streak_day_is_the_local_day_of_the_checkin_instant(checkin_local, alive):
    window = LotteryWindow(OPENS, local(2026, 11, 28), SHANGHAI)
    instant = checkin_local.replace(tzinfo=SHANGHAI).astimezone(UTC)
    # 23:59 local on Thursday is 15:59 UTC Thursday; 00:01 Friday is still Thursday in UTC.
    assert instant.date() == date(2026, 11, 26)
    member = facts(streak=3, last_checkin_day=window.day_of(instant))
    assert verdict(MinStreak(3), member, window).eligible is alive


@pytest.mark.parametrize(
    ("checkin_local", "counts"),
    [
        (datetime(2026, 11, 22, 23, 59), 0),  # Sunday 23:59 local: before the window
        (datetime(2026, 11, 23, 0, 1), 1),  # Monday 00:01 local: the first window day
    ],
)
def test_window_checkins_are_counted_by_local_day(checkin_local, counts):
    instant = checkin_local.replace(tzinfo=SHANGHAI).astimezone(UTC)
    assert count_window_checkins([WINDOW.day_of(instant)], WINDOW) == counts


@pytest.mark.parametrize(
    ("tier", "eligible", "reason"),
    [
        ("silver", True, None),
        ("gold", True, None),
        ("bronze", False, "tier 'bronze', tier 'silver' or higher needed"),
        (None, False, "no tier yet, tier 'silver' or higher needed"),
        (
            "platinum",
            False,
            "tier 'platinum' is no longer one of the community's tiers, "
            "tier 'silver' or higher needed",
        ),
    ],
)
def test_min_tier(tier, eligible, reason):
    result = verdict(MinTier("silver"), facts(tier=tier))
    assert result.eligible is eligible
    assert result.reasons() == ([reason] if reason else [])


def test_min_tier_unknown_to_the_community_admits_no_one():
    result = evaluate(EligibilityRules((MinTier("silver"),)), facts(), WINDOW, tier_ids=("a",))
    assert not result.eligible


@pytest.mark.parametrize(
    ("joined_at", "eligible"),
    [
        (OPENS - timedelta(microseconds=1), True),
        (OPENS, False),  # at the opening is not before it
        (OPENS + timedelta(hours=1), False),
        (None, False),  # unknown join time: cannot be shown to be before
    ],
)
def test_joined_before_open(joined_at, eligible):
    result = verdict(JoinedBeforeOpen(), facts(joined_at=joined_at))
    assert result.eligible is eligible
    if not eligible:
        assert "not before the lottery opened at 2026-11-22T16:00:00Z" in result.reasons()[0]


@pytest.mark.parametrize(
    ("won_local", "eligible"),
    [
        (datetime(2026, 11, 20, 20, 0), False),  # last Friday's draw: 7 days before
        (datetime(2026, 11, 19, 23, 59), True),  # Thursday 23:59: 8 days before
        (datetime(2026, 11, 20, 0, 1), False),  # Friday 00:01: 7 days before
        (datetime(2026, 11, 27, 10, 0), False),  # the close day itself
    ],
)
def test_not_recent_winner_counts_local_days(won_local, eligible):
    won_at = won_local.replace(tzinfo=SHANGHAI).astimezone(UTC)
    result = verdict(NotRecentWinner(7), facts(last_won_at=won_at))
    assert result.eligible is eligible
    if not eligible:
        assert result.failures[0].rule == "not_won_within_days"
        assert "eligible again for lotteries closing on" in result.reasons()[0]


def test_not_recent_winner_reason_names_the_days():
    won_at = local(2026, 11, 20, 20)
    (reason,) = verdict(NotRecentWinner(7), facts(last_won_at=won_at)).reasons()
    assert reason == (
        "won a lottery on 2026-11-20, within 7 days of the close day 2026-11-27; "
        "eligible again for lotteries closing on 2026-11-28 or later"
    )


def test_never_won_passes_not_recent_winner():
    assert verdict(NotRecentWinner(365), facts(last_won_at=None)).eligible


def test_not_recent_winner_is_the_same_on_a_dst_week():
    # New York falls back on 2026-11-01: the week before has 169 hours, but a
    # winner of the Friday draw before is still exactly 7 calendar days back.
    ny = ZoneInfo("America/New_York")
    window = LotteryWindow(local(2026, 11, 2, tz=ny), local(2026, 11, 6, 19, 55, tz=ny), ny)
    won_at = local(2026, 10, 30, 20, 0, tz=ny)
    assert window.closes_at - won_at > timedelta(days=7)  # more than 7 x 24 h...
    assert not verdict(NotRecentWinner(7), facts(last_won_at=won_at), window).eligible


@pytest.mark.parametrize(
    ("left_at", "eligible"),
    [
        (None, True),
        (CLOSES - timedelta(seconds=1), False),
        (CLOSES, True),  # left at the close: was still a member for it
        (OPENS - timedelta(days=30), False),
    ],
)
def test_not_left(left_at, eligible):
    result = verdict(NotLeft(), facts(left_at=left_at))
    assert result.eligible is eligible
    if not eligible:
        assert result.reasons()[0].startswith("left the community at ")


def test_every_failed_rule_is_listed_in_a_fixed_order():
    rules = EligibilityRules.of(
        not_left=True,
        min_tier="gold",
        min_checkins=5,
        min_streak=3,
        joined_before_open=True,
        not_won_within_days=7,
    )
    member = facts(
        left_at=OPENS,
        tier="bronze",
        checkins_in_window=1,
        streak=0,
        last_checkin_day=None,
        joined_at=OPENS,
        last_won_at=CLOSES - timedelta(days=1),
    )
    result = evaluate(rules, member, WINDOW, tier_ids=TIERS)
    assert [f.rule for f in result.failures] == list(RULE_KINDS)
    assert result.weight is None


def test_no_rules_admit_everyone_with_equal_weight():
    result = evaluate(EligibilityRules(), facts(checkins_in_window=0), WINDOW)
    assert (result.eligible, result.weight, result.failures) == (True, 1, ())


# -- validation of the rules ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_checkins": -1}, "min_checkins: must be an integer >= 0, got -1"),
        ({"min_streak": -2}, "min_streak: must be an integer >= 0, got -2"),
        ({"not_won_within_days": 0}, "not_won_within_days: must be an integer >= 1, got 0"),
        ({"min_checkins": 2.5}, "min_checkins: must be an integer >= 0, got 2.5"),
        ({"min_streak": True}, "min_streak: must be an integer >= 0, got True"),
        ({"min_tier": ""}, "min_tier: must be a tier id"),
    ],
)
def test_invalid_rules_are_refused_naming_the_field(kwargs, message):
    with pytest.raises(InvalidEligibility, match=message) as caught:
        EligibilityRules.of(**kwargs)
    assert isinstance(caught.value, ValueError)
    assert caught.value.issues[0].path == (next(iter(kwargs)),)


def test_unknown_tier_is_a_problem_given_the_community_tiers():
    rules = EligibilityRules.of(min_tier="diamond")
    (issue,) = rules.problems(TIERS)
    assert issue.path == ("min_tier",)
    assert issue.message == (
        "unknown tier 'diamond'; the community's tiers are: 'bronze', 'silver', 'gold'"
    )
    assert rules.problems() == []  # without the tiers it cannot be judged


def test_a_rule_kind_given_twice_is_refused():
    with pytest.raises(InvalidEligibility, match="min_checkins: given more than once"):
        EligibilityRules((MinCheckins(1), MinCheckins(2)))


def test_and_replaces_a_rule_of_the_same_kind():
    rules = EligibilityRules.of(min_checkins=1).and_(MinCheckins(3)).and_(NotLeft())
    assert rules.rules == (MinCheckins(3), NotLeft())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"member_id": ""}, "^member_id: member id is empty$"),
        ({"member_id": "a\tb"}, r"^member_id: member id .* control character U\+0009"),
        ({"checkins_in_window": -1}, "checkins_in_window: must be an integer >= 0"),
        ({"joined_at": datetime(2026, 1, 1)}, "joined_at: must be a timezone-aware datetime"),
        ({"last_checkin_day": datetime(2026, 1, 1, tzinfo=UTC)}, "last_checkin_day: must be"),
    ],
)
def test_invalid_facts_are_refused(kwargs, message):
    with pytest.raises(InvalidEligibility, match=message):
        facts(**kwargs)


# -- weights ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weighting", "tickets", "checkins", "weight"),
    [
        (Weighting(), 50, 5, 1),
        (Weighting(WeightMode.TICKETS, cap=10), 3, 5, 3),
        (Weighting(WeightMode.TICKETS, cap=10), 10, 5, 10),
        (Weighting(WeightMode.TICKETS, cap=10), 11, 5, 10),  # capped
        (Weighting(WeightMode.TICKETS, cap=10), 0, 5, 1),  # at least 1
        (Weighting(WeightMode.TICKETS), 5_000_000, 5, MAX_WEIGHT),  # the draw's limit
        (Weighting(WeightMode.CHECKINS, cap=3), 0, 2, 2),
        (Weighting(WeightMode.CHECKINS, cap=3), 0, 3, 3),
        (Weighting(WeightMode.CHECKINS, cap=3), 0, 4, 3),
        (Weighting(WeightMode.CHECKINS, cap=3), 0, 0, 1),
        (Weighting("checkins", cap=3), 0, 7, 3),  # the mode from config text
    ],
)
def test_weights(weighting, tickets, checkins, weight):
    member = facts(tickets=tickets, checkins_in_window=checkins)
    assert weight_of(weighting, member) == weight
    assert evaluate(EligibilityRules(), member, WINDOW, weighting=weighting).weight == weight


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cap": 0}, f"weight_cap: must be an integer 1..{MAX_WEIGHT}, got 0"),
        ({"cap": MAX_WEIGHT + 1}, f"weight_cap: must be an integer 1..{MAX_WEIGHT}"),
        ({"mode": "random"}, "weight: unknown mode 'random'; use equal, tickets, checkins"),
    ],
)
def test_invalid_weighting_is_refused(kwargs, message):
    with pytest.raises(InvalidEligibility, match=message):
        Weighting(**kwargs)


def test_an_ineligible_member_has_no_weight():
    result = verdict(MinCheckins(9), facts(tickets=5))
    assert (result.eligible, result.weight) == (False, None)


# -- impossible and degenerate rule sets -------------------------------------------------------


def test_more_checkins_than_window_days_is_impossible():
    assert impossible_rules(EligibilityRules.of(min_checkins=5), WINDOW) == []
    (issue,) = impossible_rules(EligibilityRules.of(min_checkins=6), WINDOW)
    assert (issue.path, issue.severity) == (("min_checkins",), "error")
    assert issue.message == (
        "6 check-ins needed, but the window (2026-11-23 to 2026-11-27) has only 5 days "
        "and a member checks in at most once a day: no one could ever be eligible"
    )


def test_strict_rules_are_not_impossible():
    rules = EligibilityRules.of(
        min_streak=365, not_won_within_days=3650, joined_before_open=True, not_left=True
    )
    assert impossible_rules(rules, WINDOW, tier_ids=TIERS) == []


def test_impossible_rules_includes_the_rules_own_problems():
    issues = impossible_rules(
        EligibilityRules.of(min_tier="diamond"), WINDOW, tier_ids=TIERS, weighting=Weighting()
    )
    assert [i.path for i in issues] == [("min_tier",)]


def test_checkin_weights_that_cannot_differ_are_warned_about():
    weighting = Weighting(WeightMode.CHECKINS, cap=10)
    issues = impossible_rules(EligibilityRules.of(min_checkins=5), WINDOW, weighting=weighting)
    assert [(i.path, i.severity) for i in issues] == [
        (("weight_cap",), "warning"),
        (("weight",), "warning"),
    ]
    assert "no weight can exceed 5" in issues[0].message
    assert "all weights are equal" in issues[1].message
    fine = Weighting(WeightMode.CHECKINS, cap=5)
    assert impossible_rules(EligibilityRules.of(min_checkins=2), WINDOW, weighting=fine) == []


# -- the stored verdict ------------------------------------------------------------------------


def test_json_round_trip_of_an_ineligible_verdict():
    member = facts(
        checkins_in_window=3,
        left_at=datetime(2026, 11, 25, 1, 2, 3, 456789, tzinfo=UTC),
        last_won_at=local(2026, 11, 20, 20),
        member_id="张伟",
    )
    rules = EligibilityRules.of(min_checkins=5, not_left=True, not_won_within_days=7)
    result = evaluate(rules, member, WINDOW, tier_ids=TIERS)
    data = result.to_json()
    assert data["eligible"] is False and data["weight"] is None
    assert data["failures"][0] == {
        "rule": "min_checkins",
        "reason": "3 check-ins in the window (2026-11-23 to 2026-11-27), 5 needed",
    }
    assert data["facts"]["left_at"] == "2026-11-25T01:02:03.456789Z"
    assert data["facts"]["last_won_at"] == "2026-11-20T12:00:00Z"
    assert data["close_day"] == "2026-11-27"
    assert Eligibility.from_json(json.loads(json.dumps(data))) == result
    assert Eligibility.from_json(result.to_json_text()) == result


def test_json_form_is_stable():
    member = MemberFacts(
        "bob",
        joined_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        checkins_in_window=4,
        streak=2,
        last_checkin_day=date(2026, 11, 26),
        tier="gold",
        tickets=2,
    )
    result = evaluate(
        EligibilityRules.of(min_checkins=3),
        member,
        WINDOW,
        weighting=Weighting(WeightMode.TICKETS, cap=5),
    )
    assert result.to_json_text() == (
        '{"close_day":"2026-11-27","eligible":true,"facts":{"checkins_in_window":4,'
        '"freezes":0,"joined_at":"2026-01-02T03:04:05Z","last_checkin_day":"2026-11-26",'
        '"last_won_at":null,"left_at":null,"member_id":"bob","streak":2,"tickets":2,'
        '"tier":"gold"},"failures":[],"format":1,"member_id":"bob","weight":2}'
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": 2}, "format: unsupported format 2"),
        ({"eligible": True}, "eligible: must be true exactly when there are no failures"),
        ({"weight": 3}, "weight: must be 1..1000000 when eligible, else null"),
        ({"failures": [{"rule": "luck", "reason": "x"}]}, "failures: expected a list"),
        ({"member_id": "mallory"}, "member_id: differs from facts.member_id"),
        ({"close_day": "27/11/2026"}, "close_day: expected an ISO date"),
        ({"facts": {"member_id": "alice", "streak": -1}}, "facts.streak: must be an integer"),
        ({"facts": {"member_id": "alice", "bonus": 1}}, "facts: unknown field"),
        ({"facts": {"member_id": "alice", "left_at": "2026-11-25"}}, "facts.left_at: "),
    ],
)
def test_malformed_json_is_refused(change, message):
    data = verdict(MinCheckins(9), facts(checkins_in_window=1)).to_json()
    data.update(change)
    with pytest.raises(InvalidEligibility, match=message):
        Eligibility.from_json(data)


# -- properties ----------------------------------------------------------------------------------

DAY0 = date(2026, 11, 27)
# Whole minutes around the close, sometimes with microseconds (the JSON keeps them).
instants = st.builds(
    lambda m, us: CLOSES + timedelta(minutes=m, microseconds=us),
    st.integers(-60 * 24 * 40, 60 * 24 * 10),
    st.sampled_from([0, 0, 1, 999_999]),
)
member_facts = st.builds(
    MemberFacts,
    member_id=st.sampled_from(["a", "b", "张伟"]),
    joined_at=st.none() | instants,
    left_at=st.none() | instants,
    checkins_in_window=st.integers(0, 8),
    streak=st.integers(0, 30),
    last_checkin_day=st.none() | st.integers(-10, 2).map(lambda d: DAY0 + timedelta(days=d)),
    freezes=st.integers(0, 3),
    tier=st.none() | st.sampled_from([*TIERS, "retired"]),
    last_won_at=st.none() | instants,
    tickets=st.integers(0, 2 * MAX_WEIGHT),
)
single_rules = st.one_of(
    st.integers(0, 8).map(MinCheckins),
    st.integers(0, 30).map(MinStreak),
    st.sampled_from(TIERS).map(MinTier),
    st.just(JoinedBeforeOpen()),
    st.integers(1, 30).map(NotRecentWinner),
    st.just(NotLeft()),
)
rule_sets = st.lists(single_rules, max_size=6, unique_by=lambda r: r.kind).map(
    lambda rs: EligibilityRules(tuple(rs))
)
weightings = st.builds(
    Weighting, mode=st.sampled_from(list(WeightMode)), cap=st.integers(1, MAX_WEIGHT)
)


@settings(max_examples=300, deadline=None)
@given(rules=rule_sets, extra=single_rules, member=member_facts, weighting=weightings)
def test_adding_a_rule_never_admits_anyone(rules, extra, member, weighting):
    before = evaluate(rules, member, WINDOW, tier_ids=TIERS, weighting=weighting)
    after = evaluate(rules.and_(extra), member, WINDOW, tier_ids=TIERS, weighting=weighting)
    if not any(r.kind == extra.kind for r in rules.rules):  # a pure addition
        assert after.eligible <= before.eligible
        assert set(before.failures) <= set(after.failures)
    # A verdict is eligible exactly when nothing failed, and only then weighed in bounds.
    for result in (before, after):
        assert result.eligible == (not result.failures)
        if result.eligible:
            assert isinstance(result.weight, int) and 1 <= result.weight <= MAX_WEIGHT
        else:
            assert result.weight is None
        assert Eligibility.from_json(result.to_json_text()) == result


@settings(max_examples=200, deadline=None)
@given(member=member_facts, weighting=weightings)
def test_weights_are_within_bounds_and_cap(member, weighting):
    weight = weight_of(weighting, member)
    assert 1 <= weight <= min(MAX_WEIGHT, weighting.cap if weighting.mode != "equal" else 1)


@settings(max_examples=200, deadline=None)
@given(
    opens=instants,
    length_minutes=st.integers(1, 60 * 24 * 20),
    boundary=st.sampled_from([time(0), time(4), time(23, 30)]),
    zone_name=st.sampled_from(["Asia/Shanghai", "America/New_York", "Pacific/Apia", "UTC"]),
    offsets=st.lists(st.integers(-60 * 24 * 3, 60 * 24 * 25), max_size=30),
)
def test_no_member_can_have_more_window_checkins_than_window_days(
    opens, length_minutes, boundary, zone_name, offsets
):
    # The premise of the "impossible min_checkins" error: check-ins made inside the
    # window, at most one per day, never outnumber the window's days.
    window = window_for(opens, opens + timedelta(minutes=length_minutes), zone_name, boundary)
    made = [opens + timedelta(minutes=m) for m in offsets]
    inside = [window.day_of(t) for t in made if window.opens_at <= t < window.closes_at]
    assert count_window_checkins(inside, window) == len(set(inside)) <= window.day_count
    assert window.close_day >= window.last_day >= window.first_day


def test_the_documented_verdict_is_what_the_code_stores():
    # docs/lottery.md shows a stored verdict; it must be exactly what evaluate
    # produces for its facts, and read back by from_json.
    doc = (Path(__file__).resolve().parents[3] / "docs" / "lottery.md").read_text("utf-8")
    section = doc[doc.index("\n## Eligibility and weights\n") :]
    block = section.split("```json\n", 1)[1].split("```", 1)[0]
    documented = json.loads(block)
    stored = Eligibility.from_json(documented)
    recomputed = evaluate(EligibilityRules.of(min_checkins=5), stored.facts, WINDOW)
    assert recomputed == stored
    assert recomputed.to_json() == documented


def test_a_weight_mode_from_config_text_becomes_the_enum():
    assert Weighting("tickets", cap=4).mode is WeightMode.TICKETS
