"""Benchmark: AWS requests per reminder recipient, at 1,000 and 10,000 members.

A community whose members are 70% checked in today and 30% not (their last
check-in 1-7 days ago, spread over the four shards of the last-day index). A
``not_checked_in`` reminder job fires at 20:00: one real dispatcher tick selects
and enqueues (the DispatcherFunction handler on the local stack), then Lambda's
SQS poller is played by the local runtime and the real ReminderFunction handler
sends every batch: recheck (BatchGetItem), claim (TransactWriteItems), send,
record (TransactWriteItems). Requests are counted with botocore's event hooks
(``autopilot_cli.metering``). Members are written directly as account items
(what check-ins would leave), so setup costs nothing in the figures.

Two deliveries: ``group`` (nobody has a DM address: @mentions in group messages
on a file channel) and ``dm`` (every member has one: a DM each). The channel
here is a local file channel, so the figures contain no channel calls; on chat
platforms each send also takes a token from the channel's shared rate limit
(one UpdateItem per message sent), counted with the channel calls.

    python benchmarks/reminders.py [--sizes 1000,10000] [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "layers" / "autopilot"), str(ROOT / "benchmarks")]

from autopilot_cli import metering  # noqa: E402  (before any botocore session exists)

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_LOG_LEVEL": "ERROR",
    }
)

from autopilot.clock import ManualClock, set_clock  # noqa: E402

from autopilot_cli.local.runtime import LocalRuntime, scheduled_event  # noqa: E402

SECTION = "Reminders"
COMMUNITY = "sunrise"
PUBLISHED = datetime(2027, 3, 10, 11, 0, tzinfo=UTC)
AT_20 = datetime(2027, 3, 10, 12, 0, 5, tzinfo=UTC)  # 20:00 in Shanghai
TODAY = date(2027, 3, 10)
NOT_CHECKED_IN = 0.3
POLLING = {("sqs", "ReceiveMessage"), ("sqs", "DeleteMessageBatch"), ("sqs", "GetQueueAttributes")}


def config() -> dict[str, Any]:
    return {
        "version": 1,
        "published_at": PUBLISHED.isoformat().replace("+00:00", "Z"),
        "communities": [
            {
                "id": COMMUNITY,
                "name": "晨读社",
                "timezone": "Asia/Shanghai",
                "locale": "zh-CN",
                "quiet_hours": {"start": "23:00", "end": "07:00"},
                "channels": [{"id": "group", "type": "file", "path": "reminders.jsonl"}],
                "pools": [{"id": "p", "items": [{"id": "a", "text": "a"}]}],
                "jobs": [
                    {
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
                ],
            }
        ],
    }


def write_members(table: str, size: int, *, dm: bool) -> int:
    """Account items as check-ins leave them; returns how many have not checked in today."""
    from autopilot.checkins.rules import AccountState
    from autopilot.dynamo import bind_table
    from autopilot.ledger.store import Account, AccountItem, _account_item

    bind_table(table, AccountItem, region="us-east-1")
    missing = 0
    with AccountItem.batch_write() as batch:
        for i in range(size):
            member = f"wx:m{i:07d}"
            absent = (i * 7919) % 1000 < NOT_CHECKED_IN * 1000
            missing += absent
            last = TODAY - timedelta(days=1 + i % 7) if absent else TODAY
            state = AccountState(balance=50, streak=3, last_day=last, checkins=10, version=3)
            account = Account(
                COMMUNITY,
                member,
                state,
                display_name=f"成员{i}",
                dm_address=f"dm-{i}" if dm else None,
            )
            batch.save(_account_item(account, state, PUBLISHED))
    return missing


def run(size: int, *, dm: bool) -> dict[str, Any]:
    from autopilot.aws import client, reset_clients

    out_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"reminder-bench-{size}-{dm}"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "reminders.jsonl").unlink(missing_ok=True)
    os.environ["AUTOPILOT_OUTPUT_DIR"] = str(out_dir)
    with LocalRuntime(ROOT / "template.yaml", parameters={"LogLevel": "ERROR"}) as runtime:
        reset_clients()
        clock = ManualClock(PUBLISHED)
        previous = set_clock(clock)
        try:
            env = runtime.function_env("DispatcherFunction")
            client("s3", "us-east-1").put_object(
                Bucket=runtime.physical_id("ConfigBucket"),
                Key="communities.json",
                Body=json.dumps(config(), ensure_ascii=False).encode(),
            )
            missing = write_members(env["LEDGER_TABLE"], size, dm=dm)
            clock.set(AT_20)
            cpu = time.process_time()
            with metering.RequestCounter() as selection, contextlib.redirect_stdout(io.StringIO()):
                report = runtime.invoke("DispatcherFunction", scheduled_event(AT_20))
            with metering.RequestCounter() as sending:
                batches = runtime.deliver_pending_sqs()
            cpu = time.process_time() - cpu
            assert report["counts"].get("fired") == 1, report
            lines = (out_dir / "reminders.jsonl").read_text(encoding="utf-8").splitlines()
            polling = sum(n for op, n in sending.by_operation().items() if op in POLLING)
            code = sending.total - polling
            ops = {**selection.summary()}
            for k, v in sending.summary().items():
                ops[k] = ops.get(k, 0) + v
            return {
                "members": size,
                "recipients": missing,
                "delivery": "dm" if dm else "group",
                "messages_sent": len(lines),
                "selection": selection.total,
                "sending": code,
                "polling": polling,
                "batches": batches,
                "per_recipient": (selection.total + code) / missing,
                "per_recipient_with_polling": (selection.total + sending.total) / missing,
                "scans": ops.get("dynamodb.Scan", 0),
                "ops": ", ".join(f"{k.split('.', 1)[1]} {v}" for k, v in sorted(ops.items())),
                "cpu": cpu,
            }
        finally:
            set_clock(previous)


def report(sizes: list[int]) -> str:
    lines = [
        f"## {SECTION}: AWS requests per recipient",
        "",
        "`python benchmarks/reminders.py` (in `make bench`). A `not_checked_in` reminder",
        "at 20:00 in a community where 30% of the members have not checked in today: a",
        "real dispatcher tick selects (one Query per shard of the sparse last-day index)",
        "and enqueues (99 members per message, 10 messages per SendMessageBatch); the real",
        "ReminderFunction sends each batch (BatchGetItem recheck, a TransactWriteItems",
        "claim, a send intent just before each message goes out — one TransactWriteItems",
        "for a group message, one UpdateItem per DM — and a TransactWriteItems record with",
        "the counts after). The channel is a local file channel: no channel calls are in",
        "the figures. Target: at most 0.15 requests per recipient for group delivery, no",
        "Scan; a DM costs one write of its own on top (its intent: a crash mid-batch leaves",
        "at most the DM being sent unknown, and every DM not yet started is sent on",
        "redelivery), next to the chat platform's own call for it.",
        "",
        "| members | recipients | delivery | messages sent | selection + enqueue | sending "
        "bookkeeping | Lambda's SQS polling | requests / recipient | incl. polling | Scans |",
        "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    details = []
    runs = [(size, False) for size in sizes] + [(max(sizes), True)]
    for size, dm in runs:
        r = run(size, dm=dm)
        print(f"reminders: {r}", file=sys.stderr)
        lines.append(
            f"| {r['members']:,} | {r['recipients']:,} | {r['delivery']} | "
            f"{r['messages_sent']:,} | {r['selection']} | {r['sending']} | {r['polling']} | "
            f"{r['per_recipient']:.3f} | {r['per_recipient_with_polling']:.3f} | {r['scans']} |"
        )
        details.append(f"- {r['members']:,} members, {r['delivery']}: {r['ops']}")
    lines += [
        "",
        "Requests by operation (selection, enqueueing, sending and polling together):",
        "",
        *details,
        "",
        "Selection reads only the members it reminds (the index holds members by last",
        "check-in day; those who checked in today sort under today and are never read), so",
        "its cost is one Query page per shard per MB of recipients, not of members. Each",
        "queue message of 99 members costs three requests (recheck, claim, record) plus",
        "one intent per message sent: about 4/99 per recipient for group messages plus the",
        "selection's share, one more per recipient for DMs. On chat",
        "platforms each message sent also takes one UpdateItem on the channel's shared rate",
        "limit: one per 50 mentions for group messages, one per DM.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--out", help="rewrite this script's section of this Markdown file")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    text = report(sizes)
    print(text)
    if args.out:
        from docsections import replace_section

        replace_section(Path(args.out), SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
