"""A lottery's cycles (autopilot.lottery.schedule): the instants each cycle opens,
closes and draws, written out by hand, equal to the dispatcher's occurrences of the
derived jobs, across DST; draw ids read back; schedule problems. Pure: no clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from autopilot.config.model import Lottery, parse_config
from autopilot.lottery.schedule import (
    Cycle,
    check_start,
    cycle_at,
    cycle_of_draw_id,
    cycle_opened_at,
    next_firing,
    schedule_problems,
)
from autopilot.scheduler.rules import occurrences_between

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
WEEKLY = Lottery(
    id="weekly", title="周五抽奖", opens="0 0 * * 1", closes="55 19 * * 5", draws="0 20 * * 5"
)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def lottery(opens: str, closes: str, draws: str, lottery_id: str = "l") -> Lottery:
    return Lottery(id=lottery_id, title="t", opens=opens, closes=closes, draws=draws)


# --------------------------------------------------------------------------- cycles


def test_shanghai_weekly_cycle_in_utc() -> None:
    # Monday 2026-03-02 00:00 CST is Sunday 16:00Z; Friday 19:55/20:00 CST is 11:55/12:00Z.
    cycle = cycle_at(WEEKLY, SHANGHAI, utc("2026-03-04T00:00:00"))
    assert cycle == Cycle(
        lottery_id="weekly",
        draw_id="weekly-20260302T0000",
        opens_utc=utc("2026-03-01T16:00:00"),
        closes_utc=utc("2026-03-06T11:55:00"),
        draws_utc=utc("2026-03-06T12:00:00"),
    )
    assert cycle_opened_at(WEEKLY, SHANGHAI, cycle.opens_utc) == cycle
    assert cycle_of_draw_id(WEEKLY, SHANGHAI, "weekly-20260302T0000") == cycle


def test_cycle_at_is_the_latest_open_at_or_before_the_instant() -> None:
    opens = utc("2026-03-08T16:00:00")  # Monday 2026-03-09 00:00 CST
    # After the draw of the 6th and before the next open: still the drawn cycle.
    assert cycle_at(WEEKLY, SHANGHAI, opens - timedelta(seconds=1)).draw_id == (  # type: ignore[union-attr]
        "weekly-20260302T0000"
    )
    assert cycle_at(WEEKLY, SHANGHAI, opens).draw_id == "weekly-20260309T0000"  # type: ignore[union-attr]


def test_new_york_weekly_cycles_across_spring_forward() -> None:
    # 2026-03-08 02:00 EST clocks go to 03:00 EDT: the second cycle is an hour earlier in UTC.
    first = cycle_at(WEEKLY, NEW_YORK, utc("2026-03-04T00:00:00"))
    second = cycle_at(WEEKLY, NEW_YORK, utc("2026-03-11T00:00:00"))
    assert first == Cycle(
        "weekly",
        "weekly-20260302T0000",
        utc("2026-03-02T05:00:00"),  # 00:00 EST
        utc("2026-03-07T00:55:00"),  # Friday 19:55 EST
        utc("2026-03-07T01:00:00"),
    )
    assert second == Cycle(
        "weekly",
        "weekly-20260309T0000",
        utc("2026-03-09T04:00:00"),  # 00:00 EDT
        utc("2026-03-13T23:55:00"),  # Friday 19:55 EDT
        utc("2026-03-14T00:00:00"),
    )


def test_an_open_in_the_spring_forward_gap_opens_when_the_gap_ends() -> None:
    # Sunday 02:30 does not exist on 2026-03-08 in New York: it opens at 03:00 EDT
    # (07:00Z), named by its nominal minute 02:30.
    sunday = lottery("30 2 * * 0", "0 12 * * 0", "5 12 * * 0", "sun")
    cycle = cycle_at(sunday, NEW_YORK, utc("2026-03-08T10:00:00"))
    assert cycle == Cycle(
        "sun",
        "sun-20260308T0230",
        utc("2026-03-08T07:00:00"),
        utc("2026-03-08T16:00:00"),  # 12:00 EDT
        utc("2026-03-08T16:05:00"),
    )
    assert cycle_of_draw_id(sunday, NEW_YORK, "sun-20260308T0230") == cycle


def test_an_open_in_the_fall_back_overlap_opens_at_the_first_pass() -> None:
    # 2026-11-01 01:30 happens twice in New York; the first is 01:30 EDT = 05:30Z.
    sunday = lottery("30 1 * * 0", "0 12 * * 0", "5 12 * * 0", "sun")
    cycle = cycle_at(sunday, NEW_YORK, utc("2026-11-01T12:00:00"))
    assert cycle is not None
    assert (cycle.draw_id, cycle.opens_utc, cycle.closes_utc) == (
        "sun-20261101T0130",
        utc("2026-11-01T05:30:00"),
        utc("2026-11-01T17:00:00"),  # 12:00 EST
    )


DOC = {
    "version": 1,
    "communities": [
        {
            "id": "c",
            "name": "C",
            "timezone": "America/New_York",
            "channels": [{"id": "group", "type": "console"}],
            "jobs": [],
            "lotteries": [
                {
                    "id": "sun",
                    "title": "Sunday draw",
                    "schedule": {
                        "opens": "30 2 * * 0",
                        "closes": "0 12 * * 0",
                        "draws": "5 12 * * 0",
                    },
                    "prizes": [{"id": "p", "title": "Prize", "count": 1, "points": 10}],
                    "posts": {"channels": ["group"]},
                }
            ],
        }
    ],
}


@pytest.mark.parametrize("step", ["open", "close", "draw"])
def test_the_derived_jobs_fire_exactly_at_the_cycle_instants(step: str) -> None:
    """The dispatcher's occurrences of lottery.<id>.<step> are the cycles' instants,
    over spring forward (02:30 in the gap) and fall back."""
    community = parse_config(DOC).communities[0]
    sun = community.lottery("sun")
    job = community.job(f"lottery.sun.{step}")
    start, end = utc("2026-03-01T00:00:00"), utc("2026-11-15T00:00:00")
    occurrences = occurrences_between("c", job, NEW_YORK, None, start, end)
    assert len(occurrences) == 37  # one per Sunday, 2026-03-01 .. 2026-11-08
    for occ in occurrences:
        at = occ.scheduled_utc if step == "open" else occ.scheduled_utc - timedelta(minutes=1)
        cycle = cycle_at(sun, NEW_YORK, at)
        assert cycle is not None
        instant = {"open": cycle.opens_utc, "close": cycle.closes_utc, "draw": cycle.draws_utc}
        assert instant[step] == occ.scheduled_utc
    gap = next(o for o in occurrences if o.key.startswith("2026-03-08"))
    assert (
        gap.scheduled_utc
        == {
            "open": utc("2026-03-08T07:00:00"),
            "close": utc("2026-03-08T16:00:00"),
            "draw": utc("2026-03-08T16:05:00"),
        }[step]
    )


def test_derived_jobs_run_all_missed_steps_ignoring_quiet_hours() -> None:
    community = parse_config(DOC).communities[0]
    jobs = {j.id: j for j in community.jobs if j.id.startswith("lottery.")}
    assert set(jobs) == {"lottery.sun.open", "lottery.sun.close", "lottery.sun.draw"}
    for step, job in (("open", jobs["lottery.sun.open"]), ("draw", jobs["lottery.sun.draw"])):
        assert job.action == f"lottery_{step}"
        assert job.params == {"lottery": "sun"}
        assert (job.misfire.policy, job.misfire.grace) == ("all", timedelta(days=2))
        assert job.quiet_hours == "ignore" and not job.sends_messages


# --------------------------------------------------------------------------- draw ids


def test_draw_ids_that_name_no_cycle_are_refused() -> None:
    assert cycle_of_draw_id(WEEKLY, SHANGHAI, "other-20260302T0000") is None
    assert cycle_of_draw_id(WEEKLY, SHANGHAI, "weekly-20260303T0000") is None  # a Tuesday
    assert cycle_of_draw_id(WEEKLY, SHANGHAI, "weekly-20260302T0001") is None
    assert cycle_of_draw_id(WEEKLY, SHANGHAI, "weekly-20261302T0000") is None  # month 13
    assert cycle_of_draw_id(WEEKLY, SHANGHAI, "weekly-2026-03-02") is None
    assert cycle_of_draw_id(WEEKLY, SHANGHAI, "weekly") is None


def test_a_skipped_minute_coalesced_into_another_names_no_cycle() -> None:
    # 02:00 and 02:30 of 2026-03-08 both fall in the gap: the dispatcher runs one open
    # at 03:00 EDT, named 02:00 (the first); 02:30 names nothing that day.
    twice = lottery("0,30 2 * * *", "0 12 * * *", "5 12 * * *", "d")
    first = cycle_of_draw_id(twice, NEW_YORK, "d-20260308T0200")
    assert first is not None and first.opens_utc == utc("2026-03-08T07:00:00")
    assert cycle_of_draw_id(twice, NEW_YORK, "d-20260308T0230") is None
    assert cycle_of_draw_id(twice, NEW_YORK, "d-20260309T0230") is not None


def test_cycle_opened_at_refuses_an_instant_that_is_not_an_open() -> None:
    with pytest.raises(ValueError, match="not a firing of opens"):
        cycle_opened_at(WEEKLY, SHANGHAI, utc("2026-03-02T16:00:00"))  # a Tuesday 00:00


def test_next_firing_is_strictly_after() -> None:
    opens = utc("2026-03-01T16:00:00")
    found = next_firing(WEEKLY.opens, SHANGHAI, opens)
    assert found is not None and found.scheduled_utc == utc("2026-03-08T16:00:00")
    found = next_firing(WEEKLY.opens, SHANGHAI, opens - timedelta(microseconds=1))
    assert found is not None and found.scheduled_utc == opens


# --------------------------------------------------------------------------- problems


START = check_start(SHANGHAI, None)


def test_check_start_is_fixed_never_the_clock() -> None:
    assert utc("2025-12-31T16:00:00") == START  # 2026-01-01 00:00 CST (a Thursday)
    assert check_start(SHANGHAI, utc("2027-05-01T00:00:00")) == utc("2027-05-01T00:00:00")


def test_a_sound_weekly_schedule_has_no_problem() -> None:
    assert schedule_problems(WEEKLY, SHANGHAI, START) == []
    assert schedule_problems(WEEKLY, NEW_YORK, check_start(NEW_YORK, None)) == []


def test_a_draw_before_the_close() -> None:
    early = lottery("0 0 * * 1", "55 19 * * 5", "0 19 * * 5")
    problems = dict(schedule_problems(early, SHANGHAI, START))
    assert problems["draws"].startswith(
        "draws at Fri 2026-01-09 19:00, before the lottery closes at Fri 2026-01-09 19:55"
    )
    # The draw that follows the close is a week later, after the next open.
    assert problems["opens"].startswith(
        "the next cycle opens at Mon 2026-01-12 00:00, before this cycle draws at "
        "Fri 2026-01-16 19:00"
    )


def test_a_draw_at_the_close() -> None:
    same = lottery("0 0 * * 1", "0 20 * * 5", "0 20 * * 5")
    assert schedule_problems(same, SHANGHAI, START) == [
        (
            "draws",
            "draws at Fri 2026-01-09 20:00, the same minute the lottery closes: the draw must "
            "come after the close (entrants are frozen at the close)",
        )
    ]


def test_opening_again_before_the_close() -> None:
    daily = lottery("0 0 * * *", "55 19 * * 5", "0 20 * * 5")
    problems = dict(schedule_problems(daily, SHANGHAI, START))
    assert problems["closes"] == (
        "the lottery opens at Thu 2026-01-01 00:00 and again at Fri 2026-01-02 00:00 before "
        "it closes at Fri 2026-01-02 19:55: each cycle must close before the next opens"
    )


def test_a_problem_that_only_a_dst_day_shows() -> None:
    # Sunday 02:30 open, 02:45 close: on 2026-03-08 both are 03:00 EDT, so that cycle
    # closes a week later, after the next open. Every other week is fine.
    tight = lottery("30 2 * * 0", "45 2 * * 0", "50 2 * * 0")
    problems = dict(schedule_problems(tight, NEW_YORK, check_start(NEW_YORK, None)))
    assert set(problems) == {"closes", "opens"}
    assert problems["closes"].startswith(
        "the lottery opens at Sun 2026-03-08 03:00 and again at Sun 2026-03-15 02:30"
    )
    assert schedule_problems(tight, SHANGHAI, START) == []  # no DST in Shanghai
