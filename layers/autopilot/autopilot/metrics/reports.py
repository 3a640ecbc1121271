"""Report posts: a week's or a month's figures from the daily snapshots, posted to channels.

A job ``action: metrics_report`` (docs/config.md#report-posts) posts, at its cron,
the figures of the period that ended before the run's local date — the Monday to
Sunday week, or the calendar month — aggregated from the daily metric snapshots
the derived ``metrics.daily`` job wrote (docs/metrics.md). The snapshots are
frozen, so the report is a pure function of them: :func:`period_bounds` and
:func:`report_fields` read no clock and no AWS; :class:`ReportPoster` reads the
period's snapshots (one Query) and publishes the text through
:meth:`autopilot.posts.service.PostService.publish`, keyed by the occurrence like a
lottery's posts: a rerun sends only to the channels not yet delivered, and always
the text recorded first.

Schedule a report after the ``metrics.daily`` job of the period's last day (30
minutes after the community's day boundary): a day without a snapshot is left out
of the figures and listed in the outcome's ``missing_days``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from autopilot.config.model import REPORT_PERIODS
from autopilot.metrics.rules import STREAK_BUCKETS, days
from autopilot.posts.rules import render
from autopilot.scheduler.rules import Occurrence
from autopilot.scheduler.service import ActionContext, ActionResult

if TYPE_CHECKING:
    from autopilot.metrics.store import MetricsStore
    from autopilot.posts.service import PostService

#: What a report post's deliveries are recorded under (the post log's "pool").
SOURCE = "metrics_report"
#: ``top_streak`` when no member checked in during the period.
_NO_STREAK = {"zh": "无", "en": "none"}
#: The unit after a streak bucket's label.
_DAYS = {"zh": " 天", "en": " days"}


def _language(locale: str) -> str:
    return "zh" if locale.startswith("zh") else "en"


def period_bounds(period: str, local_date: date) -> tuple[date, date]:
    """The first and last day of the ``period`` that ended before ``local_date``.

    ``week``: the Monday-Sunday week before the one ``local_date`` is in (a run on
    Monday reports the week that ended the day before; one on Sunday, the week that
    ended a week before). ``month``: the calendar month before ``local_date``'s.
    """
    if period == "week":
        last = local_date - timedelta(days=local_date.weekday() + 1)
        return last - timedelta(days=6), last
    if period == "month":
        last = local_date.replace(day=1) - timedelta(days=1)
        return last.replace(day=1), last
    raise ValueError(f"unknown report period {period!r} (known: {', '.join(REPORT_PERIODS)})")


def occurrence_period(period: str, occurrence: Occurrence) -> tuple[date, date]:
    """The period an occurrence reports: its nominal local date decides, whatever
    its UTC instant (a run in a DST gap or deferred by quiet hours keeps its day)."""
    return period_bounds(period, occurrence.nominal_local.date())


def _percent(numerator: int, denominator: int) -> str:
    """``numerator / denominator`` as a whole percent, half up: ``"74%"`` (0 → ``"0%"``)."""
    if denominator <= 0:
        return "0%"
    return f"{(200 * numerator + denominator) // (2 * denominator)}%"


def _mean(total: int, count: int) -> str:
    """``total / count`` to one decimal, half up, without a trailing ``.0``."""
    if count <= 0:
        return "0"
    tenths = (20 * total + count) // (2 * count)
    return str(tenths // 10) if tenths % 10 == 0 else f"{tenths // 10}.{tenths % 10}"


def top_streak_label(snapshots: Iterable[Mapping[str, Any]], locale: str) -> str:
    """The longest streak bucket any member reached in ``snapshots``: ``"7-29 天"`` /
    ``"7-29 days"``. Snapshots count streaks in buckets, not by member, so a report
    names the bucket, never who holds it."""
    language = _language(locale)
    reached = {
        label
        for snapshot in snapshots
        for label, count in (snapshot.get("streaks") or {}).items()
        if int(count)
    }
    for label, *_ in reversed(STREAK_BUCKETS):
        if label in reached:
            return f"{label}{_DAYS[language]}"
    return _NO_STREAK[language]


def report_fields(
    community_name: str,
    locale: str,
    first: date,
    last: date,
    snapshots: Iterable[Mapping[str, Any]],
) -> tuple[dict[str, Any], list[date]]:
    """The template fields of a report of ``first`` .. ``last`` from its snapshots,
    and the days of the period that have none (docs/config.md#report-posts).

    Sums over the days present: check-ins, joins, leaves, new streaks, points
    awarded and redeemed (redeemed as a positive amount), lottery entrants,
    reminders sent and converted, failed deliveries. End-of-period figures come
    from the last day present: ``wau``, ``mau``, ``members``,
    ``points_outstanding``. ``checkin_rate``: the period's check-ins over the sum
    of each day's weekly actives (each day's ``count / wau``, weighted by ``wau``);
    ``active_dau_avg``: the mean daily actives of the days present. Snapshots
    outside the period, or a second one of a day, are ignored. The keys are
    exactly ``autopilot.config.model.REPORT_FIELDS``, which templates are
    validated against.
    """
    by_day: dict[date, Mapping[str, Any]] = {}
    for snapshot in snapshots:
        day = date.fromisoformat(str(snapshot["day"]))
        if first <= day <= last:
            by_day.setdefault(day, snapshot)
    present = [by_day[d] for d in sorted(by_day)]
    missing = [d for d in days(first, last) if d not in by_day]

    def total(*keys: str) -> int:
        out = 0
        for snapshot in present:
            value: Any = snapshot
            for key in keys:
                value = value.get(key, 0) if isinstance(value, Mapping) else 0
            out += int(value or 0)
        return out

    end = present[-1] if present else {}

    def at_end(*keys: str) -> int:
        value: Any = end
        for key in keys:
            value = value.get(key, 0) if isinstance(value, Mapping) else 0
        return int(value or 0)

    checkins = total("checkins", "count")
    fields: dict[str, Any] = {
        "community": community_name,
        "period_start": first.isoformat(),
        "period_end": last.isoformat(),
        "checkins": checkins,
        "checkin_rate": _percent(checkins, total("active", "wau")),
        "active_dau_avg": _mean(total("active", "dau"), len(present)),
        "wau": at_end("active", "wau"),
        "mau": at_end("active", "mau"),
        "members": at_end("members", "total"),
        "joined": total("members", "joined"),
        "left": total("members", "left"),
        "new_streaks": total("checkins", "new_streaks"),
        "top_streak": top_streak_label(present, locale),
        "points_awarded": total("points", "awarded_total"),
        "points_redeemed": -total("points", "redeemed_total"),
        "points_outstanding": at_end("points", "outstanding"),
        "lottery_entrants": total("lottery", "entrants"),
        "reminders_sent": total("reminders", "sent"),
        "reminders_converted": total("reminders", "converted"),
        "posts_failed": sum(
            int(n)
            for snapshot in present
            for n in ((snapshot.get("posts") or {}).get("failed") or {}).values()
        ),
    }
    return fields, missing


def render_report(
    template: str, title: str | None, fields: Mapping[str, Any]
) -> tuple[str, str | None]:
    """The post's text and title (``KeyError`` names a field the fields lack)."""
    return render(template, fields), render(title, fields) if title else None


class ReportPoster:
    """The dispatcher's ``metrics_report`` action."""

    def __init__(self, metrics_store: MetricsStore, posts: PostService):
        self._store = metrics_store
        self._posts = posts

    def run(self, ctx: ActionContext) -> ActionResult:
        """Report the period before the occurrence's local date to the job's channels.

        Reads the period's snapshots (one Query), renders the job's template and
        publishes it as the occurrence's post: a rerun sends nothing to a channel
        already delivered. Days without a snapshot are left out and listed in the
        outcome (``missing_days``); the post still goes out.
        """
        if not self._store.table:
            return ActionResult(ok=False, error="METRICS_TABLE is not set for this function")
        community, params = ctx.community, ctx.job.params
        first, last = occurrence_period(params["period"], ctx.occurrence)
        snapshots = list(self._store.snapshots(community.id, first, last))
        fields, missing = report_fields(community.name, community.locale, first, last, snapshots)
        period = {
            "period": params["period"],
            "period_start": fields["period_start"],
            "period_end": fields["period_end"],
            "snapshots": len(snapshots),
            "missing_days": [d.isoformat() for d in missing],
        }
        try:
            text, title = render_report(params["template"], params.get("title"), fields)
        except (KeyError, ValueError, IndexError) as exc:
            return ActionResult(ok=False, detail=period, error=f"report template: {exc}")
        channels: Sequence[str] = params["channels"]
        result = self._posts.publish(ctx, text, title, channels, source=SOURCE)
        return ActionResult(ok=result.ok, detail={**period, **result.detail}, error=result.error)
