"""`autopilot simulate`: the whole system on a fast, deterministic clock.

The simulation builds the template's resources on moto, publishes the config the
way `autopilot config push` does, then jumps the clock from one due time to the
next, delivering an EventBridge Scheduler event to the real dispatcher handler at
each (with a few seconds of seeded delivery delay, as in AWS). Optional outages
stop the ticks for a while to show the misfire policies at work. After each tick
the messages the functions left on the template's SQS queues are delivered to the
functions with an SQS event on them (the worker's exports and reconciliations),
as Lambda's pollers would. Everything the functions wrote is then read back from
the tables into ``summary.json`` (``worker``: batches delivered, errors).

Memory stays flat over long runs: the runtime keeps only its latest invocation
records, function output streams to ``console.log``, and per-day figures are
read back from the tables at the end, not accumulated while running.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import io
import json
import os
import random
import sys
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from autopilot.clock import ManualClock, set_clock
from autopilot.config.model import Community, Config
from autopilot.lottery.schedule import Cycle, cycle_opened_at, next_firing
from autopilot.lottery.service import SeedSource, set_seed_source
from autopilot.scheduler.rules import next_due
from autopilot.timeutil import iso_utc, parse_iso, zone

from autopilot_cli.configfile import published_document, validate_file
from autopilot_cli.local.faults import FaultInjector, FaultSpec
from autopilot_cli.local.runtime import LocalRuntime
from autopilot_cli.population import (
    SimMember,
    checkin_time,
    population,
    reminder_preferences,
    reminder_response,
    wants_to_enter_lottery,
    wants_to_redeem,
)
from autopilot_cli.triggers import Triggers

DISPATCHER = "DispatcherFunction"
API_FUNCTION = "ApiFunction"
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
    secrets: dict[str, dict[str, str]] | None = None,
    progress: TextIO | None = None,
    on_day: Callable[[DayMark], None] | None = None,
    faults: FaultSpec | None = None,
) -> SimulationResult:
    """Run the system for ``days`` simulated days from ``start``; write ``out_dir``.

    ``secrets`` seeds chat channels' SSM parameters in the simulated account:
    ``{"<community>/<channel>": {"webhook_url": …}}`` (under the template's
    ``ChannelSecretsPrefix``), or full parameter names starting with ``/``.

    After every dispatcher tick, messages waiting in the template's SQS queues
    are delivered to the functions with an SQS event on them (the worker),
    as Lambda's pollers would. ``progress`` receives the progress display
    (a bar on a terminal, a line per simulated day otherwise);
    ``on_day`` is called as each simulated UTC day completes (benchmarks).

    ``faults``: inject them (:mod:`autopilot_cli.local.faults`), deterministically
    from ``seed``; the run is then compared with a fault-free run of the same seed
    (written to ``out_dir/baseline``) and ``summary.json`` gets ``faults`` and
    ``invariants`` (:mod:`autopilot_cli.invariants`).
    """
    common: dict[str, Any] = {
        "start": start,
        "days": days,
        "members": members,
        "seed": seed,
        "out_dir": out_dir,
        "outages": outages,
        "template_path": template_path,
        "log": log,
        "log_level": log_level,
        "secrets": secrets,
        "progress": progress,
        "on_day": on_day,
    }
    if faults:
        from autopilot_cli.invariants import run_with_faults

        return run_with_faults(config_path, faults=faults, **common)
    return _run(config_path, injector_spec=None, **common)


def _run(
    config_path: str,
    *,
    start: datetime,
    days: int,
    members: int,
    seed: int,
    out_dir: str,
    outages: list[Outage] | None,
    template_path: str,
    log: TextIO | None,
    log_level: str,
    secrets: dict[str, dict[str, str]] | None,
    progress: TextIO | None,
    on_day: Callable[[DayMark], None] | None,
    injector_spec: FaultSpec | None,
) -> SimulationResult:
    """One run (with faults when ``injector_spec``); see :func:`run_simulation`."""
    report = validate_file(config_path, now=start)  # warnings look ahead from the simulated start
    if not report.ok:
        raise SystemExit("\n".join(str(f) for f in report.errors))
    config = report.config
    assert config is not None and report.loaded is not None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("summary.json", "console.log", "ledger.csv", "facts.json", "faults.jsonl"):
        (out / stale).unlink(missing_ok=True)
    for stale_log in out.rglob("*.jsonl"):
        if (out / "baseline") not in stale_log.parents:  # a faulted run's reference run
            stale_log.unlink()
    rng = random.Random(seed)
    end = start + timedelta(days=days)
    outages = outages or []
    clock = ManualClock(start)
    previous_clock = set_clock(clock)
    # Draw seeds from the simulation's seed: the same --seed gives the same week,
    # commitments included (production always uses fresh secrets bytes).
    previous_seeds = set_seed_source(_simulated_seeds(seed))
    os.environ["AUTOPILOT_OUTPUT_DIR"] = str(out.resolve())
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    ticks = 0
    stats: dict[str, int] = {
        "checkins": 0,
        "repeats": 0,
        "redemptions": 0,
        "refused": 0,
        "lottery_entries": 0,
        "lottery_refused": 0,
        "reminder_responses": 0,
        "reminder_opt_outs": 0,
    }
    injector = FaultInjector(injector_spec, seed, clock) if injector_spec else None
    acknowledged: list[dict[str, str]] = []
    meter = Progress(progress, start, days) if progress is not None else None
    day_started, day_index = 0, 0
    console_log = open(out / "console.log", "w", encoding="utf-8")  # noqa: SIM115
    _CONSOLE.target = console_log
    faults_active = injector if injector is not None else contextlib.nullcontext()
    try:
        # Keep only the latest invocation records: memory stays flat over a month.
        with (
            LocalRuntime(
                template_path, parameters={"LogLevel": log_level}, keep_invocations=64
            ) as runtime,
            faults_active,
        ):
            triggers = Triggers(runtime, clock, injector=injector, log=console_log)
            if injector is not None:
                injector.enabled = False  # setting up the account is not under test
            bucket = runtime.physical_id("ConfigBucket")
            from autopilot.aws import client

            prefix = runtime.function_env(DISPATCHER).get("CHANNEL_SECRETS_PREFIX", "")
            for name, value in (secrets or {}).items():
                client("ssm", runtime.region).put_parameter(
                    Name=name if name.startswith("/") else f"{prefix}/{name}",
                    Value=json.dumps(value),
                    Type="SecureString",
                    Overwrite=True,
                )

            client("s3", runtime.region).put_object(
                Bucket=bucket,
                Key=runtime.function_env(DISPATCHER).get("CONFIG_KEY", "communities.json"),
                Body=published_document(report.loaded, published_at=start),
                ContentType="application/json",
            )
            planned = _plan_checkins(config, members, seed, start, end)
            api = API_FUNCTION if API_FUNCTION in runtime.function_ids() else None
            if planned and api is None:
                raise SystemExit(f"template.yaml has no {API_FUNCTION}: members cannot check in")
            member_rng = random.Random(f"{seed}/actions")
            balances: dict[tuple[str, str], int] = {}
            cycles = _lottery_cycles(config, start, end)
            entered: set[tuple[str, str, str]] = set()
            # Its own stream, so lottery choices never shift the members' other choices.
            lottery_rng = random.Random(f"{seed}/lottery")

            def plan_answers() -> None:
                # Reminded members answer: check-ins later this evening.
                for at, community, member in answers.poll(clock.now()):
                    bisect.insort(
                        planned,
                        (at, community, member),
                        lo=index,
                        key=lambda p: (p[0], p[1].id, p[2].id),
                    )
                    stats["reminder_responses"] += 1

            preferences_rng = random.Random(f"{seed}/preferences")
            visited: set[tuple[str, str]] = set()
            people = {
                c.id: population(members, seed, c.id, max(1, (end - start).days))
                for c in config.communities
            }
            answers = _ReminderAnswers(runtime, config, seed, start, end, people)
            now = start
            pending_tick: datetime | None = None
            index = 0
            if injector is not None:
                injector.enabled = True
            while True:
                if pending_tick is None:
                    pending_tick = _tick_after(config, now, end, outages, rng)
                next_checkin = planned[index][0] if index < len(planned) else None
                deferred = triggers.next_deferred()
                if deferred is not None and deferred >= end:
                    deferred = None  # recovery past the end: see Triggers.settle
                upcoming = min(
                    t for t in (pending_tick, next_checkin, deferred, end) if t is not None
                )
                while upcoming >= start + timedelta(days=day_index + 1):
                    # A simulated UTC day is over: report it, then start the next.
                    day_index += 1
                    mark = DayMark(
                        day_index,
                        start + timedelta(days=day_index),
                        stats["checkins"],
                        runtime.invocation_count - day_started,
                    )
                    day_started = runtime.invocation_count
                    if meter is not None:
                        meter.update(mark)
                    if on_day is not None:
                        on_day(mark)
                    if day_index >= days:
                        break
                if pending_tick is None and next_checkin is None and deferred is None:
                    break
                if deferred is not None and deferred == upcoming:
                    # A retry the triggers scheduled (redelivery, the next minute's tick).
                    with contextlib.redirect_stdout(_CONSOLE):
                        triggers.run_deferred()
                    plan_answers()
                    continue
                if next_checkin is not None and (
                    pending_tick is None or next_checkin < pending_tick
                ):
                    at, community, member = planned[index]
                    index += 1
                    # A member's retries (faults) may have moved the clock past ``at``.
                    clock.set(max(at, clock.now()))
                    with contextlib.redirect_stdout(_CONSOLE):
                        _member_visit(
                            triggers,
                            community,
                            member,
                            at,
                            balances,
                            member_rng,
                            stats,
                            acknowledged,
                        )
                        if (community.id, member.id) not in visited:
                            visited.add((community.id, member.id))
                            _set_preferences(
                                triggers, community, member, at, preferences_rng, stats
                            )
                        _enter_lotteries(
                            triggers, community, member, at, cycles, entered, lottery_rng, stats
                        )
                    continue
                assert pending_tick is not None
                clock.set(max(pending_tick, clock.now()))
                with contextlib.redirect_stdout(_CONSOLE):
                    triggers.tick(pending_tick)
                    triggers.deliver_work()
                plan_answers()
                ticks += 1
                now, pending_tick = pending_tick, None
            with contextlib.redirect_stdout(_CONSOLE):
                triggers.settle(end)
            if injector is not None:
                injector.enabled = False  # reading the results back is not under test
            summary = collect_summary(
                runtime, config, start=start, end=end, members=members, seed=seed, ticks=ticks
            )
            summary["member_activity"] = stats
            summary["worker"] = triggers.work
            summary.update(collect_ledger(runtime, config, start, end, out / "ledger.csv"))
            summary["lotteries"] = collect_lotteries(runtime, config, cycles)
            summary["reminders"] = collect_reminders(runtime, config, start, end)
            summary["snapshots"] = collect_snapshots(runtime, config, start, end)
            from autopilot_cli.invariants import collect_facts

            facts = collect_facts(runtime, config, summary, out, acknowledged)
            (out / "facts.json").write_text(
                json.dumps(facts, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
            )
            if injector is not None:
                summary["faults"] = {
                    "spec": injector.spec.text(),
                    "injected": dict(sorted(injector.counts.items())),
                    "absorbed_by_sdk_retries": dict(sorted(injector.absorbed.items())),
                    "recovery": dict(sorted(triggers.recovery.items())),
                }
                with open(out / "faults.jsonl", "w", encoding="utf-8") as handle:
                    for entry in injector.log:
                        handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
    finally:
        if meter is not None:
            meter.close()
        _CONSOLE.target = None
        console_log.close()
        set_clock(previous_clock)
        set_seed_source(previous_seeds)
    summary["reports"] = write_reports(summary, config, out)
    (out / "summary.json").write_text(
        json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    if log is not None:
        print_day_by_day(summary, config, log)
        for name in summary["reports"]:
            log.write(f"HTML report: {(out / name).resolve()}\n")
    return SimulationResult(summary=summary, ticks=ticks, out_dir=out)


class _ConsoleStream(io.TextIOBase):
    """What the functions print (``console.log``): a stream whose file changes per run.

    Loggers created while a run printed here keep this object, not the run's file,
    so a later run in the same process (a faulted run after its fault-free
    reference) never writes to a closed file; between runs output is dropped.
    """

    def __init__(self) -> None:
        super().__init__()
        self.target: TextIO | None = None

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self.target is not None:
            self.target.write(text)
        return len(text)

    def flush(self) -> None:
        if self.target is not None:
            self.target.flush()


_CONSOLE = _ConsoleStream()


@dataclass(frozen=True)
class DayMark:
    """The end of simulated day ``day`` (1-based), reached at ``at``."""

    day: int
    at: datetime
    checkins: int  # check-ins so far
    invocations: int  # function invocations during that day


class Progress:
    """Progress of a long simulation on ``stream``.

    On a terminal (``stream.isatty()``): one bar redrawn in place with the
    simulated date and the check-ins so far. Otherwise (CI, a pipe, a file):
    a plain line per simulated day, nothing redrawn.
    """

    WIDTH = 30

    def __init__(self, stream: TextIO, start: datetime, days: int) -> None:
        self.stream = stream
        self.start = start
        self.days = days
        isatty = getattr(stream, "isatty", None)
        self.tty = bool(isatty and isatty())
        self._drawn = False

    def update(self, mark: DayMark) -> None:
        """Show that day ``mark.day`` of ``days`` is done."""
        date_text = f"{mark.at - timedelta(seconds=1):%Y-%m-%d}"
        if self.tty:
            filled = self.WIDTH * min(mark.day, self.days) // max(1, self.days)
            bar = "█" * filled + "░" * (self.WIDTH - filled)
            self.stream.write(
                f"\r{bar} day {mark.day}/{self.days} {date_text}  {mark.checkins:,} check-ins"
            )
            self._drawn = True
        else:
            self.stream.write(
                f"simulate: day {mark.day}/{self.days} ({date_text}) done, "
                f"{mark.checkins} check-ins so far\n"
            )
        self.stream.flush()

    def close(self) -> None:
        """End the bar's line (terminal only)."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


def _tick_after(
    config: Config, now: datetime, end: datetime, outages: list[Outage], rng: random.Random
) -> datetime | None:
    """When the next dispatcher tick with work arrives (None past ``end``)."""
    due = _next_tick(config, now)
    if due is None or due > end:
        return None
    tick_at = due + timedelta(seconds=rng.randint(0, MAX_DELIVERY_DELAY_S))
    if any(o.start <= tick_at < o.end for o in outages):
        # The dispatcher is down: the next tick arrives when the outage ends.
        outage_end = max(o.end for o in outages if o.start <= tick_at < o.end)
        tick_at = outage_end.replace(second=0, microsecond=0) + timedelta(minutes=1)
        tick_at += timedelta(seconds=rng.randint(0, MAX_DELIVERY_DELAY_S))
        if tick_at > end:
            return None
    return tick_at


def _plan_checkins(
    config: Config, members: int, seed: int, start: datetime, end: datetime
) -> list[tuple[datetime, Community, SimMember]]:
    """Every member check-in of the period, in time order (deterministic for the seed)."""
    planned = []
    for community in config.communities:
        tz = zone(community.timezone)
        people = population(members, seed, community.id, max(1, (end - start).days))
        rng = random.Random(f"{seed}/{community.id}/days")
        first_day = start.astimezone(tz).date()
        for day_index in range((end - start).days + 2):
            local_date = first_day + timedelta(days=day_index)
            for member in people:
                when = checkin_time(member, day_index, local_date, tz, rng)
                if when is not None and start <= when.astimezone(UTC) < end:
                    planned.append((when.astimezone(UTC), community, member))
    planned.sort(key=lambda p: (p[0], p[1].id, p[2].id))
    return planned


def _member_visit(
    triggers: Triggers,
    community: Community,
    member: SimMember,
    at: datetime,
    balances: dict[tuple[str, str], int],
    rng: random.Random,
    stats: dict[str, int],
    acknowledged: list[dict[str, str]],
) -> None:
    """A member opens the app: checks in, and sometimes redeems a reward."""
    claims = {
        "sub": member.id,
        "roles": "member",
        "name": member.display_name,
        "scope": "autopilot/member",
    }
    answer = _call(triggers, "POST", "/checkins", {"community": community.id}, claims, at)
    if answer is None:
        stats["refused"] += 1
        return
    # The member was told this check-in succeeded: it must be in the ledger, once.
    acknowledged.append(
        {"community": community.id, "member": member.id, "day": str(answer.get("day", ""))}
    )
    stats["repeats" if answer.get("repeat") else "checkins"] += 1
    balance = int(answer.get("balance", 0))
    balances[(community.id, member.id)] = balance
    affordable = [r for r in community.rewards if r.cost_points <= balance]
    if affordable and wants_to_redeem(rng):
        reward = rng.choice(affordable)
        body = {
            "community": community.id,
            "reward": reward.id,
            "request_id": f"sim-{member.id}-{at:%Y%m%d%H%M%S}",
        }
        redeemed = _call(triggers, "POST", "/redemptions", body, claims, at)
        stats["redemptions" if redeemed else "refused"] += 1


def _simulated_seeds(seed: int) -> SeedSource:
    """Draw seeds derived from the simulation seed (deterministic, still 32 bytes)."""

    def source(community_id: str, draw_id: str) -> bytes:
        return hashlib.sha256(f"simulate/{seed}/{community_id}/{draw_id}".encode()).digest()

    return source


def _lottery_cycles(
    config: Config, start: datetime, end: datetime
) -> dict[tuple[str, str], list[Cycle]]:
    """Every cycle of every enabled lottery that opens in ``[start, end)``."""
    cycles: dict[tuple[str, str], list[Cycle]] = {}
    for community in config.communities:
        tz = zone(community.timezone)
        for lottery in community.lotteries:
            if not lottery.enabled:
                continue
            found = cycles.setdefault((community.id, lottery.id), [])
            after = start - timedelta(microseconds=1)
            while True:
                opened = next_firing(lottery.opens, tz, after, horizon=end - after)
                if opened is None or opened.scheduled_utc >= end:
                    break
                found.append(cycle_opened_at(lottery, tz, opened.scheduled_utc))
                after = opened.scheduled_utc
    return cycles


def _enter_lotteries(
    triggers: Triggers,
    community: Community,
    member: SimMember,
    at: datetime,
    cycles: dict[tuple[str, str], list[Cycle]],
    entered: set[tuple[str, str, str]],
    rng: random.Random,
    stats: dict[str, int],
) -> None:
    """After a check-in, a member sometimes enters an open lottery (once per draw)."""
    for lottery in community.lotteries:
        if lottery.entry != "enter":
            continue
        cycle = next(
            (
                c
                for c in cycles.get((community.id, lottery.id), ())
                if c.opens_utc <= at < c.closes_utc
            ),
            None,
        )
        key = (community.id, cycle.draw_id if cycle else "", member.id)
        if cycle is None or key in entered or not wants_to_enter_lottery(rng):
            continue
        claims = {
            "sub": member.id,
            "roles": "member",
            "name": member.display_name,
            "scope": "autopilot/member",
        }
        body = {"community": community.id, "request_id": f"sim-{cycle.draw_id}-{member.id}"}
        answer = _call(triggers, "POST", f"/lotteries/{lottery.id}/entries", body, claims, at)
        if answer is None:
            stats["lottery_refused"] += 1
            continue
        entered.add(key)
        stats["lottery_entries"] += 1


def collect_lotteries(
    runtime: LocalRuntime, config: Config, cycles: dict[tuple[str, str], list[Cycle]]
) -> list[dict[str, Any]]:
    """Each draw of the period: entrants, hash, commitment, winners and whether its
    published record verifies (the verifier run on the record and the entrant list)."""
    from autopilot.aws import client
    from autopilot.lottery.draw import parse_entrants, verify_json

    bucket = runtime.function_env(DISPATCHER)["EXPORT_BUCKET"]
    s3 = client("s3", runtime.region)
    reader = {"sub": "sim-auditor", "roles": "member", "scope": "autopilot/member"}
    draws: list[dict[str, Any]] = []
    for (community_id, lottery_id), found in sorted(cycles.items()):
        for cycle in found:
            query = {"community": community_id, "draw": cycle.draw_id}
            status = _get(runtime, f"/lotteries/{lottery_id}", query, reader)
            row: dict[str, Any] = {
                "community": community_id,
                "lottery": lottery_id,
                "draw_id": cycle.draw_id,
                "state": status.get("state", "not_open") if status else "not_open",
                "entries": int(status.get("entries", 0)) if status else 0,
                "entrants": status.get("entrants") if status else None,
                "entrants_hash": status.get("entrants_hash") if status else None,
                "commitment": status.get("commitment") if status else None,
                "winners": [
                    {"member": w["member"], "prize": w["prize"], "status": w["status"]}
                    for w in (status or {}).get("winners", [])
                ],
                "verified": None,
            }
            published = _get(runtime, f"/lotteries/{lottery_id}/record", query, reader)
            if published is not None:
                entrants_key = published.get("entrants_key")
                entrants = None
                if entrants_key:
                    body = s3.get_object(Bucket=bucket, Key=entrants_key)["Body"].read()
                    entrants = list(parse_entrants(body.splitlines(keepends=True)))
                result = verify_json(published["text"], entrants)
                row["record_key"] = published.get("record_key")
                row["verified"] = result.verified
                if not result.verified:
                    row["differences"] = list(result.differences)
            draws.append(row)
    return draws


def _set_preferences(
    triggers: Triggers,
    community: Community,
    member: SimMember,
    at: datetime,
    rng: random.Random,
    stats: dict[str, int],
) -> None:
    """After their first check-in some members opt out of reminders, as members do."""
    changes = reminder_preferences(rng)
    if changes is None:
        return
    claims = {"sub": member.id, "roles": "member", "scope": "autopilot/member"}
    body = {"community": community.id, **changes}
    if _call(triggers, "PUT", "/me/preferences", body, claims, at) is not None:
        stats["reminder_opt_outs"] += 1


def _reminder_store(runtime: LocalRuntime) -> Any:
    from autopilot.reminders.store import ReminderStore

    return ReminderStore(runtime.function_env(DISPATCHER)["REMINDER_TABLE"], runtime.region)


class _ReminderAnswers:
    """The check-ins members make in answer to the reminders they were sent.

    Every occurrence of every reminder job in the period is watched from its due
    time for two hours (taken from the config, not from tick reports: a tick
    whose answer was lost still ran its reminders): :meth:`poll` reads its
    markers for the community's simulated members (BatchGetItem: a harness read,
    not the product's) and rolls each reminded member's answer
    (``reminder_response``) from a stream of its own (the seed and the reminder's
    key), counted from the reminder job's scheduled time.

    A member "reminded" is one the job selected and claimed to remind (any marker
    but ``skipped``): what members do never depends on how the channel answered,
    whether a crash left the send unknown, or how late a redelivered message was
    sent, so a faulted run and its fault-free reference see the same member
    behaviour and their ledgers can be compared; a reminder a fault lost shows in
    the reminder counters (``failed``, ``uncertain``, ``converted``), not as a
    different ledger.
    """

    WATCH = timedelta(hours=2)

    def __init__(
        self,
        runtime: LocalRuntime,
        config: Config,
        seed: int,
        start: datetime,
        end: datetime,
        people: dict[str, list[SimMember]],
    ):
        from autopilot.reminders.rules import member_today, reminder_key

        self.runtime = runtime
        self.seed = seed
        self.end = end
        # (due, scheduled, community, member by marker key), in due order.
        self._watch: list[tuple[datetime, datetime, Community, dict[str, SimMember]]] = []
        for community in config.communities:
            tz = zone(community.timezone)
            for job in community.jobs:
                if not job.enabled or job.action != "reminder":
                    continue
                after = start - timedelta(microseconds=1)
                while True:
                    occ = next_due(community.id, job, tz, community.quiet_hours, after)
                    if occ is None or occ.due_utc >= end:
                        break
                    after = occ.due_utc
                    day = member_today(occ.scheduled_utc, None, tz, community.day_boundary)
                    by_key = {
                        reminder_key(community.id, job.id, m.id, day): m
                        for m in people.get(community.id, [])
                    }
                    self._watch.append((occ.due_utc, occ.scheduled_utc, community, by_key))
        self._watch.sort(key=lambda w: (w[0], w[2].id))
        self._answered: set[str] = set()
        self._store: Any = None

    def poll(self, now: datetime) -> list[tuple[datetime, Community, SimMember]]:
        from autopilot.reminders.store import SKIPPED

        answers: list[tuple[datetime, Community, SimMember]] = []
        for due, scheduled, community, by_key in self._watch:
            if due > now:
                break
            if now > due + self.WATCH:
                continue
            self._store = self._store or _reminder_store(self.runtime)
            for marker in sorted(self._store.markers(list(by_key)), key=lambda m: m.key):
                if marker.status == SKIPPED or marker.key in self._answered:
                    continue
                self._answered.add(marker.key)
                rng = random.Random(f"{self.seed}/reminders/{marker.key}")
                minutes = reminder_response(rng)
                if minutes is None:
                    continue
                at = scheduled + timedelta(minutes=minutes, seconds=rng.randrange(60))
                if at < self.end:
                    answers.append((at, community, by_key[marker.key]))
        return answers


def collect_snapshots(
    runtime: LocalRuntime, config: Config, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """The daily snapshots the communities' metrics.daily jobs wrote during the run
    (one per community and metrics day that ended inside it), in day order."""
    from autopilot.metrics.store import MetricsStore

    store = MetricsStore(runtime.function_env(DISPATCHER)["METRICS_TABLE"], runtime.region)
    out: list[dict[str, Any]] = []
    for community in config.communities:
        tz = zone(community.timezone)
        first = start.astimezone(tz).date() - timedelta(days=1)
        last = end.astimezone(tz).date()
        out += list(store.snapshots(community.id, first, last))
    return out


def write_reports(summary: dict[str, Any], config: Config, out: Path) -> list[str]:
    """One HTML report per community from the run's snapshots (``report-*.html``);
    returns their names in ``out``."""
    from autopilot_cli.report import write_report

    for stale in out.glob("report-*.html"):
        stale.unlink()
    paths = []
    for community in config.communities:
        snapshots = [s for s in summary.get("snapshots", []) if s["community"] == community.id]
        if snapshots:
            path = write_report(
                snapshots,
                out,
                community_name=community.name,
                locale=community.locale,
                community_id=community.id,
            )
            paths.append(path.name)  # relative to the output folder
    return paths


def collect_reminders(
    runtime: LocalRuntime, config: Config, start: datetime, end: datetime
) -> dict[str, Any]:
    """Per community, job and local day: selected, sent, skipped by reason, failed,
    uncertain (the send started, its outcome is unknown: never re-sent), converted
    (the reminder counters)."""
    from autopilot.reminders.rules import OUTCOME_COUNTERS, SKIPPED_PREFIX
    from autopilot.reminders.service import counters_of

    store = _reminder_store(runtime)
    out: dict[str, Any] = {}
    for community in config.communities:
        tz = zone(community.timezone)
        first = start.astimezone(tz).date()
        days = [first + timedelta(days=i) for i in range((end - start).days + 1)]
        for job_id, per_day in sorted(counters_of(store, community, days).items()):
            rows = out.setdefault(community.id, {}).setdefault(job_id, {})
            for day, counts in sorted(per_day.items()):
                skipped = {
                    name[len(SKIPPED_PREFIX) :]: counts[name]
                    for name in OUTCOME_COUNTERS
                    if name.startswith(SKIPPED_PREFIX) and counts.get(name)
                }
                rows[day] = {
                    "selected": counts.get("selected", 0),
                    "sent": counts.get("sent", 0),
                    "skipped": skipped,
                    "failed": counts.get("failed", 0),
                    "uncertain": counts.get("uncertain", 0),
                    "converted": counts.get("converted", 0),
                }
    return out


def _get(
    runtime: LocalRuntime, path: str, query: dict[str, str], claims: dict[str, Any]
) -> dict[str, Any] | None:
    """A GET through the API function (None for any 4xx/5xx answer)."""
    event = runtime.http_api_event(
        "GET", path, query=query, jwt_claims=claims, jwt_scopes=["autopilot/member"]
    )
    response = runtime.invoke(API_FUNCTION, event)
    if int(response.get("statusCode", 500)) >= 300:
        return None
    return dict(json.loads(response.get("body") or "{}"))


def _call(
    triggers: Triggers,
    method: str,
    path: str,
    body: dict[str, Any],
    claims: dict[str, Any],
    at: datetime,
) -> dict[str, Any] | None:
    """A member's call through the API function: the answer's body, or None for a
    4xx/5xx (or no answer at all). ``at`` is when the member planned it; with
    faults the app's retries may send it a little later."""
    status, answer = triggers.api(method, path, body, claims)
    if not status or status >= 300:
        return None
    return answer or {}


def collect_ledger(
    runtime: LocalRuntime, config: Config, start: datetime, end: datetime, csv_path: Path
) -> dict[str, Any]:
    """Ledger figures for the summary, and every entry of the period as CSV."""
    import csv

    from autopilot.ledger.rules import CSV_COLUMNS, csv_row
    from autopilot.ledger.service import LedgerService
    from autopilot.ledger.store import LedgerStore

    store = LedgerStore(runtime.function_env(DISPATCHER)["LEDGER_TABLE"], runtime.region)
    ledger = LedgerService(store)
    checkins_by_day: dict[str, dict[str, int]] = {}
    figures = {"entries": 0, "awarded": 0, "redeemed": 0, "outstanding": 0, "reconciled": True}
    with open(csv_path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for community in config.communities:
            tz = zone(community.timezone)
            first, last = start.astimezone(tz).date(), end.astimezone(tz).date()
            per_day = checkins_by_day.setdefault(community.id, {})
            day = first
            while day <= last:
                count = store.checkins_on(community.id, day)
                if count:
                    per_day[day.isoformat()] = count
                day += timedelta(days=1)
            for entry in ledger.period_entries(community, first, last):
                writer.writerow(csv_row(entry))
                figures["entries"] += 1
                if entry.amount > 0:
                    figures["awarded"] += entry.amount
                if entry.reason == "redemption":
                    figures["redeemed"] -= entry.amount
            summary = ledger.summary(community, since=first, until=first)
            figures["outstanding"] += summary.outstanding
            report = ledger.reconcile(community)
            figures["reconciled"] = bool(figures["reconciled"] and report["ok"])
    return {"checkins_by_day": checkins_by_day, "ledger": figures}


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
                        # The worker's outcome of the work this occurrence enqueued.
                        "work": item.work,
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


def _work_note(work: dict[str, Any] | None) -> str:
    """What the worker made of an occurrence's enqueued job, in a few words."""
    if not work:
        return ""
    parts = [f"worker: {work.get('status')}"]
    if "members" in work:
        mode = f" ({work['mode']})" if work.get("mode") else ""
        parts.append(f"{work['members']} members checked{mode}")
        if work.get("mismatch_count"):
            parts.append(f"{work['mismatch_count']} MISMATCH(ES)")
    if "count" in work and "month" in work:
        parts.append(f"{work['month']}: {work['count']} entries exported")
    return " → " + ", ".join(parts)


def _snapshot_note(summary: dict[str, Any], community_id: str, occ: dict[str, Any]) -> str:
    """The figures a metrics.daily occurrence snapshotted (the day before its own)."""
    if not occ["job"].startswith("metrics.") or occ["status"] != "fired":
        return ""
    day = (date.fromisoformat(occ["scheduled_local"][:10]) - timedelta(days=1)).isoformat()
    for snap in summary.get("snapshots", []):
        if snap["community"] == community_id and snap["day"] == day:
            return (
                f" → {day}: {snap['checkins']['count']} check-ins, active "
                f"{snap['active']['dau']}/{snap['active']['wau']}/{snap['active']['mau']} "
                f"(day/week/month), rate {snap['checkins']['rate']:.0%}, "
                f"{snap['points']['outstanding']} points outstanding"
            )
    return ""


def _reminder_note(summary: dict[str, Any], community_id: str, occ: dict[str, Any]) -> str:
    """What a reminder occurrence did, in a few words (empty for other jobs)."""
    day = summary.get("reminders", {}).get(community_id, {}).get(occ["job"], {})
    row = day.get(occ["scheduled_local"][:10])
    if not row or occ["status"] != "fired":
        return ""
    skipped = sum(row["skipped"].values())
    note = f" → {row['selected']} selected, {row['sent']} reminded"
    if skipped:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(row["skipped"].items()))
        note += f", {skipped} skipped ({reasons})"
    if row["failed"]:
        note += f", {row['failed']} FAILED"
    if row.get("uncertain"):
        note += f", {row['uncertain']} uncertain"
    return note + f", {row['converted']} checked in after it"


def print_day_by_day(summary: dict[str, Any], config: Config, out: TextIO | None = None) -> None:
    """A readable account of the simulated days, per community in its local time."""
    out = out if out is not None else sys.stdout  # bound at call time, not import
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
            checkins = summary.get("checkins_by_day", {}).get(cid, {}).get(day)
            out.write(f"  {day}" + (f"   ({checkins} check-ins)" if checkins else "") + "\n")
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
                line += _work_note(occ.get("work"))
                line += _reminder_note(summary, cid, occ)
                line += _snapshot_note(summary, cid, occ)
                out.write(line + "\n")
    for draw in summary.get("lotteries", []):
        winners = ", ".join(f"{w['member']} ({w['prize']})" for w in draw["winners"])
        verified = {True: "VERIFIED", False: "NOT VERIFIED", None: "no record"}[draw["verified"]]
        out.write(
            f"Lottery {draw['community']}/{draw['draw_id']}: {draw['state']}, "
            f"{draw['entries']} entries, {draw['entrants'] or 0} entrants; "
            f"{verified}; winners: {winners or 'none'}\n"
        )
    counts = ", ".join(f"{k} {v}" for k, v in sorted(summary["counts"].items()))
    delivered = sum(1 for p in summary["posts"] if p["status"] == "published")
    out.write(f"\nOccurrences: {counts}; deliveries: {delivered}\n")
    if "ledger" in summary:
        ledger, activity = summary["ledger"], summary.get("member_activity", {})
        out.write(
            f"Members: {summary['members']} per community; check-ins {activity.get('checkins', 0)}"
            f" (+{activity.get('repeats', 0)} repeats answered idempotently), redemptions "
            f"{activity.get('redemptions', 0)}.\nLedger: {ledger['entries']} entries, "
            f"{ledger['awarded']} points awarded, {ledger['redeemed']} redeemed, "
            f"{ledger['outstanding']} outstanding; reconciled: "
            f"{'yes' if ledger['reconciled'] else 'NO'}\n"
        )
    totals: Counter[str] = Counter()
    for jobs in summary.get("reminders", {}).values():
        for days in jobs.values():
            for row in days.values():
                totals.update(
                    {
                        k: row.get(k, 0)
                        for k in ("selected", "sent", "failed", "uncertain", "converted")
                    }
                )
                totals["skipped"] += sum(row["skipped"].values())
    if totals:
        rate = totals["converted"] / totals["sent"] if totals["sent"] else 0.0
        out.write(
            f"Reminders: {totals['selected']} selected, {totals['sent']} sent, "
            f"{totals['skipped']} skipped, {totals['failed']} failed"
            + (f", {totals['uncertain']} uncertain" if totals["uncertain"] else "")
            + "; "
            f"{totals['converted']} checked in after one ({rate:.0%}).\n"
        )


def default_start(now: datetime) -> datetime:
    """Midnight UTC of the first Monday after ``now``: a readable default week."""
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today + timedelta(days=(7 - today.weekday()) % 7 or 7)
