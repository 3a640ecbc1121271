"""A simulated week of the example config: exactly the posts the schedule says."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from autopilot_cli.configfile import validate_file
from autopilot_cli.simulate import Outage, print_day_by_day, run_simulation

START = datetime(2027, 3, 8, tzinfo=UTC)  # a week with New York's spring-forward (03-14)
CONFIG = "config/communities.yaml"


@pytest.fixture(scope="module")
def week(repo_root, tmp_path_factory):
    """One simulated week shared by the tests of this module (it is deterministic)."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
        }.items():
            patch.setenv(name, value)
        patch.chdir(repo_root)
        yield run_simulation(
            CONFIG,
            start=START,
            days=7,
            members=50,
            seed=3,
            out_dir=str(tmp_path_factory.mktemp("sim")),
            template_path=str(repo_root / "template.yaml"),
        )


# The reference for what the example config schedules, written out by hand from
# config/communities.yaml (never computed by the scheduler under test). Each row:
# (community, job, local time of the occurrence, UTC offset that day, UTC due, status).
# The simulation covers (start, start + 7 days]; the config is published at start.
SR, DW = "sunrise-readers", "daybreak-writers"
CN = "+08:00"  # Asia/Shanghai: China has no DST
EST, EDT = "-05:00", "-04:00"  # New York springs forward on Sunday 2027-03-14 at 02:00
F, D = "fired", "deferred"

# Monday 2027-03-08 00:00Z (08:00 Mon in Shanghai, 19:00 Sun in New York) to
# Monday 2027-03-15 00:00Z (08:00 Mon in Shanghai, 20:00 Sun in New York).
DST_WEEK: list[tuple[str, str, str, str, str, str]] = [
    # 晨读社, quiet hours 00:00-07:00. Monday 09:00 preview: only the first Monday is
    # inside the window (the next one is 2027-03-15T01:00Z).
    (SR, "weekly-preview", "2027-03-08T09:00", CN, "2027-03-08T01:00:00Z", F),
    # 07:30 of Monday the 8th (2027-03-07T23:30Z) is before the window.
    (SR, "morning-post", "2027-03-09T07:30", CN, "2027-03-08T23:30:00Z", F),
    (SR, "morning-post", "2027-03-10T07:30", CN, "2027-03-09T23:30:00Z", F),
    (SR, "morning-post", "2027-03-11T07:30", CN, "2027-03-10T23:30:00Z", F),
    (SR, "morning-post", "2027-03-12T07:30", CN, "2027-03-11T23:30:00Z", F),
    (SR, "morning-post", "2027-03-13T07:30", CN, "2027-03-12T23:30:00Z", F),
    (SR, "morning-post", "2027-03-14T07:30", CN, "2027-03-13T23:30:00Z", F),
    (SR, "morning-post", "2027-03-15T07:30", CN, "2027-03-14T23:30:00Z", F),
    (SR, "evening-post", "2027-03-08T21:00", CN, "2027-03-08T13:00:00Z", F),
    (SR, "evening-post", "2027-03-09T21:00", CN, "2027-03-09T13:00:00Z", F),
    (SR, "evening-post", "2027-03-10T21:00", CN, "2027-03-10T13:00:00Z", F),
    (SR, "evening-post", "2027-03-11T21:00", CN, "2027-03-11T13:00:00Z", F),
    (SR, "evening-post", "2027-03-12T21:00", CN, "2027-03-12T13:00:00Z", F),
    (SR, "evening-post", "2027-03-13T21:00", CN, "2027-03-13T13:00:00Z", F),
    (SR, "evening-post", "2027-03-14T21:00", CN, "2027-03-14T13:00:00Z", F),
    # 03:00 is inside quiet hours, but a ledger job talks to no member: it runs on time.
    (SR, "ledger-reconcile", "2027-03-09T03:00", CN, "2027-03-08T19:00:00Z", F),
    (SR, "ledger-reconcile", "2027-03-10T03:00", CN, "2027-03-09T19:00:00Z", F),
    (SR, "ledger-reconcile", "2027-03-11T03:00", CN, "2027-03-10T19:00:00Z", F),
    (SR, "ledger-reconcile", "2027-03-12T03:00", CN, "2027-03-11T19:00:00Z", F),
    (SR, "ledger-reconcile", "2027-03-13T03:00", CN, "2027-03-12T19:00:00Z", F),
    (SR, "ledger-reconcile", "2027-03-14T03:00", CN, "2027-03-13T19:00:00Z", F),
    (SR, "ledger-reconcile", "2027-03-15T03:00", CN, "2027-03-14T19:00:00Z", F),
    # Daybreak Writers, quiet hours 22:00-07:00. 20:30 of Sunday the 7th (EST) is the
    # first occurrence inside the window; 20:30 of Sunday the 14th (EDT) is 00:30Z on
    # the 15th, after it.
    (DW, "evening-reflection", "2027-03-07T20:30", EST, "2027-03-08T01:30:00Z", F),
    (DW, "evening-reflection", "2027-03-08T20:30", EST, "2027-03-09T01:30:00Z", F),
    (DW, "evening-reflection", "2027-03-09T20:30", EST, "2027-03-10T01:30:00Z", F),
    (DW, "evening-reflection", "2027-03-10T20:30", EST, "2027-03-11T01:30:00Z", F),
    (DW, "evening-reflection", "2027-03-11T20:30", EST, "2027-03-12T01:30:00Z", F),
    (DW, "evening-reflection", "2027-03-12T20:30", EST, "2027-03-13T01:30:00Z", F),
    (DW, "evening-reflection", "2027-03-13T20:30", EST, "2027-03-14T01:30:00Z", F),
    (DW, "good-morning", "2027-03-08T08:00", EST, "2027-03-08T13:00:00Z", F),
    (DW, "good-morning", "2027-03-09T08:00", EST, "2027-03-09T13:00:00Z", F),
    (DW, "good-morning", "2027-03-10T08:00", EST, "2027-03-10T13:00:00Z", F),
    (DW, "good-morning", "2027-03-11T08:00", EST, "2027-03-11T13:00:00Z", F),
    (DW, "good-morning", "2027-03-12T08:00", EST, "2027-03-12T13:00:00Z", F),
    (DW, "good-morning", "2027-03-13T08:00", EST, "2027-03-13T13:00:00Z", F),
    # The first morning on daylight time: one hour earlier in UTC.
    (DW, "good-morning", "2027-03-14T08:00", EDT, "2027-03-14T12:00:00Z", F),
    # Sunday 02:30 does not exist on the 14th (02:00 EST -> 03:00 EDT); it falls into
    # quiet hours either way and goes out when they end, 07:00 EDT.
    (DW, "weekly-digest", "2027-03-14T02:30", EDT, "2027-03-14T11:00:00Z", D),
    # The weekly lotteries (opens Monday 08:00, closes Friday 19:55, draws 20:00). In
    # Shanghai, Monday 08:00 of the 8th is 00:00Z, the window's open start: the first
    # open is not in it, the one of the 15th (00:00Z, the window's end) is.
    (SR, "lottery.weekly.close", "2027-03-12T19:55", CN, "2027-03-12T11:55:00Z", F),
    (SR, "lottery.weekly.draw", "2027-03-12T20:00", CN, "2027-03-12T12:00:00Z", F),
    (SR, "lottery.weekly.open", "2027-03-08T09:00", CN, "2027-03-08T01:00:00Z", F),
    (DW, "lottery.weekly.open", "2027-03-08T08:00", EST, "2027-03-08T13:00:00Z", F),
    (DW, "lottery.weekly.close", "2027-03-12T19:55", EST, "2027-03-13T00:55:00Z", F),
    (DW, "lottery.weekly.draw", "2027-03-12T20:00", EST, "2027-03-13T01:00:00Z", F),
    # Reminders: 晨读社 20:00 (12:00Z) and 21:30 (13:30Z) every day, the 8th to the 14th.
    *[
        (SR, "evening-nudge", f"2027-03-{d:02d}T20:00", CN, f"2027-03-{d:02d}T12:00:00Z", F)
        for d in range(8, 15)
    ],
    *[
        (SR, "streak-rescue", f"2027-03-{d:02d}T21:30", CN, f"2027-03-{d:02d}T13:30:00Z", F)
        for d in range(8, 15)
    ],
    # Daybreak Writers 20:00 EST is 01:00Z the next day, 21:30 is 02:30Z, from Sunday
    # the 7th; on daylight time (the 14th) 20:00 EDT is 00:00Z on the 15th, the
    # window's end (included), and 21:30 EDT is after it.
    *[
        (DW, "checkin-nudge", f"2027-03-{d:02d}T20:00", EST, f"2027-03-{d + 1:02d}T01:00:00Z", F)
        for d in range(7, 14)
    ],
    (DW, "checkin-nudge", "2027-03-14T20:00", EDT, "2027-03-15T00:00:00Z", F),
    *[
        (DW, "streak-rescue", f"2027-03-{d:02d}T21:30", EST, f"2027-03-{d + 1:02d}T02:30:00Z", F)
        for d in range(7, 14)
    ],
    # Daily metric snapshots, 30 minutes after each day boundary: 晨读社 04:30 (20:30Z
    # the day before), Daybreak Writers 03:30 (08:30Z on standard time, 07:30Z on
    # daylight time: 03:30 exists on the 14th, after the 02:00 -> 03:00 jump).
    *[
        (SR, "metrics.daily", f"2027-03-{d:02d}T04:30", CN, f"2027-03-{d - 1:02d}T20:30:00Z", F)
        for d in range(9, 16)
    ],
    *[
        (DW, "metrics.daily", f"2027-03-{d:02d}T03:30", EST, f"2027-03-{d:02d}T08:30:00Z", F)
        for d in range(8, 14)
    ],
    (DW, "metrics.daily", "2027-03-14T03:30", EDT, "2027-03-14T07:30:00Z", F),
    # Report posts: Monday 09:30 reports the week before (2027-03-01..07). The next
    # Monday's (2027-03-15T01:30Z in Shanghai, 13:30Z in New York) is after the window;
    # the monthly summary (the 1st, 10:00) has no occurrence in this week.
    (SR, "weekly-report", "2027-03-08T09:30", CN, "2027-03-08T01:30:00Z", F),
    (DW, "weekly-report", "2027-03-08T09:30", EST, "2027-03-08T14:30:00Z", F),
]


JAN_26_FEB_1 = [f"2027-01-{d}" for d in range(26, 32)] + ["2027-02-01"]
JAN_25_31 = list(zip(range(25, 32), JAN_26_FEB_1, strict=True))  # (local day, next UTC day)

# Tuesday 2027-01-26 00:00Z to Tuesday 2027-02-02 00:00Z: the month ends in Shanghai
# at 2027-01-31T16:00Z; New York is on standard time all week.
MONTH_END_WEEK: list[tuple[str, str, str, str, str, str]] = [
    (SR, "weekly-preview", "2027-02-01T09:00", CN, "2027-02-01T01:00:00Z", F),
    # The monthly export of January runs at 02:00 on the 1st, inside quiet hours: a
    # ledger job ignores them.
    (SR, "ledger-export", "2027-02-01T02:00", CN, "2027-01-31T18:00:00Z", F),
    (SR, "morning-post", "2027-01-27T07:30", CN, "2027-01-26T23:30:00Z", F),
    (SR, "morning-post", "2027-01-28T07:30", CN, "2027-01-27T23:30:00Z", F),
    (SR, "morning-post", "2027-01-29T07:30", CN, "2027-01-28T23:30:00Z", F),
    (SR, "morning-post", "2027-01-30T07:30", CN, "2027-01-29T23:30:00Z", F),
    (SR, "morning-post", "2027-01-31T07:30", CN, "2027-01-30T23:30:00Z", F),
    (SR, "morning-post", "2027-02-01T07:30", CN, "2027-01-31T23:30:00Z", F),
    (SR, "morning-post", "2027-02-02T07:30", CN, "2027-02-01T23:30:00Z", F),
    (SR, "evening-post", "2027-01-26T21:00", CN, "2027-01-26T13:00:00Z", F),
    (SR, "evening-post", "2027-01-27T21:00", CN, "2027-01-27T13:00:00Z", F),
    (SR, "evening-post", "2027-01-28T21:00", CN, "2027-01-28T13:00:00Z", F),
    (SR, "evening-post", "2027-01-29T21:00", CN, "2027-01-29T13:00:00Z", F),
    (SR, "evening-post", "2027-01-30T21:00", CN, "2027-01-30T13:00:00Z", F),
    (SR, "evening-post", "2027-01-31T21:00", CN, "2027-01-31T13:00:00Z", F),
    (SR, "evening-post", "2027-02-01T21:00", CN, "2027-02-01T13:00:00Z", F),
    (SR, "ledger-reconcile", "2027-01-27T03:00", CN, "2027-01-26T19:00:00Z", F),
    (SR, "ledger-reconcile", "2027-01-28T03:00", CN, "2027-01-27T19:00:00Z", F),
    (SR, "ledger-reconcile", "2027-01-29T03:00", CN, "2027-01-28T19:00:00Z", F),
    (SR, "ledger-reconcile", "2027-01-30T03:00", CN, "2027-01-29T19:00:00Z", F),
    (SR, "ledger-reconcile", "2027-01-31T03:00", CN, "2027-01-30T19:00:00Z", F),
    (SR, "ledger-reconcile", "2027-02-01T03:00", CN, "2027-01-31T19:00:00Z", F),
    (SR, "ledger-reconcile", "2027-02-02T03:00", CN, "2027-02-01T19:00:00Z", F),
    (DW, "evening-reflection", "2027-01-25T20:30", EST, "2027-01-26T01:30:00Z", F),
    (DW, "evening-reflection", "2027-01-26T20:30", EST, "2027-01-27T01:30:00Z", F),
    (DW, "evening-reflection", "2027-01-27T20:30", EST, "2027-01-28T01:30:00Z", F),
    (DW, "evening-reflection", "2027-01-28T20:30", EST, "2027-01-29T01:30:00Z", F),
    (DW, "evening-reflection", "2027-01-29T20:30", EST, "2027-01-30T01:30:00Z", F),
    (DW, "evening-reflection", "2027-01-30T20:30", EST, "2027-01-31T01:30:00Z", F),
    (DW, "evening-reflection", "2027-01-31T20:30", EST, "2027-02-01T01:30:00Z", F),
    (DW, "good-morning", "2027-01-26T08:00", EST, "2027-01-26T13:00:00Z", F),
    (DW, "good-morning", "2027-01-27T08:00", EST, "2027-01-27T13:00:00Z", F),
    (DW, "good-morning", "2027-01-28T08:00", EST, "2027-01-28T13:00:00Z", F),
    (DW, "good-morning", "2027-01-29T08:00", EST, "2027-01-29T13:00:00Z", F),
    (DW, "good-morning", "2027-01-30T08:00", EST, "2027-01-30T13:00:00Z", F),
    (DW, "good-morning", "2027-01-31T08:00", EST, "2027-01-31T13:00:00Z", F),
    (DW, "good-morning", "2027-02-01T08:00", EST, "2027-02-01T13:00:00Z", F),
    # 02:30 is inside quiet hours (22:00-07:00): deferred to 07:00 EST.
    (DW, "weekly-digest", "2027-01-31T02:30", EST, "2027-01-31T12:00:00Z", D),
    # The weekly lotteries: Friday the 29th's close and draw, Monday the 1st's open.
    (SR, "lottery.weekly.close", "2027-01-29T19:55", CN, "2027-01-29T11:55:00Z", F),
    (SR, "lottery.weekly.draw", "2027-01-29T20:00", CN, "2027-01-29T12:00:00Z", F),
    (SR, "lottery.weekly.open", "2027-02-01T09:00", CN, "2027-02-01T01:00:00Z", F),
    (DW, "lottery.weekly.close", "2027-01-29T19:55", EST, "2027-01-30T00:55:00Z", F),
    (DW, "lottery.weekly.draw", "2027-01-29T20:00", EST, "2027-01-30T01:00:00Z", F),
    (DW, "lottery.weekly.open", "2027-02-01T08:00", EST, "2027-02-01T13:00:00Z", F),
    # Reminders: 晨读社 from the 26th to February 1st; Daybreak Writers from the 25th
    # (20:00 EST is 01:00Z on the 26th) to the 31st (February 1st's is after the window).
    *[(SR, "evening-nudge", f"{d}T20:00", CN, f"{d}T12:00:00Z", F) for d in JAN_26_FEB_1],
    *[(SR, "streak-rescue", f"{d}T21:30", CN, f"{d}T13:30:00Z", F) for d in JAN_26_FEB_1],
    *[(DW, "checkin-nudge", f"2027-01-{d}T20:00", EST, f"{n}T01:00:00Z", F) for d, n in JAN_25_31],
    *[(DW, "streak-rescue", f"2027-01-{d}T21:30", EST, f"{n}T02:30:00Z", F) for d, n in JAN_25_31],
    # Daily snapshots: 晨读社 04:30 of the 27th .. February 2nd (20:30Z the day before),
    # Daybreak Writers 03:30 EST (08:30Z) of the 26th .. February 1st.
    *[
        (SR, "metrics.daily", f"{n}T04:30", CN, f"{d}T20:30:00Z", F)
        for d, n in zip(JAN_26_FEB_1, [*JAN_26_FEB_1[1:], "2027-02-02"], strict=True)
    ],
    *[(DW, "metrics.daily", f"{d}T03:30", EST, f"{d}T08:30:00Z", F) for d in JAN_26_FEB_1],
    # Report posts on Monday February 1st: the week of January 25-31 at 09:30, and
    # January's points summary at 10:00 (the 1st of the month).
    (SR, "weekly-report", "2027-02-01T09:30", CN, "2027-02-01T01:30:00Z", F),
    (SR, "finance-summary", "2027-02-01T10:00", CN, "2027-02-01T02:00:00Z", F),
    (DW, "weekly-report", "2027-02-01T09:30", EST, "2027-02-01T14:30:00Z", F),
    (DW, "finance-summary", "2027-02-01T10:00", EST, "2027-02-01T15:00:00Z", F),
]


@pytest.fixture(scope="module")
def month_end_week(repo_root, tmp_path_factory):
    """The week around the end of January 2027 (few members: only the schedule matters)."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
        }.items():
            patch.setenv(name, value)
        patch.chdir(repo_root)
        yield run_simulation(
            CONFIG,
            start=datetime(2027, 1, 26, tzinfo=UTC),
            days=7,
            members=2,
            seed=5,
            out_dir=str(tmp_path_factory.mktemp("month-end")),
            template_path=str(repo_root / "template.yaml"),
        )


@pytest.fixture(params=["dst_week", "month_end_week"])
def fixed_week(request):
    """A simulated week and its hand-written reference."""
    reference = {"dst_week": DST_WEEK, "month_end_week": MONTH_END_WEEK}[request.param]
    simulated = request.getfixturevalue("week" if request.param == "dst_week" else request.param)
    return simulated, reference


def test_every_scheduled_occurrence_runs_exactly_once(fixed_week):
    simulated, reference = fixed_week
    ran = [
        (o["community"], o["job"], o["key"], o["due_utc"], o["status"])
        for o in simulated.summary["occurrences"]
    ]
    expected = [(c, j, local, due, status) for c, j, local, _, due, status in reference]
    assert len(ran) == len(set(ran))  # each occurrence is recorded once
    assert sorted(ran) == sorted(expected)


def test_each_occurrence_is_scheduled_at_its_local_time(fixed_week):
    """The scheduled instant is the local time of the row, at that day's UTC offset."""
    simulated, reference = fixed_week
    scheduled = {
        (o["community"], o["job"], o["key"]): o["scheduled_local"]
        for o in simulated.summary["occurrences"]
    }
    # 02:30 does not exist on 2027-03-14: that occurrence is scheduled at 03:00 EDT.
    written = {
        (c, j, local): "2027-03-14T03:00-04:00" if local == "2027-03-14T02:30" else local + offset
        for c, j, local, offset, _, _ in reference
    }
    assert scheduled == written


def test_posts_match_the_schedule_channel_by_channel(week, repo_root):
    config = validate_file(str(repo_root / CONFIG)).config
    expected = []
    # Posts and report posts go to their job's channels.
    own_channels = ("post", "metrics_report")
    for occ in week.summary["occurrences"]:
        job = config.community(occ["community"]).job(occ["job"])
        if job.action in own_channels:
            expected += [
                (occ["community"], occ["job"], occ["key"], c) for c in job.params["channels"]
            ]
    posted = [
        (p["community"], p["job"], p["key"], p["channel"])
        for p in week.summary["posts"]
        if config.community(p["community"]).job(p["job"]).action in own_channels
    ]
    assert sorted(posted) == sorted(expected)
    # Lottery posts (announce, closed, winners) go to the lottery's own channels.
    for p in week.summary["posts"]:
        job = config.community(p["community"]).job(p["job"])
        if job.action not in own_channels:
            lottery = config.community(p["community"]).lottery(job.params["lottery"])
            assert lottery.posts is not None and p["channel"] in lottery.posts.channels
    assert all(p["status"] == "published" and p["message_id"] for p in week.summary["posts"])


def test_report_posts_sum_the_snapshots_of_the_period_before(month_end_week):
    """February 1st: each community's weekly report covers January 25-31 and its
    monthly summary January, summed from the snapshots metrics.daily wrote during the
    run (a day before the run has none: it counts zero)."""
    summary = month_end_week.summary
    posts = {(p["community"], p["job"]): p["text"] for p in summary["posts"]}
    for community in (SR, DW):
        snapshots = [s for s in summary["snapshots"] if s["community"] == community]
        january = [s for s in snapshots if "2027-01-01" <= s["day"] <= "2027-01-31"]
        week = [s for s in january if s["day"] >= "2027-01-25"]
        checkins = sum(s["checkins"]["count"] for s in week)
        awarded = sum(s["points"]["awarded_total"] for s in january)
        redeemed = -sum(s["points"]["redeemed_total"] for s in january)
        outstanding = max(january, key=lambda s: s["day"])["points"]["outstanding"]
        weekly, monthly = posts[(community, "weekly-report")], posts[(community, "finance-summary")]
        assert "2027-01-25–2027-01-31" in weekly
        if community == SR:  # the example's own zh template, the default zh month text
            assert f"打卡 {checkins} 次" in weekly
            assert f"积分月报：发放 {awarded}，兑换 {redeemed}，期末未兑换余额 {outstanding}。" in (
                monthly
            )
            assert "2027-01-01–2027-01-31" in monthly
        else:  # the default en week text, the example's own en month text
            assert weekly.startswith(
                f"📊 Daybreak Writers this week (2027-01-25–2027-01-31): {checkins} check-ins"
            )
            assert f"{awarded} awarded, {redeemed} redeemed, {outstanding} outstanding" in monthly
            assert "2027-01-01 to 2027-01-31" in monthly


def test_summary_json_has_the_documented_shape(week):
    summary = json.loads((week.out_dir / "summary.json").read_text(encoding="utf-8"))
    occ = summary["occurrences"][0]
    assert {"community", "job", "scheduled_utc", "scheduled_local", "status", "ran_at_utc"} <= set(
        occ
    )
    post = summary["posts"][0]
    assert {"community", "job", "channel", "at_utc", "content_id", "text"} <= set(post)
    assert summary["members"] == 50 and summary["seed"] == 3


def test_dst_gap_job_runs_once_after_quiet_hours(week):
    digest = [o for o in week.summary["occurrences"] if o["job"] == "weekly-digest"]
    assert [(o["key"], o["status"], o["dst"]) for o in digest] == [
        ("2027-03-14T02:30", "deferred", "gap")
    ]
    # 02:30 does not exist on 2027-03-14; quiet hours end at 07:00 EDT = 11:00Z.
    assert digest[0]["due_utc"] == "2027-03-14T11:00:00Z"


def test_group_log_file_holds_each_post_once(week):
    lines = []
    for path in week.out_dir.rglob("*.jsonl"):
        lines += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    keys = [line["key"] for line in lines]
    assert len(keys) == len(set(keys))
    posts = [line for line in lines if not line["key"].startswith("reminder#")]
    file_posts = [p for p in week.summary["posts"] if p["channel"] == "group-log"]
    assert len(posts) == len(file_posts)
    # The reminders' group messages share the file (the example's reminder channel).
    reminders = [line for line in lines if line["key"].startswith("reminder#")]
    assert reminders and {line["job"] for line in reminders} <= {
        "evening-nudge",
        "checkin-nudge",
        "streak-rescue",
    }


def test_reminders_go_out_once_and_members_answer_them(week):
    rows = [
        (community, job, day, row)
        for community, jobs in week.summary["reminders"].items()
        for job, days in jobs.items()
        for day, row in days.items()
    ]
    assert {(c, j) for c, j, _, _ in rows} == {
        ("sunrise-readers", "evening-nudge"),
        ("sunrise-readers", "streak-rescue"),
        ("daybreak-writers", "checkin-nudge"),
        ("daybreak-writers", "streak-rescue"),
    }
    for community, job, day, row in rows:
        # No quiet hours at 20:00/21:30 and no member in another zone: every selected
        # member is sent to or skipped with a reason, nobody is left in between.
        skipped = sum(row["skipped"].values())
        assert row["selected"] == row["sent"] + skipped + row["failed"], (community, job, day)
        assert row["failed"] == 0 and row["converted"] <= row["sent"]
    sent = {job: sum(r["sent"] for _, j, _, r in rows if j == job) for _, job, _, _ in rows}
    assert sent["streak-rescue"] > 0 and sent["evening-nudge"] > 0 and sent["checkin-nudge"] > 0
    converted = sum(r["converted"] for *_, r in rows)
    assert 0 < converted <= week.summary["member_activity"]["checkins"]
    assert week.summary["member_activity"]["reminder_responses"] > 0


def test_same_seed_same_week(week, aws_env, repo_root, tmp_path):
    again = run_simulation(
        CONFIG,
        start=START,
        days=7,
        members=50,
        seed=3,
        out_dir=str(tmp_path / "again"),
        template_path=str(repo_root / "template.yaml"),
    )

    def stable(summary):
        posts = [{k: v for k, v in p.items() if k != "message_id"} for p in summary["posts"]]
        return summary["occurrences"], posts

    assert stable(again.summary) == stable(week.summary)


def test_outage_shows_the_misfire_policy(aws_env, repo_root, tmp_path, monkeypatch):
    monkeypatch.chdir(repo_root)
    # Down from 06:00 to 09:00 Shanghai on 03-10: the 07:30 post is missed (grace 30m),
    # never posted late as a stale "good morning".
    result = run_simulation(
        CONFIG,
        start=START,
        days=3,
        members=10,
        seed=1,
        out_dir=str(tmp_path / "outage"),
        outages=[Outage.parse("2027-03-09T22:00Z/3h")],
        template_path=str(repo_root / "template.yaml"),
    )
    morning = {
        o["key"]: o
        for o in result.summary["occurrences"]
        if o["community"] == "sunrise-readers" and o["job"] == "morning-post"
    }
    assert morning["2027-03-10T07:30"]["status"] == "missed"
    assert "grace" in morning["2027-03-10T07:30"]["reason"]
    assert not [p for p in result.summary["posts"] if p["key"] == "2027-03-10T07:30"]
    assert morning["2027-03-11T07:30"]["status"] == "fired"


def test_bad_outage_is_rejected():
    with pytest.raises(ValueError, match="START/DURATION"):
        Outage.parse("yesterday")


def test_members_check_in_and_the_ledger_reconciles(week):
    summary = week.summary
    activity = summary["member_activity"]
    assert activity["checkins"] > 50 and activity["refused"] == 0
    by_day = summary["checkins_by_day"]
    assert set(by_day) == {"sunrise-readers", "daybreak-writers"}
    # Counts come from the sharded counters, and agree with what members were told.
    assert sum(sum(days.values()) for days in by_day.values()) == activity["checkins"]
    ledger = summary["ledger"]
    assert ledger["reconciled"] is True
    assert ledger["outstanding"] == ledger["awarded"] - ledger["redeemed"]
    rows = (week.out_dir / "ledger.csv").read_text(encoding="utf-8").splitlines()
    assert rows[0].startswith("entry_id,at_utc,community_id,member_id,reason,amount")
    assert len(rows) - 1 == ledger["entries"]


def test_each_weekly_lottery_draws_verifiably_and_pays_through_the_ledger(week):
    """Members enter as people would; each community's draw of the week is published,
    recomputed by the verifier from its record and entrant list, and paid in the ledger."""
    import csv

    draws = week.summary["lotteries"]
    assert {(d["community"], d["lottery"]) for d in draws} == {(SR, "weekly"), (DW, "weekly")}
    assert week.summary["member_activity"]["lottery_entries"] == sum(d["entries"] for d in draws)
    with open(week.out_dir / "ledger.csv", encoding="utf-8") as handle:
        prizes = [r for r in csv.DictReader(handle) if r["reason"] == "lottery_prize"]
    paid = sorted((r["community_id"], r["member_id"]) for r in prizes)
    winners = []
    for draw in draws:
        assert draw["state"] == "paid", draw
        assert draw["verified"] is True, draw.get("differences")
        assert 0 < draw["entrants"] <= draw["entries"]
        assert len(draw["commitment"]) == 64 and len(draw["entrants_hash"]) == 64
        # 1 first prize and 3 second prizes, to 4 different members.
        members = [w["member"] for w in draw["winners"]]
        assert len(members) == 4 == len(set(members))
        winners += [(draw["community"], m) for m in members]
    assert paid == sorted(winners)


def test_evening_post_shows_live_check_in_counts(week):
    evening = [
        p
        for p in week.summary["posts"]
        if p["community"] == "sunrise-readers" and p["job"] == "evening-post"
    ]
    import csv

    rows = list(csv.DictReader((week.out_dir / "ledger.csv").open(encoding="utf-8")))
    shanghai = timezone(timedelta(hours=8))
    boundary = timedelta(hours=4)  # day_boundary "04:00": a 01:30 check-in is yesterday's
    assert evening
    for post in evening:
        day = post["key"][:10]
        so_far = sum(
            1
            for r in rows
            if r["community_id"] == "sunrise-readers"
            and r["reason"] == "checkin"
            and r["at_utc"] <= post["at_utc"]
            and (
                datetime.fromisoformat(r["at_utc"].replace("Z", "+00:00")).astimezone(shanghai)
                - boundary
            )
            .date()
            .isoformat()
            == day
        )
        assert f"今天有 {so_far} 位伙伴打卡" in post["text"]


def test_finance_occurrences_carry_the_workers_outcome(week, repo_root, capsys):
    """The dispatcher only enqueues finance work; the worker's outcome is recorded on the
    occurrence, shows in summary.json and in the day-by-day account."""
    nightly = [o for o in week.summary["occurrences"] if o["job"] == "ledger-reconcile"]
    assert nightly and all(o["status"] == "fired" for o in nightly)
    for occ in nightly:
        work = occ["work"]
        assert work["status"] == "done" and work["ok"] is True, occ
        assert work["mode"] == "nightly" and work["members"] >= 0
    posts = [o for o in week.summary["occurrences"] if not o["job"].startswith("ledger-")]
    assert posts and all(o["work"] is None for o in posts)
    print_day_by_day(week.summary, validate_file(str(repo_root / CONFIG)).config)
    assert "ledger-reconcile   fired    → worker: done, " in capsys.readouterr().out
