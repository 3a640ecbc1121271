"""Daily snapshots: the dispatcher's ``metrics_snapshot`` action, and CloudWatch metrics.

Each community has a derived job ``metrics.daily`` (config.model.metrics_jobs) that
runs shortly after its day ends and snapshots the day that just ended: it reads
that day's metric counters and the 29 days before (``MetricItem``, three
BatchGetItem requests whatever the number of members), the previous day's
snapshot (one GetItem; the totals carry over), the day's post log (one Query: a
few posts a day), the reminder counters (one BatchGetItem) and the lotteries that
closed that day (one GetItem each), builds the snapshot
(:func:`autopilot.metrics.rules.build_snapshot`), stores it once
(:class:`~autopilot.metrics.store.MetricsStore`) and prints the same figures as
CloudWatch embedded-metric-format lines (Powertools Metrics) so a deployed
stack graphs and alarms on them without extra code.

Missed days are snapshotted by the job's misfire policy (``all`` within a week),
oldest first, so each day finds its previous day's snapshot.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from typing import Any

from autopilot.clock import Clock, get_clock
from autopilot.config.model import Community, reminder_jobs
from autopilot.ledger.store import AGG_SHARDS, MetricItem, metric_pk
from autopilot.metrics import rules
from autopilot.metrics.store import MetricsStore, canonical
from autopilot.scheduler.rules import resolve_local
from autopilot.scheduler.service import ActionContext, ActionResult
from autopilot.timeutil import zone

logger = logging.getLogger(__name__)

NAMESPACE = "CommunityAutopilot"
SERVICE = "community-autopilot"
#: How far back the active-member windows reach (MAU: 30 days, the day included).
WINDOW_DAYS = 30


def day_span(community: Community, day: date) -> tuple[datetime, datetime]:
    """The UTC instants where ``day`` starts and the next one starts, in the community."""
    tz = zone(community.timezone)

    def start(d: date) -> datetime:
        instant, _ = resolve_local(datetime.combine(d, community.day_boundary), tz)
        return instant

    return start(day), start(day + timedelta(days=1))


class MetricsService:
    """Computes, stores and publishes daily snapshots."""

    def __init__(
        self,
        store: MetricsStore,
        *,
        posts: Any = None,
        reminders: Any = None,
        lotteries: Any = None,
        clock: Clock | None = None,
        emit: Callable[[dict[str, Any], datetime], None] | None = None,
    ):
        self.store = store
        self._posts = posts
        self._reminders = reminders
        self._lotteries = lotteries
        self._clock = clock
        self._emit = emit if emit is not None else publish_metrics

    def _now(self) -> datetime:
        return (self._clock or get_clock()).now()

    def snapshot_action(self, ctx: ActionContext) -> ActionResult:
        """The dispatcher's ``metrics_snapshot``: the day before the occurrence's day."""
        if not self.store.table:
            return ActionResult(ok=False, error="METRICS_TABLE is not set for this function")
        community = ctx.community
        day = rules.metrics_day(
            ctx.occurrence.scheduled_utc, community.timezone, community.day_boundary
        ) - timedelta(days=1)
        snapshot, written, identical = self.snapshot(community, day)
        return ActionResult(
            ok=identical,
            detail={
                "day": day.isoformat(),
                "written": written,
                "members": snapshot["members"]["total"],
                "dau": snapshot["active"]["dau"],
                "checkins": snapshot["checkins"]["count"],
            },
            error=None if identical else "the stored snapshot differs from a recomputation",
        )

    def snapshot(self, community: Community, day: date) -> tuple[dict[str, Any], bool, bool]:
        """Compute ``day``'s snapshot, store it if new; (snapshot, written, identical)."""
        snapshot = self.compute(community, day)
        written = self.store.put(snapshot, self._now())
        identical = True
        if written:
            self._emit(snapshot, self._now())
        else:
            stored = self.store.get(community.id, day)
            identical = stored is not None and canonical(stored) == canonical(snapshot)
            if not identical:
                logger.error("snapshot %s/%s differs from its recomputation", community.id, day)
        return snapshot, written, identical

    def compute(self, community: Community, day: date) -> dict[str, Any]:
        """The snapshot of ``day`` from its frozen counters (reads nothing of "now"
        once the day before has a snapshot)."""
        previous = self.store.get(community.id, day - timedelta(days=1))
        first = day - timedelta(days=WINDOW_DAYS - 1)
        periods = [d.isoformat() for d in rules.days(first, day)]
        baseline_members = baseline_outstanding = 0
        after: list[str] = []
        if previous is None:
            # No snapshot before: the totals at the end of the day before are the
            # all-time counters minus what was counted from this day on.
            today = rules.metrics_day(self._now(), community.timezone, community.day_boundary)
            after = [d.isoformat() for d in rules.days(day, max(day, today))]
            periods = [*sorted(set(periods) | set(after)), "ALL"]
        by_period = _read_counters(community.id, periods)
        gaps = {
            date.fromisoformat(p): c
            for p, c in by_period.items()
            if p != "ALL" and p <= day.isoformat()
        }
        if previous is None:
            total = by_period.get("ALL", {})
            later = [by_period.get(p, {}) for p in after]
            baseline_members = int(total.get("members", 0)) - sum(
                int(c.get("joined", 0)) - int(c.get("left", 0)) for c in later
            )
            baseline_outstanding = int(total.get("net", 0)) - sum(
                int(c.get("net", 0)) for c in later
            )
        return rules.build_snapshot(
            community.id,
            day,
            by_period.get(day.isoformat(), {}),
            gaps,
            previous=previous,
            members_baseline=baseline_members,
            outstanding_baseline=baseline_outstanding,
            lottery=self._lottery(community, day),
            posts=self._post_counts(community, day),
            reminders=self._reminder_counts(community, day),
        )

    def _post_counts(self, community: Community, day: date) -> dict[str, dict[str, int]]:
        published: dict[str, int] = {}
        failed: dict[str, int] = {}
        if self._posts is None:
            return {"published": published, "failed": failed}
        start, end = day_span(community, day)
        for record in self._posts.posts(community.id, start, end - timedelta(microseconds=1)):
            for channel, delivery in record.deliveries.items():
                target = published if delivery.get("status") == "published" else failed
                target[channel] = target.get(channel, 0) + 1
        for channel in published:
            failed.setdefault(channel, 0)
        return {"published": published, "failed": failed}

    def _reminder_counts(self, community: Community, day: date) -> dict[str, int]:
        jobs = [j.id for j in reminder_jobs(community)]
        if self._reminders is None or not jobs or not self._reminders.table:
            return {"sent": 0, "converted": 0}
        counts = self._reminders.counters(community.id, day, jobs)
        return {
            "sent": sum(int(c.get("sent", 0)) for c in counts.values()),
            "converted": sum(int(c.get("converted", 0)) for c in counts.values()),
        }

    def _lottery(self, community: Community, day: date) -> dict[str, int]:
        """Entries and entrants of the draws that closed on ``day``."""
        out = {"entries": 0, "entrants": 0}
        if self._lotteries is None or not community.lotteries:
            return out
        from autopilot.lottery.schedule import cycle_at

        tz = zone(community.timezone)
        _, end = day_span(community, day)
        for lottery in community.lotteries:
            cycle = cycle_at(lottery, tz, end - timedelta(microseconds=1))
            if cycle is None:
                continue
            closed = rules.metrics_day(cycle.closes_utc, community.timezone, community.day_boundary)
            if closed != day:
                continue
            meta = self._lotteries.meta(community.id, cycle.draw_id)
            if meta is None:
                continue
            out["entries"] += int(meta.entries or 0)
            out["entrants"] += int(meta.entrants_count or 0)
        return out


def _read_counters(community_id: str, periods: list[str]) -> dict[str, dict[str, int]]:
    """Every shard of the metric items of ``periods``, summed per period (BatchGetItem)."""
    keys = [
        (metric_pk(community_id, p, shard), "TOTALS")
        for p in periods
        for shard in range(AGG_SHARDS)
    ]
    out: dict[str, dict[str, int]] = {}
    for item in MetricItem.batch_get(keys):
        period = item.pk.split("#")[2]
        totals = out.setdefault(period, {})
        for name, value in item.counters().items():
            if value:
                totals[name] = totals.get(name, 0) + value
    return out


def publish_metrics(snapshot: Mapping[str, Any], at: datetime) -> None:
    """Print the snapshot's figures as one CloudWatch embedded-metric-format line
    (dimension ``community``; ``at`` is when, for the day in the metadata): CloudWatch
    Logs turns them into metrics."""
    from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

    # The line's timestamp is the time it is printed (Powertools'): CloudWatch takes
    # no metric older than two weeks, and a backfilled day is still today's news.
    metrics = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE)
    metrics.add_dimension("community", str(snapshot["community"]))
    count = MetricUnit.Count
    figures = {
        "MembersTotal": snapshot["members"]["total"],
        "MembersJoined": snapshot["members"]["joined"],
        "MembersLeft": snapshot["members"]["left"],
        "ActiveDaily": snapshot["active"]["dau"],
        "ActiveWeekly": snapshot["active"]["wau"],
        "ActiveMonthly": snapshot["active"]["mau"],
        "CheckIns": snapshot["checkins"]["count"],
        "NewStreaks": snapshot["checkins"]["new_streaks"],
        "PointsAwarded": snapshot["points"]["awarded_total"],
        "PointsRedeemed": -snapshot["points"]["redeemed_total"],
        "PointsOutstanding": snapshot["points"]["outstanding"],
        "LotteryEntrants": snapshot["lottery"]["entrants"],
        "PostsPublished": sum(snapshot["posts"]["published"].values()),
        "PostsFailed": sum(snapshot["posts"]["failed"].values()),
        "RemindersSent": snapshot["reminders"]["sent"],
        "RemindersConverted": snapshot["reminders"]["converted"],
    }
    for name, value in figures.items():
        metrics.add_metric(name=name, unit=count, value=float(value))
    metrics.add_metric(
        name="CheckInRate", unit=MetricUnit.Percent, value=100 * snapshot["checkins"]["rate"]
    )
    metrics.add_metadata("day", str(snapshot["day"]))
    metrics.add_metadata("computed_at", at.isoformat())
    metrics.flush_metrics()


def publish_tick_metrics(counts: Mapping[str, int], at: datetime) -> None:
    """A dispatcher tick's occurrences by outcome as EMF metrics (``Occurrences<Status>``,
    dimension ``service``; ``at``, the tick's instant, in the metadata): the template's
    alarm on ``OccurrencesFailed`` reads them (``OccurrencesUncertain``: posts that may or
    may not have gone out, never re-sent)."""
    from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

    metrics = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE)
    for status in ("fired", "failed", "uncertain", "missed", "skipped", "deferred"):
        metrics.add_metric(
            name=f"Occurrences{status.capitalize()}",
            unit=MetricUnit.Count,
            value=float(counts.get(status, 0)),
        )
    metrics.add_metadata("tick_at", at.isoformat())
    metrics.flush_metrics()
