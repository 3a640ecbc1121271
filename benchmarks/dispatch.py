"""Benchmark: the dispatcher at 10, 1,000 and 10,000 communities of 5 jobs each.

For each size, on moto (in-process, so CPU times include moto's own work for the
requests made), one warm container's:

* **cold tick** — the first tick of a container: reads every job state
  (BatchGetItem, 100 keys each) and computes every job's wake;
* **idle tick** — a warm tick with nothing due (indexed dispatcher), and the same
  with ``index=False`` (every cron evaluated every tick: the behaviour before);
* **busy tick** — a warm tick with 1% of the jobs due (a no-op action: what is
  measured is the dispatcher, not the posts).

Prints CPU time (``time.process_time``) and AWS requests (botocore ``before-send``
hooks, ``autopilot_cli.metering.RequestCounter``) per tick, as a Markdown table.
Figures, not assertions: the tests count cron evaluations instead.

    python benchmarks/dispatch.py [--sizes 10,1000,10000]
"""

from __future__ import annotations

import argparse
import os
import sys
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
    }
)

JOBS_PER_COMMUNITY = 5
TABLE = "SchedulerTable"
START = datetime(2026, 11, 2, 8, 59, 30, tzinfo=UTC)


def build_config(communities: int) -> Any:
    """``communities`` communities of 5 post jobs; every 100th community's jobs run at
    09:05 UTC (1% of the jobs), the others at 03:00."""
    from autopilot.config.model import Config, parse_config

    docs = []
    for i in range(communities):
        minute, hour = (5, 9) if i % 100 == 0 else (0, 3)
        docs.append(
            {
                "id": f"c{i:05d}",
                "name": f"Community {i}",
                "timezone": "UTC",
                "locale": "en",
                "channels": [{"id": "group", "type": "file", "path": "group.jsonl"}],
                "pools": [{"id": "p", "items": [{"id": "a", "text": "hi"}]}],
                "jobs": [
                    {
                        "id": f"j{j}",
                        "cron": f"{minute} {hour} * * *",
                        "action": "post",
                        "params": {"pool": "p", "channels": ["group"], "template": "{content}"},
                    }
                    for j in range(JOBS_PER_COMMUNITY)
                ],
            }
        )
    # Published a minute before the first tick: the cold tick has nothing to catch up.
    doc = {"version": 1, "published_at": "2026-11-02T08:58:30Z", "communities": docs}
    parsed = parse_config(doc)
    return Config(
        communities=parsed.communities, published_at=parsed.published_at, version_tag="v1"
    )


_in_aws = [0.0]


def _timed_api_calls() -> None:
    """Accumulate the CPU time spent inside AWS calls (botocore and, here, moto)."""
    from botocore.client import BaseClient

    real = BaseClient._make_api_call

    def timed(self: Any, operation_name: str, api_params: Any) -> Any:
        started = time.process_time()
        try:
            return real(self, operation_name, api_params)
        finally:
            _in_aws[0] += time.process_time() - started

    BaseClient._make_api_call = timed  # type: ignore[method-assign]


def measure(fn: Callable[[], Any]) -> tuple[float, float, dict[str, int], Any]:
    """CPU ms of ``fn()``, CPU ms outside AWS calls (the project's own code), and
    AWS requests by operation."""
    with metering.RequestCounter() as requests:
        in_aws = _in_aws[0]
        started = time.process_time()
        result = fn()
        cpu_ms = (time.process_time() - started) * 1000
        own_ms = cpu_ms - (_in_aws[0] - in_aws) * 1000
    ops: dict[str, int] = {}
    for (service, op), n in requests.by_operation().items():
        ops[f"{service}.{op}"] = n
    return cpu_ms, own_ms, ops, result


def fmt_requests(ops: dict[str, int]) -> str:
    if not ops:
        return "0"
    total = sum(ops.values())
    parts = ", ".join(f"{n} {op.split('.', 1)[1]}" for op, n in sorted(ops.items()))
    return f"{total} ({parts})"


def run_size(communities: int) -> list[tuple[str, float, float, str, str]]:
    import boto3
    from autopilot.clock import ManualClock
    from autopilot.scheduler.service import ActionResult, Dispatcher
    from autopilot.scheduler.store import SchedulerStore
    from moto import mock_aws

    rows: list[tuple[str, float, float, str, str]] = []
    with mock_aws():
        boto3.client("dynamodb", region_name="us-east-1").create_table(
            TableName=TABLE,
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        config = build_config(communities)
        clock = ManualClock(START)
        store = SchedulerStore(TABLE)
        actions = {"post": lambda ctx: ActionResult(ok=True)}
        indexed = Dispatcher(store, actions, clock=clock)
        scan = Dispatcher(store, actions, clock=clock, index=False)

        cpu, own, ops, _ = measure(lambda: indexed.tick(config))
        rows.append(
            ("cold tick (reads every state, computes every wake)", cpu, own, fmt_requests(ops), "")
        )
        scan.tick(config)  # warm the full-scan container too
        clock.set(START + timedelta(minutes=1))
        cpu, own, ops, report = measure(lambda: indexed.tick(config))
        assert report.idle
        rows.append(("idle tick", cpu, own, fmt_requests(ops), ""))
        cpu, own, ops, report = measure(lambda: scan.tick(config))
        assert report.idle
        rows.append(
            ("idle tick, full scan (`index=False`, as before)", cpu, own, fmt_requests(ops), "")
        )
        clock.set(START + timedelta(minutes=5, seconds=35))  # 09:05:05
        cpu, own, ops, report = measure(lambda: indexed.tick(config))
        due = len(report.occurrences)
        assert due == JOBS_PER_COMMUNITY * len(range(0, communities, 100)), due
        rows.append(
            (f"busy tick, 1% due ({due} jobs)", cpu, own, fmt_requests(ops), f"{own / due:.2f}")
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,1000,10000")
    args = parser.parse_args(argv)
    import logging

    logging.disable(logging.WARNING)
    _timed_api_calls()
    print(
        "| communities (jobs) | tick | CPU ms (all, incl. moto) | CPU ms (own code) "
        "| AWS requests | own CPU ms per due job |"
    )
    print("| --- | --- | ---: | ---: | --- | ---: |")
    for size in (int(s) for s in args.sizes.split(",")):
        for name, cpu, own, requests, per in run_size(size):
            label = f"{size:,} ({size * JOBS_PER_COMMUNITY:,})"
            print(f"| {label} | {name} | {cpu:.3f} | {own:.3f} | {requests} | {per} |")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
