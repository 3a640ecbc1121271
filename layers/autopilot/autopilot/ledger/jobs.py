"""Finance jobs: the dispatcher enqueues them, the worker runs them.

The dispatcher's ``ledger_export`` and ``ledger_reconcile`` actions only send a
message to the work queue (one SendMessage, milliseconds). The message carries a
deterministic job id, ``<kind>#<community>#<occurrence id>``: a duplicated tick, a
retried occurrence or a redelivered message all name the same job, and the
worker's job record (``WORK#<job id>`` in the ledger table) makes it run once.

The worker claims the job with a lease, runs it until :data:`RESERVE_MS` before its
own timeout, then saves the cursor and enqueues a continuation (same job id). When
the job ends it records the outcome in its job record and on the occurrence.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from autopilot.config.model import Community, Config
from autopilot.ledger.reconcile import Reconciler, ReconcileReport
from autopilot.ledger.service import LedgerService, export_to_s3
from autopilot.ledger.store import JobItem, LedgerStore
from autopilot.scheduler.service import ActionContext, ActionResult
from autopilot.scheduler.store import SchedulerStore
from autopilot.timeutil import iso_utc, local_wall, zone

logger = logging.getLogger(__name__)

KINDS = ("ledger_export", "ledger_reconcile", "ledger_audit")
# Stop this long before the function's timeout: save the cursor and re-enqueue.
RESERVE_MS = 60_000
# A worker's claim on a job: the function's timeout (900 s), so the claim of a worker
# killed by the timeout has expired when SQS redelivers its message (the queue's
# visibility timeout, 960 s, is longer).
LEASE = timedelta(seconds=900)
# Findings kept in outcomes (the logs have every one).
MAX_REPORTED = 50


def previous_month(ctx: ActionContext) -> str:
    """The community-local month before the occurrence's scheduled local date."""
    local = local_wall(ctx.occurrence.scheduled_utc, zone(ctx.community.timezone))
    first = local.date().replace(day=1)
    return (first - timedelta(days=1)).strftime("%Y-%m")


def job_id_of(kind: str, community_id: str, occurrence_id: str) -> str:
    """The deterministic id of the job an occurrence enqueues."""
    return f"{kind}#{community_id}#{occurrence_id}"


class WorkQueue:
    """Sends job messages to the worker's queue (the SQS client is created lazily)."""

    def __init__(self, queue_url: str, region: str, sqs: Any = None):
        self.url = queue_url
        self._region = region
        self._sqs = sqs

    def send(self, message: dict[str, Any]) -> None:
        """Enqueue one job message (JSON)."""
        if self._sqs is None:
            from autopilot.aws import client

            self._sqs = client("sqs", self._region)
        self._sqs.send_message(QueueUrl=self.url, MessageBody=json.dumps(message, sort_keys=True))


def ledger_actions(queue: WorkQueue) -> dict[str, Callable[[ActionContext], ActionResult]]:
    """The dispatcher's ``ledger_export`` and ``ledger_reconcile`` actions: enqueue."""

    def enqueue(kind: str) -> Callable[[ActionContext], ActionResult]:
        def action(ctx: ActionContext) -> ActionResult:
            if not queue.url:
                return ActionResult(ok=False, error="WORK_QUEUE_URL is not set for this function")
            params = {"month": previous_month(ctx)} if kind == "ledger_export" else {}
            job_id = job_id_of(kind, ctx.community.id, ctx.occurrence.id)
            queue.send(
                {
                    "job_id": job_id,
                    "kind": kind,
                    "community": ctx.community.id,
                    "params": params,
                    "occurrence": {
                        "community": ctx.occurrence.community_id,
                        "job": ctx.occurrence.job_id,
                        "id": ctx.occurrence.id,
                    },
                }
            )
            return ActionResult(ok=True, detail={"enqueued": job_id, **params})

        return action

    return {
        "ledger_export": enqueue("ledger_export"),
        "ledger_reconcile": enqueue("ledger_reconcile"),
    }


class BadJob(ValueError):
    """A work message that is not a job (goes to the dead-letter queue)."""


@dataclass(frozen=True)
class Job:
    """A parsed work message."""

    job_id: str
    kind: str
    community: str
    params: dict[str, Any]
    occurrence: dict[str, str] | None

    @staticmethod
    def parse(body: str) -> Job:
        """Parse and check a message body; ``BadJob`` says what is wrong."""
        try:
            raw = json.loads(body)
        except ValueError:
            raise BadJob("message body is not JSON") from None
        if not isinstance(raw, dict):
            raise BadJob("message body is not a JSON object")
        for name in ("job_id", "kind", "community"):
            if not isinstance(raw.get(name), str) or not raw[name]:
                raise BadJob(f"message needs a non-empty string {name!r}")
        if raw["kind"] not in KINDS:
            raise BadJob(f"unknown job kind {raw['kind']!r} (known: {', '.join(KINDS)})")
        params = raw.get("params") or {}
        occurrence = raw.get("occurrence")
        if not isinstance(params, dict) or not (occurrence is None or isinstance(occurrence, dict)):
            raise BadJob("params and occurrence must be JSON objects")
        return Job(raw["job_id"], raw["kind"], raw["community"], params, occurrence)

    def message(self) -> dict[str, Any]:
        """The message that runs (or continues) this job."""
        return {
            "job_id": self.job_id,
            "kind": self.kind,
            "community": self.community,
            "params": self.params,
            "occurrence": self.occurrence,
        }


class Worker:
    """Runs jobs from the work queue (see the module docstring)."""

    def __init__(
        self,
        store: LedgerStore,
        ledger: LedgerService,
        scheduler: SchedulerStore | None,
        config: Callable[[], Config],
        queue: WorkQueue,
        s3: Any,
        export_bucket: str,
        now: Callable[[], datetime],
        alerts: Any = None,
    ):
        self._store = store
        self._ledger = ledger
        self._scheduler = scheduler
        self._config = config
        self._queue = queue
        self._s3 = s3
        self._bucket = export_bucket
        self._now = now
        self._alerts = alerts  # AlertStore: a mismatch goes to the ops alert outbox

    def handle(
        self, event: dict[str, Any], remaining_ms: Callable[[], int] | None = None
    ) -> dict[str, Any]:
        """An SQS batch: run each job; report the messages that failed (they are retried)."""
        failures = []
        for record in event.get("Records") or []:
            try:
                self.run(Job.parse(record["body"]), remaining_ms)
            except Exception:
                logger.exception("work message %s failed", record.get("messageId"))
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}

    def run(self, job: Job, remaining_ms: Callable[[], int] | None = None) -> JobItem:
        """Run (or continue) one job; a job already done or failed is left alone."""
        now = self._now()
        item = self._store.claim_job(job.job_id, job.kind, job.community, now, LEASE)
        if item is None:
            logger.info("job %s is finished or running elsewhere: skipped", job.job_id)
            existing = self._store.job(job.job_id)
            assert existing is not None
            return existing

        def deadline() -> bool:
            return remaining_ms is not None and remaining_ms() < RESERVE_MS

        try:
            community = self._community(job.community)
            if job.kind == "ledger_export":
                outcome = self._export(community, job)
                return self._finish(item, job, "done", outcome, now)
            report = self._reconcile(community, job, item, deadline)
        except BadJob as exc:
            return self._finish(item, job, "failed", {"error": str(exc)}, now)
        except Exception:
            # Give the claim up: the message's redelivery must be able to run the job.
            self._store.release_job(item, now)
            raise
        if not report.complete and report.cursor is not None:
            item.cursor = {**(item.cursor or {}), **report.cursor}
            self._store.release_job(item, now)
            self._queue.send(job.message())
            logger.info("job %s continues from %s", job.job_id, item.cursor)
            return item
        for mismatch in report.mismatches:
            # Loud: an error log line per finding, and the job is recorded failed.
            logger.error("LEDGER MISMATCH %s: %s", job.community, mismatch)
        if report.mismatches and self._alerts is not None and self._alerts.table:
            # Ops hear about it in the community's alert channel (the dispatcher posts
            # the outbox), once per job.
            self._alerts.enqueue(
                f"recon#{job.job_id}",
                job.community,
                f"⚠️ {job.community}: reconciliation found {len(report.mismatches)} "
                f"mismatch(es) ({job.kind}); first: {report.mismatches[0]}",
                now,
            )
        outcome = report.as_dict()
        outcome["mismatch_count"] = len(report.mismatches)
        outcome["mismatches"] = report.mismatches[:MAX_REPORTED]
        return self._finish(item, job, "done" if report.ok else "failed", outcome, now)

    def _community(self, community_id: str) -> Community:
        for community in self._config().communities:
            if community.id == community_id:
                return community
        raise BadJob(f"community {community_id!r} is not in the published config")

    def _export(self, community: Community, job: Job) -> dict[str, Any]:
        if not self._bucket:
            raise BadJob("EXPORT_BUCKET is not set for this function")
        month = job.params.get("month")
        if not isinstance(month, str):
            raise BadJob("an export job needs params.month (YYYY-MM)")
        # One month streams in well under the worker's timeout; an interrupted export
        # restarts from the beginning (same keys, versioned bucket).
        manifest = export_to_s3(self._ledger, self._s3, self._bucket, community, month)
        return {k: manifest[k] for k in ("month", "count", "net", "sha256", "csv_key")}

    def _reconcile(
        self, community: Community, job: Job, item: JobItem, deadline: Callable[[], bool]
    ) -> ReconcileReport:
        reconciler = Reconciler(self._store)
        now = self._now()
        cursor = dict(item.cursor or {})
        if job.kind == "ledger_audit":
            return reconciler.audit(
                community.id, now, cursor=cursor.get("audit"), deadline=deadline
            ).with_cursor_key("audit")
        # Nightly: a community without an established checkpoint is audited first.
        checkpoint = self._store.checkpoint(community.id)
        if "audit" in cursor or checkpoint is None or checkpoint.through_day is None:
            audit = reconciler.audit(
                community.id, now, cursor=cursor.get("audit"), deadline=deadline
            )
            if not audit.complete:
                return audit.with_cursor_key("audit")
            item.cursor = None
            if deadline():
                return ReconcileReport(community.id, "nightly", complete=False, cursor={})
        return reconciler.nightly(community.id, now, deadline=deadline)

    def _finish(
        self, item: JobItem, job: Job, status: str, outcome: dict[str, Any], now: datetime
    ) -> JobItem:
        item.status, item.outcome, item.cursor = status, outcome, None
        self._store.finish_job(item, now)
        if self._scheduler is not None and job.occurrence:
            occ = job.occurrence
            self._scheduler.record_work(
                occ["community"],
                occ["job"],
                occ["id"],
                {"job_id": job.job_id, "status": status, "at_utc": iso_utc(now), **outcome},
            )
        return item
