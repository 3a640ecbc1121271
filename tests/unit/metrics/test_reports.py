"""Report posts, the pure part: the period an occurrence reports (month ends, leap
years, DST), the figures of a period's snapshots (missing days included) and the
default texts per locale; then the action with a fake store and post service."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from autopilot.config.model import (
    REPORT_FIELDS,
    Channel,
    Community,
    Job,
    MisfirePolicy,
    default_report_template,
)
from autopilot.metrics.reports import (
    SOURCE,
    ReportPoster,
    occurrence_period,
    period_bounds,
    render_report,
    report_fields,
    top_streak_label,
)
from autopilot.scheduler.rules import Occurrence
from autopilot.scheduler.service import ActionContext, ActionResult

D = date.fromisoformat


def snapshot(day: str, **figures: Any) -> dict[str, Any]:
    """A snapshot of docs/metrics.md's shape; ``figures`` override its numbers."""
    f: dict[str, Any] = {
        "count": 90,
        "wau": 120,
        "dau": 90,
        "mau": 150,
        "total": 200,
        "joined": 2,
        "left": 1,
        "new_streaks": 5,
        "awarded": 1000,
        "redeemed": -300,
        "outstanding": 25_000,
        "entrants": 0,
        "sent": 10,
        "converted": 4,
        "failed": {"group-log": 0},
        "streaks": {"1-2": 30, "3-6": 40, "7-29": 20, "30-99": 0, "100+": 0},
    }
    f.update(figures)
    return {
        "community": "sunrise-readers",
        "day": day,
        "version": 1,
        "members": {"total": f["total"], "joined": f["joined"], "left": f["left"]},
        "active": {"dau": f["dau"], "wau": f["wau"], "mau": f["mau"]},
        "checkins": {"count": f["count"], "rate": 0.0, "new_streaks": f["new_streaks"]},
        "streaks": f["streaks"],
        "points": {
            "awarded_total": f["awarded"],
            "redeemed_total": f["redeemed"],
            "outstanding": f["outstanding"],
        },
        "lottery": {"entries": f["entrants"], "entrants": f["entrants"], "participation": 0},
        "posts": {"published": {"group-log": 3}, "failed": f["failed"]},
        "reminders": {"sent": f["sent"], "converted": f["converted"]},
    }


def week_of(first: str, **figures: Any) -> list[dict[str, Any]]:
    return [snapshot((D(first) + timedelta(days=n)).isoformat(), **figures) for n in range(7)]


# --------------------------------------------------------------------------- periods


@pytest.mark.parametrize(
    ("run", "first", "last"),
    [
        ("2027-03-08", "2027-03-01", "2027-03-07"),  # Monday: the week that ended yesterday
        ("2027-03-09", "2027-03-01", "2027-03-07"),  # Tuesday: the same week
        ("2027-03-14", "2027-03-01", "2027-03-07"),  # Sunday: this week has not ended
        ("2027-03-15", "2027-03-08", "2027-03-14"),
        ("2027-02-01", "2027-01-25", "2027-01-31"),  # the week ends with the month
        ("2027-03-03", "2027-02-22", "2027-02-28"),  # February 2027 has 28 days
        ("2028-03-01", "2028-02-21", "2028-02-27"),  # a leap year's week before Feb 29
        ("2027-01-04", "2026-12-28", "2027-01-03"),  # across the year end
        ("2026-01-01", "2025-12-22", "2025-12-28"),
    ],
)
def test_a_week_is_the_monday_to_sunday_week_that_ended_before_the_run(run, first, last):
    assert period_bounds("week", D(run)) == (D(first), D(last))
    assert D(first).weekday() == 0 and (D(last) - D(first)).days == 6


@pytest.mark.parametrize(
    ("run", "first", "last"),
    [
        ("2027-02-01", "2027-01-01", "2027-01-31"),
        ("2027-03-01", "2027-02-01", "2027-02-28"),
        ("2028-03-01", "2028-02-01", "2028-02-29"),  # leap year
        ("2027-01-01", "2026-12-01", "2026-12-31"),  # across the year end
        ("2027-03-31", "2027-02-01", "2027-02-28"),  # any day of the month: the one before
        ("2027-05-01", "2027-04-01", "2027-04-30"),
    ],
)
def test_a_month_is_the_calendar_month_before_the_run(run, first, last):
    assert period_bounds("month", D(run)) == (D(first), D(last))


def test_an_unknown_period_is_refused():
    with pytest.raises(ValueError, match="unknown report period 'day'"):
        period_bounds("day", D("2027-03-08"))


def _occurrence(nominal: str, scheduled: str, due: str | None = None) -> Occurrence:
    scheduled_utc = datetime.fromisoformat(scheduled).replace(tzinfo=UTC)
    due_utc = datetime.fromisoformat(due).replace(tzinfo=UTC) if due else scheduled_utc
    return Occurrence("c", "weekly-report", datetime.fromisoformat(nominal), scheduled_utc, due_utc)


def test_the_local_date_of_the_occurrence_decides_across_dst_and_utc_dates():
    # New York, the Monday after spring-forward (09:30 EDT = 13:30Z): the week with
    # the 23-hour Sunday is a week of 7 days like any other.
    occ = _occurrence("2027-03-15T09:30", "2027-03-15T13:30")
    assert occurrence_period("week", occ) == (D("2027-03-08"), D("2027-03-14"))
    # Shanghai, Monday 07:00 local is still Sunday in UTC: the local date decides.
    occ = _occurrence("2027-02-01T07:00", "2027-01-31T23:00")
    assert occurrence_period("week", occ) == (D("2027-01-25"), D("2027-01-31"))
    assert occurrence_period("month", occ) == (D("2027-01-01"), D("2027-01-31"))
    # A run in the DST gap (Sunday 02:30 does not exist; fired at 03:00 EDT) and
    # deferred by quiet hours to 07:00 keeps its Sunday.
    occ = _occurrence("2027-03-14T02:30", "2027-03-14T07:00", due="2027-03-14T11:00")
    assert occurrence_period("week", occ) == (D("2027-03-01"), D("2027-03-07"))
    # New York, the Monday after fall-back (a 25-hour Sunday).
    occ = _occurrence("2027-11-08T09:30", "2027-11-08T14:30")
    assert occurrence_period("week", occ) == (D("2027-11-01"), D("2027-11-07"))


# --------------------------------------------------------------------------- figures


def test_a_full_week_sums_flows_and_takes_totals_at_its_end():
    snapshots = week_of("2027-03-01")
    snapshots[-1] = snapshot(
        "2027-03-07",
        count=92,
        wau=130,
        dau=92,
        mau=160,
        total=210,
        outstanding=26_000,
        failed={"group-log": 1, "console": 0},
        streaks={"1-2": 3, "3-6": 0, "7-29": 0, "30-99": 2, "100+": 0},
    )
    snapshots[4] = snapshot("2027-03-05", entrants=40)
    fields, missing = report_fields("晨读社", "zh-CN", D("2027-03-01"), D("2027-03-07"), snapshots)
    assert missing == []
    assert set(fields) == REPORT_FIELDS  # exactly what templates are validated against
    assert fields == {
        "community": "晨读社",
        "period_start": "2027-03-01",
        "period_end": "2027-03-07",
        "checkins": 6 * 90 + 92,
        # 632 check-ins over the sum of the days' weekly actives (6 × 120 + 130 = 850).
        "checkin_rate": "74%",
        "active_dau_avg": "90.3",  # 632 / 7 = 90.28...
        "wau": 130,
        "mau": 160,
        "members": 210,
        "joined": 14,
        "left": 7,
        "new_streaks": 35,
        "top_streak": "30-99 天",  # the longest bucket anyone reached, on Sunday
        "points_awarded": 7000,
        "points_redeemed": 2100,  # a positive amount (the ledger's sign is negative)
        "points_outstanding": 26_000,
        "lottery_entrants": 40,
        "reminders_sent": 70,
        "reminders_converted": 28,
        "posts_failed": 1,
    }


def test_missing_days_are_left_out_and_listed():
    # Tuesday and Sunday have no snapshot (the snapshot job was down, say).
    snapshots = [s for s in week_of("2027-03-01") if s["day"] not in ("2027-03-02", "2027-03-07")]
    snapshots[-1] = snapshot("2027-03-06", total=205, outstanding=24_000, wau=110, mau=140)
    fields, missing = report_fields("c", "en", D("2027-03-01"), D("2027-03-07"), snapshots)
    assert missing == [D("2027-03-02"), D("2027-03-07")]
    assert fields["checkins"] == 5 * 90
    assert fields["checkin_rate"] == "76%"  # 450 / (4 × 120 + 110) = 0.763
    assert fields["active_dau_avg"] == "90"
    # The end-of-period figures are those of the last day present, Saturday.
    assert (fields["members"], fields["points_outstanding"]) == (205, 24_000)
    assert (fields["wau"], fields["mau"]) == (110, 140)


def test_no_snapshot_at_all_gives_zeros_and_every_day_missing():
    for locale, none in (("zh-CN", "无"), ("en", "none")):
        fields, missing = report_fields("c", locale, D("2027-02-01"), D("2027-02-28"), [])
        assert len(missing) == 28 and missing[0] == D("2027-02-01")
        assert fields["checkins"] == fields["members"] == fields["points_outstanding"] == 0
        assert (fields["checkin_rate"], fields["active_dau_avg"]) == ("0%", "0")
        assert fields["top_streak"] == none


def test_snapshots_outside_the_period_and_repeated_days_are_ignored():
    snapshots = [
        snapshot("2027-02-28", count=1000),
        snapshot("2027-03-01", count=10),
        snapshot("2027-03-01", count=999),
        snapshot("2027-03-08", count=1000),
    ]
    fields, missing = report_fields("c", "en", D("2027-03-01"), D("2027-03-07"), snapshots)
    assert fields["checkins"] == 10
    assert len(missing) == 6


def test_rounding_is_half_up():
    # 149 / 200 = 74.5% → 75%; a mean of 0.25 daily actives → 0.3.
    fields, _ = report_fields(
        "c",
        "en",
        D("2027-03-01"),
        D("2027-03-04"),
        [
            snapshot("2027-03-01", count=149, wau=200, dau=1),
            *(snapshot(f"2027-03-0{d}", count=0, wau=0, dau=0) for d in (2, 3, 4)),
        ],
    )
    assert (fields["checkin_rate"], fields["active_dau_avg"]) == ("75%", "0.3")


def test_top_streak_names_a_bucket_per_locale():
    snapshots = [snapshot("2027-03-01", streaks={"1-2": 1, "100+": 1})]
    assert top_streak_label(snapshots, "zh-CN") == "100+ 天"
    assert top_streak_label(snapshots, "en") == "100+ days"
    assert top_streak_label([snapshot("2027-03-01")], "en") == "7-29 days"
    empty = {"1-2": 0, "3-6": 0, "7-29": 0, "30-99": 0, "100+": 0}
    assert top_streak_label([snapshot("2027-03-01", streaks=empty)], "zh-CN") == "无"


# --------------------------------------------------------------------------- texts


def _fields(locale: str) -> dict[str, Any]:
    snapshots = week_of("2027-03-01", count=90, wau=120)
    fields, _ = report_fields(
        "晨读社" if locale == "zh-CN" else "Daybreak Writers",
        locale,
        D("2027-03-01"),
        D("2027-03-07"),
        snapshots,
    )
    return fields


def test_default_texts_per_period_and_locale():
    zh, en = _fields("zh-CN"), _fields("en")
    assert render_report(default_report_template("zh-CN", "week"), None, zh) == (
        "📊 晨读社本周数据（2027-03-01–2027-03-07）：打卡 630 次，参与率 75%，周活跃 120 人，"
        "新加入 14 人。",
        None,
    )
    assert render_report(default_report_template("zh-CN", "month"), None, zh)[0] == (
        "💰 晨读社 2027-03-01–2027-03-07 积分月报：发放 7000，兑换 2100，期末未兑换余额 25000。"
    )
    assert render_report(default_report_template("en", "week"), None, en)[0] == (
        "📊 Daybreak Writers this week (2027-03-01–2027-03-07): 630 check-ins, check-in rate "
        "75%, 120 weekly active members, 14 joined."
    )
    assert render_report(default_report_template("en", "month"), None, en)[0] == (
        "💰 Daybreak Writers points report 2027-03-01–2027-03-07: 7000 awarded, 2100 "
        "redeemed, 25000 outstanding at the end."
    )
    # Any zh locale is Chinese; anything else English.
    assert default_report_template("zh-TW", "week") == default_report_template("zh-CN", "week")
    assert default_report_template("fr", "month") == default_report_template("en", "month")


def test_every_default_text_uses_only_report_fields():
    from autopilot.config.fields import template_fields

    for locale in ("zh-CN", "en"):
        for period in ("week", "month"):
            assert set(template_fields(default_report_template(locale, period))) <= REPORT_FIELDS


def test_a_title_is_rendered_with_the_same_fields():
    text, title = render_report("{checkins}", "{community} {period_start}", _fields("en"))
    assert (text, title) == ("630", "Daybreak Writers 2027-03-01")


# --------------------------------------------------------------------------- the action


class FakeStore:
    def __init__(self, snapshots: list[dict[str, Any]], table: str = "MetricsTable"):
        self.table = table
        self._snapshots = snapshots
        self.queries: list[tuple[str, date, date]] = []

    def snapshots(self, community_id: str, first: date, last: date) -> list[dict[str, Any]]:
        self.queries.append((community_id, first, last))
        return [s for s in self._snapshots if first.isoformat() <= s["day"] <= last.isoformat()]


class FakePosts:
    def __init__(self) -> None:
        self.published: list[tuple[str, str | None, tuple[str, ...], str]] = []

    def publish(self, ctx, text, title, channels, *, source="lottery") -> ActionResult:
        self.published.append((text, title, tuple(channels), source))
        return ActionResult(
            ok=True, detail={"deliveries": {c: {"status": "published"} for c in channels}}
        )


def _ctx(params: dict[str, Any], nominal: str = "2027-03-08T09:30") -> ActionContext:
    community = Community(
        id="sunrise-readers",
        name="晨读社",
        timezone="Asia/Shanghai",
        locale="zh-CN",
        day_boundary=time(4, 0),
        quiet_hours=None,
        channels=(Channel("group-log", "file", {"path": "g.jsonl"}),),
        pools=(),
        jobs=(),
    )
    job = Job(
        id="weekly-report",
        cron="30 9 * * 1",
        action="metrics_report",
        params=params,
        misfire=MisfirePolicy(),
        quiet_hours="defer",
    )
    scheduled = datetime.fromisoformat(nominal).replace(tzinfo=UTC) - timedelta(hours=8)
    occ = Occurrence(community.id, job.id, datetime.fromisoformat(nominal), scheduled, scheduled)
    return ActionContext(community, job, occ, now_utc=scheduled, attempt=1)


PARAMS = {
    "period": "week",
    "channels": ["group-log"],
    "template": default_report_template("zh-CN", "week"),
    "title": None,
}


def test_the_action_reads_the_period_once_and_publishes_with_missing_days():
    store = FakeStore(week_of("2027-03-01")[:6])  # Sunday's snapshot is missing
    posts = FakePosts()
    result = ReportPoster(store, posts).run(_ctx(PARAMS))  # type: ignore[arg-type]
    assert store.queries == [("sunrise-readers", D("2027-03-01"), D("2027-03-07"))]
    assert result.ok
    assert posts.published == [
        (
            "📊 晨读社本周数据（2027-03-01–2027-03-07）：打卡 540 次，参与率 75%，周活跃 120 人，"
            "新加入 12 人。",
            None,
            ("group-log",),
            SOURCE,
        )
    ]
    assert result.detail["missing_days"] == ["2027-03-07"]
    assert (result.detail["period"], result.detail["snapshots"]) == ("week", 6)
    assert result.detail["deliveries"] == {"group-log": {"status": "published"}}


def test_the_action_fails_without_a_metrics_table_or_with_a_broken_template():
    posts = FakePosts()
    no_table = ReportPoster(FakeStore([], table=""), posts).run(_ctx(PARAMS))  # type: ignore[arg-type]
    assert not no_table.ok and "METRICS_TABLE" in (no_table.error or "")
    broken = ReportPoster(FakeStore([]), posts).run(  # type: ignore[arg-type]
        _ctx({**PARAMS, "template": "{nope}"})
    )
    assert not broken.ok and "nope" in (broken.error or "")
    assert posts.published == []  # nothing was sent
