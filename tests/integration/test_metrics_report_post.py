"""Report posts on the template's stack: a week of real check-ins, snapshotted by the
dispatcher's own metrics.daily job, reported on Monday 09:30 to a file channel with
the figures the test recomputes from what it did; a rerun posts nothing new; a
month with missing snapshots still posts, and says which days were missing."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from autopilot.config.model import REPORT_ACTION
from autopilot.ledger.service import Redemption
from autopilot.metrics.reports import ReportPoster
from autopilot.scheduler.rules import Occurrence
from autopilot.scheduler.service import ActionContext
from autopilot.timeutil import local_wall, zone

from .conftest import make_config

SHANGHAI = ZoneInfo("Asia/Shanghai")
MONDAY = date(2027, 3, 1)
WEEK = [MONDAY + timedelta(days=n) for n in range(7)]
# Who checks in on which day of the week (index into WEEK).
PATTERN = {
    "m0": range(7),
    "m1": range(7),
    "m2": (0, 1, 2, 4, 5),
    "m3": (2, 3),
    "m4": (6,),
}
JOBS = [
    {
        "id": "weekly-report",
        "cron": "30 9 * * 1",
        "action": "metrics_report",
        "params": {"period": "week", "channels": ["group"]},
    },
    {
        "id": "finance-summary",
        "cron": "0 10 1 * *",
        "action": "metrics_report",
        "params": {
            "period": "month",
            "channels": ["finance"],
            "title": "{community}积分月报",
        },
        "misfire": {"policy": "all"},
    },
]
CHANNELS = [
    {"id": "group", "type": "file", "path": "group.jsonl"},
    {"id": "finance", "type": "file", "path": "finance.jsonl"},
]


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=SHANGHAI).astimezone(UTC)


def push(stack: Any) -> None:
    stack.push(
        make_config(
            jobs=JOBS,
            channels=CHANNELS,
            published_at="2027-03-01T02:30:00Z",
            rewards=[{"id": "badge", "name": "徽章", "cost_points": 20}],
            metrics={"daily_snapshot": True},  # the dispatcher's own snapshots
        )
    )


def with_reports(app: Any) -> Any:
    """The App's dispatcher with the report action (whether or not app.py has it yet)."""
    app.dispatcher._actions = {
        **app.dispatcher._actions,
        REPORT_ACTION: ReportPoster(app.metrics.store, app.posts).run,
    }
    return app


def ctx(app: Any, job_id: str, scheduled: datetime) -> ActionContext:
    """The dispatcher's context for one occurrence of ``job_id`` at ``scheduled``."""
    community = app.config().communities[0]
    job = community.job(job_id)
    nominal = local_wall(scheduled, zone(community.timezone)).replace(tzinfo=None)
    occ = Occurrence(community.id, job.id, nominal, scheduled, scheduled)
    return ActionContext(community, job, occ, now_utc=scheduled, attempt=1)


def test_the_weekly_report_posts_the_week_the_dispatcher_snapshotted_once(stack):
    push(stack)
    app = with_reports(stack.app())
    c = app.config().communities[0]
    checked: dict[date, set[str]] = {d: set() for d in WEEK}
    for index, day in enumerate(WEEK):
        for n, (member, days) in enumerate(sorted(PATTERN.items())):
            if index in days:
                at = local(day, 11, n)
                stack.clock.set(at)
                app.checkins.check_in(c, member, at)
                checked[day].add(member)
        # 00:31 the next day: the dispatcher's metrics.daily (00:30, 30 minutes after
        # the day boundary) snapshots the day that ended.
        stack.clock.set(local(day + timedelta(days=1), 0, 31))
        report = app.tick()
        assert [(o.job_id, o.status) for o in report.occurrences] == [("metrics.daily", "fired")], (
            report.occurrences
        )

    # Monday 09:30 (01:30Z): the report of March 1-7.
    stack.clock.set(local(date(2027, 3, 8), 9, 30) + timedelta(seconds=5))
    report = app.tick()
    assert [(o.job_id, o.status) for o in report.occurrences] == [("weekly-report", "fired")]
    (occurrence,) = report.occurrences
    assert occurrence.detail["missing_days"] == []
    assert (occurrence.detail["period_start"], occurrence.detail["period_end"]) == (
        "2027-03-01",
        "2027-03-07",
    )

    # The reference: what the test did.
    checkins = sum(len(members) for members in checked.values())

    def wau(day: date) -> int:
        return len(set().union(*(checked[d] for d in WEEK if day - timedelta(days=6) <= d <= day)))

    rate_sum = sum(wau(d) for d in WEEK)
    rate = (200 * checkins + rate_sum) // (2 * rate_sum)
    lines = stack.lines("group.jsonl")
    assert [line["text"] for line in lines] == [
        f"📊 晨读社本周数据（2027-03-01–2027-03-07）：打卡 {checkins} 次，参与率 {rate}%，"
        f"周活跃 {wau(WEEK[-1])} 人，新加入 {len(PATTERN)} 人。"
    ]
    assert lines[0]["job"] == "weekly-report" and checkins == 7 + 7 + 5 + 2 + 1

    # A duplicate tick, a rerun of the action, and a cold container: nothing new.
    assert app.tick().idle
    again = ReportPoster(app.metrics.store, app.posts).run(
        ctx(app, "weekly-report", local(date(2027, 3, 8), 9, 30))
    )
    assert again.ok and again.detail["deliveries"]["group"]["status"] == "published"
    cold = with_reports(stack.app())
    assert cold.tick().idle
    assert len(stack.lines("group.jsonl")) == 1
    assert [i.status for i in stack.history(app, "weekly-report")] == ["fired"]


def test_a_month_with_missing_snapshots_still_posts_and_lists_them(stack):
    push(stack)
    app = stack.app()
    c = app.config().communities[0]
    balances: dict[str, int] = {}
    last_days = [date(2027, 2, 26), date(2027, 2, 27), date(2027, 2, 28)]
    for day in last_days:
        for n, member in enumerate(("m0", "m1", "m2")):
            at = local(day, 10, n)
            stack.clock.set(at)
            balances[member] = app.checkins.check_in(c, member, at).balance
    at = local(last_days[-1], 20)
    stack.clock.set(at)
    answer = app.ledger.redeem(
        c, Redemption(member_id="m0", reward_id="badge", request_id="r1"), at
    )
    balances["m0"] = answer.balance
    # Only the last three days of February were snapshotted (the stack is new).
    stack.clock.set(local(date(2027, 3, 1), 1))
    for day in last_days:
        _, written, _ = app.metrics.snapshot(c, day)
        assert written

    poster = ReportPoster(app.metrics.store, app.posts)
    result = poster.run(ctx(app, "finance-summary", local(date(2027, 3, 1), 10)))
    assert result.ok
    assert result.detail["missing_days"] == [f"2027-02-{d:02d}" for d in range(1, 26)]
    assert result.detail["snapshots"] == 3
    awarded = 9 * 10  # nine check-ins at the default 10 points
    lines = stack.lines("finance.jsonl")
    assert [(line["title"], line["text"]) for line in lines] == [
        (
            "晨读社积分月报",
            f"💰 晨读社 2027-02-01–2027-02-28 积分月报：发放 {awarded}，兑换 20，"
            f"期末未兑换余额 {sum(balances.values())}。",
        )
    ]
    assert sum(balances.values()) == awarded - 20
    # A rerun after the missing days were backfilled still sends nothing new: the
    # occurrence's post is the text recorded first.
    _, written, _ = app.metrics.snapshot(c, date(2027, 2, 25))
    assert written
    again = poster.run(ctx(app, "finance-summary", local(date(2027, 3, 1), 10)))
    assert again.ok and len(again.detail["missing_days"]) == 24
    assert stack.lines("finance.jsonl") == lines
