"""Watermarks and occurrence records in the scheduler table (PynamoDB).

Layout (one partition per job, so a job's history is one Query):

* ``pk = JOB#<community>#<job>``, ``sk = WATERMARK`` — ``watermark_ms``: every
  occurrence *scheduled* at or before it has been decided or is listed in
  ``pending`` (deferred by quiet hours and not yet due, held by another worker, or
  not started for lack of time); ``disabled`` when it was last advanced while the
  job was disabled.
* ``pk = JOB#<community>#<job>``, ``sk = OCC#<occurrence id>`` — one item per
  occurrence (id: nominal local minute and UTC instant): the claim (status
  ``claimed`` with a lease and a per-claim token), then its outcome (``fired``,
  ``deferred``, ``failed``, ``uncertain``, ``missed``, ``skipped``). ``uncertain``:
  it ran, but a channel's answer was lost (or an earlier attempt crashed
  mid-send), so a post may or may not have reached the group; it is never re-sent.
  A claim whose action met a transient AWS error is *released* (still
  ``claimed``, its lease expired at once): the next tick re-claims it.
* ``sk = GAP#<first occurrence id>`` — a summary of occurrences beyond the catch-up
  bound or older than the look-back, with their count.
* ``pk = EPOCH#config``, ``sk = WATERMARK`` — the config version the dispatchers
  run (``version_tag``), the latest due time claimed under it (``max_due_ms``) and
  under every earlier version (``floor_ms``). Every claim is a transaction that
  checks the version, so no container still caching an older config can claim once
  a newer one is in force, and a job new in that config never looks back before
  ``floor_ms`` (a renamed job cannot rerun what its old name ran).

The claim is a conditional write: it succeeds only if the occurrence has no
record yet or its previous claim's lease has expired (a crashed run). That is
what makes each occurrence run once however ticks are duplicated or overlap.
Every later write of a claim (its outcome) is conditioned on the claim's token:
a worker whose claim was taken over can never record anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
)
from pynamodb.exceptions import PutError, TransactWriteError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.models import Model

from autopilot.aws import is_transient
from autopilot.dynamo import bind_table, transaction
from autopilot.scheduler.rules import Occurrence
from autopilot.timeutil import iso_utc

# Final statuses: an occurrence in one of these is never run again.
FINAL_STATUSES = frozenset({"fired", "deferred", "failed", "uncertain", "missed", "skipped"})
# A crashed occurrence is run at most this many times in all.
MAX_ATTEMPTS = 3
# An occurrence whose runs meet transient AWS errors (throttling, 5xx, timeouts) is
# given back for the next tick this many times at most (a minute apart), then failed;
# those runs do not use up MAX_ATTEMPTS.
MAX_TRANSIENT_RETRIES = 10
# Writes of an outcome tried in all when DynamoDB keeps failing transiently.
_FINISH_TRIES = 3
# Occurrence records are kept this long (the watermark, not the record, stops reruns).
RECORD_RETENTION = timedelta(days=90)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _from_ms(ms: int | float) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, UTC)


def job_pk(community_id: str, job_id: str) -> str:
    """Partition key of a job's watermark and occurrences."""
    return f"JOB#{community_id}#{job_id}"


EPOCH_PK = "EPOCH#config"
# A claim transaction that collides with another (TransactionConflict) is retried.
_CLAIM_TRIES = 5


@dataclass(frozen=True)
class Pending:
    """An occurrence whose instant has passed but which is not decided yet.

    ``retry``: its claim was released after a transient error (``release``): the
    next tick claims it again whatever the misfire policy says, so an occurrence
    that started is finished (or failed after ``MAX_ATTEMPTS``), never left
    ``claimed`` because a later occurrence superseded it.
    """

    nominal_local: datetime
    scheduled_utc: datetime
    dst: str | None = None
    retry: bool = False

    @property
    def id(self) -> str:
        occ = Occurrence("", "", self.nominal_local, self.scheduled_utc, self.scheduled_utc)
        return occ.id

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "n": self.nominal_local.strftime("%Y-%m-%dT%H:%M"),
            "s": _ms(self.scheduled_utc),
        }
        if self.dst:
            out["d"] = self.dst
        if self.retry:
            out["r"] = 1
        return out

    @staticmethod
    def from_json(raw: dict[str, Any]) -> Pending:
        return Pending(
            datetime.strptime(raw["n"], "%Y-%m-%dT%H:%M"),
            _from_ms(raw["s"]),
            raw.get("d"),
            bool(raw.get("r")),
        )


@dataclass(frozen=True)
class JobState:
    """A job's stored watermark, pending occurrences and whether it was disabled."""

    watermark: datetime | None
    pending: tuple[Pending, ...] = ()
    disabled: bool = False


@dataclass(frozen=True)
class Epoch:
    """The config version in force and the due times claimed under it and before it."""

    version: str
    published_ms: int = 0
    floor_ms: int = 0
    max_due_ms: int = 0


class WatermarkItem(Model):
    """How far a job's occurrences have been decided."""

    class Meta:
        table_name = "SchedulerTable"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default="WATERMARK")
    watermark_ms = NumberAttribute(null=True)
    updated_at = UnicodeAttribute(null=True)
    pending = JSONAttribute(null=True)
    disabled = BooleanAttribute(null=True)
    # Only on the epoch item (pk EPOCH#config).
    version_tag = UnicodeAttribute(null=True)
    published_ms = NumberAttribute(null=True)
    floor_ms = NumberAttribute(null=True)
    max_due_ms = NumberAttribute(null=True)


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
    # Runs given back after a transient AWS error (they do not count as attempts).
    transient_retries = NumberAttribute(null=True)
    lease_expires_ms = NumberAttribute(null=True)
    claimed_by = UnicodeAttribute(null=True)
    ran_at_utc = UnicodeAttribute(null=True)
    finished_at_utc = UnicodeAttribute(null=True)
    outcome = JSONAttribute(null=True)
    missed_count = NumberAttribute(null=True)
    last_key = UnicodeAttribute(null=True)
    expires_at = TTLAttribute(null=True)
    # Outcome of work the occurrence enqueued for the worker (ledger jobs).
    work = JSONAttribute(null=True)


@dataclass(frozen=True)
class ClaimResult:
    """Outcome of a claim attempt.

    ``won`` (``token`` is the fencing token every later write checks), ``busy``
    (leased elsewhere), ``done`` (already decided), ``failed`` (this attempt found
    every earlier attempt crashed and recorded it as failed: the caller reports it)
    or ``stale`` (a newer config version is in force: nothing was claimed).
    """

    state: str
    attempt: int = 0
    status: str = ""
    token: str = ""
    reason: str = ""
    transient_retries: int = 0


def _epoch(item: WatermarkItem) -> Epoch:
    return Epoch(
        item.version_tag or "",
        int(item.published_ms or 0),
        int(item.floor_ms or 0),
        int(item.max_due_ms or 0),
    )


class SchedulerStore:
    """DynamoDB access for the dispatcher."""

    def __init__(self, table_name: str):
        bind_table(table_name, WatermarkItem, OccurrenceItem)
        self.table_name = table_name

    # -- watermarks ---------------------------------------------------------
    def read_states(self, pks: Iterable[str]) -> tuple[dict[str, JobState], Epoch | None]:
        """The given jobs' states and the config epoch, in one BatchGetItem per 100 keys."""
        keys = [(pk, "WATERMARK") for pk in pks] + [(EPOCH_PK, "WATERMARK")]
        found: dict[str, JobState] = {}
        epoch: Epoch | None = None
        for item in WatermarkItem.batch_get(keys, consistent_read=True):
            if item.pk == EPOCH_PK:
                epoch = _epoch(item)
                continue
            found[item.pk] = JobState(
                _from_ms(item.watermark_ms) if item.watermark_ms is not None else None,
                tuple(Pending.from_json(raw) for raw in item.pending or []),
                bool(item.disabled),
            )
        return found, epoch

    def advance_watermark(
        self,
        pk: str,
        to: datetime,
        now: datetime,
        *,
        pending: Iterable[Pending] = (),
        disabled: bool = False,
    ) -> bool:
        """Move a job's watermark forward to ``to`` (never backwards) with its pending list.

        The writer computed ``pending`` from everything scheduled after the
        watermark it read, so a later watermark always carries every occurrence an
        earlier writer left pending (or decided it). False if another worker already
        moved it further.
        """
        item = WatermarkItem(pk, "WATERMARK")
        target = _ms(to)
        pending_json = [p.as_json() for p in sorted(pending, key=lambda p: p.scheduled_utc)]
        actions: list[Action] = [
            WatermarkItem.watermark_ms.set(target),
            WatermarkItem.updated_at.set(iso_utc(now)),
            WatermarkItem.disabled.set(disabled),
        ]
        if pending_json:
            actions.append(WatermarkItem.pending.set(pending_json))
        else:
            actions.append(WatermarkItem.pending.remove())
        try:
            item.update(
                actions=actions,
                condition=WatermarkItem.watermark_ms.does_not_exist()
                | (WatermarkItem.watermark_ms < target),
            )
        except UpdateError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise
            return False  # someone else already moved it further: nothing to do
        return True

    # -- config epoch ---------------------------------------------------------
    def read_epoch(self) -> Epoch | None:
        """The config epoch (None before the first dispatcher ran)."""
        try:
            return _epoch(WatermarkItem.get(EPOCH_PK, "WATERMARK", consistent_read=True))
        except WatermarkItem.DoesNotExist:
            return None

    def switch_epoch(
        self, expected: Epoch | None, version: str, published_ms: int, now: datetime
    ) -> bool:
        """Put config ``version`` in force, if the epoch is still ``expected``.

        Everything claimed under earlier versions (``floor_ms``) is carried over:
        jobs that are new in ``version`` never look back before it.
        """
        item = WatermarkItem(EPOCH_PK, "WATERMARK")
        floor = 0 if expected is None else max(expected.floor_ms, expected.max_due_ms)
        condition: Condition = (
            WatermarkItem.pk.does_not_exist()
            if expected is None
            else (WatermarkItem.version_tag == expected.version)
            & (
                WatermarkItem.max_due_ms.does_not_exist()
                | (WatermarkItem.max_due_ms == expected.max_due_ms)
            )
        )
        try:
            item.update(
                actions=[
                    WatermarkItem.version_tag.set(version),
                    WatermarkItem.published_ms.set(published_ms),
                    WatermarkItem.floor_ms.set(floor),
                    WatermarkItem.max_due_ms.set(floor),
                    WatermarkItem.updated_at.set(iso_utc(now)),
                ],
                condition=condition,
            )
        except UpdateError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise
            return False
        return True

    # -- occurrences --------------------------------------------------------
    def claim(
        self,
        occ: Occurrence,
        *,
        now: datetime,
        lease: timedelta,
        worker: str,
        epoch: str | None = None,
    ) -> ClaimResult:
        """Claim ``occ`` for running: succeeds once, or again only after a lease expires.

        ``worker`` is the claim's fencing token (unique per claim): :meth:`finish`
        and :meth:`holds` check it. With ``epoch`` the claim is a transaction that
        also checks that config version is still in force and raises the epoch's
        ``max_due_ms`` to this occurrence's due time.
        """
        pk, sk = job_pk(occ.community_id, occ.job_id), f"OCC#{occ.id}"
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
        if epoch is None:
            item = OccurrenceItem(pk, sk)
            try:
                item.update(actions=actions, condition=condition)
            except UpdateError as exc:
                if exc.cause_response_code != "ConditionalCheckFailedException":
                    raise
                return self._losing_claim(pk, sk, now_ms, now)
            return ClaimResult(
                "won",
                attempt=int(item.attempt or 1),
                token=worker,
                transient_retries=int(item.transient_retries or 0),
            )
        lost = self._claim_fenced(pk, sk, actions, condition, epoch, _ms(occ.due_utc))
        if lost == "stale":
            return ClaimResult("stale")
        if lost == "claim":
            return self._losing_claim(pk, sk, now_ms, now)
        current = OccurrenceItem.get(pk, sk, consistent_read=True)
        return ClaimResult(
            "won",
            attempt=int(current.attempt or 1),
            token=worker,
            transient_retries=int(current.transient_retries or 0),
        )

    def _claim_fenced(
        self,
        pk: str,
        sk: str,
        actions: list[Action],
        condition: Condition,
        epoch: str,
        due_ms: int,
    ) -> str:
        """Claim and check the epoch in one transaction: ``""`` (won), ``claim`` or ``stale``."""
        raise_max = True
        for _ in range(_CLAIM_TRIES):
            fence = WatermarkItem(EPOCH_PK, "WATERMARK")
            if raise_max:
                epoch_actions: list[Action] = [WatermarkItem.max_due_ms.set(due_ms)]
                epoch_condition = (WatermarkItem.version_tag == epoch) & (
                    WatermarkItem.max_due_ms.does_not_exist() | (WatermarkItem.max_due_ms <= due_ms)
                )
            else:  # a later due time is already recorded: only check the version
                epoch_actions = [WatermarkItem.version_tag.set(epoch)]
                epoch_condition = WatermarkItem.version_tag == epoch
            try:
                with transaction(OccurrenceItem) as tx:
                    tx.update(OccurrenceItem(pk, sk), actions=actions, condition=condition)
                    tx.update(fence, actions=epoch_actions, condition=epoch_condition)
            except TransactWriteError as exc:
                reasons = exc.cancellation_reasons or []
                codes = [r.code if r is not None else None for r in reasons]
                if codes and codes[0] == "ConditionalCheckFailed":
                    return "claim"
                if len(codes) > 1 and codes[1] == "ConditionalCheckFailed":
                    current = self.read_epoch()
                    if current is None or current.version != epoch:
                        return "stale"
                    raise_max = False
                    continue
                if "TransactionConflict" in codes:
                    continue  # another claim touched the epoch at the same moment
                raise
            return ""
        raise RuntimeError(f"claim of {pk}/{sk} kept conflicting; gave up")

    def _losing_claim(self, pk: str, sk: str, now_ms: int, now: datetime) -> ClaimResult:
        current = OccurrenceItem.get(pk, sk, consistent_read=True)
        if current.status in FINAL_STATUSES:
            return ClaimResult("done", status=current.status)
        if (current.lease_expires_ms or 0) >= now_ms:
            return ClaimResult("busy", attempt=int(current.attempt or 0), status=current.status)
        # The lease expired and every attempt crashed: give up loudly, once. Only
        # the worker whose write records it reports it (``failed``), so it is
        # reported exactly once however many ticks race here.
        reason = f"crashed in {MAX_ATTEMPTS} attempts"
        if current.reason:  # what an earlier attempt met (a released claim's error)
            reason += f" (earlier: {current.reason})"[:1000]
        try:
            current.update(
                actions=[
                    OccurrenceItem.status.set("failed"),
                    OccurrenceItem.reason.set(reason),
                    OccurrenceItem.finished_at_utc.set(iso_utc(now)),
                    OccurrenceItem.lease_expires_ms.remove(),
                ],
                condition=(OccurrenceItem.status == "claimed")
                & (OccurrenceItem.lease_expires_ms < now_ms),
            )
        except UpdateError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise
            return ClaimResult("done", status="failed")
        return ClaimResult("failed", attempt=int(current.attempt or 0), reason=reason)

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
        """Record the outcome of a claimed occurrence (only by the claim's holder).

        ``worker`` is the token the claim returned; a worker whose claim was taken
        over (its lease expired) records nothing and gets False.

        The write may be applied and its answer lost (a read timeout; or the SDK
        re-sent it and the re-send met the first one's success as a failed
        condition). Then the record is read back: if it holds this worker's
        outcome, the outcome was recorded (True), so the caller still reports and
        alerts it; a record still ``claimed`` by this worker gets the write again.
        """
        for _ in range(_FINISH_TRIES - 1):
            try:
                return self._finish_once(occ, status, now, worker, outcome, reason)
            except Exception as exc:
                if not is_transient(exc):
                    raise
        return self._finish_once(occ, status, now, worker, outcome, reason)

    def _finish_once(
        self,
        occ: Occurrence,
        status: str,
        now: datetime,
        worker: str,
        outcome: dict[str, Any] | None,
        reason: str | None,
    ) -> bool:
        item = OccurrenceItem(job_pk(occ.community_id, occ.job_id), f"OCC#{occ.id}")
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
                # Our lease expired and another worker took over — or our own
                # earlier attempt of this write landed (its answer was lost).
                return self._recorded_by(item, status, worker)
            if self._recorded_by(item, status, worker):
                return True  # applied; only the answer was lost
            raise
        return True

    @staticmethod
    def _recorded_by(item: OccurrenceItem, status: str, worker: str) -> bool:
        """Whether the record already holds ``worker``'s outcome ``status``."""
        try:
            current = OccurrenceItem.get(item.pk, item.sk, consistent_read=True)
        except OccurrenceItem.DoesNotExist:
            return False
        return current.status == status and current.claimed_by == worker

    def release(self, occ: Occurrence, *, worker: str, now: datetime, reason: str) -> bool:
        """Give a claim back for a retry: its action met a transient AWS error.

        The occurrence stays ``claimed`` with its lease expiring ``now`` and no
        holder, so the next tick re-claims it and this worker can no longer pass
        :meth:`holds`. The run is given back to the crash budget
        (:data:`MAX_ATTEMPTS`) and counted in ``transient_retries`` instead: a
        heavy job (a lottery close reading every entry) under a throttling table
        is retried until the throttling passes (the dispatcher bounds it with
        :data:`MAX_TRANSIENT_RETRIES`), not failed after three unlucky runs.
        ``reason`` (the error) is kept for the record.
        Only the claim's holder can release it: False (nothing written) if its
        claim was taken over.
        """
        item = OccurrenceItem(job_pk(occ.community_id, occ.job_id), f"OCC#{occ.id}")
        try:
            item.update(
                actions=[
                    OccurrenceItem.lease_expires_ms.set(_ms(now)),
                    OccurrenceItem.claimed_by.remove(),
                    OccurrenceItem.reason.set(reason[:1000]),
                    OccurrenceItem.attempt.add(-1),
                    OccurrenceItem.transient_retries.add(1),
                ],
                condition=(OccurrenceItem.status == "claimed")
                & (OccurrenceItem.claimed_by == worker),
            )
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def holds(self, occ: Occurrence, worker: str) -> bool:
        """Whether the claim with token ``worker`` is still the live claim of ``occ``.

        Checked before every send: a worker that was taken over must not send.
        """
        try:
            item = OccurrenceItem.get(
                job_pk(occ.community_id, occ.job_id), f"OCC#{occ.id}", consistent_read=True
            )
        except OccurrenceItem.DoesNotExist:
            return False
        return item.status == "claimed" and item.claimed_by == worker

    def record_unrun(self, occ: Occurrence, *, status: str, reason: str, now: datetime) -> bool:
        """Record a ``missed`` or ``skipped`` occurrence, unless it already has a record."""
        item = OccurrenceItem(
            job_pk(occ.community_id, occ.job_id),
            f"OCC#{occ.id}",
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

    def record_gap(
        self,
        community_id: str,
        job_id: str,
        *,
        first_id: str,
        first_key: str,
        last_key: str,
        scheduled_utc: datetime,
        count: int,
        reason: str,
        now: datetime,
    ) -> bool:
        """Summarise ``count`` occurrences not recorded one by one in a single item.

        Keyed by the first occurrence's id, so a duplicated tick writes it once.
        Returns whether this call wrote it (and so must report it).
        """
        item = OccurrenceItem(
            job_pk(community_id, job_id),
            f"GAP#{first_id}",
            community_id=community_id,
            job_id=job_id,
            occurrence_key=first_key,
            scheduled_utc=iso_utc(scheduled_utc),
            due_utc=iso_utc(scheduled_utc),
            status="missed",
            missed_count=count,
            last_key=last_key,
            reason=reason,
            finished_at_utc=iso_utc(now),
            expires_at=now + RECORD_RETENTION,
        )
        try:
            item.save(condition=OccurrenceItem.pk.does_not_exist())
        except PutError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise
            return False
        return True

    def gaps(self, community_id: str, job_id: str) -> Iterator[OccurrenceItem]:
        """Every summary (``GAP#``) record of a job, oldest first."""
        return OccurrenceItem.query(
            job_pk(community_id, job_id), OccurrenceItem.sk.startswith("GAP#"), consistent_read=True
        )

    def history(self, community_id: str, job_id: str) -> Iterator[OccurrenceItem]:
        """Every occurrence record of a job, oldest first."""
        return OccurrenceItem.query(
            job_pk(community_id, job_id), OccurrenceItem.sk.startswith("OCC#"), consistent_read=True
        )

    def record_work(
        self, community_id: str, job_id: str, occurrence_id: str, work: dict[str, Any]
    ) -> bool:
        """Record on an occurrence the outcome of the work it enqueued (the worker's).

        Only on an existing record (False if it is gone): never creates one.
        """
        item = OccurrenceItem(job_pk(community_id, job_id), f"OCC#{occurrence_id}")
        try:
            item.update(
                actions=[OccurrenceItem.work.set(work)],
                condition=OccurrenceItem.pk.exists(),
            )
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True
