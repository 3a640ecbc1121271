"""The dispatcher tick: decide, claim, run and record every due occurrence once.

One tick, for every enabled job of every community:

1. compute the occurrences due in ``(watermark, now]`` (pure rules);
2. decide what to do with them under the job's misfire policy;
3. ``run``: claim with a conditional write, run the action, record the outcome;
   ``missed``/``skipped``: record once;
4. move the watermark forward — but never past an occurrence another worker still
   holds, or one this tick had no time left to run.

Watermarks are cached per container. A cached watermark can only be *older* than
the stored one, so if nothing is due since the cached watermark nothing is due at
all: an idle tick in a warm container makes no DynamoDB request, and a cold one a
single BatchGetItem.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from autopilot.clock import Clock, get_clock
from autopilot.config.model import Community, Config, Job
from autopilot.scheduler.rules import (
    MAX_CATCHUP,
    MAX_LOOKBACK,
    Decision,
    Occurrence,
    occurrences_between,
    plan_tick,
)
from autopilot.scheduler.store import SchedulerStore, job_pk
from autopilot.timeutil import iso_utc, zone

logger = logging.getLogger(__name__)

# A claim's lease outlives the dispatcher's 60 s timeout, so a live run is never
# taken over; a crashed run's occurrence is retried by the first tick after it.
DEFAULT_LEASE = timedelta(seconds=90)
# Stop starting new runs when less than this is left of the invocation.
SAFETY_MARGIN_MS = 10_000
# A job that has never been decided looks back this far on its first tick.
FIRST_TICK_LOOKBACK = timedelta(minutes=1)


@dataclass(frozen=True)
class ActionContext:
    """What an action gets to run one occurrence."""

    community: Community
    job: Job
    occurrence: Occurrence
    now_utc: datetime
    attempt: int
    # Milliseconds left in this invocation (None outside Lambda): actions that
    # retry (channels) stop in time for the outcome to be recorded.
    remaining_ms: Callable[[], int] | None = None


@dataclass(frozen=True)
class ActionResult:
    """What an action reports: ``ok`` False records the occurrence as ``failed``."""

    ok: bool
    detail: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None


Action = Callable[[ActionContext], ActionResult]


@dataclass
class OccurrenceReport:
    """What a tick did with one occurrence."""

    community_id: str
    job_id: str
    key: str
    scheduled_utc: str
    due_utc: str
    status: str
    reason: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "community": self.community_id,
            "job": self.job_id,
            "key": self.key,
            "scheduled_utc": self.scheduled_utc,
            "due_utc": self.due_utc,
            "status": self.status,
            "reason": self.reason,
        }


@dataclass
class TickReport:
    """Everything one tick did."""

    now_utc: datetime
    occurrences: list[OccurrenceReport] = field(default_factory=list)

    @property
    def idle(self) -> bool:
        return not self.occurrences

    def summary(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for occ in self.occurrences:
            counts[occ.status] = counts.get(occ.status, 0) + 1
        return {
            "now_utc": iso_utc(self.now_utc),
            "counts": counts,
            "occurrences": [o.as_dict() for o in self.occurrences],
        }


class Dispatcher:
    """Runs ticks against a config; one instance per container."""

    def __init__(
        self,
        store: SchedulerStore,
        actions: Mapping[str, Action],
        *,
        clock: Clock | None = None,
        lease: timedelta = DEFAULT_LEASE,
    ):
        self._store = store
        self._actions = actions
        self._clock = clock
        self._lease = lease
        self._watermarks: dict[str, datetime] = {}
        self.worker_id = uuid.uuid4().hex[:12]

    def _now(self) -> datetime:
        return (self._clock or get_clock()).now()

    def tick(self, config: Config, *, remaining_ms: Callable[[], int] | None = None) -> TickReport:
        """Run one tick at the clock's current time."""
        now = self._now()
        report = TickReport(now_utc=now)
        jobs = [(c, j) for c in config.communities for j in c.jobs if j.enabled]
        floor = now - MAX_LOOKBACK
        default_start = max(
            floor,
            min(config.published_at, now - FIRST_TICK_LOOKBACK)
            if config.published_at
            else now - FIRST_TICK_LOOKBACK,
        )

        due_by_job = self._due_from(jobs, self._watermarks, default_start, floor, now)
        if not due_by_job:
            return report  # idle: nothing due even from the (possibly older) cached watermarks
        # Something may be due: read the authoritative watermarks once, then recompute.
        self._watermarks.update(self._store.read_watermarks(job_pk(c.id, j.id) for c, j in jobs))
        due_by_job = self._due_from(jobs, self._watermarks, default_start, floor, now)

        out_of_time = False
        for community, job, due in due_by_job.values():
            pk = job_pk(community.id, job.id)
            hold: datetime | None = None
            decisions = plan_tick(due, now, job.misfire)
            decisions = self._collapse_overflow(decisions, now, report)
            for decision in decisions:
                if decision.verdict != "run":
                    self._record_unrun(decision, now, report)
                    continue
                out_of_time = out_of_time or (
                    remaining_ms is not None and remaining_ms() < SAFETY_MARGIN_MS
                )
                # Not started for lack of time, or held by another worker: the
                # watermark must stay before it so a later tick picks it up.
                if out_of_time or self._run(
                    community, job, decision.occurrence, report, remaining_ms
                ):
                    held_from = decision.occurrence.due_utc
                    hold = held_from if hold is None else min(hold, held_from)
            target = now if hold is None else hold - timedelta(milliseconds=1)
            if target > self._watermarks.get(pk, default_start):
                self._store.advance_watermark(pk, target, now)
                self._watermarks[pk] = target
        return report

    def _due_from(
        self,
        jobs: list[tuple[Community, Job]],
        watermarks: Mapping[str, datetime],
        default_start: datetime,
        floor: datetime,
        now: datetime,
    ) -> dict[str, tuple[Community, Job, list[Occurrence]]]:
        due_by_job = {}
        for community, job in jobs:
            start = max(watermarks.get(job_pk(community.id, job.id), default_start), floor)
            due = occurrences_between(
                community.id, job, zone(community.timezone), community.quiet_hours, start, now
            )
            if due:
                due_by_job[job_pk(community.id, job.id)] = (community, job, due)
        return due_by_job

    def _collapse_overflow(
        self, decisions: list[Decision], now: datetime, report: TickReport
    ) -> list[Decision]:
        """Record missed occurrences beyond the catch-up bound as one summary item."""
        missed = [d for d in decisions if d.verdict == "missed"]
        if len(missed) <= MAX_CATCHUP:
            return decisions
        overflow = missed[: len(missed) - MAX_CATCHUP]
        first, last = overflow[0].occurrence, overflow[-1].occurrence
        self._store.record_gap(first, last, len(overflow), now)
        report.occurrences.append(
            OccurrenceReport(
                first.community_id,
                first.job_id,
                f"{first.key}..{last.key}",
                iso_utc(first.scheduled_utc),
                iso_utc(first.due_utc),
                "missed",
                f"{len(overflow)} occurrences beyond the catch-up bound",
            )
        )
        dropped = {id(d) for d in overflow}
        return [d for d in decisions if id(d) not in dropped]

    def _record_unrun(self, decision: Decision, now: datetime, report: TickReport) -> None:
        occ = decision.occurrence
        if self._store.record_unrun(occ, status=decision.verdict, reason=decision.reason, now=now):
            logger.info(
                "occurrence %s/%s@%s %s: %s",
                occ.community_id,
                occ.job_id,
                occ.key,
                decision.verdict,
                decision.reason,
            )
            report.occurrences.append(self._report(occ, decision.verdict, decision.reason))

    def _run(
        self,
        community: Community,
        job: Job,
        occ: Occurrence,
        report: TickReport,
        remaining_ms: Callable[[], int] | None = None,
    ) -> bool:
        """Claim and run one occurrence; return True if it must hold the watermark."""
        now = self._now()
        claim = self._store.claim(occ, now=now, lease=self._lease, worker=self.worker_id)
        if claim.state == "busy":
            return True  # another worker is running it; do not move past it
        if claim.state == "done":
            return False
        action = self._actions.get(job.action)
        status = "deferred" if occ.quiet == "deferred" else "fired"
        try:
            if action is None:
                raise RuntimeError(f"no action {job.action!r} in this function")
            result = action(ActionContext(community, job, occ, now, claim.attempt, remaining_ms))
        except Exception as exc:  # the action's failure is the occurrence's outcome
            logger.exception("occurrence %s/%s@%s failed", occ.community_id, occ.job_id, occ.key)
            result = ActionResult(ok=False, error=f"{type(exc).__name__}: {exc}")
        if not result.ok:
            status = "failed"
        finished = self._store.finish(
            occ,
            status=status,
            now=self._now(),
            worker=self.worker_id,
            outcome=dict(result.detail),
            reason=result.error,
        )
        if finished:
            report.occurrences.append(self._report(occ, status, result.error or "", result.detail))
        return False

    @staticmethod
    def _report(
        occ: Occurrence, status: str, reason: str, detail: Mapping[str, Any] | None = None
    ) -> OccurrenceReport:
        return OccurrenceReport(
            occ.community_id,
            occ.job_id,
            occ.key,
            iso_utc(occ.scheduled_utc),
            iso_utc(occ.due_utc),
            status,
            reason,
            detail or {},
        )
