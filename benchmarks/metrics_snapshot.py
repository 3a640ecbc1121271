"""Benchmark: AWS requests of a daily metric snapshot at 100 and 10,000 members.

Members check in through the real check-in service on the local stack (each
check-in's transaction also adds its metric counters), for two days; then the
``metrics.daily`` job runs as the dispatcher runs it, once for the first day (the
chain's start) and once for the second, which is measured: requests by operation
(botocore's event hooks, ``autopilot_cli.metering``) and the CPU time of the
snapshot. Figures only, no assertions.

    python benchmarks/metrics_snapshot.py [--sizes 100,10000] [--out docs/benchmarks.md]
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

from autopilot_cli.local.runtime import LocalRuntime  # noqa: E402

SECTION = "Metric snapshots"
DAY = date(2027, 3, 9)
PUBLISHED = datetime(2027, 3, 1, tzinfo=UTC)


def config() -> dict[str, Any]:
    return {
        "version": 1,
        "published_at": "2027-03-01T00:00:00Z",
        "communities": [
            {
                "id": "sunrise",
                "name": "晨读社",
                "timezone": "Asia/Shanghai",
                "locale": "zh-CN",
                "channels": [{"id": "group", "type": "file", "path": "group.jsonl"}],
                "pools": [{"id": "p", "items": [{"id": "a", "text": "a"}]}],
                "jobs": [],
            }
        ],
    }


def run(size: int) -> dict[str, Any]:
    from autopilot.app import App
    from autopilot.aws import client, reset_clients
    from autopilot.settings import Settings

    out_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"metrics-bench-{size}"
    out_dir.mkdir(parents=True, exist_ok=True)
    with LocalRuntime(ROOT / "template.yaml", parameters={"LogLevel": "ERROR"}) as runtime:
        reset_clients()
        clock = ManualClock(PUBLISHED)
        previous = set_clock(clock)
        try:
            env = dict(runtime.function_env("DispatcherFunction"))
            env["AUTOPILOT_OUTPUT_DIR"] = str(out_dir)
            client("s3", "us-east-1").put_object(
                Bucket=env["CONFIG_BUCKET"],
                Key=env.get("CONFIG_KEY", "communities.json"),
                Body=json.dumps(config(), ensure_ascii=False).encode(),
            )
            app = App(Settings.from_env(env), clock=clock)
            community = app.config().communities[0]
            for day in (DAY - timedelta(days=1), DAY):
                start = datetime(day.year, day.month, day.day, 1, 0, tzinfo=UTC)  # 09:00 local
                for i in range(size):
                    at = start + timedelta(milliseconds=i * 3)
                    clock.set(at)
                    app.checkins.check_in(community, f"wx:m{i:06d}", at)
            clock.set(datetime(DAY.year, DAY.month, DAY.day, 20, 0, tzinfo=UTC))
            with contextlib.redirect_stdout(io.StringIO()):  # the EMF lines
                app.metrics.snapshot(community, DAY - timedelta(days=1))
                cpu = time.process_time()
                with metering.RequestCounter() as counter:
                    snapshot, written, _ = app.metrics.snapshot(community, DAY)
                cpu = time.process_time() - cpu
            assert written and snapshot["checkins"]["count"] == size, snapshot["checkins"]
            return {
                "members": size,
                "requests": counter.total,
                "ops": ", ".join(f"{k.split('.', 1)[1]} {v}" for k, v in counter.summary().items()),
                "cpu_ms": cpu * 1000,
                "dau": snapshot["active"]["dau"],
            }
        finally:
            set_clock(previous)


def report(sizes: list[int]) -> str:
    lines = [
        f"## {SECTION}: AWS requests per snapshot",
        "",
        "`python benchmarks/metrics_snapshot.py` (in `make bench`). Members check in through",
        "the real check-in service on the local stack for two days (each check-in's",
        "transaction adds its metric counters); then the daily snapshot of the second day",
        "runs as the `metrics.daily` job runs it (after the first day's, which starts the",
        "chain). Requests are counted with botocore's event hooks.",
        "",
        "| members | AWS requests per snapshot | by operation | CPU ms (snapshot) |",
        "| ---: | ---: | --- | ---: |",
    ]
    for size in sizes:
        r = run(size)
        print(f"metrics snapshot: {r}", file=sys.stderr)
        lines.append(f"| {r['members']:,} | {r['requests']} | {r['ops']} | {r['cpu_ms']:.0f} |")
    lines += [
        "",
        "The same requests at every size: the previous day's snapshot (GetItem), the",
        "counters of the day and the 29 days before over 8 shards (240 keys, three",
        "BatchGetItem), the day's post log (Query), the reminder counters (BatchGetItem,",
        "when the community has reminder jobs), a GetItem per lottery that closed that",
        "day, and the PutItem of the snapshot. Counting distinct active members needs no",
        "read per member: check-ins are counted by the gap since the member's previous",
        "one (docs/metrics.md).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,10000")
    parser.add_argument("--out", help="rewrite this script's section of this Markdown file")
    args = parser.parse_args(argv)
    text = report([int(s) for s in args.sizes.split(",") if s])
    print(text)
    if args.out:
        from docsections import replace_section

        replace_section(Path(args.out), SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
