"""The dispatcher tick: decide, claim, run and record every due occurrence once.

One tick, for every job of every community:

1. the candidates: occurrences *scheduled* in ``(watermark, now]`` plus the job's
   pending ones, each re-evaluated under the current config (quiet hours decide
   its due time);
2. those due by ``now`` are decided under the job's misfire policy; those not due
   yet (deferred by quiet hours) stay pending;
3. ``run``: claim with a conditional write fenced by the config epoch, run the
   action, record the outcome (``fired``/``deferred``, ``failed``, or
   ``uncertain`` when a post may or may not have reached a channel);
   ``missed``/``skipped``: record once; beyond the catch-up bound or the
   look-back: one summary record;
4. move the watermark to ``now``, storing what is still pending: deferred, held
   by another worker, released for a retry after a transient AWS error, or not
   started for lack of time.

An action that raises a transient AWS error (throttling, a 5xx, a timeout:
:func:`autopilot.aws.is_transient`) does not fail its occurrence: the claim is
released and the next tick runs it again (a minute later), up to
``MAX_TRANSIENT_RETRIES`` times; crashes keep their own budget of ``MAX_ATTEMPTS``.

A disabled job has no occurrences: its watermark moves on without recording any,
so re-enabling it never replays the days it was off.

Job states are cached per container. A cached state can only be *older* than the
stored one, so if nothing is due since the cached watermark (and no cached pending
occurrence is due) nothing is due at all. Each job's *wake* (the earliest instant
it can have work) is kept in a heap (:mod:`autopilot.scheduler.index`): an idle
tick in a warm container compares the heap's top with the clock and makes no
request, a busy tick reads and computes only the jobs whose wake has come, and a
cold one reads its jobs' states (one BatchGetItem per 100) once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from autopilot.aws import is_transient
from autopilot.clock import Clock, get_clock
from autopilot.config.model import Community, Config, Job
from autopilot.scheduler.index import ALL, DueIndex, IndexedJob, Shard
from autopilot.scheduler.rules import (
    MAX_CATCHUP,
    MAX_LOOKBACK,
    Decision,
    Occurrence,
    count_scheduled,
    first_scheduled_after,
    occurrences_scheduled_between,
    plan_tick,
    reevaluate,
    resolve_local,
)
from autopilot.scheduler.store import (
    MAX_TRANSIENT_RETRIES,
    Epoch,
    JobState,
    Pending,
    SchedulerStore,
    job_pk,
)
from autopilot.timeutil import iso_utc, zone

logger = logging.getLogger(__name__)

# The longest a run can last: the dispatcher function's Timeout in template.yaml.
# Used for the lease when the invocation's remaining time is unknown (CLI, tests).
MAX_RUN = timedelta(seconds=60)
# The largest clock difference between two dispatcher containers we tolerate. A
# claim's lease is judged on *another* container's clock, so it lasts the holder's
# remaining invocation time plus this: a container whose clock is up to this far
# ahead still cannot take over a claim whose holder can be sending. (Lambda clocks
# are NTP-synchronised to milliseconds; a minute is a wide margin.)
MAX_CLOCK_SKEW = timedelta(seconds=60)
DEFAULT_LEASE = MAX_RUN + MAX_CLOCK_SKEW
# Stop starting new runs or records when less than this is left of the invocation.
SAFETY_MARGIN_MS = 10_000
# A config without published_at: a job first seen looks back this far.
FIRST_TICK_LOOKBACK = timedelta(minutes=1)
# Occurrences older than the look-back are counted for their summary up to this.
MAX_COUNTED = 100_000


@dataclass(frozen=True)
class ActionContext:
    """What an action gets to run one occurrence."""

    community: Community
    job: Job
    occurrence: Occurrence
    now_utc: datetime
    attempt: int
    # Milliseconds left in this invocation (None outside Lambda): actions that
    # retry (channels) stop in time for the outcome to be recorded.
    remaining_ms: Callable[[], int] | None = None
    # Whether this run still holds the occurrence's claim (the fencing check):
    # actions call it before every send and stop if it answers False.
    still_holds: Callable[[], bool] | None = None


@dataclass(frozen=True)
class ActionResult:
    """What an action reports: ``ok`` False records the occurrence as ``failed``.

    ``uncertain``: something may or may not have reached a channel (an answer was
    lost, or an earlier attempt crashed mid-send) and was deliberately not sent
    again: the occurrence is recorded ``uncertain`` (ops are told). A result
    whose ``detail`` holds a ``deliveries`` map with an ``uncertain`` delivery,
    at any depth (a lottery's ``post``), counts as uncertain too
    (:func:`uncertain_channels`), so actions that wrap a post's result need not
    copy the flag.
    """

    ok: bool
    detail: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None
    uncertain: bool = False


UNCERTAIN = "uncertain"


def uncertain_channels(detail: Mapping[str, Any]) -> list[str]:
    """The channels whose delivery is ``uncertain`` in an action's ``detail``.

    Looks for ``deliveries`` maps (channel -> delivery with a ``status``) in
    ``detail`` and the mappings nested in it (a few levels: details are small).
    """
    found: list[str] = []

    def walk(value: Any, depth: int) -> None:
        if depth > 4 or not isinstance(value, Mapping):
            return
        for key, inner in value.items():
            if key == "deliveries" and isinstance(inner, Mapping):
                for channel, delivery in inner.items():
                    if isinstance(delivery, Mapping) and delivery.get("status") == UNCERTAIN:
                        found.append(str(channel))
            else:
                walk(inner, depth + 1)

    walk(detail, 0)
    return sorted(set(found))


Action = Callable[[ActionContext], ActionResult]


@dataclass
class OccurrenceReport:
    """What a tick did with one occurrence."""

    community_id: str
    job_id: str
    key: str
    scheduled_utc: str
    due_utc: str
    status: str
    reason: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)

    occurrence_id: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "community": self.community_id,
            "job": self.job_id,
            "key": self.key,
            "id": self.occurrence_id,
            "scheduled_utc": self.scheduled_utc,
            "due_utc": self.due_utc,
            "status": self.status,
            "reason": self.reason,
        }


@dataclass
class TickReport:
    """Everything one tick did."""

    now_utc: datetime
    occurrences: list[OccurrenceReport] = field(default_factory=list)
    # Set when this container's config is older than the one in force and it could
    # not load the newer one: it ran nothing.
    stale_config: bool = False

    @property
    def idle(self) -> bool:
        return not self.occurrences

    def summary(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for occ in self.occurrences:
            counts[occ.status] = counts.get(occ.status, 0) + 1
        return {
            "now_utc": iso_utc(self.now_utc),
            "counts": counts,
            "stale_config": self.stale_config,
            "occurrences": [o.as_dict() for o in self.occurrences],
        }


@dataclass
class _JobWork:
    """One job's candidates this tick."""

    community: Community
    job: Job
    due: list[Occurrence]
    waiting: list[Occurrence]
    # Occurrences older than the look-back: (start, end) of the uncounted window.
    beyond: tuple[datetime, datetime] | None = None
    # Whether the job's stored state must change even if nothing is due.
    dirty: bool = False
    # Ids of pending occurrences released for a retry (Pending.retry): always re-claimed.
    retry: frozenset[str] = frozenset()


ConfigRefresh = Callable[[], tuple[Config, bool]]


class Dispatcher:
    """Runs ticks against a config; one instance per container."""

    def __init__(
        self,
        store: SchedulerStore,
        actions: Mapping[str, Action],
        *,
        clock: Clock | None = None,
        lease: timedelta | None = None,
        index: bool = True,
    ):
        self._store = store
        self._actions = actions
        self._clock = clock
        self._lease = lease
        self._states: dict[str, JobState] = {}
        self._read: set[str] = set()  # jobs whose stored state this container has read
        self._epoch: Epoch | None = None
        # The due index per shard, for one config object (see autopilot.scheduler.index).
        self._use_index = index
        self._indexes: dict[Shard, DueIndex] = {}
        self._indexes_config: Config | None = None
        self.worker_id = uuid.uuid4().hex[:12]

    def _now(self) -> datetime:
        return (self._clock or get_clock()).now()

    def tick(
        self,
        config: Config,
        *,
        remaining_ms: Callable[[], int] | None = None,
        refresh: ConfigRefresh | None = None,
        shard: Shard = ALL,
    ) -> TickReport:
        """Run one tick at the clock's current time, for the communities of ``shard``.

        ``refresh`` reloads the config bypassing any cache and says whether it is
        the newest published version; it is called only when the config epoch
        shows a version other than ``config``'s.

        Which jobs are looked at comes from the container's :class:`DueIndex`
        (only those whose wake has come, plus those whose state was never read
        here); with ``index=False`` every job is computed every tick, the
        straightforward computation the index is tested against.
        """
        now = self._now()
        report = TickReport(now_utc=now)
        index = self._index_for(config, shard)
        if self._use_index:
            popped = index.pop_due(now)
            if not popped and not index.unread:
                return report  # idle: no wake has come (constant work)
        else:
            popped = list(index.jobs)
        settled: set[str] = set()
        try:
            return self._tick_jobs(
                config, index, popped, settled, now, report, remaining_ms, refresh
            )
        finally:
            # Every job taken from the heap gets its wake back, whatever happened
            # (an exception included): a job must never drop out of the index.
            for pk in popped if self._use_index else ():
                if pk not in settled and pk not in index.unread and pk in index.jobs:
                    self._set_wake(index, index.jobs[pk], now)

    def _tick_jobs(
        self,
        config: Config,
        index: DueIndex,
        popped: list[str],
        settled: set[str],
        now: datetime,
        report: TickReport,
        remaining_ms: Callable[[], int] | None,
        refresh: ConfigRefresh | None,
    ) -> TickReport:
        """The tick, for the jobs whose wake has come and those never read here.

        ``settled`` collects the jobs given their new wake here (the caller gives
        the other popped ones theirs).
        """
        unread = set(index.unread)
        selected = sorted(
            {*popped, *unread} & index.jobs.keys(), key=lambda pk: index.jobs[pk].position
        )
        jobs = [(index.jobs[pk].community, index.jobs[pk].job) for pk in selected]
        if not unread:
            work = self._work(jobs, self._states, self._epoch, config, now)
            if not any(w.due or w.dirty or w.beyond for w in work):
                return report  # idle: nothing due even from the (possibly older) cached states
        # Something may be due, or a job's state was never read in this container
        # (its watermark may be older, its pending list unknown): read the
        # authoritative states of these jobs once, then recompute. The other jobs'
        # cached states can only be older than the stored ones, so their wakes
        # (which have not come) are conclusive.
        pks = selected
        states, epoch = self._store.read_states(pks)
        for pk in pks:
            if pk in states:
                self._states[pk] = states[pk]
            else:
                self._states.pop(pk, None)
        self._read.update(pks)
        index.unread.difference_update(pks)
        for pk in unread - set(popped):
            popped.append(pk)  # read now: it gets its wake at the end of the tick
        if epoch is not None and epoch.version == config.version_tag:
            self._epoch = epoch
        if self._use_index and unread:
            # A cold container: most jobs read now have nothing due. A wake that has
            # not come is conclusive, so only the others' work is computed.
            selected, jobs = [], []
            for pk in sorted(popped, key=lambda pk: index.jobs[pk].position):
                entry = index.jobs[pk]
                self._set_wake(index, entry, now)
                wake = index.wakes[pk][0]
                if wake is None or wake > now:
                    settled.add(pk)
                else:
                    index.forget(pk)  # re-set at the end of the tick
                    selected.append(pk)
                    jobs.append((entry.community, entry.job))
        work = self._work(jobs, self._states, epoch, config, now)
        if not any(w.due or w.dirty or w.beyond for w in work):
            return report  # nothing due after all: no write, no epoch check
        entered = self._enter_epoch(config, epoch, now, refresh)
        if isinstance(entered, Config):  # a newer config is in force: tick with it instead
            return self.tick(entered, remaining_ms=remaining_ms, shard=index.shard)
        if entered is None:
            logger.warning(
                "config version %r is not the one in force; ran nothing this tick",
                config.version_tag,
            )
            report.stale_config = True
            return report
        self._epoch = epoch = entered
        work = self._work(jobs, self._states, epoch, config, now)

        out_of_time = False

        def time_left() -> bool:
            nonlocal out_of_time
            out_of_time = out_of_time or (
                remaining_ms is not None and remaining_ms() < SAFETY_MARGIN_MS
            )
            return not out_of_time

        for item in work:
            if not (item.due or item.dirty or item.beyond):
                continue
            if not time_left():
                break  # the job keeps its state: the next tick does all of it
            pending = self._process(item, epoch, now, report, time_left, remaining_ms)
            if pending is None:
                report.stale_config = True
                break  # the epoch moved under us: stop; the next tick uses the new config
            pk = job_pk(item.community.id, item.job.id)
            state = JobState(now, tuple(pending), not item.job.enabled)
            if self._store.advance_watermark(
                pk, now, now, pending=state.pending, disabled=state.disabled
            ):
                self._states[pk] = state
            else:
                self._states.pop(pk, None)  # another worker moved it: re-read next time
                self._read.discard(pk)
                index.unread.add(pk)
                index.forget(pk)
        return report

    # -- the due index ----------------------------------------------------------
    def _index_for(self, config: Config, shard: Shard) -> DueIndex:
        """This container's index of ``config`` (one per shard), built on first use.

        Built once per config version: a job whose schedule inputs are unchanged
        from the previous version keeps its wake (no cron evaluation); the others
        get one computed from their cached state. Jobs whose state was never read
        in this container are ``unread``: the next tick reads them.
        """
        index = self._indexes.get(shard)
        if index is not None and index.config is config:
            return index
        previous = self._indexes if self._indexes_config is not None else {}
        if self._indexes_config is not config:
            self._indexes = {}
            self._indexes_config = config
        old = previous.get(shard)
        now = self._now()
        index = DueIndex(config, shard)
        position = 0
        for community in config.communities:
            if not shard.owns(community.id):
                continue
            for job in community.jobs:
                pk = job_pk(community.id, job.id)
                entry = IndexedJob(position, community, job, pk)
                position += 1
                index.jobs[pk] = entry
                if pk not in self._read:
                    index.unread.add(pk)
                    continue
                kept = old.wakes.get(pk) if old is not None else None
                signature = self._signature(entry, config)
                if kept is not None and kept[1] == signature:
                    index.set_wake(pk, kept[0], signature)
                else:
                    self._set_wake(index, entry, now)
        self._indexes[shard] = index
        return index

    def _signature(self, entry: IndexedJob, config: Config) -> tuple[Any, ...]:
        """Everything a job's wake depends on besides its state and the epoch.

        The publication time matters only to a job that starts from it (no state
        yet, or re-enabled): a push that changes nothing else keeps the others' wakes.
        """
        state = self._states.get(entry.pk)
        starts_fresh = (
            state is None or state.watermark is None or (state.disabled and entry.job.enabled)
        )
        return (
            entry.community.timezone,
            entry.community.quiet_hours,
            entry.job,
            config.published_at if starts_fresh else None,
            state,
        )

    def _set_wake(self, index: DueIndex, entry: IndexedJob, now: datetime) -> None:
        index.set_wake(
            entry.pk,
            self._wake(entry.community, entry.job, self._states.get(entry.pk), index.config, now),
            self._signature(entry, index.config),
        )

    def _wake(
        self,
        community: Community,
        job: Job,
        state: JobState | None,
        config: Config,
        now: datetime,
    ) -> datetime | None:
        """The earliest instant at which :meth:`_candidates` can find work for this job.

        Mirrors ``_candidates`` with lower bounds: the look-back starts at or after
        the watermark (or, for a job with no state, at or after where it would
        start now, since that only moves later); pending occurrences are due when
        the current config says; the 7-day look-back is exceeded only 7 days after
        the watermark. None: never, unless the state or config changes.
        """
        tz = zone(community.timezone)
        quiet = community.quiet_hours
        wakes: list[datetime] = []
        for p in state.pending if state is not None else ():
            occ = reevaluate(community.id, job, tz, quiet, p.nominal_local, p.scheduled_utc, p.dst)
            wakes.append(occ.due_utc)
        if state is None or state.watermark is None:
            lower = self._first_start(config, self._epoch, now)
        else:
            lower = state.watermark
            if job.enabled:
                wakes.append(state.watermark + MAX_LOOKBACK)
        if job.enabled or state is None or not state.disabled:
            wakes.append(first_scheduled_after(job, tz, lower))
        return min(wakes) if wakes else None

    # -- the config epoch -------------------------------------------------------
    def _enter_epoch(
        self,
        config: Config,
        epoch: Epoch | None,
        now: datetime,
        refresh: ConfigRefresh | None,
    ) -> Epoch | Config | None:
        """The epoch this tick runs under; a newer ``Config`` to tick with; or None (stale).

        The epoch names the config version in force. A container whose config is
        another version reloads its config: if that gives a different version it
        ticks with it; if its config is the newest published one (or was published
        later than the epoch's) it puts its version in force; otherwise it runs
        nothing (a newer config exists that it cannot load).
        """
        mine = config.version_tag
        published_ms = _ms(config.published_at) if config.published_at else 0
        if epoch is not None and epoch.version == mine:
            return epoch
        newest = False
        if epoch is not None and refresh is not None:
            fresh, newest = refresh()
            if fresh.version_tag != mine:
                return fresh
        if epoch is not None and not newest and published_ms <= epoch.published_ms:
            return None
        if self._store.switch_epoch(epoch, mine, published_ms, now):
            floor = 0 if epoch is None else max(epoch.floor_ms, epoch.max_due_ms)
            logger.info("config version %r is now in force", mine)
            return Epoch(mine, published_ms, floor, floor)
        current = self._store.read_epoch()  # someone else switched meanwhile
        return current if current is not None and current.version == mine else None

    # -- candidates -------------------------------------------------------------
    def _work(
        self,
        jobs: list[tuple[Community, Job]],
        states: Mapping[str, JobState],
        epoch: Epoch | None,
        config: Config,
        now: datetime,
    ) -> list[_JobWork]:
        out = []
        for community, job in jobs:
            state = states.get(job_pk(community.id, job.id))
            out.append(self._candidates(community, job, state, epoch, config, now))
        return out

    def _first_start(self, config: Config, epoch: Epoch | None, now: datetime) -> datetime:
        """Where a job with no watermark (new, renamed or re-enabled) starts looking.

        Never before the config's publication, and never at or before the latest
        due time claimed under an earlier config version (a renamed job must not
        rerun what its old name ran while some container still had the old config).
        """
        start = config.published_at if config.published_at else now - FIRST_TICK_LOOKBACK
        if epoch is not None and epoch.floor_ms:
            start = max(start, _from_ms(epoch.floor_ms))
        return start

    def _candidates(
        self,
        community: Community,
        job: Job,
        state: JobState | None,
        epoch: Epoch | None,
        config: Config,
        now: datetime,
    ) -> _JobWork:
        tz = zone(community.timezone)
        quiet = community.quiet_hours
        fresh = state is None or state.watermark is None
        if fresh:
            start = self._first_start(config, epoch, now)
        else:
            assert state is not None and state.watermark is not None
            start = state.watermark
            if state.disabled and job.enabled:
                # Re-enabled: the days it was off are not replayed.
                start = max(start, self._first_start(config, epoch, now))
        floor = now - MAX_LOOKBACK
        beyond = None
        if start < floor:
            if not fresh:
                beyond = (start, floor)
            start = floor
        candidates: dict[str, Occurrence] = {}
        retry: set[str] = set()
        pending = state.pending if state is not None else ()
        for p in pending:
            occ = reevaluate(community.id, job, tz, quiet, p.nominal_local, p.scheduled_utc, p.dst)
            candidates[occ.id] = occ
            if p.retry:
                retry.add(occ.id)
        dirty = False
        if job.enabled:
            for occ in occurrences_scheduled_between(community.id, job, tz, quiet, start, now):
                if occ.id not in candidates:
                    candidates[occ.id] = occ
                    # Deferred past now: it must be persisted as pending this tick.
                    dirty = dirty or occ.due_utc > now
        else:
            # A disabled job has no occurrences. The first time one would have been
            # due, its state says "disabled" (one write), so that re-enabling it
            # later starts from the enabling config, never replaying the days it was off.
            beyond = None
            if state is None or not state.disabled:
                dirty = bool(
                    occurrences_scheduled_between(community.id, job, tz, quiet, start, now)
                )
        ordered = sorted(candidates.values(), key=lambda o: (o.due_utc, o.nominal_local))
        due = [o for o in ordered if o.due_utc <= now]
        waiting = [o for o in ordered if o.due_utc > now]
        return _JobWork(community, job, due, waiting, beyond, dirty, frozenset(retry))

    # -- one job ------------------------------------------------------------------
    def _process(
        self,
        work: _JobWork,
        epoch: Epoch,
        now: datetime,
        report: TickReport,
        time_left: Callable[[], bool],
        remaining_ms: Callable[[], int] | None,
    ) -> list[Pending] | None:
        """Decide, run and record one job's due occurrences; return what stays pending.

        None: the config epoch moved while running (nothing more may run).
        """
        community, job = work.community, work.job
        if job.enabled:
            # An occurrence released for a retry is claimed again whatever the misfire
            # policy says: it started, so it must end in a recorded outcome, never be
            # left claimed because a later occurrence superseded it.
            fresh = [o for o in work.due if o.id not in work.retry]
            decisions = plan_tick(fresh, now, job.misfire) + [
                Decision(o, "run") for o in work.due if o.id in work.retry
            ]
            decisions.sort(key=lambda d: (d.occurrence.due_utc, d.occurrence.nominal_local))
        else:
            # Pending from before it was disabled: recorded, never run.
            decisions = [Decision(o, "missed", "the job was disabled") for o in work.due]
        decisions = self._summarise(work, decisions, now, report)
        carried: list[Occurrence] = []
        retry: set[str] = set()
        stale = False
        for decision in decisions:
            occ = decision.occurrence
            if stale or not time_left():
                carried.append(occ)  # not started: the next tick decides it again
                continue
            if decision.verdict != "run":
                self._record_unrun(decision, now, report)
                continue
            outcome = self._run(community, job, occ, report, epoch, remaining_ms)
            if outcome == "stale":
                stale = True
                carried.append(occ)
            elif outcome == "busy":
                carried.append(occ)  # another worker is running it: look again later
            elif outcome == "retry":
                carried.append(occ)  # released after a transient error: the next tick
                retry.add(occ.id)  # claims it again
        retry |= work.retry
        pending = [
            Pending(o.nominal_local, o.scheduled_utc, o.dst, o.id in retry)
            for o in [*carried, *work.waiting]
        ]
        return None if stale else pending

    def _summarise(
        self, work: _JobWork, decisions: list[Decision], now: datetime, report: TickReport
    ) -> list[Decision]:
        """One summary record for what is not recorded one by one.

        That is every occurrence older than the look-back (counted, not computed)
        and the oldest unrun ones beyond the catch-up bound (missed *and* skipped:
        after a long outage a job that drops quiet-hour messages must not write
        thousands of records either).
        """
        # At most MAX_CATCHUP occurrences per job and tick are run or recorded one by
        # one: the newest. Older unrun ones (all of them are: under "all" the rules
        # mark them missed, under "latest" only the newest runs) are summarised.
        overflow = [
            d for d in decisions[: max(0, len(decisions) - MAX_CATCHUP)] if d.verdict != "run"
        ]
        old_count, old_first, old_last = 0, None, None
        if work.beyond is not None:
            tz = zone(work.community.timezone)
            old_count, old_first, old_last = count_scheduled(
                work.job, tz, work.beyond[0], work.beyond[1], MAX_COUNTED
            )
        if not overflow and not old_count:
            return decisions
        community, job = work.community, work.job
        parts = []
        if old_count:
            more = "at least " if old_count >= MAX_COUNTED else ""
            parts.append(f"{more}{old_count} older than the {MAX_LOOKBACK.days}-day look-back")
        if overflow:
            parts.append(f"{len(overflow)} beyond the catch-up bound of {MAX_CATCHUP}")
        count = old_count + len(overflow)
        reason = f"{count} occurrences not run: " + ", ".join(parts)
        if old_first is not None and old_last is not None:
            first_key = old_first.strftime("%Y-%m-%dT%H:%M")
            first_instant, _ = resolve_local(old_first, zone(community.timezone))
            last_key = old_last.strftime("%Y-%m-%dT%H:%M")
        else:
            first_key = overflow[0].occurrence.key
            first_instant = overflow[0].occurrence.scheduled_utc
        if overflow:
            last_key = overflow[-1].occurrence.key
        first_id = f"{first_key}@{iso_utc(first_instant)}"
        if self._store.record_gap(
            community.id,
            job.id,
            first_id=first_id,
            first_key=first_key,
            last_key=last_key,
            scheduled_utc=first_instant,
            count=count,
            reason=reason,
            now=now,
        ):
            logger.warning("job %s/%s: %s", community.id, job.id, reason)
            report.occurrences.append(
                OccurrenceReport(
                    community.id,
                    job.id,
                    f"{first_key}..{last_key}",
                    iso_utc(first_instant),
                    iso_utc(first_instant),
                    "missed",
                    reason,
                    occurrence_id=f"GAP#{first_id}",
                )
            )
        dropped = {id(d) for d in overflow}
        return [d for d in decisions if id(d) not in dropped]

    def _record_unrun(self, decision: Decision, now: datetime, report: TickReport) -> None:
        occ = decision.occurrence
        if self._store.record_unrun(occ, status=decision.verdict, reason=decision.reason, now=now):
            logger.info(
                "occurrence %s/%s@%s %s: %s",
                occ.community_id,
                occ.job_id,
                occ.id,
                decision.verdict,
                decision.reason,
            )
            report.occurrences.append(self._report(occ, decision.verdict, decision.reason))

    def _lease_for(self, remaining_ms: Callable[[], int] | None) -> timedelta:
        """How long a claim made now is protected from takeover.

        The holder cannot run past its invocation's end (Lambda stops it, and every
        send is bounded by the remaining time), and another container's clock may
        be up to ``MAX_CLOCK_SKEW`` ahead: together they bound when the holder can
        still be sending.
        """
        if self._lease is not None:
            return self._lease
        run = MAX_RUN if remaining_ms is None else timedelta(milliseconds=remaining_ms())
        return max(run, timedelta(0)) + MAX_CLOCK_SKEW

    def _run(
        self,
        community: Community,
        job: Job,
        occ: Occurrence,
        report: TickReport,
        epoch: Epoch,
        remaining_ms: Callable[[], int] | None = None,
    ) -> str:
        """Claim and run one occurrence: ``done``, ``busy`` (held elsewhere), ``retry``
        (released after a transient error: the next tick runs it again) or ``stale``."""
        now = self._now()
        token = f"{self.worker_id}/{uuid.uuid4().hex[:12]}"
        claim = self._store.claim(
            occ, now=now, lease=self._lease_for(remaining_ms), worker=token, epoch=epoch.version
        )
        if claim.state in ("busy", "stale"):
            return claim.state
        if claim.state == "failed":  # every attempt crashed: this tick recorded it
            logger.error(
                "occurrence %s/%s@%s failed: %s", occ.community_id, occ.job_id, occ.id, claim.reason
            )
            report.occurrences.append(self._report(occ, "failed", claim.reason))
            return "done"
        if claim.state == "done":
            return "done"
        action = self._actions.get(job.action)
        status = "deferred" if occ.quiet == "deferred" else "fired"
        context = ActionContext(
            community,
            job,
            occ,
            now,
            claim.attempt,
            remaining_ms,
            still_holds=lambda: self._store.holds(occ, token),
        )
        try:
            if action is None:
                raise RuntimeError(f"no action {job.action!r} in this function")
            result = action(context)
        except Exception as exc:  # the action's failure is the occurrence's outcome
            error = _describe(exc)
            if is_transient(exc) and claim.transient_retries < MAX_TRANSIENT_RETRIES:
                return self._release(occ, token, claim.transient_retries + 1, error)
            logger.exception("occurrence %s/%s@%s failed", occ.community_id, occ.job_id, occ.id)
            if is_transient(exc):
                runs = claim.transient_retries + 1
                error = f"{error} (a transient error in each of {runs} runs)"
            result = ActionResult(ok=False, error=error)
        status = outcome_status(result, status)
        finished = self._store.finish(
            occ,
            status=status,
            now=self._now(),
            worker=token,
            outcome=dict(result.detail),
            reason=result.error,
        )
        if finished:
            if status in ("failed", UNCERTAIN):
                logger.error(
                    "occurrence %s/%s@%s %s: %s",
                    occ.community_id,
                    occ.job_id,
                    occ.id,
                    status,
                    result.error,
                )
            report.occurrences.append(self._report(occ, status, result.error or "", result.detail))
        return "done"

    def _release(self, occ: Occurrence, token: str, retry: int, error: str) -> str:
        """Give the claim back after a transient AWS error: the next tick retries it.

        If the release itself fails (DynamoDB still failing), the claim's lease
        expires on its own and a later tick takes it over, as after a crash.
        """
        logger.warning(
            "occurrence %s/%s@%s: transient error (retry %d), retried by a later tick: %s",
            occ.community_id,
            occ.job_id,
            occ.id,
            retry,
            error,
        )
        reason = f"run {retry} met a transient error: {error}"
        try:
            self._store.release(occ, worker=token, now=self._now(), reason=reason)
        except Exception:
            logger.exception("could not release %s/%s@%s", occ.community_id, occ.job_id, occ.id)
        return "retry"

    @staticmethod
    def _report(
        occ: Occurrence, status: str, reason: str, detail: Mapping[str, Any] | None = None
    ) -> OccurrenceReport:
        return OccurrenceReport(
            occ.community_id,
            occ.job_id,
            occ.key,
            iso_utc(occ.scheduled_utc),
            iso_utc(occ.due_utc),
            status,
            reason,
            detail or {},
            occurrence_id=occ.id,
        )


def _describe(exc: BaseException) -> str:
    """An exception as one line, with what PynamoDB wraps (its text omits the cause)."""
    text = f"{type(exc).__name__}: {exc}"
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        text += f" ({type(cause).__name__}: {cause})"
    return text[:1000]


def outcome_status(result: ActionResult, ran: str = "fired") -> str:
    """The occurrence's final status for an action's result (pure).

    ``uncertain`` when anything may or may not have reached a channel (it wins
    over ``failed``: ops must check the group before anything is posted again);
    ``failed`` when the action failed; otherwise ``ran`` (``fired``, or
    ``deferred`` for an occurrence deferred by quiet hours).
    """
    if result.uncertain or uncertain_channels(result.detail):
        return UNCERTAIN
    return ran if result.ok else "failed"


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
