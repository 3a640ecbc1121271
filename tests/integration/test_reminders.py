"""Reminders end to end on the template's stack (moto): the dispatcher selects and
enqueues, the reminder function sends through the queue built from the template,
a check-in converts. Redelivery, duplicated ticks, crashes, partial batch failures,
opt-outs, quiet hours and a check-in between selection and send."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from autopilot.aws import client
from autopilot.ledger.store import AccountItem, member_pk
from autopilot.reminders.service import Batch
from autopilot.reminders.store import counter_key

from autopilot_cli.local.cfn import function_statements, load_template
from autopilot_cli.local.runtime import scheduled_event
from autopilot_cli.metering import RequestCounter

from .conftest import make_config

NUDGE = {
    "id": "nudge",
    "cron": "0 20 * * *",
    "action": "reminder",
    "params": {
        "kind": "not_checked_in",
        "active_days": 7,
        "channel": "group",
        "template": "{name}，今天还没打卡哦",
        "group_template": "{mentions} 今天还没打卡哦～",
    },
}
STREAK = {
    "id": "streak",
    "cron": "30 21 * * *",
    "action": "reminder",
    "params": {
        "kind": "streak_at_risk",
        "min_streak": 2,
        "channel": "group",
        "template": "{name}，你已连续打卡 {streak} 天{freeze_note}，今晚别断哦",
    },
}
# 20:00 and 21:30 on 27 November in Shanghai.
AT_20 = datetime(2026, 11, 27, 12, 0, 5, tzinfo=UTC)
AT_2130 = datetime(2026, 11, 27, 13, 30, 5, tzinfo=UTC)
TODAY = date(2026, 11, 27)


def _local(day: int, hour: int = 10) -> datetime:
    """``hour``:00 on ``day`` November 2026 in Shanghai, as UTC."""
    return datetime(2026, 11, day, hour - 8, 0, tzinfo=UTC)


def setup_members(stack, jobs=(NUDGE, STREAK), **community: Any):
    """alice checks in daily through the 27th; bob and carol through the 26th; dave
    last on the 20th (still active for 7 days); erin on the 10th (inactive)."""
    stack.push(make_config(jobs=list(jobs), published_at="2026-11-27T11:00:00Z", **community))
    app = stack.app()
    c = app.config().communities[0]
    for day in (24, 25, 26, 27):
        app.checkins.check_in(c, "alice", _local(day))
    for day in (24, 25, 26):
        app.checkins.check_in(c, "bob", _local(day))
        app.checkins.check_in(c, "carol", _local(day))
    app.checkins.check_in(c, "dave", _local(20))
    app.checkins.check_in(c, "erin", _local(10))
    return app, c


def tick(stack, when: datetime) -> dict[str, Any]:
    stack.clock.set(when)
    return stack.runtime.invoke("DispatcherFunction", scheduled_event(when))


def drain(stack) -> list[Any]:
    results = []
    while (r := stack.runtime.deliver_sqs("ReminderFunction", "ReminderQueue")) is not None:
        results.append(r)
    return results


def counters(job: str, day: date = TODAY) -> dict[str, int]:
    item = client("dynamodb", "us-east-1").get_item(
        TableName=_table(), Key={"pk": {"S": counter_key("sunrise", day, job)}}
    )
    return {k: int(v["N"]) for k, v in item.get("Item", {}).items() if "N" in v}


def marker(job: str, member: str, day: date = TODAY) -> dict[str, str]:
    item = client("dynamodb", "us-east-1").get_item(
        TableName=_table(), Key={"pk": {"S": f"rem#sunrise#{day.isoformat()}#{job}#{member}"}}
    )
    return {k: next(iter(v.values())) for k, v in item.get("Item", {}).items()}


_TABLE: list[str] = []


def _table() -> str:
    return _TABLE[0]


@pytest.fixture(autouse=True)
def _reminder_table(stack, monkeypatch):
    monkeypatch.setenv("AUTOPILOT_OUTPUT_DIR", str(stack.output_dir))
    _TABLE[:] = [stack.env["REMINDER_TABLE"]]


def group_messages(stack) -> list[dict[str, Any]]:
    """Reminder messages on the file channel: group posts and DMs (``to``)."""
    return [line for line in stack.lines() if str(line.get("key", "")).startswith("reminder#")]


def queued(stack) -> list[Batch]:
    """The reminder batches waiting in the queue (received, then made visible again)."""
    sqs = client("sqs", "us-east-1")
    url = stack.runtime.physical_id("ReminderQueue")
    out, handles = [], []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            break
        out += [Batch.parse(m["Body"]) for m in got]
        handles += [m["ReceiptHandle"] for m in got]
    for h in handles:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=h, VisibilityTimeout=0)
    return out


def test_not_checked_in_reminds_the_active_members_once_by_group_mention(stack):
    _app, _ = setup_members(stack)
    report = tick(stack, AT_20)
    assert report["counts"]["fired"] == 1
    (batch,) = queued(stack)
    assert sorted(m for m, _ in batch.recipients) == ["bob", "carol", "dave"]
    assert {d for _, d in batch.recipients} == {TODAY}
    results = drain(stack)
    assert results == [{"batchItemFailures": []}]
    (message,) = group_messages(stack)
    assert message["text"].startswith("@bob @carol @dave")  # local channels: plain @names
    assert "今天还没打卡哦" in message["text"]
    assert counters("nudge") == {"selected": 3, "sent": 3}
    assert marker("nudge", "bob")["status"] == "sent"
    assert marker("nudge", "alice") == {} and marker("nudge", "erin") == {}


def test_a_redelivered_batch_and_a_duplicated_tick_remind_nobody_twice(stack):
    app, _ = setup_members(stack)
    tick(stack, AT_20)
    (batch,) = queued(stack)
    drain(stack)
    # The same message delivered again (SQS at-least-once), by the real function.
    event = stack.runtime.sqs_event(
        [{"body": json.dumps(batch.to_json()), "messageId": "again"}], queue_id="ReminderQueue"
    )
    assert stack.runtime.invoke("ReminderFunction", event) == {"batchItemFailures": []}
    # A duplicated tick: the occurrence ran, nothing is selected again.
    assert tick(stack, AT_20 + timedelta(seconds=20))["counts"] == {}
    assert drain(stack) == []
    assert len(group_messages(stack)) == 1
    assert counters("nudge") == {"selected": 3, "sent": 3}
    # Even a second selection of the same occurrence (a crashed dispatcher retried)
    # counts its members once and reminds nobody twice.
    report = app.reminders.process(json.dumps(batch.to_json()))
    assert report.already == 3 and report.sent == 0


def test_a_member_who_checks_in_after_selection_and_an_opted_out_member_are_skipped(stack):
    app, c = setup_members(stack)
    tick(stack, AT_20)
    stack.clock.set(AT_20 + timedelta(seconds=30))
    app.checkins.check_in(c, "bob", AT_20 + timedelta(seconds=30))
    item = AccountItem.get(member_pk("sunrise", "carol"), "ACCOUNT")
    item.update(actions=[AccountItem.reminder_opt_outs.set(["not_checked_in"])])
    drain(stack)
    (message,) = group_messages(stack)
    assert "@dave" in message["text"] and "bob" not in message["text"]
    assert "carol" not in message["text"]
    assert counters("nudge") == {
        "selected": 3,
        "sent": 1,
        "skipped_already_checked_in": 1,
        "skipped_opted_out": 1,
    }
    assert marker("nudge", "bob")["reason"] == "already_checked_in"


def test_opting_out_of_every_kind_skips_every_reminder(stack):
    _app, _ = setup_members(stack)
    for member in ("bob", "carol", "dave"):
        item = AccountItem.get(member_pk("sunrise", member), "ACCOUNT")
        item.update(actions=[AccountItem.reminders_opt_out.set(True)])
    tick(stack, AT_20)
    drain(stack)
    assert group_messages(stack) == []
    assert counters("nudge") == {"selected": 3, "skipped_opted_out": 3}


def test_streak_at_risk_names_the_streak_and_whether_a_freeze_covers_it(stack):
    _app, _c = setup_members(stack, jobs=(STREAK,))
    for member in ("bob", "carol"):
        item = AccountItem.get(member_pk("sunrise", member), "ACCOUNT")
        item.update(actions=[AccountItem.dm_address.set(f"dm-{member}")])
    item = AccountItem.get(member_pk("sunrise", "carol"), "ACCOUNT")
    item.update(actions=[AccountItem.freezes.set(1)])
    tick(stack, AT_2130)
    drain(stack)
    dms = {m["to"]: m["text"] for m in group_messages(stack) if "to" in m}
    assert set(dms) == {"dm-bob", "dm-carol"}  # alice checked in today, dave's streak is over
    assert dms["dm-bob"] == "bob，你已连续打卡 3 天，今晚别断哦"
    assert "补签卡" in dms["dm-carol"]
    assert counters("streak") == {"selected": 2, "sent": 2}


def test_a_check_in_within_the_window_converts_once(stack):
    app, c = setup_members(stack, jobs=(NUDGE,))
    tick(stack, AT_20)
    drain(stack)
    later = AT_20 + timedelta(minutes=30)
    stack.clock.set(later)
    app.checkins.check_in(c, "dave", later)
    assert marker("nudge", "dave")["converted_at"] == "2026-11-27T12:30:05Z"
    # The repeat check-in answers the first result and converts nothing more.
    app.checkins.check_in(c, "dave", later + timedelta(minutes=1))
    # Outside the 4 h window: no conversion.
    app.checkins.check_in(c, "carol", AT_20 + timedelta(hours=5))
    assert "converted_at" not in marker("nudge", "carol")
    assert counters("nudge")["converted"] == 1


def test_a_crash_after_the_claim_never_reminds_twice(stack, monkeypatch):
    _app, _ = setup_members(stack, jobs=(NUDGE,))
    tick(stack, AT_20)
    (batch,) = queued(stack)
    from autopilot.reminders.store import ReminderStore

    real = ReminderStore.record
    calls = {"n": 0}

    def crash_once(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("container killed after the send")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ReminderStore, "record", crash_once)
    # Every record of the batch failed: Powertools fails the invocation, Lambda
    # deletes nothing and SQS redelivers the message.
    with pytest.raises(Exception, match="All records failed"):
        stack.runtime.deliver_sqs("ReminderFunction", "ReminderQueue")
    sqs = client("sqs", "us-east-1")
    url = stack.runtime.physical_id("ReminderQueue")
    # Redelivery after the visibility timeout (made visible now).
    for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
        )
    drain(stack)
    assert len(group_messages(stack)) == 1  # sent once, before the crash
    # The send intent was written, the outcome never recorded: the redelivery records
    # it uncertain and never re-sends it (tests/integration/test_reminder_crashes.py).
    assert marker("nudge", "bob")["status"] == "sending"
    assert batch.recipients


def test_partial_batch_failure_reports_only_the_bad_message(stack):
    _app, _ = setup_members(stack, jobs=(NUDGE,))
    tick(stack, AT_20)
    (batch,) = queued(stack)
    event = stack.runtime.sqs_event(
        [
            {"body": "{not json", "messageId": "bad"},
            {"body": json.dumps(batch.to_json()), "messageId": "good"},
        ],
        queue_id="ReminderQueue",
    )
    result = stack.runtime.invoke("ReminderFunction", event)
    assert result == {"batchItemFailures": [{"itemIdentifier": "bad"}]}
    assert counters("nudge")["sent"] == 3


def test_quiet_hours_defer_a_dm_to_the_members_morning_or_drop_it(stack, monkeypatch):
    app, _c = setup_members(stack, jobs=(NUDGE,))
    # dave lives in Los Angeles: 20:00 in Shanghai is 04:00 there, inside 00:00-07:00.
    item = AccountItem.get(member_pk("sunrise", "dave"), "ACCOUNT")
    item.update(
        actions=[
            AccountItem.timezone.set("America/Los_Angeles"),
            AccountItem.dm_address.set("dm-dave"),
        ]
    )
    later: list[tuple[Batch, int]] = []
    real = app.reminder_queue.send_later

    def keep(batch, delay_s):
        later.append((batch, delay_s))
        real(batch, delay_s)

    tick(stack, AT_20)
    (batch,) = queued(stack)
    monkeypatch.setattr(app.reminder_queue, "send_later", keep)
    stack.clock.set(AT_20)
    report = app.reminders.process(json.dumps(batch.to_json()))
    assert report.deferred == 1 and report.sent == 2
    ((deferred, delay),) = later
    assert deferred.recipients == (("dave", date(2026, 11, 27)),)
    assert deferred.not_before == datetime(2026, 11, 27, 15, 0, tzinfo=UTC)  # 07:00 in LA
    assert delay == int((deferred.not_before - AT_20).total_seconds()) + 1  # SQS caps it at 900
    # Delivered before its time: delayed again, nothing sent.
    assert app.reminders.process(json.dumps(deferred.to_json())).waiting
    stack.clock.set(datetime(2026, 11, 27, 15, 0, 1, tzinfo=UTC))
    assert app.reminders.process(json.dumps(deferred.to_json())).sent == 1
    dm = [m for m in group_messages(stack) if m.get("to") == "dm-dave"]
    assert dm and dm[0]["at_utc"] == "2026-11-27T15:00:01Z"
    assert counters("nudge") == {"selected": 3, "sent": 3}


def test_quiet_hours_drop_policy_skips_the_dm(stack):
    drop = {**NUDGE, "quiet_hours": "drop"}
    _app, _c = setup_members(stack, jobs=(drop,))
    item = AccountItem.get(member_pk("sunrise", "dave"), "ACCOUNT")
    item.update(
        actions=[
            AccountItem.timezone.set("America/Los_Angeles"),
            AccountItem.dm_address.set("dm-dave"),
        ]
    )
    tick(stack, AT_20)
    drain(stack)
    assert not [m for m in group_messages(stack) if m.get("to") == "dm-dave"]
    assert counters("nudge") == {"selected": 3, "sent": 2, "skipped_quiet_hours": 1}


def test_selection_costs_one_query_per_shard_and_no_scan(stack):
    _app, _c = setup_members(stack, jobs=(NUDGE,))
    stack.clock.set(AT_20)
    with RequestCounter() as counter:
        tick(stack, AT_20)
    ops = counter.by_operation()
    assert ("dynamodb", "Scan") not in ops
    assert ops[("dynamodb", "Query")] >= 4  # one per shard of the index (+ the dispatcher's own)
    assert ops[("sqs", "SendMessageBatch")] == 1
    with RequestCounter() as counter:
        drain(stack)
    ops = counter.by_operation()
    assert ("dynamodb", "Scan") not in ops
    # claim, the group message's send intent, then record
    assert ops[("dynamodb", "TransactWriteItems")] == 3
    assert ops[("dynamodb", "BatchGetItem")] >= 1


_IAM_NAME = {
    ("s3", "ListObjectVersions"): "s3:ListBucketVersions",
    ("dynamodb", "TransactWriteItems"): "dynamodb:PutItem",
}
_POLLING = {("sqs", "ReceiveMessage"), ("sqs", "DeleteMessageBatch")}


def test_every_aws_call_of_the_reminder_function_is_granted(stack, repo_root):
    _app, _c = setup_members(stack, jobs=(NUDGE,))
    tick(stack, AT_20)
    stack.runtime.reset_containers()
    with RequestCounter() as counter:
        drain(stack)
    used = set()
    for (service, operation), _ in counter.by_operation().items():
        if (service, operation) in _POLLING:
            continue
        if (service, operation) == ("s3", "GetObject"):
            used.update({"s3:GetObject"})
            continue
        used.add(_IAM_NAME.get((service, operation), f"{service}:{operation}"))
    template = load_template(repo_root / "template.yaml")
    granted: set[str] = set()
    for statement in function_statements(template, "ReminderFunction"):
        action = statement["Action"]
        granted.update([action] if isinstance(action, str) else action)
    assert used <= granted, f"called but not granted: {sorted(used - granted)}"


def test_inactive_nudges_members_whose_last_check_in_was_exactly_d_days_ago(stack):
    winback = {
        "id": "winback",
        "cron": "30 19 * * *",
        "action": "reminder",
        "params": {
            "kind": "inactive",
            "days": 7,
            "channel": "group",
            "template": "{name}，{days_since} 天没见啦",
        },
    }
    _app, _c = setup_members(stack, jobs=(winback,))
    item = AccountItem.get(member_pk("sunrise", "dave"), "ACCOUNT")
    item.update(actions=[AccountItem.dm_address.set("dm-dave")])
    tick(stack, datetime(2026, 11, 27, 11, 30, 5, tzinfo=UTC))
    drain(stack)
    # dave last checked in on the 20th: exactly 7 days; erin (the 10th) is not nudged
    # again, so a member hears from a win-back job once per absence.
    assert [(m["to"], m["text"]) for m in group_messages(stack)] == [
        ("dm-dave", "dave，7 天没见啦")
    ]
    assert counters("winback") == {"selected": 1, "sent": 1}


LOTTERY = {
    "id": "weekly",
    "title": "周五抽奖",
    "schedule": {"opens": "0 0 * * 1", "closes": "55 19 * * 5", "draws": "0 20 * * 5"},
    "entry": {"mode": "enter", "keywords": ["抽奖"]},
    "eligibility": {"min_checkins": 1},
    "prizes": [{"id": "first", "title": "一等奖", "count": 1, "points": 100}],
    "posts": {"channels": ["group"]},
}


@pytest.mark.parametrize(
    ("audience", "expected"), [("eligible_non_entrants", ["bob"]), ("entrants", ["ann"])]
)
def test_lottery_reminders_go_to_entrants_or_eligible_non_entrants_on_draw_day(
    stack, audience, expected
):
    from autopilot.config.model import lottery_job_id
    from autopilot.scheduler.rules import Occurrence
    from autopilot.scheduler.service import ActionContext

    job = {
        "id": "draw-tonight",
        "cron": "0 18 * * *",
        "action": "reminder",
        "params": {
            "kind": "lottery",
            "lottery": "weekly",
            "audience": audience,
            "channel": "group",
            "template": "{name}，今晚 {draw_time} 开奖「{lottery}」",
            "group_template": "{mentions} 今晚 {draw_time} 开奖「{lottery}」，快来参加！",
        },
    }
    stack.push(make_config(jobs=[job], lotteries=[LOTTERY], published_at="2026-11-29T15:00:00Z"))
    app = stack.app()
    c = app.config().communities[0]
    opens = datetime(2026, 11, 29, 16, 0, tzinfo=UTC)  # Monday 00:00 in Shanghai
    tick(stack, opens + timedelta(seconds=5))
    stack.clock.set(opens + timedelta(hours=2))
    for member in ("ann", "bob"):
        app.checkins.check_in(c, member, opens + timedelta(hours=2))
    app.lotteries.enter(c, "weekly", "ann", request_id="r1", at_utc=opens + timedelta(hours=3))

    def run_on(day: datetime) -> int:
        occ = Occurrence(c.id, "draw-tonight", day.replace(tzinfo=None), day, day)
        stack.clock.set(day)
        context = ActionContext(c, c.job("draw-tonight"), occ, now_utc=day, attempt=1)
        result = app.reminders.select(context)
        assert result.ok, result.error
        return int(result.detail["selected"])

    # Thursday 18:00: the draw is tomorrow, nobody is selected.
    assert run_on(datetime(2026, 12, 3, 10, 0, tzinfo=UTC)) == 0
    # Friday 18:00 (10:00Z): the draw is tonight at 20:00.
    assert run_on(datetime(2026, 12, 4, 10, 0, tzinfo=UTC)) == 1
    drain(stack)
    (message,) = group_messages(stack)
    assert message["text"] == f"@{expected[0]} 今晚 20:00 开奖「周五抽奖」，快来参加！"
    assert lottery_job_id("weekly", "draw") != "draw-tonight"


def test_out_of_time_releases_unsent_claims_and_enqueues_them_again(stack):
    app, _c = setup_members(stack, jobs=(NUDGE,))
    for member in ("bob", "carol", "dave"):
        item = AccountItem.get(member_pk("sunrise", member), "ACCOUNT")
        item.update(actions=[AccountItem.dm_address.set(f"dm-{member}")])
    tick(stack, AT_20)
    (batch,) = queued(stack)
    drain_body = json.dumps(batch.to_json())
    client("sqs", "us-east-1").purge_queue(QueueUrl=stack.runtime.physical_id("ReminderQueue"))
    left = iter([60_000, 1_000, 1_000, 1_000])  # time for one DM, then none
    report = app.reminders.process(drain_body, remaining_ms=lambda: next(left, 1_000))
    assert report.sent == 1 and report.requeued == 2
    (again,) = queued(stack)
    assert [m for m, _ in again.recipients] == ["carol", "dave"]
    assert marker("nudge", "carol") == {}  # released: claimed afresh by the next delivery
    drain(stack)
    assert sorted(m["to"] for m in group_messages(stack)) == ["dm-bob", "dm-carol", "dm-dave"]
    assert counters("nudge") == {"selected": 3, "sent": 3}
