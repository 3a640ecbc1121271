"""Watermarks and occurrence records in the scheduler table (PynamoDB).

Layout (one partition per job, so a job's history is one Query):

* ``pk = JOB#<community>#<job>``, ``sk = WATERMARK`` — ``watermark_ms``: every
  occurrence due at or before it has been decided.
* ``pk = JOB#<community>#<job>``, ``sk = OCC#<nominal local minute>`` — one item per
  occurrence: the claim (status ``claimed`` with a lease), then its outcome
  (``fired``, ``deferred``, ``failed``, ``missed``, ``skipped``).
* ``sk = GAP#<first key>`` — a summary of missed occurrences beyond the catch-up bound.

The claim is a conditional write: it succeeds only if the occurrence has no
record yet or its previous claim's lease has expired (a crashed run). That is
what makes each occurrence run once however ticks are duplicated or overlap.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pynamodb.attributes import (
    JSONAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
)
from pynamodb.exceptions import PutError, UpdateError
from pynamodb.expressions.update import Action
from pynamodb.models import Model

from autopilot.dynamo import bind_table
from autopilot.scheduler.rules import Occurrence
from autopilot.timeutil import iso_utc

# Final statuses: an occurrence in one of these is never run again.
FINAL_STATUSES = frozenset({"fired", "deferred", "failed", "missed", "skipped"})
# A crashed occurrence is retried at most this many times in all.
MAX_ATTEMPTS = 3
# Occurrence records are kept this long (the watermark, not the record, stops reruns).
RECORD_RETENTION = timedelta(days=90)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def job_pk(community_id: str, job_id: str) -> str:
    """Partition key of a job's watermark and occurrences."""
    return f"JOB#{community_id}#{job_id}"


class WatermarkItem(Model):
    """How far a job's occurrences have been decided."""

    class Meta:
        table_name = "SchedulerTable"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default="WATERMARK")
    watermark_ms = NumberAttribute()
    updated_at = UnicodeAttribute(null=True)


class OccurrenceItem(Model):
    """The claim and outcome of one occurrence."""

    class Meta:
        table_name = "SchedulerTable"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    community_id = UnicodeAttribute()
    job_id = UnicodeAttribute()
    occurrence_key = UnicodeAttribute()
    scheduled_utc = UnicodeAttribute()
    due_utc = UnicodeAttribute()
    status = UnicodeAttribute()
    quiet = UnicodeAttribute(null=True)
    dst = UnicodeAttribute(null=True)
    reason = UnicodeAttribute(null=True)
    attempt = NumberAttribute(null=True)
    lease_expires_ms = NumberAttribute(null=True)
    claimed_by = UnicodeAttribute(null=True)
    ran_at_utc = UnicodeAttribute(null=True)
    finished_at_utc = UnicodeAttribute(null=True)
    outcome = JSONAttribute(null=True)
    missed_count = NumberAttribute(null=True)
    last_key = UnicodeAttribute(null=True)
    expires_at = TTLAttribute(null=True)


@dataclass(frozen=True)
class ClaimResult:
    """Outcome of a claim attempt: ``won``, ``busy`` (leased elsewhere) or ``done``."""

    state: str
    attempt: int = 0
    status: str = ""


class SchedulerStore:
    """DynamoDB access for the dispatcher."""

    def __init__(self, table_name: str):
        bind_table(table_name, WatermarkItem, OccurrenceItem)
        self.table_name = table_name

    # -- watermarks ---------------------------------------------------------
    def read_watermarks(self, pks: Iterable[str]) -> dict[str, datetime]:
        """Watermarks of the given jobs in one BatchGetItem per 100 jobs."""
        keys = [(pk, "WATERMARK") for pk in pks]
        found: dict[str, datetime] = {}
        if not keys:
            return found
        for item in WatermarkItem.batch_get(keys, consistent_read=True):
            found[item.pk] = datetime.fromtimestamp(item.watermark_ms / 1000, UTC)
        return found

    def advance_watermark(self, pk: str, to: datetime, now: datetime) -> None:
        """Move a job's watermark forward to ``to`` (never backwards)."""
        item = WatermarkItem(pk, "WATERMARK")
        target = _ms(to)
        try:
            item.update(
                actions=[
                    WatermarkItem.watermark_ms.set(target),
                    WatermarkItem.updated_at.set(iso_utc(now)),
                ],
                condition=WatermarkItem.watermark_ms.does_not_exist()
                | (WatermarkItem.watermark_ms < target),
            )
        except UpdateError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise  # someone else already moved it further: nothing to do

    # -- occurrences --------------------------------------------------------
    def claim(
        self, occ: Occurrence, *, now: datetime, lease: timedelta, worker: str
    ) -> ClaimResult:
        """Claim ``occ`` for running: succeeds once, or again only after a lease expires."""
        pk, sk = job_pk(occ.community_id, occ.job_id), f"OCC#{occ.key}"
        item = OccurrenceItem(pk, sk)
        now_ms = _ms(now)
        actions: list[Action] = [
            OccurrenceItem.community_id.set(occ.community_id),
            OccurrenceItem.job_id.set(occ.job_id),
            OccurrenceItem.occurrence_key.set(occ.key),
            OccurrenceItem.scheduled_utc.set(iso_utc(occ.scheduled_utc)),
            OccurrenceItem.due_utc.set(iso_utc(occ.due_utc)),
            OccurrenceItem.status.set("claimed"),
            OccurrenceItem.attempt.add(1),
            OccurrenceItem.lease_expires_ms.set(now_ms + int(lease.total_seconds() * 1000)),
            OccurrenceItem.claimed_by.set(worker),
            OccurrenceItem.ran_at_utc.set(iso_utc(now)),
            OccurrenceItem.expires_at.set(now + RECORD_RETENTION),
        ]
        if occ.quiet:
            actions.append(OccurrenceItem.quiet.set(occ.quiet))
        if occ.dst:
            actions.append(OccurrenceItem.dst.set(occ.dst))
        condition = OccurrenceItem.pk.does_not_exist() | (
            (OccurrenceItem.status == "claimed")
            & (OccurrenceItem.lease_expires_ms < now_ms)
            & (OccurrenceItem.attempt < MAX_ATTEMPTS)
        )
        try:
            item.update(actions=actions, condition=condition)
        except UpdateError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise
            return self._losing_claim(pk, sk, now_ms, now)
        return ClaimResult("won", attempt=int(item.attempt or 1))

    def _losing_claim(self, pk: str, sk: str, now_ms: int, now: datetime) -> ClaimResult:
        current = OccurrenceItem.get(pk, sk, consistent_read=True)
        if current.status in FINAL_STATUSES:
            return ClaimResult("done", status=current.status)
        if (current.lease_expires_ms or 0) >= now_ms:
            return ClaimResult("busy", attempt=int(current.attempt or 0), status=current.status)
        # The lease expired and every attempt crashed: give up loudly, once.
        try:
            current.update(
                actions=[
                    OccurrenceItem.status.set("failed"),
                    OccurrenceItem.reason.set(f"crashed in {MAX_ATTEMPTS} attempts"),
                    OccurrenceItem.finished_at_utc.set(iso_utc(now)),
                ],
                condition=(OccurrenceItem.status == "claimed")
                & (OccurrenceItem.lease_expires_ms < now_ms),
            )
        except UpdateError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise
        return ClaimResult("done", status="failed")

    def finish(
        self,
        occ: Occurrence,
        *,
        status: str,
        now: datetime,
        worker: str,
        outcome: dict[str, Any] | None = None,
        reason: str | None = None,
    ) -> bool:
        """Record the outcome of a claimed occurrence (only by the claim's holder)."""
        item = OccurrenceItem(job_pk(occ.community_id, occ.job_id), f"OCC#{occ.key}")
        actions: list[Action] = [
            OccurrenceItem.status.set(status),
            OccurrenceItem.finished_at_utc.set(iso_utc(now)),
            OccurrenceItem.lease_expires_ms.remove(),
        ]
        if outcome is not None:
            actions.append(OccurrenceItem.outcome.set(outcome))
        if reason:
            actions.append(OccurrenceItem.reason.set(reason))
        try:
            item.update(
                actions=actions,
                condition=(OccurrenceItem.status == "claimed")
                & (OccurrenceItem.claimed_by == worker),
            )
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False  # our lease expired and another worker took over
            raise
        return True

    def record_unrun(self, occ: Occurrence, *, status: str, reason: str, now: datetime) -> bool:
        """Record a ``missed`` or ``skipped`` occurrence, unless it already has a record."""
        item = OccurrenceItem(
            job_pk(occ.community_id, occ.job_id),
            f"OCC#{occ.key}",
            community_id=occ.community_id,
            job_id=occ.job_id,
            occurrence_key=occ.key,
            scheduled_utc=iso_utc(occ.scheduled_utc),
            due_utc=iso_utc(occ.due_utc),
            status=status,
            reason=reason,
            quiet=occ.quiet,
            dst=occ.dst,
            finished_at_utc=iso_utc(now),
            expires_at=now + RECORD_RETENTION,
        )
        try:
            item.save(condition=OccurrenceItem.pk.does_not_exist())
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def record_gap(self, first: Occurrence, last: Occurrence, count: int, now: datetime) -> None:
        """Summarise ``count`` missed occurrences beyond the catch-up bound in one item."""
        item = OccurrenceItem(
            job_pk(first.community_id, first.job_id),
            f"GAP#{first.key}",
            community_id=first.community_id,
            job_id=first.job_id,
            occurrence_key=first.key,
            scheduled_utc=iso_utc(first.scheduled_utc),
            due_utc=iso_utc(first.due_utc),
            status="missed",
            missed_count=count,
            last_key=last.key,
            reason=f"{count} occurrences beyond the catch-up bound were not run",
            finished_at_utc=iso_utc(now),
            expires_at=now + RECORD_RETENTION,
        )
        try:
            item.save(condition=OccurrenceItem.pk.does_not_exist())
        except PutError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise

    def history(self, community_id: str, job_id: str) -> Iterator[OccurrenceItem]:
        """Every occurrence record of a job, oldest first."""
        return OccurrenceItem.query(
            job_pk(community_id, job_id), OccurrenceItem.sk.startswith("OCC#"), consistent_read=True
        )
