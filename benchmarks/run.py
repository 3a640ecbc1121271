"""Benchmarks: AWS requests per operation, cold-start import ratios, simulation throughput.

Requests are counted with botocore's ``before-send`` hook (what AWS bills; the
same on any machine). Times are quoted as ratios measured in one run, never as
absolute figures to compare across machines. Writes Markdown to ``--out``.

    python benchmarks/run.py --out docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "layers" / "autopilot")]

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


def _config(channels: list[str]) -> bytes:
    return json.dumps(
        {
            "version": 1,
            "published_at": "2026-11-26T00:00:00Z",
            "communities": [
                {
                    "id": "bench",
                    "name": "Bench",
                    "timezone": "Asia/Shanghai",
                    "locale": "zh-CN",
                    "channels": [
                        {"id": "group", "type": "file", "path": "bench.jsonl"},
                        {"id": "announce", "type": "sns"},
                    ],
                    "pools": [
                        {
                            "id": "p",
                            "items": [{"id": f"i{n}", "text": f"内容 {n}"} for n in range(20)],
                        }
                    ],
                    "jobs": [
                        {
                            "id": "post",
                            "cron": "30 7 * * *",
                            "action": "post",
                            "params": {
                                "pool": "p",
                                "channels": channels,
                                "template": "{date} {content}",
                            },
                        }
                    ],
                }
            ],
        }
    ).encode()


def _dynamodb(counter: metering.RequestCounter) -> dict[str, int]:
    return {
        op: n
        for (service, op), n in sorted(counter.by_operation().items())
        if service == "dynamodb"
    }


def request_counts() -> list[tuple[str, int, int, str]]:
    """(scenario, DynamoDB requests, all AWS requests, DynamoDB breakdown)."""
    rows = []
    due = datetime(2026, 11, 26, 23, 30, 5, tzinfo=UTC)
    idle = datetime(2026, 11, 26, 12, 0, 5, tzinfo=UTC)
    for label, channels in (
        ("due post job, 1 channel (file)", ["group"]),
        ("due post job, 2 channels (file + SNS)", ["group", "announce"]),
    ):
        with (
            tempfile.TemporaryDirectory() as out,
            LocalRuntime(ROOT / "template.yaml", parameters={"LogLevel": "ERROR"}) as runtime,
        ):
            os.environ["AUTOPILOT_OUTPUT_DIR"] = out
            clock = ManualClock(idle - timedelta(seconds=1))
            previous = set_clock(clock)
            try:
                from autopilot.aws import client, reset_clients

                reset_clients()
                client("s3", "us-east-1").put_object(
                    Bucket=runtime.physical_id("ConfigBucket"),
                    Key="communities.json",
                    Body=_config(channels),
                )

                def tick(
                    when: datetime, counter: metering.RequestCounter, clock: ManualClock = clock
                ) -> None:
                    clock.set(when)
                    with counter:
                        runtime.invoke("DispatcherFunction", scheduled_event(when))

                if channels == ["group"]:
                    cold, warm = metering.RequestCounter(), metering.RequestCounter()
                    tick(idle, cold)
                    tick(idle + timedelta(minutes=1), warm)
                    rows.append(
                        (
                            "idle tick, cold container",
                            cold.count("dynamodb"),
                            cold.total,
                            json.dumps(_dynamodb(cold)),
                        )
                    )
                    rows.append(
                        (
                            "idle tick, warm container",
                            warm.count("dynamodb"),
                            warm.total,
                            json.dumps(_dynamodb(warm)),
                        )
                    )
                counter = metering.RequestCounter()
                tick(due, counter)
                rows.append(
                    (
                        label,
                        counter.count("dynamodb"),
                        counter.total,
                        json.dumps(_dynamodb(counter)),
                    )
                )
                if channels == ["group"]:
                    dup = metering.RequestCounter()
                    tick(due, dup)
                    rows.append(
                        (
                            "same tick delivered again (warm)",
                            dup.count("dynamodb"),
                            dup.total,
                            json.dumps(_dynamodb(dup)),
                        )
                    )
                    runtime.reset_containers()
                    dup_cold = metering.RequestCounter()
                    tick(due, dup_cold)
                    rows.append(
                        (
                            "same tick delivered again (cold container)",
                            dup_cold.count("dynamodb"),
                            dup_cold.total,
                            json.dumps(_dynamodb(dup_cold)),
                        )
                    )
            finally:
                set_clock(previous)
    return rows


_IMPORT_BASELINE = (
    "import time; t=time.perf_counter(); import boto3; "
    "boto3.client('dynamodb', region_name='us-east-1'); print(time.perf_counter()-t)"
)


def _import_handler_code(function_dir: Path) -> str:
    return (
        "import sys, time; "
        f"sys.path[:0]=[{str(function_dir)!r}, {str(ROOT / 'layers' / 'autopilot')!r}]; "
        "t=time.perf_counter(); import app; print(time.perf_counter()-t)"
    )


def cold_starts(runs: int = 9) -> list[tuple[str, float, float, float]]:
    """(function, median import s, median boto3 import+client s, ratio), alternating runs."""
    from autopilot_cli.local.cfn import load_template

    template = load_template(ROOT / "template.yaml")
    env = dict(
        os.environ,
        CONFIG_BUCKET="b",
        SCHEDULER_TABLE="t",
        POSTS_TABLE="t",
        POSTS_TOPIC_ARN="arn:aws:sns:us-east-1:123456789012:t",
        PYTHONDONTWRITEBYTECODE="1",
    )
    results = []
    for logical_id, resource in sorted(template["Resources"].items()):
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        function_dir = ROOT / resource["Properties"]["CodeUri"]
        base, handler = [], []
        for _ in range(runs):  # alternate so machine load affects both alike
            for code, sink in (
                (_IMPORT_BASELINE, base),
                (_import_handler_code(function_dir), handler),
            ):
                out = subprocess.run(
                    [sys.executable, "-c", code],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                    cwd=tempfile.gettempdir(),
                )
                sink.append(float(out.stdout.strip().splitlines()[-1]))
        h, b = statistics.median(handler), statistics.median(base)
        results.append((logical_id, h, b, h / b))
    return results


def simulation_throughput(days: int = 28) -> tuple[int, float, int]:
    """(simulated days, simulated days per wall second, ticks) for the example config."""
    from autopilot_cli.simulate import run_simulation

    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        result = run_simulation(
            str(ROOT / "config" / "communities.yaml"),
            start=datetime(2027, 3, 1, tzinfo=UTC),
            days=days,
            members=1000,
            seed=1,
            out_dir=out,
            template_path=str(ROOT / "template.yaml"),
            log_level="ERROR",
        )
        elapsed = time.perf_counter() - started
    return days, days / elapsed, result.ticks


def api_request_counts() -> list[tuple[str, int, str]]:
    """(operation, DynamoDB requests, breakdown) through the real ApiFunction handler."""
    from autopilot.aws import client, reset_clients

    from autopilot_cli.configfile import published_document, validate_file

    rows = []
    report = validate_file(str(ROOT / "config" / "communities.yaml"))
    with LocalRuntime(ROOT / "template.yaml", parameters={"LogLevel": "ERROR"}) as runtime:
        reset_clients()
        clock = ManualClock(datetime(2027, 3, 8, 1, 0, tzinfo=UTC))
        previous = set_clock(clock)
        try:
            client("s3", "us-east-1").put_object(
                Bucket=runtime.physical_id("ConfigBucket"),
                Key="communities.json",
                Body=published_document(report.loaded, published_at=clock.now()),
            )
            claims = {"sub": "wx:alice", "roles": "member", "scope": "autopilot/member"}

            def call(
                label: str,
                method: str,
                path: str,
                body: Any = None,
                query: Any = None,
                claims: Any = claims,
            ) -> None:
                event = runtime.http_api_event(
                    method, path, body=body, query=query, jwt_claims=claims, time_utc=clock.now()
                )
                with metering.RequestCounter() as counter:
                    response = runtime.invoke("ApiFunction", event)
                assert int(response["statusCode"]) < 300, response
                rows.append((label, counter.count("dynamodb"), json.dumps(_dynamodb(counter))))

            body = {"community": "sunrise-readers"}
            call("check-in, first ever (cold container)", "POST", "/checkins", body)
            call("check-in repeat, same day (warm)", "POST", "/checkins", body)
            clock.advance(timedelta(days=1))
            call("check-in, next day (member seen by this container)", "POST", "/checkins", body)
            runtime.reset_containers()
            clock.advance(timedelta(days=1))
            call("check-in, member not seen by this container", "POST", "/checkins", body)
            runtime.reset_containers()
            call("check-in repeat (cold container)", "POST", "/checkins", body)
            call("GET /me", "GET", "/me", query={"community": "sunrise-readers"})
            ops = {"sub": "ops:carol", "roles": "ops", "scope": "autopilot/ops"}
            call(
                "adjustment (ops)",
                "POST",
                "/ledger/adjustments",
                {
                    "community": "sunrise-readers",
                    "member": "wx:alice",
                    "amount": 100,
                    "reason": "benchmark",
                    "ref": "bench-1",
                },
                claims=ops,
            )
            redeem = {"community": "sunrise-readers", "reward": "bookmark", "request_id": "b-1"}
            call("redemption", "POST", "/redemptions", redeem)
            call("redemption retried (same request id)", "POST", "/redemptions", redeem)
        finally:
            set_clock(previous)
    return rows


def export_memory(sizes: tuple[int, ...] = (10_000, 100_000)) -> list[tuple[int, float, float]]:
    """(entries, peak MiB allocated by the export, MiB of CSV) for a month of entries.

    The entries are built in memory *before* tracing starts and served page by page
    (1,000 items, like DynamoDB's 1 MB pages) by a stand-in for the store's period
    index, so the figure is the export's own working memory: what it buffers,
    merges and hashes. moto is left out on purpose: it keeps the whole table (and
    per-item caches) in this process, which says nothing about Lambda.
    """
    import tracemalloc
    from collections import defaultdict

    from autopilot.config.model import parse_config
    from autopilot.ledger.service import LedgerService
    from autopilot.ledger.store import ENTRY_SHARDS, EntryItem

    doc = {
        "version": 1,
        "communities": [
            {
                "id": "c",
                "name": "C",
                "timezone": "UTC",
                "channels": [{"id": "x", "type": "console"}],
                "jobs": [],
            }
        ],
    }
    community = parse_config(doc).communities[0]
    rows = []
    for size in sizes:
        by_partition: dict[tuple[str, int], list[EntryItem]] = defaultdict(list)
        for n in range(size):
            day = f"2026-11-{1 + n % 30:02d}"
            at = f"{day}T{n % 24:02d}:{n % 60:02d}:{n % 59:02d}Z"
            entry_id = f"{n:032x}"
            member = f"m{n % 5000}"
            by_partition[(day, n % ENTRY_SHARDS)].append(
                EntryItem(
                    f"M#c#{member}",
                    f"E#{at}#{entry_id}",
                    entry_id=entry_id,
                    community_id="c",
                    member_id=member,
                    amount=10,
                    reason="checkin",
                    ref=f"checkin:{n}",
                    balance_after=10,
                    at_utc=at,
                    actor="bench",
                    note="",
                    gsi1pk=f"L#c#{day}#{n % ENTRY_SHARDS}",
                    gsi1sk=f"{at}#{entry_id}",
                )
            )
        for items in by_partition.values():
            items.sort(key=lambda item: item.gsi1sk)

        class PeriodIndex:
            """Serves the period index from memory, a page at a time."""

            partitions = by_partition

            def entries_of_day(
                self, community_id: str, day: Any, shard: int, after: str | None = None
            ) -> Any:
                items = self.partitions.get((day.isoformat(), shard), [])
                for start in range(0, len(items), 1000):
                    yield from items[start : start + 1000]

        class Sink:
            size = 0

            def write(self, data: bytes) -> int:
                Sink.size += len(data)
                return len(data)

        tracemalloc.start()
        LedgerService(PeriodIndex()).export_month(community, "2026-11", Sink())  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rows.append((size, peak / 2**20, Sink.size / 2**20))
    return rows


def transaction_cost(table_items: int = 5000, transactions: int = 200) -> tuple[float, float]:
    """Mean seconds per moto transaction with a table of ``table_items``: (stock, fast)."""
    import boto3
    from moto import mock_aws

    from autopilot_cli.local import fast_transactions

    timings = []
    for fast in (False, True):
        with mock_aws():
            ddb = boto3.client("dynamodb", region_name="us-east-1")
            ddb.create_table(
                TableName="t",
                BillingMode="PAY_PER_REQUEST",
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            )
            for n in range(table_items):
                ddb.put_item(TableName="t", Item={"pk": {"S": f"item{n}"}, "v": {"N": "0"}})
            if fast:
                fast_transactions.install()
            try:
                started = time.perf_counter()
                for n in range(transactions):
                    ddb.transact_write_items(
                        TransactItems=[
                            {
                                "Put": {
                                    "TableName": "t",
                                    "Item": {"pk": {"S": f"new{n}"}},
                                    "ConditionExpression": "attribute_not_exists(pk)",
                                }
                            },
                            {
                                "Update": {
                                    "TableName": "t",
                                    "Key": {"pk": {"S": "item0"}},
                                    "UpdateExpression": "ADD v :one",
                                    "ExpressionAttributeValues": {":one": {"N": "1"}},
                                }
                            },
                        ]
                    )
                timings.append((time.perf_counter() - started) / transactions)
            finally:
                if fast:
                    fast_transactions.uninstall()
    return timings[0], timings[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=None, help="write Markdown here (default: stdout)")
    parser.add_argument("--runs", type=int, default=9, help="cold-start runs per function")
    args = parser.parse_args(argv)
    measure: list[tuple[str, Callable[[], Any]]] = [
        ("requests", request_counts),
        ("cold", lambda: cold_starts(args.runs)),
        ("api", api_request_counts),
        ("export", export_memory),
        ("sim", lambda: simulation_throughput(3)),
        ("tx", transaction_cost),
    ]
    results = {}
    for name, fn in measure:
        print(f"measuring {name} ...", file=sys.stderr)
        results[name] = fn()

    lines = [
        "# Benchmarks",
        "",
        "Produced by `make bench` (`benchmarks/run.py`); re-run it after touching a hot path.",
        f"Last run: {datetime.now(UTC):%Y-%m-%d}, Python {platform.python_version()}, "
        f"{platform.machine()}. Request counts are exact and machine-independent; times are "
        "ratios taken within one run.",
        "",
        "## AWS requests per dispatcher operation",
        "",
        "Counted with botocore's `before-send` hook while invoking the real handler on the "
        "moto stack built from `template.yaml`. Config reads (S3) are cached for 60 s per "
        "container and are included in the all-AWS column.",
        "",
        "| operation | DynamoDB requests | all AWS requests | DynamoDB breakdown |",
        "| --- | ---: | ---: | --- |",
    ]
    lines += [
        f"| {label} | {ddb} | {total} | `{detail}` |"
        for label, ddb, total, detail in results["requests"]
    ]
    lines += [
        "",
        "## Cold start: handler import vs `import boto3` + one client",
        "",
        f"Median of {args.runs} fresh interpreters each, alternating with the baseline. The "
        "handler import includes Powertools, PynamoDB, croniter and the domain library; it "
        "creates no AWS client until first use.",
        "",
        "| function | handler import / (boto3 import + client) |",
        "| --- | ---: |",
    ]
    lines += [f"| {fid} | {ratio:.2f}× |" for fid, _, _, ratio in results["cold"]]
    lines += [
        "",
        "## AWS requests per API operation (the money path)",
        "",
        "Through the real `ApiFunction` handler (Powertools resolver, JWT claims as API "
        "Gateway passes them). A check-in is one `TransactWriteItems` that checks the day's "
        "idempotency marker, moves streak and balance (version-checked) and writes the "
        "entries and sharded counters; the container's account cache saves the read when "
        "it has seen the member (see docs/ledger.md).",
        "",
        "| operation | DynamoDB requests | breakdown |",
        "| --- | ---: | --- |",
    ]
    lines += [f"| {label} | {ddb} | `{detail}` |" for label, ddb, detail in results["api"]]
    lines += [
        "",
        "## Ledger export memory",
        "",
        "Peak memory allocated (tracemalloc) by `export_month` while it streams a month of "
        "entries from the period index (served page by page from memory, so the figure is "
        "the export's own working set, not moto's table) to CSV, hashing as it writes. It "
        "stays flat as entries grow.",
        "",
        "| entries | peak allocated by the export | CSV size |",
        "| ---: | ---: | ---: |",
    ]
    lines += [f"| {n:,} | {peak:.1f} MiB | {size:.1f} MiB |" for n, peak, size in results["export"]]
    days, rate, ticks = results["sim"]
    stock, fast = results["tx"]
    lines += [
        "",
        "## Simulation throughput",
        "",
        f"`autopilot simulate` of the example config (2 communities, 8 jobs), {days} days, "
        f"1,000 members per community: **{rate:.2f} simulated days per second** ({ticks} "
        "dispatcher ticks; every member check-in and redemption is a real `ApiFunction` "
        "invocation on moto, and the nightly reconciliation reads every member).",
        "",
        "## moto transactions in the local runtime",
        "",
        "moto 5.2.5 deep-copies every table a `TransactWriteItems` touches. The local runtime "
        "installs `autopilot_cli.local.fast_transactions`, which snapshots only the touched "
        "items (tested to behave like moto's). With a 5,000-item table, a 2-item transaction "
        f"costs **{stock / fast:.0f}× less** with the fast path "
        f"(ratio of mean times in one run).",
        "",
    ]
    text = "\n".join(lines)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
