"""`autopilot simulate`: the whole system on a fast, deterministic clock.

The simulation builds the template's resources on moto, publishes the config the
way `autopilot config push` does, then jumps the clock from one due time to the
next, delivering an EventBridge Scheduler event to the real dispatcher handler at
each (with a few seconds of seeded delivery delay, as in AWS). Optional outages
stop the ticks for a while to show the misfire policies at work. Everything the
functions wrote is then read back from the tables into ``summary.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from autopilot.clock import ManualClock, set_clock
from autopilot.config.model import Config
from autopilot.scheduler.rules import next_due
from autopilot.timeutil import iso_utc, parse_iso, zone

from autopilot_cli.configfile import published_document, validate_file
from autopilot_cli.local.runtime import LocalRuntime, scheduled_event

DISPATCHER = "DispatcherFunction"
# EventBridge Scheduler delivers a minute's tick a few seconds after the minute.
MAX_DELIVERY_DELAY_S = 20


@dataclass(frozen=True)
class Outage:
    """A window in which no tick reaches the dispatcher."""

    start: datetime
    end: datetime

    @classmethod
    def parse(cls, text: str) -> Outage:
        """Parse ``2027-03-10T06:00Z/4h`` (start/duration)."""
        from autopilot.timeutil import parse_duration

        try:
            start_text, duration = text.split("/", 1)
            start = parse_iso(start_text)
            return cls(start, start + parse_duration(duration))
        except ValueError as exc:
            raise ValueError(
                f"invalid outage {text!r}: expected START/DURATION such as "
                f"2027-03-10T06:00Z/4h ({exc})"
            ) from exc


@dataclass
class SimulationResult:
    """What a simulation produced (also written to ``summary.json``)."""

    summary: dict[str, Any]
    ticks: int
    out_dir: Path
    extra: dict[str, Any] = field(default_factory=dict)


def _next_tick(config: Config, after: datetime) -> datetime | None:
    """The earliest due time of any job after ``after``."""
    candidates = []
    for community in config.communities:
        tz = zone(community.timezone)
        for job in community.jobs:
            if job.enabled:
                occ = next_due(community.id, job, tz, community.quiet_hours, after)
                if occ is not None:
                    candidates.append(occ.due_utc)
    return min(candidates) if candidates else None


def run_simulation(
    config_path: str,
    *,
    start: datetime,
    days: int,
    members: int,
    seed: int,
    out_dir: str,
    outages: list[Outage] | None = None,
    template_path: str = "template.yaml",
    log: TextIO | None = None,
    log_level: str = "INFO",
) -> SimulationResult:
    """Run the system for ``days`` simulated days from ``start``; write ``out_dir``."""
    report = validate_file(config_path)
    if not report.ok:
        raise SystemExit("\n".join(str(f) for f in report.errors))
    config = report.config
    assert config is not None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("summary.json", "console.log"):
        (out / stale).unlink(missing_ok=True)
    for stale in out.rglob("*.jsonl"):
        stale.unlink()
    rng = random.Random(seed)
    end = start + timedelta(days=days)
    outages = outages or []
    clock = ManualClock(start)
    previous_clock = set_clock(clock)
    os.environ["AUTOPILOT_OUTPUT_DIR"] = str(out.resolve())
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    ticks = 0
    console_log = open(out / "console.log", "w", encoding="utf-8")  # noqa: SIM115
    try:
        with LocalRuntime(template_path, parameters={"LogLevel": log_level}) as runtime:
            bucket = runtime.physical_id("ConfigBucket")
            from autopilot.aws import client

            client("s3", runtime.region).put_object(
                Bucket=bucket,
                Key=runtime.function_env(DISPATCHER).get("CONFIG_KEY", "communities.json"),
                Body=published_document(report.loaded, published_at=start),
                ContentType="application/json",
            )
            now = start
            while True:
                due = _next_tick(config, now)
                if due is None or due > end:
                    break
                tick_at = due + timedelta(seconds=rng.randint(0, MAX_DELIVERY_DELAY_S))
                if any(o.start <= tick_at < o.end for o in outages):
                    # The dispatcher is down: the next tick arrives when the outage ends.
                    outage_end = max(o.end for o in outages if o.start <= tick_at < o.end)
                    tick_at = outage_end.replace(second=0, microsecond=0) + timedelta(minutes=1)
                    tick_at += timedelta(seconds=rng.randint(0, MAX_DELIVERY_DELAY_S))
                    if tick_at > end:
                        break
                clock.set(tick_at)
                with contextlib.redirect_stdout(console_log):
                    runtime.invoke(DISPATCHER, scheduled_event(tick_at))
                ticks += 1
                now = tick_at
            summary = collect_summary(
                runtime, config, start=start, end=end, members=members, seed=seed, ticks=ticks
            )
    finally:
        console_log.close()
        set_clock(previous_clock)
    (out / "summary.json").write_text(
        json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    if log is not None:
        print_day_by_day(summary, config, log)
    return SimulationResult(summary=summary, ticks=ticks, out_dir=out)


def collect_summary(
    runtime: LocalRuntime,
    config: Config,
    *,
    start: datetime,
    end: datetime,
    members: int,
    seed: int,
    ticks: int,
) -> dict[str, Any]:
    """Read back occurrences and posts from the tables into the summary document."""
    from autopilot.posts.store import PostStore
    from autopilot.scheduler.store import SchedulerStore

    env = runtime.function_env(DISPATCHER)
    scheduler = SchedulerStore(env["SCHEDULER_TABLE"])
    posts_store = PostStore(env["POSTS_TABLE"], runtime.region)
    occurrences: list[dict[str, Any]] = []
    posts: list[dict[str, Any]] = []
    for community in config.communities:
        tz = zone(community.timezone)
        for job in community.jobs:
            for item in scheduler.history(community.id, job.id):
                scheduled = parse_iso(item.scheduled_utc)
                occurrences.append(
                    {
                        "community": community.id,
                        "job": job.id,
                        "key": item.occurrence_key,
                        "scheduled_utc": item.scheduled_utc,
                        "scheduled_local": scheduled.astimezone(tz).isoformat(timespec="minutes"),
                        "due_utc": item.due_utc,
                        "status": item.status,
                        "ran_at_utc": item.ran_at_utc,
                        "reason": item.reason,
                        "dst": item.dst,
                        "quiet": item.quiet,
                    }
                )
        for post in posts_store.posts(community.id):
            for channel_id, delivery in sorted(post.deliveries.items()):
                posts.append(
                    {
                        "community": community.id,
                        "job": post.job_id,
                        "key": post.occurrence_key,
                        "channel": channel_id,
                        "at_utc": delivery.get("at_utc"),
                        "content_id": post.content_id,
                        "text": post.text,
                        "status": delivery.get("status"),
                        "message_id": delivery.get("message_id"),
                    }
                )
    occurrences.sort(key=lambda o: (o["scheduled_utc"], o["community"], o["job"]))
    posts.sort(key=lambda p: (p["at_utc"] or "", p["community"], p["job"], p["channel"]))
    return {
        "start_utc": iso_utc(start),
        "end_utc": iso_utc(end),
        "seed": seed,
        "members": members,
        "ticks": ticks,
        "counts": dict(Counter(o["status"] for o in occurrences)),
        "occurrences": occurrences,
        "posts": posts,
    }


def print_day_by_day(summary: dict[str, Any], config: Config, out: TextIO = sys.stdout) -> None:
    """A readable account of the simulated days, per community in its local time."""
    texts = {(p["community"], p["job"], p["key"]): p["text"] for p in summary["posts"]}
    by_day: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for occ in summary["occurrences"]:
        by_day[(occ["community"], occ["scheduled_local"][:10])].append(occ)
    out.write(
        f"Simulated {summary['start_utc']} → {summary['end_utc']} "
        f"({summary['ticks']} dispatcher ticks)\n"
    )
    for community in config.communities:
        out.write(f"\n═══ {community.name} ({community.id}, {community.timezone})\n")
        for (cid, day), occs in sorted(by_day.items()):
            if cid != community.id:
                continue
            out.write(f"  {day}\n")
            for occ in occs:
                line = f"    {occ['scheduled_local'][11:16]}  {occ['job']:<18} {occ['status']:<8}"
                if occ["quiet"] == "deferred" and occ["status"] != "missed":
                    due_local = parse_iso(occ["due_utc"]).astimezone(zone(community.timezone))
                    line += f" → sent {due_local:%H:%M} (after quiet hours)"
                if occ["dst"] == "gap":
                    line += f" [DST: {occ['key'][11:]} does not exist that day]"
                elif occ["dst"] == "overlap":
                    line += f" [DST: {occ['key'][11:]} happens twice; ran once]"
                text = texts.get((cid, occ["job"], occ["key"]))
                if text:
                    line += f" “{text.splitlines()[0][:60]}”"
                if occ["reason"]:
                    line += f" ({occ['reason']})"
                out.write(line + "\n")
    counts = ", ".join(f"{k} {v}" for k, v in sorted(summary["counts"].items()))
    delivered = sum(1 for p in summary["posts"] if p["status"] == "published")
    out.write(f"\nOccurrences: {counts}; deliveries: {delivered}\n")


def default_start() -> datetime:
    """Midnight UTC of the next Monday: a readable default week."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today + timedelta(days=(7 - today.weekday()) % 7 or 7)
