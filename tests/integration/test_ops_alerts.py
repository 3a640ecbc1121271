"""Ops alerts on the template's stack: a failed occurrence, a filling dead-letter
queue and a reconciliation mismatch reach the community's alerts channel once per
incident, not once per retry or tick."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from autopilot.aws import client
from autopilot.scheduler.service import ActionResult

from autopilot_cli.configfile import validate_file

from .conftest import BASE_COMMUNITY, make_config

CHANNELS = [*BASE_COMMUNITY["channels"], {"id": "ops", "type": "file", "path": "ops.jsonl"}]
JOBS = [
    {
        "id": "morning-post",
        "cron": "30 7 * * *",
        "action": "post",
        "params": {"pool": "morning", "channels": ["group"], "template": "{content}"},
    },
    {"id": "reconcile", "cron": "0 3 * * *", "action": "ledger_reconcile"},
]
MORNING = datetime(2026, 11, 26, 23, 30, 5, tzinfo=UTC)  # 07:30 in Shanghai


def push(stack, **community) -> None:
    stack.push(
        make_config(
            jobs=JOBS,
            channels=CHANNELS,
            alerts={"channel": "ops"},
            published_at="2026-11-26T12:00:00Z",
            **community,
        )
    )


def alerts(stack) -> list[str]:
    return [line["text"] for line in stack.lines("ops.jsonl")]


def test_a_failed_occurrence_is_posted_once(stack, monkeypatch):
    monkeypatch.setenv("AUTOPILOT_OUTPUT_DIR", str(stack.output_dir))
    push(stack)
    app = stack.app()
    app.dispatcher._actions["post"] = lambda ctx: ActionResult(ok=False, error="webhook gone")
    stack.clock.set(MORNING)
    report = app.tick()
    assert report.summary()["counts"]["failed"] == 1
    (text,) = alerts(stack)
    assert "morning-post" in text and "webhook gone" in text
    # The same tick again (at-least-once delivery), and another container: no repeat.
    app.tick()
    stack.app().tick()
    assert len(alerts(stack)) == 1


def test_a_dead_letter_queue_with_messages_is_posted_once_a_day(stack, monkeypatch):
    monkeypatch.setenv("AUTOPILOT_OUTPUT_DIR", str(stack.output_dir))
    push(stack)
    app = stack.app()
    stack.clock.set(MORNING - timedelta(hours=2))
    app.tick()  # nothing in the queues: nothing posted
    assert alerts(stack) == []
    client("sqs", "us-east-1").send_message(
        QueueUrl=stack.runtime.physical_id("ReminderDeadLetterQueue"), MessageBody="{}"
    )
    for minutes in (20, 40, 60):  # checks every 15 minutes: one alert for the day
        stack.clock.set(MORNING - timedelta(hours=2) + timedelta(minutes=minutes))
        app.tick()
    (text,) = alerts(stack)
    assert "reminder dead-letter queue" in text and "1 message" in text
    stack.clock.set(MORNING + timedelta(days=1))
    app.tick()
    assert len(alerts(stack)) == 2  # still there the next day: one reminder a day


def test_a_reconciliation_mismatch_queued_by_the_worker_is_posted(stack, monkeypatch):
    monkeypatch.setenv("AUTOPILOT_OUTPUT_DIR", str(stack.output_dir))
    push(stack)
    app = stack.app()
    # What Worker.run queues when a reconciliation finds a mismatch.
    app.alert_store.enqueue("recon#job-1", "sunrise", "⚠️ sunrise: 1 mismatch", MORNING)
    stack.clock.set(datetime(2026, 11, 26, 19, 0, 5, tzinfo=UTC))  # 03:00: reconcile fires
    app.tick()
    assert alerts(stack) == ["⚠️ sunrise: 1 mismatch"]
    assert app.alert_store.outbox() == []
    app.alert_store.enqueue("recon#job-1", "sunrise", "⚠️ sunrise: 1 mismatch", MORNING)
    stack.clock.set(datetime(2026, 11, 26, 19, 30, 5, tzinfo=UTC))
    app.tick()  # the same incident queued again (a retried job): not posted twice
    assert len(alerts(stack)) == 1


def test_without_an_alerts_channel_incidents_are_only_logged(stack, monkeypatch, caplog):
    monkeypatch.setenv("AUTOPILOT_OUTPUT_DIR", str(stack.output_dir))
    stack.push(make_config(jobs=JOBS, channels=CHANNELS, published_at="2026-11-26T12:00:00Z"))
    app = stack.app()
    app.dispatcher._actions["post"] = lambda ctx: ActionResult(ok=False, error="boom")
    stack.clock.set(MORNING)
    app.tick()
    assert alerts(stack) == []
    assert any("OPS ALERT" in r.getMessage() for r in caplog.records)


def test_an_alerts_channel_must_be_one_of_the_communitys_channels(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "version: 1\n"
        "communities:\n"
        "  - id: c\n"
        "    name: C\n"
        "    timezone: UTC\n"
        "    channels: [{id: group, type: console}]\n"
        "    jobs: []\n"
        "    alerts: {channel: pager}\n",
        encoding="utf-8",
    )
    report = validate_file(str(path))
    (error,) = report.errors
    assert "alerts.channel" in str(error) and "unknown channel 'pager'" in str(error)
    assert ":8:" in str(error)  # the line of the mistake


def test_an_alert_whose_answer_was_lost_keeps_its_incident(stack, monkeypatch):
    """The ops channel may have shown it: posting it again could repeat it. A refused
    alert frees the incident instead (a later check may post it)."""
    from autopilot.channels.base import Delivery
    from autopilot.channels.local import FileChannel

    monkeypatch.setenv("AUTOPILOT_OUTPUT_DIR", str(stack.output_dir))
    push(stack)
    app = stack.app()
    app.dispatcher._actions["post"] = lambda ctx: ActionResult(ok=False, error="webhook gone")
    answers = iter([True, False])

    def lost_or_refused(self, message, *, now, deadline=None):
        unknown = next(answers)
        return Delivery(self.id, False, now.isoformat(), error="no answer", unknown=unknown)

    monkeypatch.setattr(FileChannel, "send_to_community", lost_or_refused)
    stack.clock.set(MORNING)
    app.tick()
    scheduler_table = stack.runtime.function_env("DispatcherFunction")["SCHEDULER_TABLE"]
    ddb = client("dynamodb", "us-east-1")

    def incidents() -> list[str]:
        items = ddb.scan(TableName=scheduler_table)["Items"]
        return [i["pk"]["S"] for i in items if i["pk"]["S"].startswith("ALERT#occ#")]

    assert len(incidents()) == 1  # lost answer: kept
    stack.clock.advance(timedelta(days=1))
    app.tick()
    assert len(incidents()) == 1  # the second day's failure was refused: freed again


def test_an_outcome_whose_write_lost_its_answer_is_still_reported(stack, monkeypatch):
    """finish() applied, the answer lost (the SDK's re-send then fails its condition):
    the record holds this worker's outcome, so the tick reports it and ops hear."""
    from autopilot.scheduler.store import OccurrenceItem
    from botocore.exceptions import ReadTimeoutError
    from pynamodb.exceptions import UpdateError

    monkeypatch.setenv("AUTOPILOT_OUTPUT_DIR", str(stack.output_dir))
    push(stack)
    app = stack.app()
    app.dispatcher._actions["post"] = lambda ctx: ActionResult(ok=False, error="webhook gone")
    original = OccurrenceItem.update
    lost: list[int] = []

    def applied_then_lost(self, actions, condition=None, **kwargs):
        result = original(self, actions, condition=condition, **kwargs)
        if any("finished_at_utc" in str(a) for a in actions) and not lost:
            lost.append(1)
            raise UpdateError("Failed to update item", ReadTimeoutError(endpoint_url="x"))
        return result

    monkeypatch.setattr(OccurrenceItem, "update", applied_then_lost)
    stack.clock.set(MORNING)
    report = app.tick()
    assert lost == [1]
    assert report.summary()["counts"]["failed"] == 1
    (text,) = alerts(stack)
    assert "morning-post" in text


def test_an_incident_that_cannot_be_recorded_is_still_posted(stack, monkeypatch):
    from autopilot.metrics.alerts import OPEN_TRIES, AlertStore
    from botocore.exceptions import ClientError

    monkeypatch.setenv("AUTOPILOT_OUTPUT_DIR", str(stack.output_dir))
    push(stack)
    app = stack.app()
    app.dispatcher._actions["post"] = lambda ctx: ActionResult(ok=False, error="webhook gone")
    tries: list[int] = []

    def throttled(self, key, now):
        tries.append(1)
        raise ClientError(
            {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}},
            "PutItem",
        )

    monkeypatch.setattr(AlertStore, "open", throttled)
    stack.clock.set(MORNING)
    app.tick()
    assert len(tries) == OPEN_TRIES
    (text,) = alerts(stack)
    assert "morning-post" in text and "webhook gone" in text
