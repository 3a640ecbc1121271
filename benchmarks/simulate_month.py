"""Benchmark: `autopilot simulate` of the example config over a month.

Prints days per second, milliseconds per simulated check-in, the cost of each
simulated day (first vs last: a day must cost the same on day 30 as on day 1),
resident memory per day and its peak, AWS requests per day, and with
``--profile`` where the time goes: self time (cProfile ``tottime``) grouped by
module prefix into moto, botocore/boto3, PynamoDB, Powertools, the project's
own code (layer, functions, CLI) and the rest (stdlib...).

    python benchmarks/simulate_month.py --days 30 --members 1000
    python benchmarks/simulate_month.py --days 2 --members 1000 --profile

``--tracemalloc`` also reports Python heap peaks (slows the run about 2x).
Profiling slows the run too: measure speed without it, the split with it.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import resource
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "layers" / "autopilot")]

from autopilot_cli import metering  # noqa: E402  (before any botocore session exists)
from autopilot_cli.simulate import DayMark, run_simulation  # noqa: E402

START = datetime(2027, 3, 8, tzinfo=UTC)

# Module path fragments, first match wins (self time is attributed once).
GROUPS = (
    ("moto", ("/site-packages/moto/", "/site-packages/responses/")),
    (
        "botocore/boto3",
        ("/site-packages/botocore/", "/site-packages/boto3/", "/site-packages/s3transfer/"),
    ),
    ("pynamodb", ("/site-packages/pynamodb/",)),
    ("powertools", ("/site-packages/aws_lambda_powertools/",)),
    (
        "project",
        (
            str(ROOT / "layers") + "/",
            str(ROOT / "functions") + "/",
            str(ROOT / "src") + "/",
        ),
    ),
    ("other libraries", ("/site-packages/",)),
)


def _rss_mib() -> float:
    """Current resident set size (Linux /proc; 0 elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _group(filename: str) -> str:
    for name, fragments in GROUPS:
        if any(fragment in filename for fragment in fragments):
            return name
    return "stdlib/builtins"


def profile_split(profile: cProfile.Profile) -> dict[str, float]:
    """Self time in seconds per module group (sums to the profiled total)."""
    stats: Any = pstats.Stats(profile)
    split: dict[str, float] = {}
    for (filename, _line, _name), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():
        group = _group(filename)
        split[group] = split.get(group, 0.0) + tottime
    return split


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--config", default=str(ROOT / "config" / "communities.yaml"))
    parser.add_argument("--profile", action="store_true", help="cProfile split by module")
    parser.add_argument("--tracemalloc", action="store_true", help="Python heap peak per day")
    args = parser.parse_args(argv)

    os.chdir(ROOT)
    days: list[dict[str, Any]] = []
    requests = metering.RequestCounter()
    last = {"t": 0.0, "checkins": 0, "requests": 0}

    def on_day(mark: DayMark) -> None:
        now = time.perf_counter()
        total = requests.total
        row = {
            "day": mark.day,
            "seconds": now - last["t"],
            "checkins": mark.checkins - last["checkins"],
            "invocations": mark.invocations,
            "requests": total - last["requests"],
            "rss_mib": _rss_mib(),
        }
        if args.tracemalloc:
            row["heap_peak_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.reset_peak()
        days.append(row)
        last.update(t=now, checkins=mark.checkins, requests=total)
        print(
            f"day {row['day']:>2}: {row['seconds']:6.2f} s, {row['checkins']:>5} check-ins, "
            f"{row['invocations']:>5} invocations, {row['requests']:>6} AWS requests, "
            f"RSS {row['rss_mib']:7.1f} MiB"
            + (f", heap peak {row['heap_peak_mib']:.1f} MiB" if args.tracemalloc else ""),
            file=sys.stderr,
            flush=True,
        )

    profiler = cProfile.Profile() if args.profile else None
    if args.tracemalloc:
        tracemalloc.start()
    with tempfile.TemporaryDirectory() as out_dir:
        requests.start()
        started = last["t"] = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        result = run_simulation(
            args.config,
            start=START,
            days=args.days,
            members=args.members,
            seed=args.seed,
            out_dir=out_dir,
            template_path=str(ROOT / "template.yaml"),
            on_day=on_day,
        )
        if profiler is not None:
            profiler.disable()
        elapsed = time.perf_counter() - started
        requests.stop()

    in_days = sum(d["seconds"] for d in days)
    checkins = result.summary["member_activity"]["checkins"]
    print(f"\nSimulated {args.days} days x {args.members} members per community")
    print(f"wall time            {elapsed:8.1f} s  (days {in_days:.1f} s; rest: setup, summary)")
    print(f"days per second      {args.days / elapsed:8.3f}")
    print(f"check-ins            {checkins:8d}  ({result.ticks} dispatcher ticks)")
    print(f"ms per check-in      {1000 * in_days / max(1, checkins):8.2f}  (whole day / check-ins)")
    if len(days) >= 2:
        first, final = days[0], days[-1]
        for label, row in (("first day", first), ("last day", final)):
            per = 1000 * row["seconds"] / max(1, row["checkins"])
            print(
                f"{label:<20} {row['seconds']:8.2f} s, {row['checkins']} check-ins "
                f"({per:.2f} ms each), {row['requests']} AWS requests"
            )
    rss = [d["rss_mib"] for d in days]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if rss:
        print(f"RSS day 1 / last     {rss[0]:8.1f} / {rss[-1]:.1f} MiB; peak {peak:.1f} MiB")
    if args.tracemalloc:
        heap = max(d["heap_peak_mib"] for d in days) if days else 0.0
        print(f"Python heap peak     {heap:8.1f} MiB")
        tracemalloc.stop()
    if profiler is not None:
        split = profile_split(profiler)
        total = sum(split.values()) or 1.0
        print("\nprofile (self time by module group):")
        for name, seconds in sorted(split.items(), key=lambda kv: -kv[1]):
            share = 100 * seconds / total
            per = 1000 * seconds / max(1, checkins)
            print(f"  {name:<18} {seconds:8.1f} s  {share:5.1f} %  {per:6.2f} ms per check-in")
    return 0


if __name__ == "__main__":
    sys.exit(main())
