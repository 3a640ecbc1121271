"""The worker as Lambda runs it: the dispatcher enqueues finance jobs, the worker runs
each once, resumes when out of time, records the outcome; and its IAM is exactly
what it calls."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from autopilot.aws import client
from autopilot.ledger.jobs import Job
from autopilot.ledger.service import Adjustment
from autopilot.ledger.store import JobItem

from autopilot_cli.local.cfn import function_statements, load_template
from autopilot_cli.local.runtime import scheduled_event
from autopilot_cli.metering import RequestCounter

from .conftest import make_config

JOBS = [
    {"id": "export", "cron": "0 2 1 * *", "action": "ledger_export", "misfire": {"policy": "all"}},
    {
        "id": "reconcile",
        "cron": "0 3 * * *",
        "action": "ledger_reconcile",
        "misfire": {"policy": "all"},
    },
]
# 03:00 on 1 December in Shanghai: both jobs are due.
FIRST_OF_MONTH = datetime(2026, 11, 30, 19, 0, 5, tzinfo=UTC)


def drain(stack) -> list[dict]:
    results = []
    while (result := stack.runtime.deliver_sqs("WorkerFunction", "WorkQueue")) is not None:
        results.append(result)
    return results


def export_versions(stack) -> list[dict]:
    bucket = stack.runtime.physical_id("ExportBucket")
    listing = client("s3", "us-east-1").list_object_versions(
        Bucket=bucket, Prefix="exports/sunrise/2026-11/ledger.csv"
    )
    return listing.get("Versions", [])


def tick(stack, when: datetime) -> dict:
    stack.clock.set(when)
    return stack.runtime.invoke("DispatcherFunction", scheduled_event(when))


def test_the_dispatcher_enqueues_and_the_worker_exports_and_reconciles_once(stack, monkeypatch):
    monkeypatch.setenv("AUTOPILOT_OUTPUT_DIR", str(stack.output_dir))
    stack.push(make_config(jobs=JOBS, published_at="2026-11-30T12:00:00Z"))
    app = stack.app()
    community = app.config().communities[0]
    app.checkins.check_in(community, "alice", datetime(2026, 11, 27, 10, 0, tzinfo=UTC))
    assert tick(stack, FIRST_OF_MONTH)["counts"] == {"fired": 2}
    assert export_versions(stack) == []  # the dispatcher's minute only enqueued
    results = drain(stack)
    assert results and all(r == {"batchItemFailures": []} for r in results)
    assert len(export_versions(stack)) == 1
    (export,) = stack.history(app, "export")
    assert export.status == "fired" and export.work["status"] == "done"
    assert export.work["count"] == 1 and export.work["month"] == "2026-11"
    (reconcile,) = stack.history(app, "reconcile")
    assert reconcile.work["status"] == "done" and reconcile.work["ok"] is True
    # A duplicated tick and a redelivered message name the same job: no second export.
    assert tick(stack, FIRST_OF_MONTH)["counts"] == {}
    app.work_queue.send(
        Job(
            export.outcome["enqueued"],
            "ledger_export",
            "sunrise",
            {"month": "2026-11"},
            {"community": "sunrise", "job": "export", "id": export.sk[4:]},
        ).message()
    )
    assert drain(stack) == [{"batchItemFailures": []}]
    assert len(export_versions(stack)) == 1
    assert JobItem.get(f"WORK#{export.outcome['enqueued']}", "JOB").runs == 1


def test_a_job_out_of_time_saves_its_cursor_and_continues(stack):
    stack.push(make_config(jobs=JOBS, published_at="2026-11-30T12:00:00Z"))
    app = stack.app()
    community = app.config().communities[0]
    for n in range(6):
        app.members.upsert(community, f"m{n}", {}, datetime(2026, 11, 27, tzinfo=UTC))
        app.ledger.adjust(
            community,
            Adjustment(member_id=f"m{n}", amount=5, reason="seed", ref=f"s{n}", actor="ops:t"),
            datetime(2026, 11, 27, tzinfo=UTC),
        )
    stack.clock.set(FIRST_OF_MONTH)
    job = Job("ledger_audit#sunrise#ops-1", "ledger_audit", "sunrise", {}, None)
    first = app.worker.run(job, remaining_ms=lambda: 0)  # no time left at all
    assert first.status == "running" and first.cursor
    assert drain(stack) == [{"batchItemFailures": []}]  # the continuation
    done = JobItem.get("WORK#ledger_audit#sunrise#ops-1", "JOB")
    assert done.status == "done" and done.runs == 2
    assert done.outcome["ok"] and done.outcome["members"] == 6
    assert done.outcome["verified_total"] == done.outcome["aggregate_outstanding"] == 30


def test_a_malformed_message_is_reported_failed_not_dropped(stack):
    stack.push(make_config(jobs=JOBS, published_at="2026-11-30T12:00:00Z"))
    event = stack.runtime.sqs_event(
        [{"body": "{not json", "messageId": "m-1"}], queue_id="WorkQueue"
    )
    result = stack.runtime.invoke("WorkerFunction", event)
    assert result == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}


def _granted(repo_root) -> set[str]:
    template = load_template(repo_root / "template.yaml")
    actions: set[str] = set()
    for statement in function_statements(template, "WorkerFunction"):
        # Logs are written by the Lambda runtime, the queue polled by Lambda's
        # event source mapping: neither by the code.
        if statement.get("Sid") in ("WriteOwnLogs", "ConsumeWorkQueue"):
            continue
        action = statement["Action"]
        actions.update([action] if isinstance(action, str) else action)
    return actions


_IAM_NAME = {
    ("s3", "ListObjectVersions"): "s3:ListBucketVersions",
    ("dynamodb", "TransactWriteItems"): "dynamodb:PutItem",
}
# What the local event source mapping itself calls (Lambda's polling, not the code).
_POLLING = {("sqs", "ReceiveMessage"), ("sqs", "DeleteMessageBatch")}


def test_every_aws_call_of_the_worker_is_granted_and_every_grant_is_used(
    stack, monkeypatch, repo_root
):
    monkeypatch.setenv("AUTOPILOT_OUTPUT_DIR", str(stack.output_dir))
    stack.push(make_config(jobs=JOBS, published_at="2026-11-30T12:00:00Z"))
    stack.push(b"{broken")  # a cold worker falls back to the previous version
    app = stack.app()
    community = app.config().communities[0]
    app.checkins.check_in(community, "alice", datetime(2026, 11, 27, 10, 0, tzinfo=UTC))
    tick(stack, FIRST_OF_MONTH)
    stack.runtime.reset_containers()
    app.work_queue.send(
        Job("ledger_audit#sunrise#ops-2", "ledger_audit", "sunrise", {}, None).message()
    )
    with RequestCounter() as counter:
        drain(stack)
        # The audit job, run out of time: it re-enqueues its continuation.
        worker_app = stack.app()
        worker_app.worker.run(
            Job("ledger_audit#sunrise#ops-3", "ledger_audit", "sunrise", {}, None),
            remaining_ms=lambda: 0,
        )
        drain(stack)
    used = set()
    for (service, operation), _ in counter.by_operation().items():
        if (service, operation) in _POLLING:
            continue
        if (service, operation) == ("s3", "GetObject"):
            used.update({"s3:GetObject", "s3:GetObjectVersion"})
            continue
        used.add(_IAM_NAME.get((service, operation), f"{service}:{operation}"))
    granted = _granted(repo_root)
    assert used <= granted, f"called but not granted: {sorted(used - granted)}"
    assert granted <= used, f"granted but never needed: {sorted(granted - used)}"
    assert json.loads(json.dumps(sorted(used)))  # JSON-able summary for failures


def test_a_job_that_crashes_is_retried_by_the_redelivered_message(stack, monkeypatch):
    stack.push(make_config(jobs=JOBS, published_at="2026-11-30T12:00:00Z"))
    app = stack.app()
    stack.clock.set(FIRST_OF_MONTH)
    job = Job("ledger_audit#sunrise#ops-4", "ledger_audit", "sunrise", {}, None)
    event = stack.runtime.sqs_event(
        [{"body": json.dumps(job.message()), "messageId": "m-2"}], queue_id="WorkQueue"
    )

    def crash(*args, **kwargs):
        raise RuntimeError("DynamoDB throttled")

    monkeypatch.setattr(app.worker, "_reconcile", crash)
    assert app.worker.handle(event) == {"batchItemFailures": [{"itemIdentifier": "m-2"}]}
    assert JobItem.get("WORK#ledger_audit#sunrise#ops-4", "JOB").lease_ms is None
    monkeypatch.undo()
    assert app.worker.handle(event) == {"batchItemFailures": []}  # the redelivery runs it
    assert JobItem.get("WORK#ledger_audit#sunrise#ops-4", "JOB").status == "done"
