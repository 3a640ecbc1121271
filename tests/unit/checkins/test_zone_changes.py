"""Zone changes between check-ins: the day never goes back, no second credit for a day,
no streak lost or reset by a zone change alone (rules.py, "Zone changes")."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from autopilot.checkins.rules import (
    AccountState,
    AlreadyCheckedIn,
    CheckinRules,
    MakeupNotAllowed,
    check_in_at,
    day_gap,
)
from hypothesis import given, settings
from hypothesis import strategies as st

RULES = CheckinRules(base_points=10, makeup_cost=0)
BOUNDARY = time(4, 0)
EAST = ZoneInfo("Etc/GMT-14")  # UTC+14 (POSIX signs are inverted)
WEST = ZoneInfo("Etc/GMT+12")  # UTC-12
T0 = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)


def test_moving_west_after_a_check_in_is_already_checked_in_not_an_error() -> None:
    first = check_in_at(AccountState(), T0, EAST, BOUNDARY, RULES)  # 15:00 on the 26th
    assert (first.day, first.state.last_zone) == (date(2026, 11, 26), "Etc/GMT-14")
    # One second later in UTC-12 it is 13:00 on the 25th: before the last day.
    with pytest.raises(AlreadyCheckedIn) as info:
        check_in_at(first.state, T0 + timedelta(seconds=1), WEST, BOUNDARY, RULES)
    assert info.value.day == date(2026, 11, 26)  # answered with the last check-in
    with pytest.raises(MakeupNotAllowed):
        check_in_at(first.state, T0 + timedelta(seconds=1), WEST, BOUNDARY, RULES, makeup=True)


def test_moving_west_keeps_the_streak_when_the_next_day_comes() -> None:
    first = check_in_at(AccountState(), T0, EAST, BOUNDARY, RULES)
    # The 27th starts at 04:00 in UTC-12 = 16:00 UTC on the 27th.
    with pytest.raises(AlreadyCheckedIn):
        check_in_at(first.state, datetime(2026, 11, 27, 15, 59, tzinfo=UTC), WEST, BOUNDARY, RULES)
    second = check_in_at(
        first.state, datetime(2026, 11, 27, 16, 0, tzinfo=UTC), WEST, BOUNDARY, RULES
    )
    assert (second.day, second.state.streak, second.state.last_zone) == (
        date(2026, 11, 27),
        2,
        "Etc/GMT+12",
    )


def test_moving_east_credits_no_second_day_until_the_old_day_has_ended() -> None:
    # 04:00 on the 26th in UTC-12 (16:00 UTC): the 26th.
    at = datetime(2026, 11, 26, 16, 0, tzinfo=UTC)
    first = check_in_at(AccountState(), at, WEST, BOUNDARY, RULES)
    assert first.day == date(2026, 11, 26)
    # In UTC+14 it is already 06:00 on the 27th, but the 26th has not ended in UTC-12.
    assert day_gap(first.state, at + timedelta(seconds=1), EAST, BOUNDARY) == (
        date(2026, 11, 27),
        0,
    )
    with pytest.raises(AlreadyCheckedIn):
        check_in_at(first.state, at + timedelta(seconds=1), EAST, BOUNDARY, RULES)
    # A day later the 27th starts in UTC-12; UTC+14 is on the 28th: one day, not a miss.
    second = check_in_at(first.state, at + timedelta(days=1), EAST, BOUNDARY, RULES)
    assert (second.day, second.state.streak, second.freezes_used) == (date(2026, 11, 28), 2, 0)
    # From now on days follow UTC+14: the 28th is done, the 29th starts at 04:00 there.
    with pytest.raises(AlreadyCheckedIn):
        check_in_at(second.state, at + timedelta(days=1, hours=1), EAST, BOUNDARY, RULES)
    third = check_in_at(
        second.state, datetime(2026, 11, 28, 14, 0, tzinfo=UTC), EAST, BOUNDARY, RULES
    )
    assert (third.day, third.state.streak) == (date(2026, 11, 29), 3)


def test_make_up_after_moving_east_waits_like_a_check_in() -> None:
    at = datetime(2026, 11, 26, 16, 0, tzinfo=UTC)  # 04:00 on the 26th in UTC-12
    first = check_in_at(AccountState(), at, WEST, BOUNDARY, RULES)
    soon = at + timedelta(seconds=1)  # the 27th in UTC+14, still the 26th in UTC-12
    with pytest.raises(MakeupNotAllowed) as info:
        check_in_at(first.state, soon, EAST, BOUNDARY, RULES, makeup=True)
    assert info.value.code == "already_checked_in_today"
    # A day later: the 28th in UTC+14, the 27th in UTC-12; nothing missed to make up.
    with pytest.raises(MakeupNotAllowed) as info:
        check_in_at(first.state, at + timedelta(days=1), EAST, BOUNDARY, RULES, makeup=True)
    assert info.value.code == "nothing_to_make_up"
    # Two days later a day was missed in both zones: yesterday (the 28th in UTC+14)
    # can be made up, and it continues the streak.
    made_up = check_in_at(first.state, at + timedelta(days=2), EAST, BOUNDARY, RULES, makeup=True)
    assert (made_up.day, made_up.state.streak) == (date(2026, 11, 28), 2)


def test_east_then_west_never_credits_twice_in_seconds() -> None:
    at = datetime(2026, 11, 26, 16, 0, tzinfo=UTC)
    state = check_in_at(AccountState(), at, ZoneInfo("Asia/Shanghai"), BOUNDARY, RULES).state
    for offset, tz in enumerate((EAST, WEST, EAST, WEST), start=1):
        with pytest.raises(AlreadyCheckedIn):
            check_in_at(state, at + timedelta(seconds=offset), tz, BOUNDARY, RULES)


def test_an_unknown_stored_zone_falls_back_to_the_current_zone() -> None:
    state = AccountState(last_day=date(2026, 11, 25), last_zone="Not/AZone", streak=1)
    outcome = check_in_at(state, T0, ZoneInfo("Asia/Shanghai"), BOUNDARY, RULES)
    assert (outcome.day, outcome.state.streak) == (date(2026, 11, 26), 2)


ZONES = [
    "Etc/GMT+12",
    "Etc/GMT+5",
    "UTC",
    "Asia/Kolkata",
    "Etc/GMT-14",
    "America/New_York",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "America/Santiago",
]
EVENTS = st.lists(
    st.tuples(
        st.integers(0, 12 * 3600),  # seconds since the previous attempt
        st.none() | st.sampled_from(ZONES),  # a zone change before the attempt
        st.sampled_from(["checkin", "checkin", "checkin", "makeup"]),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=400, deadline=None)
@given(
    events=EVENTS,
    start_zone=st.sampled_from(ZONES),
    boundary=st.sampled_from([time(0, 0), time(4, 0), time(2, 30)]),
    start=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31)).map(
        lambda d: d.replace(tzinfo=UTC)
    ),
)
def test_no_zone_sequence_credits_a_day_twice_crashes_or_breaks_a_streak(
    events: list[tuple[int, str | None, str]], start_zone: str, boundary: time, start: datetime
) -> None:
    state = AccountState()
    tz = ZoneInfo(start_zone)
    at = start
    credited: list[date] = []
    checkin_times: list[datetime] = []
    steady = False  # the last credit was a check-in, and only check-ins were tried since
    for seconds, new_zone, kind in events:
        at += timedelta(seconds=seconds)
        if new_zone is not None:
            tz = ZoneInfo(new_zone)
        steady = steady and kind == "checkin"
        try:
            outcome = check_in_at(state, at, tz, boundary, RULES, makeup=kind == "makeup")
        except (AlreadyCheckedIn, MakeupNotAllowed):
            continue  # never ValueError or anything else
        if steady:
            # Check-ins tried at most 12 h apart: no zone change ever costs the streak.
            assert outcome.state.streak == state.streak + 1
        steady = kind == "checkin"
        credited.append(outcome.day)
        if kind == "checkin":
            checkin_times.append(at)
        state = outcome.state
    # One credit per day: the credited days strictly increase.
    assert credited == sorted(set(credited))
    # No more check-ins in any 24 h than a member who stays in one zone with
    # 23-hour DST days can get (03:59:59, 04:00:00, then 23 h later).
    for i, first in enumerate(checkin_times):
        within = [t for t in checkin_times[i:] if t - first < timedelta(hours=24)]
        assert len(within) <= 3
