"""The dispatcher *handler* as Lambda runs it: events, idle cost, and IAM it really needs."""

from __future__ import annotations

import contextlib
import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from autopilot.aws import client
from autopilot.scheduler.index import shard_of

from autopilot_cli.local.cfn import function_statements, load_template
from autopilot_cli.local.runtime import scheduled_event
from autopilot_cli.metering import RequestCounter

from ..unit.channels.platforms import PLATFORMS, FakePlatform
from .conftest import BASE_COMMUNITY, make_config
from .lottery_support import run_auto_cycle

DYNAMODB_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


def invoke(stack, when: datetime) -> dict[str, Any]:
    stack.clock.set(when)
    return stack.runtime.invoke("DispatcherFunction", scheduled_event(when))


def test_handler_runs_a_tick_from_the_sample_event(stack, repo_root, monkeypatch):
    monkeypatch.setenv("AUTOPILOT_OUTPUT_DIR", str(stack.output_dir))
    stack.push(make_config())
    event = json.loads((repo_root / "events" / "DispatcherFunction.json").read_text())
    stack.clock.set(datetime(2026, 11, 26, 23, 30, 4, tzinfo=UTC))
    result = stack.runtime.invoke("DispatcherFunction", event)
    assert result["counts"] == {"fired": 1}
    again = stack.runtime.invoke("DispatcherFunction", event)  # at-least-once delivery
    assert again["counts"] == {} and len(stack.lines()) == 1


def test_idle_ticks_make_no_dynamodb_writes(stack, monkeypatch):
    monkeypatch.setenv("AUTOPILOT_OUTPUT_DIR", str(stack.output_dir))
    stack.push(make_config(published_at="2026-11-26T10:00:00Z"))
    start = datetime(2026, 11, 26, 10, 0, 30, tzinfo=UTC)
    with RequestCounter() as cold:
        invoke(stack, start)  # cold container, nothing due since publication
    with RequestCounter() as warm:
        for minute in range(1, 30):
            invoke(stack, start + timedelta(minutes=minute))
    assert sum(cold.count("dynamodb", op) for op in DYNAMODB_WRITES) == 0
    assert cold.count("dynamodb") <= 1  # at most one BatchGetItem of the watermarks
    assert warm.count("dynamodb") == 0  # warm and idle: not a single DynamoDB request


def _granted(function_id: str, repo_root) -> set[str]:
    template = load_template(repo_root / "template.yaml")
    actions: set[str] = set()
    for statement in function_statements(template, function_id):
        # The Lambda runtime writes the function's logs, not the code.
        if statement.get("Effect") == "Allow" and statement.get("Sid") != "WriteOwnLogs":
            action = statement["Action"]
            actions.update([action] if isinstance(action, str) else action)
    return actions


# botocore operation -> IAM action, where they differ. A transaction is authorised
# by the per-item actions it contains (PutItem here), not by an action of its own.
_IAM_NAME = {
    ("s3", "ListObjectVersions"): "s3:ListBucketVersions",
    ("dynamodb", "TransactWriteItems"): "dynamodb:PutItem",
}


def test_every_aws_call_of_the_dispatcher_is_granted_and_every_grant_is_used(
    stack, monkeypatch, repo_root
):
    """Least privilege, checked against what the code really calls."""
    monkeypatch.setenv("AUTOPILOT_OUTPUT_DIR", str(stack.output_dir))
    jobs = [
        {
            "id": "morning-post",
            "cron": "30 7 * * *",
            "action": "post",
            "params": {
                "pool": "morning",
                "channels": ["group", "announce", "chat"],
                "template": "{content}",
            },
        },
        {
            "id": "late",
            "cron": "0 12 * * *",
            "action": "post",
            "params": {"pool": "morning", "channels": ["group"], "template": "{content}"},
            "misfire": {"policy": "latest", "grace": "1m"},
        },
        # Finance jobs and live check-in counts read the ledger and write exports.
        {
            "id": "export",
            "cron": "0 2 1 * *",
            "action": "ledger_export",
            "misfire": {"policy": "all"},
        },
        {
            "id": "reconcile",
            "cron": "0 3 * * *",
            "action": "ledger_reconcile",
            "misfire": {"policy": "all"},
        },
        {
            "id": "evening",
            "cron": "0 21 * * *",
            "action": "post",
            "params": {
                "pool": "morning",
                "channels": ["group"],
                "template": "{checkins_today} check-ins today. {content}",
            },
        },
    ]
    # A chat channel: its webhook secret comes from SSM (GetParameter), its rate
    # limit bucket lives in the posts table (UpdateItem).
    slack = FakePlatform(PLATFORMS["slack"].check)
    client("ssm", "us-east-1").put_parameter(
        Name=f"{stack.env['CHANNEL_SECRETS_PREFIX']}/sunrise/chat",
        Value=json.dumps(PLATFORMS["slack"].secret(slack.base)),
        Type="SecureString",
    )
    channels = [*BASE_COMMUNITY["channels"], {"id": "chat", "type": "slack"}]
    stack.push(make_config(jobs=jobs, channels=channels, published_at="2026-11-26T00:00:00Z"))
    stack.push(b"{broken")  # a cold start must fall back to the previous version
    with RequestCounter() as counter, contextlib.closing(slack):
        invoke(stack, datetime(2026, 11, 26, 23, 30, 5, tzinfo=UTC))  # fires; 12:00 missed
        stack.runtime.reset_containers()  # a second, cold container ...
        invoke(stack, datetime(2026, 11, 26, 23, 30, 5, tzinfo=UTC))  # ... same tick again
        # Another worker holds a live claim on today's 'late': the tick must read it and
        # leave it alone; a rerun of the 07:30 post finds its existing post.
        from autopilot.app import App
        from autopilot.scheduler.rules import occurrences_between
        from autopilot.settings import Settings
        from autopilot.timeutil import zone

        other = App(Settings.from_env(stack.env), clock=stack.clock)
        community = other.config().communities[0]
        tick = datetime(2026, 11, 27, 4, 0, 5, tzinfo=UTC)
        stack.clock.set(tick)
        (late,) = occurrences_between(
            "sunrise",
            community.job("late"),
            zone("Asia/Shanghai"),
            community.quiet_hours,
            tick - timedelta(minutes=1),
            tick,
        )
        other.scheduler_store.claim(late, now=tick, lease=timedelta(minutes=5), worker="other")
        (morning,) = occurrences_between(
            "sunrise",
            community.job("morning-post"),
            zone("Asia/Shanghai"),
            community.quiet_hours,
            datetime(2026, 11, 26, 23, 29, tzinfo=UTC),
            datetime(2026, 11, 26, 23, 31, tzinfo=UTC),
        )
        other.posts._prepare(community, community.job("morning-post"), morning)
        assert invoke(stack, tick)["counts"] == {}
        assert len(slack.accepted) == 1
        # A member checks in; the evening post counts it, then the 1st of the month
        # exports November and the nightly reconciliation runs.
        other.checkins.check_in(community, "alice", datetime(2026, 11, 27, 10, 0, tzinfo=UTC))
        assert invoke(stack, datetime(2026, 11, 27, 13, 0, 5, tzinfo=UTC))["counts"] == {"fired": 1}
        # A reconciliation mismatch the worker queued for ops: the tick that fires the
        # finance jobs reads the alert outbox (Query) and empties it (DeleteItem).
        other.alert_store.enqueue("recon#probe", "sunrise", "mismatch", stack.clock.now())
        counts = invoke(stack, datetime(2026, 11, 30, 19, 0, 5, tzinfo=UTC))["counts"]
        assert counts.get("failed", 0) == 0 and counts["fired"] >= 2
        assert other.alert_store.outbox() == []
        # A lottery week as the dispatcher runs it: seed, auto entries, record, payouts.
        run_auto_cycle(other, stack, weeks=1)
    used = set()
    for (service, operation), _ in counter.by_operation().items():
        if (service, operation) == ("s3", "GetObject"):
            used.update({"s3:GetObject", "s3:GetObjectVersion"})
            continue
        used.add(_IAM_NAME.get((service, operation), f"{service}:{operation}"))
    granted = _granted("DispatcherFunction", repo_root)
    assert used <= granted, f"called but not granted: {sorted(used - granted)}"
    assert granted <= used, f"granted but never needed: {sorted(granted - used)}"


def test_sharded_schedules_tick_disjoint_communities_and_together_all(stack, monkeypatch):
    """Each schedule's input {"shard": i, "shards": N} ticks only shard i's communities."""
    monkeypatch.setenv("AUTOPILOT_OUTPUT_DIR", str(stack.output_dir))
    doc = make_config()
    ids = [f"c{i}" for i in range(6)]
    doc["communities"] = [dict(copy.deepcopy(BASE_COMMUNITY), id=cid) for cid in ids]
    stack.push(doc)
    when = datetime(2026, 11, 26, 23, 30, 5, tzinfo=UTC)
    stack.clock.set(when)
    seen: dict[int, set[str]] = {}
    for i in range(2):
        event = {"shard": i, "shards": 2, "time": "2026-11-26T23:30:00Z"}
        result = stack.runtime.invoke("DispatcherFunction", event)
        seen[i] = {o["community"] for o in result["occurrences"]}
        assert seen[i] == {c for c in ids if shard_of(c, 2) == i}
    assert seen[0] | seen[1] == set(ids) and not seen[0] & seen[1]
    # The unsharded default event, the same minute: everything is already done.
    assert stack.runtime.invoke("DispatcherFunction", scheduled_event(when))["counts"] == {}


def test_a_malformed_shard_input_fails_the_invocation_naming_the_field(stack):
    stack.push(make_config())
    for event, message in [
        ({"shard": 2, "shards": 2}, "shard must be an integer in"),
        ({"shard": "0", "shards": 2}, "'shard' must be an integer"),
        ({"shard": 0}, "'shards' must be an integer"),
    ]:
        with pytest.raises(Exception, match=message):
            stack.runtime.invoke("DispatcherFunction", event)
