"""Reminder rules: specs, selection plans, the at-most-once key, quiet hours, rechecks."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from autopilot.checkins.rules import AccountState, CheckinRules, check_in
from autopilot.config.model import QuietHours
from autopilot.reminders.rules import (
    CONVERTED,
    FAILED,
    OUTCOME_COUNTERS,
    SELECTED,
    SENT,
    UNCERTAIN,
    InactiveSpec,
    LotteryAudience,
    LotteryCycle,
    LotterySpec,
    MemberFacts,
    NotCheckedInSpec,
    PostFilter,
    QuietAction,
    QuietDecision,
    ReminderKind,
    SelectionSource,
    SkipReason,
    StreakAtRiskSpec,
    converted,
    draws_today,
    index_partition,
    index_sort_key,
    member_today,
    member_zone,
    parse_spec,
    plan_selection,
    quiet_decision,
    reminder_key,
    shard_of,
    skipped_counter,
    still_due,
    streak_risk,
)
from autopilot.timeutil import zone
from hypothesis import given, settings
from hypothesis import strategies as st

SHANGHAI = zone("Asia/Shanghai")
NEW_YORK = zone("America/New_York")
B4 = time(4, 0)
MIDNIGHT = time(0, 0)
ONE = timedelta(days=1)
NIGHT = QuietHours(start=time(22, 0), end=time(8, 0))
SHARDS_OF_SAMPLE = [1, 1, 3, 3]  # sha256 of the UTF-8 id, first 8 bytes, mod 4


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- specs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: NotCheckedInSpec(active_days=0), "not_checked_in.active_days"),
        (lambda: StreakAtRiskSpec(min_streak=-1), "streak_at_risk.min_streak"),
        (lambda: InactiveSpec(days=True), "inactive.days"),
        (lambda: LotterySpec(lottery_id=""), "lottery.lottery_id"),
        (lambda: LotterySpec(lottery_id="weekly", active_days=0), "lottery.active_days"),
    ],
)
def test_invalid_specs_are_refused_naming_the_field(factory, message):
    with pytest.raises(ValueError, match=message):
        factory()


def test_parse_spec_builds_typed_specs_and_names_what_is_wrong():
    assert parse_spec("streak_at_risk", {"min_streak": 5}) == StreakAtRiskSpec(min_streak=5)
    assert parse_spec("not_checked_in", {}) == NotCheckedInSpec(active_days=7)
    spec = parse_spec("lottery", {"lottery_id": "weekly", "audience": "entrants"})
    assert spec == LotterySpec("weekly", LotteryAudience.ENTRANTS)
    assert spec.kind is ReminderKind.LOTTERY
    with pytest.raises(ValueError, match="unknown reminder kind 'nag'"):
        parse_spec("nag", {})
    with pytest.raises(ValueError, match=r"unknown parameter.*'min_days'"):
        parse_spec("inactive", {"min_days": 3})
    with pytest.raises(ValueError, match=r"lottery\.audience must be one of"):
        parse_spec("lottery", {"lottery_id": "weekly", "audience": "everyone"})
    with pytest.raises(ValueError, match=r"lottery: .*lottery_id"):
        parse_spec("lottery", {})


# --- selection plans ------------------------------------------------------------------------


def test_not_checked_in_reads_the_active_days_before_today_shanghai_boundary_4():
    # 20:00 in Shanghai on 30 Nov.
    plan = plan_selection(NotCheckedInSpec(active_days=7), utc(2026, 11, 30, 12), SHANGHAI, B4)
    assert plan.source is SelectionSource.ACTIVE_BY_LAST_DAY
    assert (plan.today, plan.first_day, plan.last_day) == (
        date(2026, 11, 30),
        date(2026, 11, 23),
        date(2026, 11, 29),
    )
    assert plan.post_filter is None


def test_17_utc_on_the_last_of_the_month_is_the_next_month_in_shanghai():
    # 17:00 UTC on 30 Nov is 01:00 on 1 Dec in Shanghai: with a midnight boundary
    # the community's day is 1 Dec (the UTC date would wrongly say 30 Nov) ...
    now = utc(2026, 11, 30, 17)
    plan = plan_selection(StreakAtRiskSpec(min_streak=3), now, SHANGHAI, MIDNIGHT)
    assert plan.today == date(2026, 12, 1)
    assert plan.first_day == plan.last_day == date(2026, 11, 30)
    assert (plan.post_filter, plan.threshold) == (PostFilter.STREAK_AT_LEAST, 3)
    # ... and with a 04:00 boundary, 01:00 still belongs to 30 Nov.
    plan = plan_selection(StreakAtRiskSpec(min_streak=3), now, SHANGHAI, B4)
    assert plan.today == date(2026, 11, 30)
    assert plan.first_day == plan.last_day == date(2026, 11, 29)
    # Across February's end: 17:00 UTC on 28 Feb 2027 is 1 Mar in Shanghai.
    plan = plan_selection(InactiveSpec(days=30), utc(2027, 2, 28, 17), SHANGHAI, MIDNIGHT)
    assert plan.today == date(2027, 3, 1)
    assert plan.first_day == plan.last_day == date(2027, 1, 30)


def test_new_york_evening_is_the_previous_utc_date():
    # 01:30 UTC on 1 Dec is 20:30 EST on 30 Nov.
    plan = plan_selection(NotCheckedInSpec(active_days=3), utc(2026, 12, 1, 1, 30), NEW_YORK, B4)
    assert (plan.today, plan.first_day, plan.last_day) == (
        date(2026, 11, 30),
        date(2026, 11, 27),
        date(2026, 11, 29),
    )


def test_inactive_reads_exactly_one_day_so_a_member_is_nudged_once_per_stretch():
    spec = InactiveSpec(days=5)
    last_checkin = date(2026, 11, 20)
    selected_on = [
        d
        for d in (date(2026, 11, 15) + n * ONE for n in range(40))
        if (p := plan_selection(spec, datetime.combine(d, time(12), tzinfo=SHANGHAI), SHANGHAI, B4))
        and p.first_day == last_checkin
    ]
    assert selected_on == [date(2026, 11, 25)]


def test_lottery_plans():
    now = utc(2026, 11, 30, 10)
    entrants = plan_selection(LotterySpec("weekly", LotteryAudience.ENTRANTS), now, SHANGHAI, B4)
    assert entrants.source is SelectionSource.LOTTERY_ENTRIES
    assert entrants.lottery_id == "weekly"
    with pytest.raises(ValueError, match="no day range"):
        entrants.sort_key_range()
    others = plan_selection(LotterySpec("weekly", active_days=2), now, SHANGHAI, B4)
    assert others.source is SelectionSource.ACTIVE_BY_LAST_DAY
    assert (others.first_day, others.last_day) == (date(2026, 11, 28), date(2026, 11, 30))
    assert others.post_filter is PostFilter.NOT_ENTERED


def test_sort_key_range_bounds_the_days_of_the_plan():
    plan = plan_selection(NotCheckedInSpec(active_days=2), utc(2026, 12, 1, 12), SHANGHAI, B4)
    low, high = plan.sort_key_range()
    assert (low, high) == ("2026-11-29", "2026-11-30$")


@settings(max_examples=300, deadline=None)
@given(
    offset=st.integers(-5, 5),
    member=st.text(min_size=1, max_size=20),
    active_days=st.integers(1, 4),
)
def test_a_member_key_falls_in_the_range_iff_its_day_does(offset, member, active_days):
    plan = plan_selection(NotCheckedInSpec(active_days), utc(2026, 12, 1, 12), SHANGHAI, B4)
    assert plan.first_day is not None and plan.last_day is not None
    low, high = plan.sort_key_range()
    day = plan.today + offset * ONE
    key = index_sort_key(day, member)
    # DynamoDB compares strings by UTF-8 bytes.
    inside = low.encode() <= key.encode() <= high.encode()
    assert inside == (plan.first_day <= day <= plan.last_day)


def test_shards_are_stable_and_spread_members():
    # Fixed values: a shard must not change between processes or releases.
    assert [shard_of(m, 4) for m in ("m1", "m2", "m3", "用户")] == SHARDS_OF_SAMPLE
    counts = [0] * 4
    for n in range(4000):
        counts[shard_of(f"member-{n}", 4)] += 1
    assert min(counts) > 900
    assert shard_of("m1", 1) == 0
    assert index_partition("c1", shard_of("m1", 4)) == f"c1#{SHARDS_OF_SAMPLE[0]}"
    with pytest.raises(ValueError, match="shards must be an integer >= 1"):
        shard_of("m1", 0)
    with pytest.raises(ValueError, match="community 'c#1'"):
        index_partition("c#1", 0)


def test_draws_today_only_before_the_draw_on_the_same_community_day():
    now = utc(2026, 11, 30, 10)  # 18:00 Shanghai
    assert draws_today(utc(2026, 11, 30, 12), now, SHANGHAI, B4)  # 20:00 tonight
    assert not draws_today(utc(2026, 11, 30, 9), now, SHANGHAI, B4)  # already drawn
    assert draws_today(utc(2026, 11, 30, 19), now, SHANGHAI, B4)  # 03:00, before boundary
    assert not draws_today(utc(2026, 11, 30, 20), now, SHANGHAI, B4)  # 04:00: tomorrow


# --- streaks ------------------------------------------------------------------------------------


def test_streak_at_risk_and_freezes():
    today = date(2026, 11, 30)
    assert streak_risk(today - ONE, 10, 0, today).at_risk
    assert not streak_risk(today - ONE, 10, 0, today).freeze_covers
    assert streak_risk(today - ONE, 10, 1, today).freeze_covers
    assert not streak_risk(today, 10, 1, today).at_risk  # checked in today
    # Two days ago with one freeze: alive today, but missing today needs two.
    risk = streak_risk(today - 2 * ONE, 10, 1, today)
    assert (risk.alive, risk.at_risk, risk.freezes_needed, risk.freeze_covers) == (
        True,
        True,
        2,
        False,
    )
    assert not streak_risk(today - 3 * ONE, 10, 1, today).alive


@settings(max_examples=300, deadline=None)
@given(gap=st.integers(1, 6), streak=st.integers(1, 50), freezes=st.integers(0, 5))
def test_streak_risk_agrees_with_the_check_in_rules(gap, streak, freezes):
    today = date(2026, 11, 30)
    state = AccountState(streak=streak, last_day=today - gap * ONE, freezes=freezes)
    risk = streak_risk(state.last_day, streak, freezes, today)
    rules = CheckinRules()
    # alive: a check-in today continues the streak.
    assert risk.alive == (check_in(state, today, rules).state.streak == streak + 1)
    # freeze_covers: after missing today, a check-in tomorrow still continues it.
    tomorrow = check_in(state, today + ONE, rules)
    assert risk.freeze_covers == (tomorrow.state.streak == streak + 1)
    if risk.freeze_covers:
        assert tomorrow.freezes_used == risk.freezes_needed


# --- days, zones and the at-most-once key ----------------------------------------------------


def test_member_today_uses_their_own_zone_and_the_day_boundary():
    at = utc(2026, 12, 1, 3)  # 11:00 on 1 Dec in Shanghai, 22:00 on 30 Nov in New York
    assert member_today(at, None, SHANGHAI, B4) == date(2026, 12, 1)
    assert member_today(at, "America/New_York", SHANGHAI, B4) == date(2026, 11, 30)
    assert member_today(at, "Not/AZone", SHANGHAI, B4) == date(2026, 12, 1)
    assert member_zone("", SHANGHAI) is SHANGHAI
    # 03:30 in New York on 1 Dec is still 30 Nov with a 04:00 boundary.
    assert member_today(utc(2026, 12, 1, 8, 30), "America/New_York", SHANGHAI, B4) == date(
        2026, 11, 30
    )


def test_reminder_key_is_stable_and_per_member_local_day():
    at = utc(2026, 12, 1, 3)
    own = reminder_key("c1", "evening", "m#1", member_today(at, "America/New_York", SHANGHAI, B4))
    assert own == "rem#c1#2026-11-30#evening#m#1"
    assert reminder_key("c1", "evening", "m#1", member_today(at, None, SHANGHAI, B4)) == (
        "rem#c1#2026-12-01#evening#m#1"
    )
    assert reminder_key("c1", "lottery.weekly.draw", "m", date(2026, 12, 1)) == (
        "rem#c1#2026-12-01#lottery.weekly.draw#m"
    )
    with pytest.raises(ValueError, match="community 'c#1'"):
        reminder_key("c#1", "evening", "m", date(2026, 12, 1))
    with pytest.raises(ValueError, match="member id is empty"):
        reminder_key("c1", "evening", "", date(2026, 12, 1))


_ID = st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,6}", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(
    a=st.tuples(_ID, _ID, st.text(min_size=1, max_size=8), st.dates()),
    b=st.tuples(_ID, _ID, st.text(min_size=1, max_size=8), st.dates()),
)
def test_reminder_keys_of_different_reminders_differ(a, b):
    assert (reminder_key(*a) == reminder_key(*b)) == (a == b)


# --- quiet hours ------------------------------------------------------------------------------


def test_quiet_hours_defer_to_the_wall_clock_end_on_a_new_york_spring_forward_night():
    # 2027-03-14: 02:00 EST jumps to 03:00 EDT. Midnight EST is 05:00 UTC; the window
    # ends at 08:00 EDT = 12:00 UTC (adding 8 h of real time would give 09:00 EDT).
    decision = quiet_decision(utc(2027, 3, 14, 5), NEW_YORK, NIGHT, "defer")
    assert decision == QuietDecision(QuietAction.DEFER, utc(2027, 3, 14, 12))
    # A window ending at 02:30, a time that does not exist that night: it ends at
    # 03:00 EDT (07:00 UTC), the end of the gap.
    short = QuietHours(start=time(22, 0), end=time(2, 30))
    decision = quiet_decision(utc(2027, 3, 14, 6), NEW_YORK, short, "defer")
    assert decision == QuietDecision(QuietAction.DEFER, utc(2027, 3, 14, 7))
    assert quiet_decision(utc(2027, 3, 14, 7), NEW_YORK, short, "defer").action is (
        QuietAction.SEND
    )


def test_quiet_hours_on_a_fall_back_night_end_at_the_first_pass():
    # 2026-11-01: 01:00-02:00 happens twice in New York; 01:30 first passes at 05:30 UTC.
    window = QuietHours(start=time(22, 0), end=time(1, 30))
    decision = quiet_decision(utc(2026, 11, 1, 4), NEW_YORK, window, "defer")  # 00:00 EDT
    assert decision == QuietDecision(QuietAction.DEFER, utc(2026, 11, 1, 5, 30))


def test_quiet_hours_drop_send_and_policy():
    assert quiet_decision(utc(2027, 3, 14, 5), NEW_YORK, NIGHT, "drop") == QuietDecision(
        QuietAction.DROP
    )
    assert quiet_decision(utc(2026, 12, 1, 1), NEW_YORK, NIGHT, "drop").action is (
        QuietAction.SEND  # 20:00 EST
    )
    assert quiet_decision(utc(2027, 3, 14, 5), NEW_YORK, None, "defer").action is (QuietAction.SEND)
    with pytest.raises(ValueError, match="'defer' or 'drop'"):
        quiet_decision(utc(2026, 12, 1, 1), NEW_YORK, NIGHT, "ignore")


def test_quiet_hours_of_a_dm_follow_the_members_own_zone():
    # 20:00 in Shanghai is 07:00 in New York: quiet for a New York member until 08:00.
    at = utc(2026, 12, 1, 12)
    assert quiet_decision(at, member_zone(None, SHANGHAI), NIGHT, "defer").action is (
        QuietAction.SEND
    )
    decision = quiet_decision(at, member_zone("America/New_York", SHANGHAI), NIGHT, "defer")
    assert decision == QuietDecision(QuietAction.DEFER, utc(2026, 12, 1, 13))


# --- recheck before send ---------------------------------------------------------------------

TODAY = date(2026, 11, 30)
EVENING = utc(2026, 11, 30, 12)  # 20:00 in Shanghai


def recheck(spec, facts, now=EVENING, **kwargs):
    kwargs.setdefault("reminder_day", TODAY)
    return still_due(spec.kind, spec, facts, now, community_zone=SHANGHAI, boundary=B4, **kwargs)


def test_a_member_who_checked_in_after_selection_is_not_reminded():
    spec = NotCheckedInSpec(active_days=7)
    selected = MemberFacts("m1", last_day=TODAY - ONE)
    assert recheck(spec, selected).due
    after_checkin = MemberFacts("m1", last_day=TODAY)
    verdict = recheck(spec, after_checkin)
    assert (verdict.due, verdict.reason) == (False, SkipReason.ALREADY_CHECKED_IN)


def test_opted_out_and_left_members_are_skipped():
    spec = NotCheckedInSpec()
    verdict = recheck(spec, MemberFacts("m", TODAY - ONE, opted_out=frozenset({"not_checked_in"})))
    assert verdict.reason is SkipReason.OPTED_OUT and not verdict.due
    # Opting out of another kind does not stop this one.
    assert recheck(spec, MemberFacts("m", TODAY - ONE, opted_out=frozenset({"inactive"}))).due
    assert recheck(spec, MemberFacts("m", TODAY - ONE, left=True)).reason is SkipReason.LEFT


def test_not_checked_in_skips_members_no_longer_active():
    spec = NotCheckedInSpec(active_days=3)
    assert recheck(spec, MemberFacts("m", TODAY - 3 * ONE)).due
    assert recheck(spec, MemberFacts("m", TODAY - 4 * ONE)).reason is SkipReason.NOT_ACTIVE
    assert recheck(spec, MemberFacts("m", None)).reason is SkipReason.NOT_ACTIVE


def test_streak_at_risk_recheck():
    spec = StreakAtRiskSpec(min_streak=5)
    assert recheck(spec, MemberFacts("m", TODAY - ONE, streak=5)).due
    assert recheck(spec, MemberFacts("m", TODAY - ONE, streak=4)).reason is (
        SkipReason.STREAK_TOO_SHORT
    )
    assert recheck(spec, MemberFacts("m", TODAY, streak=6)).reason is SkipReason.ALREADY_CHECKED_IN
    assert recheck(spec, MemberFacts("m", TODAY - 2 * ONE, streak=9)).reason is (
        SkipReason.STREAK_LOST
    )


def test_inactive_recheck_and_it_survives_the_day_over():
    spec = InactiveSpec(days=7)
    facts = MemberFacts("m", TODAY - 7 * ONE)
    assert recheck(spec, facts).due
    assert recheck(spec, MemberFacts("m", TODAY - ONE)).reason is SkipReason.ALREADY_CHECKED_IN
    # Sent the next morning (deferred): the win-back nudge is still true.
    assert recheck(spec, facts, now=utc(2026, 12, 1, 2)).due
    # "Not checked in today" is not: its day is over.
    verdict = recheck(NotCheckedInSpec(), MemberFacts("m", TODAY - ONE), now=utc(2026, 12, 1, 2))
    assert verdict.reason is SkipReason.DAY_OVER


def test_day_over_is_judged_in_the_members_own_zone():
    # 02:00 UTC on 1 Dec: 10:00 on 1 Dec in Shanghai, 21:00 on 30 Nov in New York.
    now = utc(2026, 12, 1, 2)
    spec = NotCheckedInSpec()
    shanghai_member = MemberFacts("m", TODAY - ONE)
    ny_member = MemberFacts("m", TODAY - ONE, zone="America/New_York")
    assert recheck(spec, shanghai_member, now=now).reason is SkipReason.DAY_OVER
    assert recheck(spec, ny_member, now=now).due


def test_quiet_hours_at_send_time_defer_or_drop():
    spec = NotCheckedInSpec()
    facts = MemberFacts("m", date(2026, 11, 28), zone="America/New_York")
    day = date(2026, 11, 29)
    early = QuietHours(start=time(0, 0), end=time(3, 0))
    at = utc(2026, 11, 30, 6)  # 01:00 EST on 30 Nov: still 29 Nov with a 04:00 boundary
    deferred = recheck(spec, facts, now=at, reminder_day=day, quiet=early)
    assert not deferred.due
    assert deferred.action is QuietAction.DEFER
    assert deferred.reason is SkipReason.QUIET_HOURS
    assert deferred.until_utc == utc(2026, 11, 30, 8)  # 03:00 EST, before the boundary
    dropped = recheck(spec, facts, now=at, reminder_day=day, quiet=early, quiet_policy="drop")
    assert (dropped.due, dropped.action, dropped.reason) == (False, None, SkipReason.QUIET_HOURS)
    # A group @mention follows the community's zone: 14:00 in Shanghai is not quiet.
    assert recheck(spec, facts, now=at, reminder_day=day, quiet=early, direct=False).due


def test_a_deferral_past_the_reminders_day_is_a_skip_except_for_inactive():
    facts = MemberFacts("m", date(2026, 11, 22), zone="America/New_York")
    day = date(2026, 11, 29)
    at = utc(2026, 11, 30, 4)  # 23:00 EST on 29 Nov; the window ends at 08:00 on 30 Nov
    verdict = recheck(NotCheckedInSpec(), facts, now=at, reminder_day=day, quiet=NIGHT)
    assert (verdict.action, verdict.reason) == (None, SkipReason.QUIET_HOURS)
    verdict = recheck(InactiveSpec(days=7), facts, now=at, reminder_day=day, quiet=NIGHT)
    assert verdict.action is QuietAction.DEFER
    assert verdict.until_utc == utc(2026, 11, 30, 13)  # 08:00 EST


def test_lottery_rechecks():
    cycle = LotteryCycle(closes_at_utc=utc(2026, 11, 30, 11), draw_at_utc=utc(2026, 11, 30, 12))
    others = LotterySpec("weekly")
    entrants = LotterySpec("weekly", LotteryAudience.ENTRANTS)
    before_close = utc(2026, 11, 30, 10)
    assert recheck(others, MemberFacts("m", TODAY, lottery_entered=False), before_close).due
    assert (
        recheck(others, MemberFacts("m", TODAY, lottery_entered=True), before_close).reason
        is SkipReason.ALREADY_ENTERED
    )
    assert (
        recheck(entrants, MemberFacts("m", TODAY, lottery_entered=False), before_close).reason
        is SkipReason.NOT_ENTERED
    )
    between = utc(2026, 11, 30, 11, 30)
    assert (
        recheck(others, MemberFacts("m", TODAY, lottery_entered=False), between, lottery=cycle)
    ).reason is SkipReason.ENTRY_CLOSED
    assert recheck(
        entrants, MemberFacts("m", TODAY, lottery_entered=True), between, lottery=cycle
    ).due
    assert (
        recheck(entrants, MemberFacts("m", TODAY, lottery_entered=True), EVENING, lottery=cycle)
    ).reason is SkipReason.LOTTERY_DRAWN


def test_still_due_refuses_a_spec_of_another_kind():
    with pytest.raises(ValueError, match="not a inactive spec"):
        still_due(
            "inactive",
            NotCheckedInSpec(),
            MemberFacts("m", TODAY),
            EVENING,
            reminder_day=TODAY,
            community_zone=SHANGHAI,
            boundary=B4,
        )


# --- conversion and counters ---------------------------------------------------------------


def test_converted_within_the_window_after_the_reminder():
    sent = utc(2026, 11, 30, 12)
    window = timedelta(hours=2)
    assert converted(sent, sent, window)
    assert converted(sent, sent + timedelta(hours=1, minutes=59), window)
    assert not converted(sent, sent + window, window)
    assert not converted(sent, sent - timedelta(seconds=1), window)
    with pytest.raises(ValueError, match="naive"):
        converted(datetime(2026, 11, 30, 12), sent, window)
    with pytest.raises(ValueError, match="positive"):
        converted(sent, sent, timedelta(0))


def test_outcome_counter_names():
    assert OUTCOME_COUNTERS[:2] == (SELECTED, SENT) == ("selected", "sent")
    assert OUTCOME_COUNTERS[-3:] == (FAILED, UNCERTAIN, CONVERTED)
    assert (FAILED, UNCERTAIN, CONVERTED) == ("failed", "uncertain", "converted")
    for name in ("skipped_already_checked_in", "skipped_opted_out", "skipped_quiet_hours"):
        assert name in OUTCOME_COUNTERS
    assert skipped_counter("opted_out") == "skipped_opted_out"
    assert len(set(OUTCOME_COUNTERS)) == len(OUTCOME_COUNTERS)
    with pytest.raises(ValueError):
        skipped_counter("bored")
