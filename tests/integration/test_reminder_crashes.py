"""Reminders across crashes, redeliveries and overlapping deliveries (issue 12).

The ReminderFunction claims its members' markers before anything is sent, writes
each planned message's send intent (``claimed`` → ``sending``) just before the
message goes to the channel, and records ``sent``/``failed``/``uncertain`` after.
A worker that stops anywhere in between (a ``BaseException``: nothing in the
handler catches it, like a killed container) is followed by the SQS redelivery:
members whose send never started are sent, members whose send started without a
recorded outcome become ``uncertain`` (never re-sent), settled members are left
alone. Every send is counted on the file channel's sink (``group.jsonl``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from autopilot.aws import client
from autopilot.channels.base import Delivery
from autopilot.channels.local import FileChannel
from autopilot.ledger.store import AccountItem, member_pk
from autopilot.reminders.store import ReminderStore
from autopilot.timeutil import iso_utc

from autopilot_cli.metering import RequestCounter

from .test_reminders import (  # noqa: F401  (_reminder_table: the autouse fixture)
    AT_20,
    NUDGE,
    _reminder_table,
    counters,
    drain,
    group_messages,
    marker,
    queued,
    setup_members,
    tick,
)

MEMBERS = ("bob", "carol", "dave")
VISIBILITY_TIMEOUT_S = 720  # the ReminderQueue's (template.yaml)


class Crash(BaseException):
    """The container dies here: no handler code catches it (not an ``Exception``)."""


def give_dms(*members: str) -> None:
    for member in members:
        item = AccountItem.get(member_pk("sunrise", member), "ACCOUNT")
        item.update(actions=[AccountItem.dm_address.set(f"dm-{member}")])


def deliver_and_crash(stack) -> None:
    """One delivery of the queued message that dies; SQS redelivers it later (its
    visibility timeout runs out: made visible again here)."""
    event = stack.runtime.receive_sqs_event("ReminderQueue")
    assert event["Records"]
    with pytest.raises(Crash):
        stack.runtime.invoke("ReminderFunction", event)
    _visible_again(stack, event)


def deliver_and_fail(stack) -> None:
    """One delivery whose only message raises: Powertools fails the invocation,
    Lambda deletes nothing and SQS redelivers it after the visibility timeout."""
    event = stack.runtime.receive_sqs_event("ReminderQueue")
    assert event["Records"]
    with pytest.raises(Exception, match="All records failed"):
        stack.runtime.invoke("ReminderFunction", event)
    _visible_again(stack, event)


def _visible_again(stack, event: dict[str, Any]) -> None:
    """The queue's visibility timeout (720 s) passes and the messages are visible."""
    stack.clock.advance(timedelta(seconds=VISIBILITY_TIMEOUT_S))
    sqs = client("sqs", "us-east-1")
    url = stack.runtime.physical_id("ReminderQueue")
    for record in event["Records"]:
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=record["receiptHandle"], VisibilityTimeout=0
        )


def reminded(stack) -> Counter[str]:
    """How many times each member was reminded: a DM to ``dm-<member>``, or an
    ``@<member>`` in a group message (the file channel names members as @name)."""
    seen: Counter[str] = Counter()
    for line in group_messages(stack):
        if "to" in line:
            seen[line["to"].removeprefix("dm-")] += 1
        else:
            for member in MEMBERS:
                seen[member] += f"@{member}" in line["text"]
    return seen


def crash_once(monkeypatch, owner: Any, name: str, *, after: bool = False) -> None:
    """``owner.name`` dies on its first call (before doing anything, or ``after`` it)."""
    real = getattr(owner, name)
    calls = {"n": 0}

    def dying(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1 and not after:
            raise Crash(f"killed before {name}")
        result = real(*args, **kwargs)
        if calls["n"] == 1:
            raise Crash(f"killed after {name}")
        return result

    monkeypatch.setattr(owner, name, dying)


def _no_marker_reads(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the reminder function read markers (it has no read permission)")


def statuses() -> dict[str, str]:
    return {m: marker("nudge", m).get("status", "") for m in MEMBERS}


# ---------------------------------------------------------------- crashes


def test_a_crash_after_the_claim_before_any_send_sends_every_member_on_redelivery(
    stack, monkeypatch
):
    setup_members(stack, jobs=(NUDGE,))
    tick(stack, AT_20)
    crash_once(monkeypatch, ReminderStore, "intend")
    deliver_and_crash(stack)
    assert statuses() == dict.fromkeys(MEMBERS, "claimed")
    assert group_messages(stack) == []
    monkeypatch.setattr(ReminderStore, "markers", _no_marker_reads)
    assert drain(stack) == [{"batchItemFailures": []}]
    assert reminded(stack) == dict.fromkeys(MEMBERS, 1)
    assert len(group_messages(stack)) == 1  # the same single @mention message
    assert statuses() == dict.fromkeys(MEMBERS, "sent")
    assert counters("nudge") == {"selected": 3, "sent": 3}
    # A later redelivery finds everything settled.
    report = stack.app().reminders.process(_body_of_first_message(stack))
    assert report.already == 3 and report.sent == report.recovered == 0


def test_a_crash_between_dms_sends_the_rest_and_records_the_started_one_uncertain(
    stack, monkeypatch
):
    setup_members(stack, jobs=(NUDGE,))
    give_dms(*MEMBERS)
    tick(stack, AT_20)
    real = FileChannel.send_to_member
    calls = {"n": 0}

    def dies_at_carol(self, address, message, **kwargs):
        calls["n"] += 1
        if address == "dm-carol" and calls["n"] == 2:
            raise Crash("killed after carol's intent, before her DM")
        return real(self, address, message, **kwargs)

    monkeypatch.setattr(FileChannel, "send_to_member", dies_at_carol)
    deliver_and_crash(stack)
    # bob's DM went out, carol's intent is written, dave's send never started.
    assert statuses() == {"bob": "sending", "carol": "sending", "dave": "claimed"}
    # The redelivery learns the markers from its claim's cancellation: no read.
    monkeypatch.setattr(ReminderStore, "markers", _no_marker_reads)
    with RequestCounter() as counter:
        drain(stack)
    ops = counter.by_operation()
    assert ops[("dynamodb", "BatchGetItem")] == 1  # the accounts' recheck only
    assert ops[("dynamodb", "TransactWriteItems")] == 2  # the claim (cancelled), the record
    assert ops[("dynamodb", "UpdateItem")] == 1  # dave's send intent
    assert reminded(stack) == {"bob": 1, "dave": 1}  # carol: intent only, never re-sent
    assert statuses() == {"bob": "uncertain", "carol": "uncertain", "dave": "sent"}
    assert counters("nudge") == {"selected": 3, "sent": 1, "uncertain": 2}
    assert "outcome was never recorded" in marker("nudge", "carol")["error"]


def test_a_store_error_between_dms_keeps_the_answers_already_known(stack, monkeypatch):
    setup_members(stack, jobs=(NUDGE,))
    give_dms(*MEMBERS)
    tick(stack, AT_20)
    real = ReminderStore.intend
    calls = {"n": 0}

    def throttled_once(self, keys, now, message_key):
        calls["n"] += 1
        if calls["n"] == 2:  # carol's intent: DynamoDB throttles, nothing written
            raise RuntimeError("ProvisionedThroughputExceededException")
        return real(self, keys, now, message_key)

    monkeypatch.setattr(ReminderStore, "intend", throttled_once)
    deliver_and_fail(stack)
    # bob's answer was recorded before the message failed; carol and dave wait.
    assert statuses() == {"bob": "sent", "carol": "claimed", "dave": "claimed"}
    drain(stack)
    assert reminded(stack) == dict.fromkeys(MEMBERS, 1)
    assert counters("nudge") == {"selected": 3, "sent": 3}


def test_a_crash_after_the_group_send_before_its_outcome_sends_nothing_again(stack, monkeypatch):
    setup_members(stack, jobs=(NUDGE,))
    tick(stack, AT_20)
    crash_once(monkeypatch, FileChannel, "send_to_community", after=True)
    deliver_and_crash(stack)
    assert len(group_messages(stack)) == 1
    assert statuses() == dict.fromkeys(MEMBERS, "sending")
    monkeypatch.setattr(ReminderStore, "markers", _no_marker_reads)
    drain(stack)
    assert reminded(stack) == dict.fromkeys(MEMBERS, 1)  # nothing re-sent
    assert statuses() == dict.fromkeys(MEMBERS, "uncertain")
    assert counters("nudge") == {"selected": 3, "uncertain": 3}
    assert marker("nudge", "bob")["message"].startswith("reminder#sunrise#nudge#")


def test_a_crash_after_the_send_and_its_outcome_changes_nothing(stack, monkeypatch):
    setup_members(stack, jobs=(NUDGE,))
    tick(stack, AT_20)
    crash_once(monkeypatch, ReminderStore, "record", after=True)
    deliver_and_crash(stack)
    assert statuses() == dict.fromkeys(MEMBERS, "sent")
    drain(stack)
    assert reminded(stack) == dict.fromkeys(MEMBERS, 1)
    assert statuses() == dict.fromkeys(MEMBERS, "sent")
    assert counters("nudge") == {"selected": 3, "sent": 3}


# ------------------------------------------------------- overlapping deliveries


def _body_of_first_message(stack) -> str:
    """The reminder message's body as the dispatcher enqueued it (kept for replays)."""
    return _BODIES[-1]


_BODIES: list[str] = []


@pytest.fixture(autouse=True)
def _keep_bodies(stack, monkeypatch):
    """Remember every reminder message body the dispatcher enqueues."""
    from autopilot.reminders.service import ReminderQueue

    real = ReminderQueue.send_all

    def keep(self, batches):
        _BODIES.extend(json.dumps(b.to_json()) for b in batches)
        return real(self, batches)

    monkeypatch.setattr(ReminderQueue, "send_all", keep)
    _BODIES.clear()


FAILED = "failed: the message comes back"


def second_delivery(stack, body: str) -> dict[str, Any] | str:
    """The same message delivered again, at once, to another container (SQS
    at-least-once: a duplicate while the first is still running). Its only record
    failing fails the invocation (Powertools): :data:`FAILED`."""
    event = stack.runtime.sqs_event([{"body": body, "messageId": "dup"}], queue_id="ReminderQueue")
    try:
        result: dict[str, Any] = stack.runtime.invoke("ReminderFunction", event, slot="second")
    except Exception as exc:
        assert "All records failed" in str(exc) and "SendsInFlight" in str(exc)
        return FAILED
    return result


def during_first(monkeypatch, owner: Any, name: str, then: Callable[[], Any]) -> list[Any]:
    """Run ``then`` (the overlapping delivery) inside the first call of ``owner.name``,
    just before the call itself proceeds."""
    real = getattr(owner, name)
    results: list[Any] = []
    started: list[bool] = []

    def hooked(*args: Any, **kwargs: Any) -> Any:
        if not started:  # once: the overlapping delivery's own calls go straight through
            started.append(True)
            results.append(then())
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, hooked)
    return results


def test_two_deliveries_racing_for_the_intent_send_the_group_message_once(stack, monkeypatch):
    setup_members(stack, jobs=(NUDGE,))
    tick(stack, AT_20)
    body = _body_of_first_message(stack)
    # The duplicate runs after the first claimed the markers, before its intent:
    # it finds them claimed with no intent, wins the intent and sends; the first
    # loses the conditional intent and sends nothing.
    seen = during_first(monkeypatch, ReminderStore, "intend", lambda: second_delivery(stack, body))
    assert drain(stack) == [{"batchItemFailures": []}]
    assert seen == [{"batchItemFailures": []}]
    assert reminded(stack) == dict.fromkeys(MEMBERS, 1)
    assert len(group_messages(stack)) == 1
    assert counters("nudge") == {"selected": 3, "sent": 3}


def test_a_duplicate_arriving_mid_send_leaves_that_send_to_the_first(stack, monkeypatch):
    setup_members(stack, jobs=(NUDGE,))
    give_dms(*MEMBERS)
    tick(stack, AT_20)
    body = _body_of_first_message(stack)
    # The duplicate runs while the first is sending bob's DM (intent written, no
    # outcome yet, seconds ago): bob is the first's to record; carol and dave are
    # sent by the duplicate, which then fails so that SQS brings the message back
    # after its visibility timeout. The first loses their intents: sends nothing more.
    seen = during_first(
        monkeypatch, FileChannel, "send_to_member", lambda: second_delivery(stack, body)
    )
    assert drain(stack) == [{"batchItemFailures": []}]
    assert seen == [FAILED]
    assert reminded(stack) == dict.fromkeys(MEMBERS, 1)
    assert statuses() == dict.fromkeys(MEMBERS, "sent")
    assert counters("nudge") == {"selected": 3, "sent": 3}
    # The duplicate's copy comes back later: everything is settled.
    stack.clock.advance(timedelta(seconds=VISIBILITY_TIMEOUT_S))
    assert second_delivery(stack, body) == {"batchItemFailures": []}
    assert reminded(stack) == dict.fromkeys(MEMBERS, 1)


def test_a_duplicate_mid_send_then_the_first_dying_leaves_nothing_unrecorded(stack, monkeypatch):
    setup_members(stack, jobs=(NUDGE,))
    give_dms(*MEMBERS)
    tick(stack, AT_20)
    body = _body_of_first_message(stack)
    real = FileChannel.send_to_member
    calls = {"n": 0}

    def duplicate_then_die(self, address, message, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:  # bob's DM, intent written: the duplicate runs, then we die
            assert second_delivery(stack, body) == FAILED
            real(self, address, message, **kwargs)
            raise Crash("killed after bob's DM, before its outcome")
        return real(self, address, message, **kwargs)

    monkeypatch.setattr(FileChannel, "send_to_member", duplicate_then_die)
    deliver_and_crash(stack)
    assert statuses() == {"bob": "sending", "carol": "sent", "dave": "sent"}
    # The redelivery after the visibility timeout finds bob's intent old: uncertain.
    assert drain(stack) == [{"batchItemFailures": []}]
    assert reminded(stack) == dict.fromkeys(MEMBERS, 1)
    assert statuses() == {"bob": "uncertain", "carol": "sent", "dave": "sent"}
    assert counters("nudge") == {"selected": 3, "sent": 2, "uncertain": 1}


# ------------------------------------------------------- unknown channel answers


def test_a_channel_answer_with_an_unknown_outcome_is_recorded_uncertain(stack, monkeypatch):
    setup_members(stack, jobs=(NUDGE,))
    give_dms(*MEMBERS)
    tick(stack, AT_20)
    real = FileChannel.send_to_member

    def lost_answer(self, address, message, *, now, **kwargs):
        delivery = real(self, address, message, now=now, **kwargs)
        if address != "dm-carol":
            return delivery
        return Delivery(
            self.id,
            False,
            iso_utc(now),
            error="no answer (read timeout); outcome unknown",
            unknown=True,
        )

    monkeypatch.setattr(FileChannel, "send_to_member", lost_answer)
    assert drain(stack) == [{"batchItemFailures": []}]
    assert statuses() == {"bob": "sent", "carol": "uncertain", "dave": "sent"}
    assert counters("nudge") == {"selected": 3, "sent": 2, "uncertain": 1}
    assert "outcome unknown" in marker("nudge", "carol")["error"]
    # Redelivered: nothing is re-sent, nothing counted twice.
    report = stack.app().reminders.process(_body_of_first_message(stack))
    assert report.already == 3 and report.sent == report.uncertain == 0
    assert reminded(stack) == dict.fromkeys(MEMBERS, 1)


# ------------------------------------------------------------------ request counts


def test_the_send_intent_costs_one_request_per_message(stack):
    setup_members(stack, jobs=(NUDGE,))
    tick(stack, AT_20)
    with RequestCounter() as counter:
        drain(stack)
    ops = counter.by_operation()
    # claim, the group message's intent (3 members: one transaction), record
    assert ops[("dynamodb", "TransactWriteItems")] == 3
    assert ("dynamodb", "UpdateItem") not in ops


def test_the_send_intent_of_a_dm_is_one_conditional_update(stack):
    setup_members(stack, jobs=(NUDGE,))
    give_dms(*MEMBERS)
    tick(stack, AT_20)
    assert queued(stack)
    with RequestCounter() as counter:
        drain(stack)
    ops = counter.by_operation()
    assert ops[("dynamodb", "TransactWriteItems")] == 2  # claim, record
    assert ops[("dynamodb", "UpdateItem")] == 3  # one intent per DM
    assert reminded(stack) == dict.fromkeys(MEMBERS, 1)
