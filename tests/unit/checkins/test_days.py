"""The check-in day: boundaries, DST days of 23/23.5/24.5/25 hours, midnights that never happen."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, time, timedelta

import pytest
from autopilot.checkins.rules import AccountState, CheckinRules, check_in, checkin_day
from autopilot.timeutil import zone
from hypothesis import given, settings
from hypothesis import strategies as st

MIDNIGHT = time(0, 0)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def day_lengths(
    tz_name: str, boundary: time, start: datetime, end: datetime
) -> dict[date, timedelta]:
    """How long each check-in day lasts in real time, scanning minute by minute.

    Only days that start and end inside ``[start, end)`` are returned.
    """
    tz = zone(tz_name)
    minute = timedelta(minutes=1)
    counts: Counter[date] = Counter()
    moment = start
    while moment < end:
        counts[checkin_day(moment, tz, boundary)] += 1
        moment += minute
    days = sorted(counts)
    return {d: counts[d] * minute for d in days[1:-1]}


def hours(h: float) -> timedelta:
    return timedelta(hours=h)


# --- the boundary -------------------------------------------------------------------


def test_boundary_shifts_the_wall_clock_back() -> None:
    sh = zone("Asia/Shanghai")
    four = time(4, 0)
    # 03:59 local on the 27th still belongs to the 26th; 04:00 starts the 27th.
    assert checkin_day(utc(2026, 11, 26, 19, 59), sh, four) == date(2026, 11, 26)
    assert checkin_day(utc(2026, 11, 26, 20, 0), sh, four) == date(2026, 11, 27)
    assert checkin_day(utc(2026, 11, 26, 15, 59), sh, MIDNIGHT) == date(2026, 11, 26)
    assert checkin_day(utc(2026, 11, 26, 16, 0), sh, MIDNIGHT) == date(2026, 11, 27)


def test_boundary_with_minutes_and_a_non_utc_input_offset() -> None:
    sh = zone("Asia/Shanghai")
    at = datetime(2026, 11, 27, 4, 29, tzinfo=sh)  # an aware non-UTC instant is fine
    assert checkin_day(at, sh, time(4, 30)) == date(2026, 11, 26)
    assert checkin_day(at + timedelta(minutes=1), sh, time(4, 30)) == date(2026, 11, 27)


def test_naive_instant_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        checkin_day(datetime(2026, 1, 1), zone("UTC"), MIDNIGHT)


def test_leap_day_is_a_day() -> None:
    tz = zone("Europe/Berlin")
    assert checkin_day(utc(2028, 2, 29, 0, 0), tz, MIDNIGHT) == date(2028, 2, 29)
    assert checkin_day(utc(2028, 3, 1, 2, 0), tz, time(4, 0)) == date(2028, 2, 29)
    lengths = day_lengths("Europe/Berlin", MIDNIGHT, utc(2028, 2, 27), utc(2028, 3, 3))
    assert lengths[date(2028, 2, 29)] == hours(24)
    # Feb 28 -> Feb 29 -> Mar 1: consecutive days, gap 1 each.
    state = AccountState()
    for d in (date(2028, 2, 28), date(2028, 2, 29), date(2028, 3, 1)):
        state = check_in(state, d, CheckinRules()).state
    assert state.streak == 3


# --- DST days -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz_name", "start", "end", "expected"),
    [
        # New York: spring forward 2026-03-08 02:00 -> 03:00, fall back 2026-11-01 02:00 -> 01:00.
        ("America/New_York", utc(2026, 3, 6), utc(2026, 3, 11), {date(2026, 3, 8): hours(23)}),
        ("America/New_York", utc(2026, 10, 30), utc(2026, 11, 4), {date(2026, 11, 1): hours(25)}),
        # London: 2026-03-29 01:00 -> 02:00, 2026-10-25 02:00 -> 01:00.
        ("Europe/London", utc(2026, 3, 27), utc(2026, 4, 1), {date(2026, 3, 29): hours(23)}),
        ("Europe/London", utc(2026, 10, 23), utc(2026, 10, 28), {date(2026, 10, 25): hours(25)}),
        # Lord Howe moves by 30 minutes: 23.5- and 24.5-hour days.
        ("Australia/Lord_Howe", utc(2026, 4, 2), utc(2026, 4, 7), {date(2026, 4, 5): hours(24.5)}),
        (
            "Australia/Lord_Howe",
            utc(2026, 10, 1),
            utc(2026, 10, 6),
            {date(2026, 10, 4): hours(23.5)},
        ),
    ],
)
def test_dst_days_are_one_day_each(
    tz_name: str, start: datetime, end: datetime, expected: dict[date, timedelta]
) -> None:
    lengths = day_lengths(tz_name, MIDNIGHT, start, end)
    for d, length in lengths.items():
        assert length == expected.get(d, hours(24)), d


def test_boundary_moves_the_short_day() -> None:
    # With a 04:00 boundary the spring-forward hour (02:00-03:00 on Mar 8) falls in
    # the check-in day of Mar 7, which is the 23-hour one.
    lengths = day_lengths("America/New_York", time(4, 0), utc(2026, 3, 6), utc(2026, 3, 11))
    assert lengths[date(2026, 3, 7)] == hours(23)
    assert lengths[date(2026, 3, 8)] == hours(24)


# --- zones whose clocks change at midnight --------------------------------------------


def test_santiago_midnight_never_happens() -> None:
    tz = zone("America/Santiago")
    # 2026-09-05 23:59:59 -04 is followed by 2026-09-06 01:00:00 -03.
    assert checkin_day(utc(2026, 9, 6, 3, 59, 59), tz, MIDNIGHT) == date(2026, 9, 5)
    assert checkin_day(utc(2026, 9, 6, 4, 0), tz, MIDNIGHT) == date(2026, 9, 6)
    lengths = day_lengths("America/Santiago", MIDNIGHT, utc(2026, 9, 3), utc(2026, 9, 9))
    assert lengths[date(2026, 9, 5)] == hours(24)
    assert lengths[date(2026, 9, 6)] == hours(23)


def test_santiago_repeated_hour_before_midnight() -> None:
    tz = zone("America/Santiago")
    # 2026-04-04 24:00 -03 -> 23:00 -04: 23:00-24:00 happens twice, both on the 4th.
    first = utc(2026, 4, 5, 2, 30)  # 23:30 -03
    second = utc(2026, 4, 5, 3, 30)  # 23:30 -04
    assert first.astimezone(tz).replace(tzinfo=None) == second.astimezone(tz).replace(tzinfo=None)
    assert checkin_day(first, tz, MIDNIGHT) == checkin_day(second, tz, MIDNIGHT) == date(2026, 4, 4)
    lengths = day_lengths("America/Santiago", MIDNIGHT, utc(2026, 4, 2), utc(2026, 4, 8))
    assert lengths[date(2026, 4, 4)] == hours(25)


def test_havana_spring_forward_at_midnight() -> None:
    tz = zone("America/Havana")
    # 2026-03-07 23:59 -05 is followed by 2026-03-08 01:00 -04.
    assert checkin_day(utc(2026, 3, 8, 4, 59), tz, MIDNIGHT) == date(2026, 3, 7)
    assert checkin_day(utc(2026, 3, 8, 5, 0), tz, MIDNIGHT) == date(2026, 3, 8)
    lengths = day_lengths("America/Havana", MIDNIGHT, utc(2026, 3, 5), utc(2026, 3, 11))
    assert lengths[date(2026, 3, 8)] == hours(23)


def test_beirut_historical_changes_at_midnight() -> None:
    lengths = day_lengths("Asia/Beirut", MIDNIGHT, utc(2022, 3, 24), utc(2022, 3, 30))
    assert lengths[date(2022, 3, 27)] == hours(23)  # 00:00 -> 01:00
    lengths = day_lengths("Asia/Beirut", MIDNIGHT, utc(2022, 10, 27), utc(2022, 11, 2))
    assert lengths[date(2022, 10, 29)] == hours(25)  # 24:00 -> 23:00


# --- boundary in a gap or a repeated hour ------------------------------------------------


def test_boundary_inside_a_dst_gap() -> None:
    tz = zone("America/New_York")
    boundary = time(2, 30)
    # 2027-03-14 02:30 does not exist; the 14th starts when the gap ends (03:00 EDT).
    assert checkin_day(utc(2027, 3, 14, 6, 59, 59), tz, boundary) == date(2027, 3, 13)
    assert checkin_day(utc(2027, 3, 14, 7, 0), tz, boundary) == date(2027, 3, 14)
    lengths = day_lengths("America/New_York", boundary, utc(2027, 3, 12), utc(2027, 3, 17))
    # 02:30 EST on the 13th -> 03:00 EDT on the 14th -> 02:30 EDT on the 15th: the
    # lost hour is shared, because the 14th starts 30 minutes "late".
    assert lengths[date(2027, 3, 13)] == hours(23.5)
    assert lengths[date(2027, 3, 14)] == hours(23.5)
    assert lengths[date(2027, 3, 15)] == hours(24)


def test_repeated_hour_maps_both_instants_to_one_day() -> None:
    tz = zone("America/New_York")
    # 01:30 happens at 05:30Z (EDT) and 06:30Z (EST) on 2026-11-01.
    for boundary in (MIDNIGHT, time(4, 0), time(1, 0)):
        assert checkin_day(utc(2026, 11, 1, 5, 30), tz, boundary) == checkin_day(
            utc(2026, 11, 1, 6, 30), tz, boundary
        )


def test_boundary_inside_a_repeated_hour_never_goes_back() -> None:
    tz = zone("America/New_York")
    boundary = time(1, 30)
    assert checkin_day(utc(2026, 11, 1, 5, 29), tz, boundary) == date(2026, 10, 31)  # 01:29 EDT
    assert checkin_day(utc(2026, 11, 1, 5, 30), tz, boundary) == date(2026, 11, 1)  # 01:30 EDT
    # Second pass of 01:15 (EST): the 1st has already begun, so it stays the 1st.
    assert checkin_day(utc(2026, 11, 1, 6, 15), tz, boundary) == date(2026, 11, 1)
    assert checkin_day(utc(2026, 11, 1, 6, 30), tz, boundary) == date(2026, 11, 1)
    lengths = day_lengths("America/New_York", boundary, utc(2026, 10, 29), utc(2026, 11, 4))
    assert lengths[date(2026, 10, 31)] == hours(24)
    assert lengths[date(2026, 11, 1)] == hours(25)


# --- properties across zones -------------------------------------------------------------

ZONES = (
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "America/Santiago",
    "America/Havana",
    "Asia/Beirut",
    "Asia/Kolkata",
    "Pacific/Chatham",
    "Antarctica/Troll",
)


@settings(max_examples=300, deadline=None)
@given(
    tz_name=st.sampled_from(ZONES),
    at=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)),
    boundary=st.times(),
    step=st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=6)),
)
def test_day_never_goes_back_nor_skips(
    tz_name: str, at: datetime, boundary: time, step: timedelta
) -> None:
    tz = zone(tz_name)
    start = at.replace(tzinfo=UTC)
    first = checkin_day(start, tz, boundary)
    later = checkin_day(start + step, tz, boundary)
    assert timedelta(0) <= later - first <= timedelta(days=1)


@pytest.mark.parametrize(
    ("tz_name", "first", "second"),
    [
        # 20:00 local on Mar 7 (EST) and 20:00 local on Mar 8 (EDT): 23 h apart.
        ("America/New_York", utc(2026, 3, 8, 1, 0), utc(2026, 3, 9, 0, 0)),
        # 20:00 local on Oct 31 (EDT) and Nov 1 (EST): 25 h apart.
        ("America/New_York", utc(2026, 11, 1, 0, 0), utc(2026, 11, 2, 1, 0)),
        # 00:30 GMT on Mar 28, then 23:30 BST on Mar 29 (46 h later, still gap 1).
        ("Europe/London", utc(2026, 3, 28, 0, 30), utc(2026, 3, 29, 22, 30)),
        # Across a Santiago midnight that never happens: 23:30 -04, then 01:10 -03 (70 min).
        ("America/Santiago", utc(2026, 9, 6, 3, 30), utc(2026, 9, 6, 4, 10)),
    ],
)
def test_consecutive_local_days_across_dst_are_gap_one(
    tz_name: str, first: datetime, second: datetime
) -> None:
    tz = zone(tz_name)
    rules = CheckinRules()
    state = check_in(AccountState(), checkin_day(first, tz, MIDNIGHT), rules).state
    outcome = check_in(state, checkin_day(second, tz, MIDNIGHT), rules)
    assert outcome.state.streak == 2
    assert outcome.freezes_used == 0
