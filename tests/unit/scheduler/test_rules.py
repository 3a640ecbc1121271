"""Pure scheduling rules: DST, quiet hours, misfire planning, partition invariance."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from itertools import pairwise

import pytest
from autopilot.config.model import Job, MisfirePolicy, QuietHours
from autopilot.scheduler.rules import (
    MAX_CATCHUP,
    count_scheduled,
    next_due,
    occurrences_between,
    occurrences_scheduled_between,
    plan_tick,
    reevaluate,
    resolve_local,
)
from autopilot.timeutil import zone
from hypothesis import given, settings
from hypothesis import strategies as st

NY = zone("America/New_York")
LONDON = zone("Europe/London")
SHANGHAI = zone("Asia/Shanghai")


def job(cron: str, action: str = "snapshot", quiet: str = "ignore", **misfire) -> Job:
    return Job(
        id="j",
        cron=cron,
        action=action,
        params={},
        misfire=MisfirePolicy(**misfire),
        quiet_hours=quiet,
    )


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def occ(cron, tz, start, end, quiet_hours=None, **kw):
    return occurrences_between("c", job(cron, **kw), tz, quiet_hours, start, end)


class TestDst:
    def test_spring_forward_new_york_skipped_time_runs_when_the_gap_ends(self):
        found = occ("30 2 * * *", NY, utc(2027, 3, 14, 0), utc(2027, 3, 15, 0))
        assert [(o.key, o.scheduled_utc, o.dst) for o in found] == [
            ("2027-03-14T02:30", utc(2027, 3, 14, 7, 0), "gap")
        ]
        assert found[0].scheduled_utc.astimezone(NY).strftime("%H:%M %Z") == "03:00 EDT"

    def test_fall_back_new_york_repeated_time_runs_once_at_the_first(self):
        found = occ("30 1 * * *", NY, utc(2026, 11, 1, 0), utc(2026, 11, 2, 0))
        assert [(o.key, o.scheduled_utc, o.dst) for o in found] == [
            ("2026-11-01T01:30", utc(2026, 11, 1, 5, 30), "overlap")
        ]
        assert found[0].scheduled_utc.astimezone(NY).strftime("%H:%M %Z") == "01:30 EDT"

    def test_window_starting_inside_the_repeated_hour_does_not_rerun(self):
        # croniter started at 01:40 EST would return 01:30 EST "again"; we must not.
        found = occ("30 1 * * *", NY, utc(2026, 11, 1, 6, 40), utc(2026, 11, 3, 0))
        assert [o.key for o in found] == ["2026-11-02T01:30"]

    def test_london_spring_forward_and_fall_back(self):
        spring = occ("30 1 * * *", LONDON, utc(2027, 3, 28, 0), utc(2027, 3, 29, 0))
        assert [(o.scheduled_utc, o.dst) for o in spring] == [(utc(2027, 3, 28, 1, 0), "gap")]
        autumn = occ("30 1 * * *", LONDON, utc(2026, 10, 25, 0), utc(2026, 10, 26, 0))
        assert [(o.scheduled_utc, o.dst) for o in autumn] == [(utc(2026, 10, 25, 0, 30), "overlap")]

    def test_sub_hourly_job_does_not_burst_at_the_end_of_the_gap(self):
        found = occ("*/15 * * * *", NY, utc(2027, 3, 14, 6, 0), utc(2027, 3, 14, 7, 30))
        instants = [o.scheduled_utc for o in found]
        # 06:45 UTC is 01:45 EST; 02:00-02:45 do not exist; 07:00 UTC is 03:00 EDT.
        assert instants == [
            utc(2027, 3, 14, 6, 15),
            utc(2027, 3, 14, 6, 30),
            utc(2027, 3, 14, 6, 45),
            utc(2027, 3, 14, 7, 0),
            utc(2027, 3, 14, 7, 15),
            utc(2027, 3, 14, 7, 30),
        ]
        # 03:00 EDT is a real wall time of the job: the gap times coalesce into it.
        assert found[3].key == "2027-03-14T03:00" and found[4].dst is None

    def test_hourly_job_runs_once_per_wall_clock_hour_in_the_overlap(self):
        found = occ("0 * * * *", NY, utc(2026, 11, 1, 4, 30), utc(2026, 11, 1, 8, 30))
        assert [o.key for o in found] == [
            "2026-11-01T01:00",
            "2026-11-01T02:00",
            "2026-11-01T03:00",
        ]

    def test_midnight_that_never_happens(self):
        # America/Santiago springs forward at 24:00 -> 01:00 (2026-09-06).
        found = occ("0 0 * * *", zone("America/Santiago"), utc(2026, 9, 5, 12), utc(2026, 9, 7, 12))
        assert [o.key for o in found] == ["2026-09-06T00:00", "2026-09-07T00:00"]
        assert found[0].dst == "gap"
        assert found[0].scheduled_utc.astimezone(zone("America/Santiago")).hour == 1

    @pytest.mark.parametrize(
        "tz_name",
        [
            "America/New_York",
            "Europe/London",
            "Australia/Lord_Howe",
            "America/Santiago",
            "Antarctica/Troll",
            "Asia/Shanghai",
        ],
    )
    @pytest.mark.parametrize("hhmm", [(0, 0), (0, 30), (1, 30), (2, 0), (2, 30), (3, 0)])
    def test_a_daily_job_runs_exactly_once_per_local_day_all_year(self, tz_name, hhmm):
        tz = zone(tz_name)
        found = occ(f"{hhmm[1]} {hhmm[0]} * * *", tz, utc(2026, 1, 1), utc(2027, 1, 1))
        nominal_days = [o.nominal_local.date() for o in found]
        assert len(nominal_days) == len(set(nominal_days)) == 365
        assert all(a.scheduled_utc < b.scheduled_utc for a, b in pairwise(found))


def test_resolve_local_plain_time():
    assert resolve_local(datetime(2026, 11, 26, 7, 30), SHANGHAI) == (
        utc(2026, 11, 25, 23, 30),
        None,
    )


class TestQuietHours:
    QUIET = QuietHours(time(0, 0), time(7, 0))

    def test_message_inside_quiet_hours_is_deferred_to_their_end(self):
        found = occ(
            "30 6 * * *",
            SHANGHAI,
            utc(2026, 11, 25, 12),
            utc(2026, 11, 26, 12),
            self.QUIET,
            action="post",
            quiet="defer",
        )
        assert [(o.quiet, o.scheduled_utc, o.due_utc) for o in found] == [
            ("deferred", utc(2026, 11, 25, 22, 30), utc(2026, 11, 25, 23, 0))
        ]

    def test_drop_policy_marks_the_occurrence_dropped(self):
        found = occ(
            "30 6 * * *",
            SHANGHAI,
            utc(2026, 11, 25, 12),
            utc(2026, 11, 26, 12),
            self.QUIET,
            action="post",
            quiet="drop",
        )
        assert [o.quiet for o in found] == ["dropped"]
        assert plan_tick(found, found[0].due_utc, MisfirePolicy())[0].verdict == "skipped"

    def test_non_message_jobs_ignore_quiet_hours(self):
        found = occ(
            "30 6 * * *",
            SHANGHAI,
            utc(2026, 11, 25, 12),
            utc(2026, 11, 26, 12),
            self.QUIET,
            action="snapshot",
            quiet="defer",
        )
        assert [o.quiet for o in found] == [None]

    def test_window_wrapping_midnight(self):
        quiet = QuietHours(time(22, 0), time(7, 0))
        assert (
            quiet.contains(time(23, 59))
            and quiet.contains(time(0, 0))
            and quiet.contains(time(6, 59))
        )
        assert not quiet.contains(time(7, 0)) and not quiet.contains(time(21, 59))

    def test_deferred_occurrences_become_due_after_the_window(self):
        found = occ(
            "0 * * * *",
            SHANGHAI,
            utc(2026, 11, 25, 15),
            utc(2026, 11, 26, 0),
            self.QUIET,
            action="post",
            quiet="defer",
        )
        deferred = [o for o in found if o.quiet == "deferred"]
        assert len(deferred) == 7 and {o.due_utc for o in deferred} == {utc(2026, 11, 25, 23)}
        decisions = plan_tick(found[:-1], utc(2026, 11, 25, 23, 0, 5), MisfirePolicy())
        ran = [d.occurrence.key for d in decisions if d.verdict == "run"]
        assert ran == ["2026-11-26T07:00"]  # one post at 07:00, not a burst of seven


class TestPlanTick:
    def _due(self, n: int, minutes: int = 60):
        return occ(
            f"*/{minutes} * * * *" if minutes < 60 else "0 * * * *",
            SHANGHAI,
            utc(2026, 11, 26, 0),
            utc(2026, 11, 26, 0) + timedelta(hours=n),
        )

    def test_latest_runs_only_the_newest_within_grace(self):
        due = self._due(5)
        decisions = plan_tick(due, due[-1].due_utc + timedelta(minutes=5), MisfirePolicy("latest"))
        assert [d.verdict for d in decisions] == ["missed"] * 4 + ["run"]

    def test_latest_beyond_grace_runs_nothing(self):
        due = self._due(3)
        decisions = plan_tick(
            due,
            due[-1].due_utc + timedelta(minutes=11),
            MisfirePolicy("latest", timedelta(minutes=10)),
        )
        assert {d.verdict for d in decisions} == {"missed"}
        assert "beyond the grace window" in decisions[-1].reason

    def test_all_runs_every_missed_occurrence_oldest_first(self):
        due = self._due(5)
        decisions = plan_tick(due, due[-1].due_utc + timedelta(hours=3), MisfirePolicy("all"))
        assert [d.verdict for d in decisions] == ["run"] * 5
        assert [d.occurrence for d in decisions] == due

    def test_all_is_bounded(self):
        due = self._due(MAX_CATCHUP + 20)
        decisions = plan_tick(due, due[-1].due_utc, MisfirePolicy("all"))
        assert [d.verdict for d in decisions].count("run") == MAX_CATCHUP
        assert [d.verdict for d in decisions[:20]] == ["missed"] * 20


def test_next_due_finds_a_yearly_job():
    found = next_due("c", job("0 9 1 1 *"), SHANGHAI, None, utc(2026, 11, 26))
    assert found is not None and found.key == "2027-01-01T09:00"


# -- property: any partition of time into ticks sees every occurrence exactly once --

ZONES = [
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "America/Santiago",
    "Asia/Shanghai",
    "Antarctica/Troll",
    "Africa/Casablanca",
    "Asia/Kathmandu",
    "UTC",
]
MINUTES = st.sampled_from(["0", "30", "*/15", "*/20", "5,35", "59", "*/7"])
HOURS = st.sampled_from(["*", "0", "1", "2", "0-3", "*/2", "1,2,3", "23"])
CRONS = st.builds(
    lambda m, h, dow: f"{m} {h} * * {dow}",
    MINUTES,
    HOURS,
    st.sampled_from(["*", "0", "1-5", "6,0"]),
)
# Windows near DST transitions of many zones (March, April, September, October, November).
STARTS = st.sampled_from(
    [
        utc(2026, 3, 7),
        utc(2026, 3, 27),
        utc(2026, 4, 4),
        utc(2026, 9, 5),
        utc(2026, 10, 24),
        utc(2026, 10, 31),
        utc(2027, 3, 13),
        utc(2026, 6, 1),
    ]
)


@settings(max_examples=150, deadline=None)
@given(
    cron=CRONS,
    tz_name=st.sampled_from(ZONES),
    start=STARTS,
    cuts=st.lists(st.integers(min_value=1, max_value=3 * 24 * 60 - 1), max_size=12),
    quiet=st.sampled_from([None, (0, 7), (22, 6), (1, 3)]),
    policy=st.sampled_from(["defer", "drop", "ignore"]),
)
def test_partition_into_ticks_equals_one_pass(cron, tz_name, start, cuts, quiet, policy):
    tz = zone(tz_name)
    quiet_hours = QuietHours(time(quiet[0]), time(quiet[1])) if quiet else None
    the_job = job(cron, action="post", quiet=policy)
    end = start + timedelta(days=3)
    one_pass = occurrences_between("c", the_job, tz, quiet_hours, start, end)
    bounds = [start, *sorted({start + timedelta(minutes=c) for c in cuts}), end]
    pieces = []
    for a, b in pairwise(bounds):
        pieces += occurrences_between("c", the_job, tz, quiet_hours, a, b)
    assert pieces == one_pass
    keys = [o.key for o in one_pass]
    assert len(keys) == len(set(keys)), "an occurrence identity appears twice"
    assert all(start < o.due_utc <= end for o in one_pass)
    assert all(o.due_utc >= o.scheduled_utc for o in one_pass)


class TestIdentity:
    """An occurrence is its nominal local minute *and* the instant it maps to."""

    def test_same_local_minute_in_another_zone_is_another_occurrence(self):
        start, end = utc(2026, 11, 30, 0), utc(2026, 12, 2, 0)
        day = "2026-12-01T08:00"
        (tokyo,) = [o for o in occ("0 8 * * *", zone("Asia/Tokyo"), start, end) if o.key == day]
        (los_angeles,) = [
            o for o in occ("0 8 * * *", zone("America/Los_Angeles"), start, end) if o.key == day
        ]
        assert tokyo.id == "2026-12-01T08:00@2026-11-30T23:00:00Z"
        assert los_angeles.id == "2026-12-01T08:00@2026-12-01T16:00:00Z"

    def test_an_alias_zone_with_the_same_rules_keeps_the_identity(self):
        start, end = utc(2026, 11, 30, 0), utc(2026, 12, 1, 0)
        kolkata = occ("0 8 * * *", zone("Asia/Kolkata"), start, end)
        calcutta = occ("0 8 * * *", zone("Asia/Calcutta"), start, end)
        assert [o.id for o in kolkata] == [o.id for o in calcutta]

    def test_occurrences_deferred_to_one_moment_keep_distinct_ids(self):
        quiet = QuietHours(time(0, 0), time(7, 0))
        found = occ(
            "0 * * * *",
            SHANGHAI,
            utc(2026, 11, 26, 15, 30),
            utc(2026, 11, 26, 23, 0),
            quiet,
            action="post",
            quiet="defer",
        )
        assert {o.due_utc for o in found} == {utc(2026, 11, 26, 23, 0)}
        assert len({o.id for o in found}) == len(found) == 8


class TestScheduledWindowAndReevaluation:
    def test_scheduled_window_lists_deferred_occurrences_when_their_instant_passes(self):
        quiet = QuietHours(time(0, 0), time(7, 0))
        found = occurrences_scheduled_between(
            "c",
            job("30 6 * * *", action="post", quiet="defer"),
            SHANGHAI,
            quiet,
            utc(2026, 11, 26, 22, 0),
            utc(2026, 11, 26, 22, 31),
        )
        assert [(o.key, o.quiet, o.due_utc) for o in found] == [
            ("2026-11-27T06:30", "deferred", utc(2026, 11, 26, 23, 0))
        ]

    @pytest.mark.parametrize(
        ("quiet_hours", "policy", "due", "quiet"),
        [
            (QuietHours(time(0, 0), time(7, 0)), "defer", utc(2026, 11, 26, 23, 0), "deferred"),
            (QuietHours(time(0, 0), time(6, 0)), "defer", utc(2026, 11, 26, 22, 30), None),
            (QuietHours(time(0, 0), time(7, 0)), "ignore", utc(2026, 11, 26, 22, 30), None),
            (QuietHours(time(0, 0), time(7, 0)), "drop", utc(2026, 11, 26, 22, 30), "dropped"),
            (None, "defer", utc(2026, 11, 26, 22, 30), None),
        ],
    )
    def test_a_pending_occurrence_follows_the_current_quiet_hours(
        self, quiet_hours, policy, due, quiet
    ):
        found = reevaluate(
            "c",
            job("30 6 * * *", action="post", quiet=policy),
            SHANGHAI,
            quiet_hours,
            datetime(2026, 11, 27, 6, 30),
            utc(2026, 11, 26, 22, 30),
            None,
        )
        assert (found.key, found.due_utc, found.quiet) == ("2026-11-27T06:30", due, quiet)

    def test_count_scheduled_is_bounded(self):
        count, first, last = count_scheduled(
            job("0 9 1 * *"), SHANGHAI, utc(2026, 11, 26), utc(2027, 1, 13), 10
        )
        assert (count, first, last) == (2, datetime(2026, 12, 1, 9, 0), datetime(2027, 1, 1, 9, 0))
        assert (
            count_scheduled(job("* * * * *"), SHANGHAI, utc(2026, 1, 1), utc(2026, 2, 1), 50)[0]
            == 50
        )
