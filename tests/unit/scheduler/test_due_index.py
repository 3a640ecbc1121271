"""The dispatcher's due index gives exactly the occurrences of the straightforward scan.

Two dispatchers run the same random configs over the same random clock walk, each
on its own in-memory scheduler store: the reference computes every job every tick
(``index=False``), the other uses its per-container index of wakes. Config changes
mid-run, DST gaps and folds, quiet hours, disabled jobs, long outages and container
restarts are all drawn; the ticks' reports and the stores' records must be equal.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from autopilot.clock import ManualClock
from autopilot.config.model import Config, parse_config
from autopilot.scheduler import rules, service
from autopilot.scheduler.index import Shard, shard_of
from autopilot.scheduler.rules import Occurrence
from autopilot.scheduler.service import ActionContext, ActionResult, Dispatcher
from autopilot.scheduler.store import FINAL_STATUSES, ClaimResult, Epoch, JobState, Pending
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


@dataclass
class MemoryStore:
    """The SchedulerStore's contract in memory (single-threaded)."""

    states: dict[str, JobState] = field(default_factory=dict)
    records: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    epoch: Epoch | None = None
    reads: int = 0

    def read_states(self, pks: Iterable[str]) -> tuple[dict[str, JobState], Epoch | None]:
        self.reads += 1
        return {pk: self.states[pk] for pk in pks if pk in self.states}, self.epoch

    def advance_watermark(
        self,
        pk: str,
        to: datetime,
        now: datetime,
        *,
        pending: Iterable[Pending] = (),
        disabled: bool = False,
    ) -> bool:
        current = self.states.get(pk)
        if current is not None and current.watermark is not None and current.watermark >= to:
            return False
        ordered = tuple(sorted(pending, key=lambda p: p.scheduled_utc))
        self.states[pk] = JobState(to, ordered, disabled)
        return True

    def read_epoch(self) -> Epoch | None:
        return self.epoch

    def switch_epoch(
        self, expected: Epoch | None, version: str, published_ms: int, now: datetime
    ) -> bool:
        if self.epoch != expected:
            return False
        floor = 0 if expected is None else max(expected.floor_ms, expected.max_due_ms)
        self.epoch = Epoch(version, published_ms, floor, floor)
        return True

    def claim(
        self, occ: Occurrence, *, now: datetime, lease: timedelta, worker: str, epoch: str | None
    ) -> ClaimResult:
        if epoch is not None and (self.epoch is None or self.epoch.version != epoch):
            return ClaimResult("stale")
        key = (f"{occ.community_id}/{occ.job_id}", occ.id)
        if key in self.records:
            return ClaimResult("done", status=self.records[key]["status"])
        self.records[key] = {"status": "claimed", "worker": worker, "due": occ.due_utc}
        if epoch is not None and self.epoch is not None:
            due_ms = int(occ.due_utc.timestamp() * 1000)
            self.epoch = Epoch(
                self.epoch.version,
                self.epoch.published_ms,
                self.epoch.floor_ms,
                max(self.epoch.max_due_ms, due_ms),
            )
        return ClaimResult("won", attempt=1, token=worker)

    def finish(self, occ: Occurrence, *, status: str, now: datetime, worker: str, **_: Any) -> bool:
        record = self.records[(f"{occ.community_id}/{occ.job_id}", occ.id)]
        assert record["worker"] == worker and record["status"] == "claimed"
        record.update(status=status, worker="")
        return True

    def holds(self, occ: Occurrence, worker: str) -> bool:
        return self.records[(f"{occ.community_id}/{occ.job_id}", occ.id)]["worker"] == worker

    def record_unrun(self, occ: Occurrence, *, status: str, reason: str, now: datetime) -> bool:
        key = (f"{occ.community_id}/{occ.job_id}", occ.id)
        if key in self.records:
            return False
        self.records[key] = {"status": status, "reason": reason, "due": occ.due_utc}
        return True

    def record_gap(self, community_id: str, job_id: str, *, first_id: str, **kw: Any) -> bool:
        key = (f"{community_id}/{job_id}", f"GAP#{first_id}")
        if key in self.records:
            return False
        self.records[key] = {"status": "missed", "count": kw["count"]}
        return True


def ok(ctx: ActionContext) -> ActionResult:
    return ActionResult(ok=True)


ZONES = ["America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]
CRONS = ["30 1 * * *", "30 2 * * *", "*/15 * * * *", "0 * * * *", "0 3 * * 0", "0 0 1 * *"]


def community_doc(cid: str, zone: str, quiet: bool, jobs: list[dict[str, Any]]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": cid,
        "name": cid,
        "timezone": zone,
        "locale": "en",
        "channels": [{"id": "group", "type": "file", "path": "group.jsonl"}],
        "pools": [{"id": "p", "items": [{"id": "a", "text": "hi"}]}],
        "jobs": jobs,
        "metrics": {"daily_snapshot": False},  # only the drawn jobs
    }
    if quiet:
        doc["quiet_hours"] = {"start": "22:00", "end": "07:00"}
    return doc


def job_doc(jid: str, cron: str, quiet: str, misfire: str, enabled: bool) -> dict[str, Any]:
    return {
        "id": jid,
        "cron": cron,
        "action": "post",
        "params": {"pool": "p", "channels": ["group"], "template": "{content}"},
        "quiet_hours": quiet,
        "misfire": {"policy": misfire},
        "enabled": enabled,
    }


jobs_st = st.lists(
    st.tuples(
        st.sampled_from(CRONS),
        st.sampled_from(["defer", "drop", "ignore"]),
        st.sampled_from(["latest", "all"]),
        st.booleans() | st.just(True),
    ),
    min_size=1,
    max_size=3,
)
communities_st = st.lists(
    st.tuples(st.sampled_from(ZONES), st.booleans(), jobs_st), min_size=1, max_size=3
)
# A clock step, a config change (index into the drawn configs) and a container restart.
steps_st = st.lists(
    st.tuples(
        st.sampled_from(
            [
                timedelta(seconds=20),
                timedelta(minutes=1),
                timedelta(minutes=7),
                timedelta(hours=1),
                timedelta(hours=5),
                timedelta(days=1),
                timedelta(days=9),
            ]
        ),
        st.none() | st.integers(0, 2),
        st.booleans() | st.just(False) | st.just(False),
    ),
    min_size=1,
    max_size=30,
)
STARTS = [
    datetime(2027, 3, 14, 5, 50, tzinfo=UTC),  # New York spring forward
    datetime(2026, 11, 1, 4, 50, tzinfo=UTC),  # New York fall back
    datetime(2026, 10, 25, 0, 10, tzinfo=UTC),  # London fall back
    datetime(2026, 10, 3, 15, 0, tzinfo=UTC),  # Lord Howe 30-minute spring forward
]


def build_config(drawn: list[Any], version: int, published_at: datetime) -> Config:
    communities = []
    for c, (zone, quiet, jobs) in enumerate(drawn):
        docs = [job_doc(f"j{j}", *spec) for j, spec in enumerate(jobs)]
        communities.append(community_doc(f"c{c}", zone, quiet, docs))
    doc = {
        "version": 1,
        "published_at": published_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "communities": communities,
    }
    config = parse_config(copy.deepcopy(doc))
    return Config(
        communities=config.communities,
        published_at=config.published_at,
        version_tag=f"v{version}",
    )


def mutate(drawn: list[Any], which: int) -> list[Any]:
    """A changed config: toggle a job, change a cron, or change a timezone."""
    out = copy.deepcopy(drawn)
    zone, quiet, jobs = out[0]
    if which == 0:
        cron, q, m, enabled = jobs[0]
        jobs[0] = (cron, q, m, not enabled)
    elif which == 1:
        cron, q, m, enabled = jobs[-1]
        jobs[-1] = (CRONS[(CRONS.index(cron) + 1) % len(CRONS)], q, m, enabled)
    else:
        out[0] = (ZONES[(ZONES.index(zone) + 1) % len(ZONES)], not quiet, jobs)
    return out


def summary(report: service.TickReport) -> list[tuple[str, ...]]:
    return sorted(
        (o.community_id, o.job_id, o.occurrence_id, o.status, o.reason) for o in report.occurrences
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    drawn=communities_st,
    steps=steps_st,
    start=st.sampled_from(STARTS),
    shards=st.sampled_from([1, 2]),
)
def test_indexed_dispatcher_equals_full_scan(drawn, steps, start, shards):
    clock = ManualClock(start)
    version = 1
    config = build_config(drawn, version, start - timedelta(hours=2))
    reference_store, indexed_store = MemoryStore(), MemoryStore()
    reference = Dispatcher(reference_store, {"post": ok}, clock=clock, index=False)
    indexed = Dispatcher(indexed_store, {"post": ok}, clock=clock)
    for step, change, restart in steps:
        clock.advance(step)
        if change is not None:
            version += 1
            drawn = mutate(drawn, change)
            config = build_config(drawn, version, clock.now() - timedelta(seconds=30))
        if restart:
            indexed = Dispatcher(indexed_store, {"post": ok}, clock=clock)
        for i in range(shards):
            shard = Shard(i, shards)
            expected = reference.tick(config, shard=shard)
            got = indexed.tick(config, shard=shard)
            assert summary(got) == summary(expected), (clock.now(), shard)
    assert indexed_store.records == reference_store.records
    assert indexed_store.states == reference_store.states


def counting(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count cron evaluations (croniter constructions) made by the scheduler rules."""
    calls = {"croniter": 0}
    real = rules.croniter

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        calls["croniter"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(rules, "croniter", wrapped)
    return calls


def many(n: int, version: int = 1, published_at: datetime | None = None) -> Config:
    drawn = [("UTC", False, [("0 9 * * *", "defer", "latest", True)] * 5)] * n
    return build_config(drawn, version, published_at or datetime(2026, 11, 1, tzinfo=UTC))


@pytest.mark.parametrize("communities", [10, 200])
def test_idle_tick_evaluates_no_cron_whatever_the_number_of_jobs(monkeypatch, communities):
    clock = ManualClock(datetime(2026, 11, 2, 8, 0, tzinfo=UTC))
    store = MemoryStore()
    dispatcher = Dispatcher(store, {"post": ok}, clock=clock)
    config = many(communities)
    dispatcher.tick(config)  # cold: reads every state once, computes every wake
    calls = counting(monkeypatch)
    reads = store.reads
    for _ in range(30):
        clock.advance(timedelta(minutes=1))
        assert dispatcher.tick(config).idle
    assert calls["croniter"] == 0
    assert store.reads == reads  # and no store request


def test_busy_tick_evaluates_crons_of_the_due_jobs_only(monkeypatch):
    clock = ManualClock(datetime(2026, 11, 2, 8, 0, tzinfo=UTC))
    drawn = [("UTC", False, [("0 9 * * *", "ignore", "latest", True)] * 5)] * 100
    drawn[7] = ("UTC", False, [("30 8 * * *", "ignore", "latest", True)] * 5)
    config = build_config(drawn, 1, datetime(2026, 11, 1, tzinfo=UTC))
    store = MemoryStore()
    dispatcher = Dispatcher(store, {"post": ok}, clock=clock)
    dispatcher.tick(config)
    calls = counting(monkeypatch)
    clock.advance(timedelta(minutes=30))
    report = dispatcher.tick(config)
    assert {o.community_id for o in report.occurrences} == {"c7"}
    assert len(report.occurrences) == 5
    # 5 jobs due: each evaluated a bounded number of times, the 495 others not at all.
    assert 0 < calls["croniter"] <= 5 * 12


def test_a_config_push_that_changes_no_schedule_keeps_every_wake(monkeypatch):
    clock = ManualClock(datetime(2026, 11, 2, 8, 0, tzinfo=UTC))
    store = MemoryStore()
    dispatcher = Dispatcher(store, {"post": ok}, clock=clock)
    dispatcher.tick(many(50))
    clock.advance(timedelta(hours=2))  # 09:00: every job runs, so every job has a state
    assert len(dispatcher.tick(many(50)).occurrences) == 250
    calls = counting(monkeypatch)
    clock.advance(timedelta(minutes=1))
    assert dispatcher.tick(many(50, version=2, published_at=clock.now())).idle
    assert calls["croniter"] == 0


def test_shards_partition_the_communities_stably():
    ids = [f"community-{i}" for i in range(1000)]
    for count in (1, 2, 3, 8):
        owners = [[Shard(i, count).owns(c) for i in range(count)] for c in ids]
        assert all(sum(o) == 1 for o in owners)
    assert shard_of("community-1", 8) == shard_of("community-1", 8)
    # Spread: no shard of 8 gets more than twice its share.
    sizes = [sum(shard_of(c, 8) == i for c in ids) for i in range(8)]
    assert max(sizes) < 2 * len(ids) / 8
    with pytest.raises(ValueError, match="shard must be"):
        Shard(2, 2)
    with pytest.raises(ValueError, match="shards must be"):
        Shard(0, 0)


def test_changing_the_number_of_shards_runs_each_occurrence_once():
    """Re-sharding 2 -> 3 mid-day (and both layouts ticking during the switch) runs each
    occurrence once: claims and watermarks are per job, not per shard."""
    clock = ManualClock(datetime(2026, 11, 2, 0, 0, tzinfo=UTC))
    drawn = [("UTC", False, [("*/15 * * * *", "ignore", "all", True)])] * 12
    config = build_config(drawn, 1, clock.now() - timedelta(minutes=1))
    store = MemoryStore()
    old = [Dispatcher(store, {"post": ok}, clock=clock) for _ in range(2)]
    new = [Dispatcher(store, {"post": ok}, clock=clock) for _ in range(3)]
    fired: list[tuple[str, str]] = []
    for minute in range(24 * 60):
        clock.advance(timedelta(minutes=1))
        layouts = []
        if minute < 13 * 60:
            layouts.append((old, 2))
        if minute >= 12 * 60:
            layouts.append((new, 3))  # one overlapping hour: both layouts tick
        for dispatchers, count in layouts:
            for i, d in enumerate(dispatchers):
                report = d.tick(config, shard=Shard(i, count))
                fired += [(o.community_id, o.occurrence_id) for o in report.occurrences]
    # 00:00 of the 2nd through 00:00 of the 3rd: 97 per community, none twice.
    assert len(fired) == len(set(fired)) == 12 * (24 * 4 + 1)
    assert all(r["status"] in FINAL_STATUSES for r in store.records.values())


@settings(max_examples=80, deadline=None)
@given(
    cron=st.sampled_from([*CRONS, "59 1 * * *", "0 2 * * *", "45 2 31 * *"]),
    zone=st.sampled_from([*ZONES, "America/Santiago", "Antarctica/Troll"]),
    start=st.sampled_from(STARTS),
    offset=st.integers(-3 * 3600, 3 * 3600),
)
def test_first_scheduled_after_is_the_first_occurrence_of_the_scan(cron, zone, start, offset):
    from autopilot.timeutil import zone as tzinfo

    config = build_config([(zone, False, [(cron, "ignore", "latest", True)])], 1, start)
    job, tz = config.communities[0].jobs[0], tzinfo(zone)
    after = start + timedelta(seconds=offset)
    window = after + timedelta(days=70)
    found = rules.occurrences_scheduled_between("c", job, tz, None, after, window)
    assert rules.first_scheduled_after(job, tz, after) == found[0].scheduled_utc
    # With nothing within the horizon the answer is the horizon's end (a lower bound).
    short = rules.first_scheduled_after(job, tz, after, timedelta(seconds=1))
    assert short <= found[0].scheduled_utc
