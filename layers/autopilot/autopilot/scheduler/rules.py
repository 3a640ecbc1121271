"""Pure scheduling rules: occurrences of a cron job in a community's zone.

Cron expressions are evaluated on *naive local wall-clock time* with croniter, so
each nominal time (say ``2026-11-01 01:30``) appears exactly once whatever the
zone does. Each nominal time is then mapped to one UTC instant:

* **ordinary time** — the instant it denotes;
* **repeated time** (fall-back overlap) — the *first* instant (``fold=0``, still on
  summer time). The repeated wall-clock hour does not fire again, so a daily job
  runs once and an hourly job runs once per wall-clock hour (as EventBridge
  Scheduler does);
* **skipped time** (spring-forward gap) — the instant the gap ends (``02:30`` on a
  New York spring-forward day fires at 03:00 EDT, as croniter 7 reports). Several
  nominal times in one gap coalesce into a single occurrence at that instant, and
  into none if the job also has a real occurrence exactly there, so a ``*/15`` job
  never fires a burst at 03:00.

The identity of an occurrence is ``(community, job, nominal local minute, the UTC
instant it maps to)`` (:attr:`Occurrence.id`). The nominal minute is what makes a
repeated 01:30 one occurrence, not two (it maps to one instant); the instant is what
makes 08:00 in Tokyo and 08:00 in Los Angeles on the same date two occurrences, so a
community that changes its timezone gets the new zone's posts. A zone renamed to an
alias with the same rules (Asia/Calcutta to Asia/Kolkata) keeps every identity.

Quiet hours then shift or drop message jobs: an occurrence whose instant falls in
the window is *deferred* to the window's end (its ``due_utc``) or *dropped*.
Because every mapping here is monotone in the nominal time, the set of
occurrences due in ``(a, c]`` is exactly the union of those due in ``(a, b]`` and
``(b, c]``: any partition of time into ticks sees every occurrence once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, croniter

from autopilot.config.model import Job, MisfirePolicy, QuietHours
from autopilot.timeutil import local_wall

# Catch-up bound: at most this many missed occurrences of one job are run
# (policy "all") or recorded one by one; older ones are summarised in one record.
# Kubernetes CronJob refuses to start past 100 missed schedules; we run the newest
# 100 instead and say so, because a snapshot job should still catch up.
MAX_CATCHUP = 100
# How far back a tick looks at most. A dispatcher down for longer than this
# resumes from (now - MAX_LOOKBACK); everything older is not recorded.
MAX_LOOKBACK = timedelta(days=7)
# Widest UTC-offset change of any zone (Antarctica/Troll switches by 2 h), plus slack.
_DST_MARGIN = timedelta(hours=3)

DST_GAP = "gap"
DST_OVERLAP = "overlap"


@dataclass(frozen=True)
class Occurrence:
    """One scheduled run of a job.

    ``nominal_local`` is the naive wall-clock time croniter produced (the identity);
    ``scheduled_utc`` the instant it maps to; ``due_utc`` when it actually becomes
    due (later than ``scheduled_utc`` only when deferred by quiet hours).
    ``quiet`` is ``None``, ``"deferred"`` or ``"dropped"``; ``dst`` is ``None``,
    ``"gap"`` or ``"overlap"``.
    """

    community_id: str
    job_id: str
    nominal_local: datetime
    scheduled_utc: datetime
    due_utc: datetime
    quiet: str | None = None
    dst: str | None = None

    @property
    def key(self) -> str:
        """The nominal local minute (what people read: ``2026-11-27T07:30``)."""
        return self.nominal_local.strftime("%Y-%m-%dT%H:%M")

    @property
    def id(self) -> str:
        """The occurrence's identity within its job: nominal local minute and UTC instant.

        Every exactly-once record (claim, post log, platform idempotency key) is
        keyed by it, never by ``due_utc``: several occurrences deferred to the same
        moment stay several occurrences.
        """
        return f"{self.key}@{self.scheduled_utc.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"


@dataclass(frozen=True)
class Decision:
    """What a tick does with a due occurrence: ``run``, ``missed`` or ``skipped``."""

    occurrence: Occurrence
    verdict: str
    reason: str = ""


def resolve_local(nominal: datetime, tz: ZoneInfo) -> tuple[datetime, str | None]:
    """Map a naive local wall-clock time to its UTC instant and a DST note.

    Repeated times map to their first instant; skipped times to the end of the gap.
    """
    first = nominal.replace(tzinfo=tz, fold=0).astimezone(UTC)
    second = nominal.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if first == second:
        return first, None
    early, late = min(first, second), max(first, second)
    if local_wall(early, tz) == nominal and local_wall(late, tz) == nominal:
        return early, DST_OVERLAP
    # Skipped wall time: the gap ends at the transition, which lies in (early, late].
    # Bisect to the second; transitions are whole seconds in every tzdata rule.
    lo, hi = early, late
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        mid = mid.replace(microsecond=0)
        if mid <= lo:
            break
        if local_wall(mid, tz) > nominal:
            hi = mid
        else:
            lo = mid
    return hi, DST_GAP


def _quiet_end_after(moment_utc: datetime, quiet: QuietHours, tz: ZoneInfo) -> datetime:
    """The first instant at or after ``moment_utc`` where the quiet window has ended."""
    wall = local_wall(moment_utc, tz)
    end_today = datetime.combine(wall.date(), quiet.end)
    end_wall = end_today if end_today > wall else end_today + timedelta(days=1)
    instant, _ = resolve_local(end_wall, tz)
    return max(instant, moment_utc)


def _nominal_times(cron: str, start_wall: datetime, end_wall: datetime) -> Iterator[datetime]:
    """Naive wall-clock times of ``cron`` in ``(start_wall, end_wall]``."""
    it = croniter(cron, start_wall)
    while True:
        nominal = it.get_next(datetime)
        if nominal > end_wall:
            return
        yield nominal


def occurrences_between(
    community_id: str,
    job: Job,
    tz: ZoneInfo,
    quiet: QuietHours | None,
    start_utc: datetime,
    end_utc: datetime,
) -> list[Occurrence]:
    """Occurrences of ``job`` whose ``due_utc`` lies in ``(start_utc, end_utc]``.

    Sorted by ``(due_utc, nominal_local)``. Pure: the same arguments always give
    the same list, and adjacent windows never share an occurrence.
    """
    return _occurrences(community_id, job, tz, quiet, start_utc, end_utc, by_due=True)


def occurrences_scheduled_between(
    community_id: str,
    job: Job,
    tz: ZoneInfo,
    quiet: QuietHours | None,
    start_utc: datetime,
    end_utc: datetime,
) -> list[Occurrence]:
    """Occurrences of ``job`` whose ``scheduled_utc`` lies in ``(start_utc, end_utc]``.

    The dispatcher's watermark moves over scheduled instants: an occurrence whose
    instant has passed is decided, or persisted as pending while quiet hours defer
    it, so that a config change while it waits cannot make it vanish. Sorted by
    ``(scheduled_utc, nominal_local)``; adjacent windows never share an occurrence.
    """
    return _occurrences(community_id, job, tz, quiet, start_utc, end_utc, by_due=False)


def _apply_quiet(occ: Occurrence, job: Job, tz: ZoneInfo, quiet: QuietHours | None) -> Occurrence:
    """``occ`` with quiet hours applied: dropped, deferred to the window's end, or as is."""
    quiet_policy = job.quiet_hours if (quiet is not None and job.sends_messages) else "ignore"
    if (
        quiet_policy != "ignore"
        and quiet is not None
        and quiet.contains(local_wall(occ.scheduled_utc, tz).time())
    ):
        if quiet_policy == "drop":
            return replace(occ, quiet="dropped", due_utc=occ.scheduled_utc)
        return replace(
            occ, quiet="deferred", due_utc=_quiet_end_after(occ.scheduled_utc, quiet, tz)
        )
    return replace(occ, quiet=None, due_utc=occ.scheduled_utc)


def reevaluate(
    community_id: str,
    job: Job,
    tz: ZoneInfo,
    quiet: QuietHours | None,
    nominal_local: datetime,
    scheduled_utc: datetime,
    dst: str | None,
) -> Occurrence:
    """A persisted occurrence under the *current* config: quiet hours decide its due time.

    The identity (nominal minute and instant) is kept; only whether and until when
    it is deferred follows the config, so shortening quiet hours or switching the
    job to ``ignore`` while it waits makes it due at once instead of losing it.
    """
    occ = Occurrence(community_id, job.id, nominal_local, scheduled_utc, scheduled_utc, None, dst)
    return _apply_quiet(occ, job, tz, quiet)


def count_scheduled(
    job: Job, tz: ZoneInfo, start_utc: datetime, end_utc: datetime, cap: int
) -> tuple[int, datetime | None, datetime | None]:
    """How many occurrences of ``job`` are scheduled in ``(start_utc, end_utc]`` (at most
    ``cap``), with the first and last nominal local times counted.

    Used to summarise occurrences older than the look-back, which are never
    computed one by one (a dispatcher down for months must not iterate them all).
    """
    count = 0
    first: datetime | None = None
    last: datetime | None = None
    start_wall = local_wall(start_utc, tz)
    end_wall = local_wall(end_utc, tz)
    for nominal in _nominal_times(job.cron, start_wall, end_wall):
        count += 1
        first = first or nominal
        last = nominal
        if count >= cap:
            break
    return count, first, last


def _occurrences(
    community_id: str,
    job: Job,
    tz: ZoneInfo,
    quiet: QuietHours | None,
    start_utc: datetime,
    end_utc: datetime,
    *,
    by_due: bool,
) -> list[Occurrence]:
    if end_utc <= start_utc:
        return []
    quiet_policy = job.quiet_hours if (quiet is not None and job.sends_messages) else "ignore"
    # Deferral can push an occurrence up to a day past its instant: look back that far.
    deferred = by_due and quiet_policy == "defer"
    lookback = _DST_MARGIN + (timedelta(days=1) if deferred else timedelta(0))
    start_wall = local_wall(start_utc - lookback, tz)
    end_wall = local_wall(end_utc, tz) + _DST_MARGIN

    by_instant: dict[datetime, list[tuple[datetime, str | None]]] = {}
    for nominal in _nominal_times(job.cron, start_wall, end_wall):
        instant, dst = resolve_local(nominal, tz)
        by_instant.setdefault(instant, []).append((nominal, dst))

    result: list[Occurrence] = []
    for instant, group in by_instant.items():
        # Coalesce skipped times: one occurrence per instant, preferring a real one.
        real = [g for g in group if g[1] != DST_GAP]
        nominal, dst = real[0] if real else group[0]
        occ = _apply_quiet(
            Occurrence(community_id, job.id, nominal, instant, instant, None, dst), job, tz, quiet
        )
        moment = occ.due_utc if by_due else occ.scheduled_utc
        if start_utc < moment <= end_utc:
            result.append(occ)
    if by_due:
        result.sort(key=lambda o: (o.due_utc, o.nominal_local))
    else:
        result.sort(key=lambda o: (o.scheduled_utc, o.nominal_local))
    return result


def first_scheduled_after(
    job: Job,
    tz: ZoneInfo,
    after_utc: datetime,
    horizon: timedelta = timedelta(days=366),
) -> datetime:
    """The ``scheduled_utc`` of the job's first occurrence scheduled strictly after ``after_utc``.

    A nominal time maps to the first instant at which the wall clock reaches it
    (:func:`resolve_local`: ordinary, repeated and skipped times alike), so the
    mapping is monotone and no nominal time at or before ``local_wall(after_utc)``
    maps after ``after_utc``: the first nominal time after it whose instant is
    later is the answer (coalescing in a gap changes which nominal time names an
    instant, never the instants). With none within ``horizon`` it answers
    ``after_utc + horizon``: never later than the true answer, so a caller using
    it as a lower bound (the dispatcher's wake) simply looks again then.
    """
    limit = after_utc + horizon
    limit_wall = local_wall(limit, tz) + _DST_MARGIN
    it = croniter(job.cron, local_wall(after_utc, tz))
    while True:
        try:
            nominal = it.get_next(datetime)
        except CroniterBadDateError:  # no such date within croniter's search range
            return limit
        if nominal > limit_wall:
            return limit
        instant, _ = resolve_local(nominal, tz)
        if instant > after_utc:
            return min(instant, limit)


def next_due(
    community_id: str,
    job: Job,
    tz: ZoneInfo,
    quiet: QuietHours | None,
    after_utc: datetime,
    horizon: timedelta = timedelta(days=366),
) -> Occurrence | None:
    """The first occurrence due strictly after ``after_utc`` (within ``horizon``)."""
    window = timedelta(hours=6)
    start = after_utc
    while start - after_utc < horizon:
        found = occurrences_between(community_id, job, tz, quiet, start, start + window)
        if found:
            return found[0]
        start += window
        window = min(window * 2, timedelta(days=32))
    return None


def plan_tick(
    due: Sequence[Occurrence], now_utc: datetime, misfire: MisfirePolicy
) -> list[Decision]:
    """Decide, for one job, what to do with the occurrences due since its watermark.

    ``due`` is sorted oldest first. Dropped occurrences are ``skipped``. Under
    ``latest`` only the newest runnable occurrence may run, and only if it is at
    most ``grace`` late; the others are ``missed`` (never a burst of stale posts).
    Under ``all`` every occurrence runs oldest first, bounded by ``MAX_CATCHUP``.
    """
    decisions: list[Decision] = []
    runnable: list[Occurrence] = []
    for occ in due:
        if occ.quiet == "dropped":
            decisions.append(Decision(occ, "skipped", "quiet hours (job drops messages)"))
        else:
            runnable.append(occ)
    if misfire.policy == "all":
        overflow = max(0, len(runnable) - MAX_CATCHUP)
        for occ in runnable[:overflow]:
            decisions.append(Decision(occ, "missed", f"beyond the catch-up bound of {MAX_CATCHUP}"))
        for occ in runnable[overflow:]:
            decisions.append(Decision(occ, "run"))
    elif runnable:
        *older, newest = runnable
        for occ in older:
            decisions.append(Decision(occ, "missed", "superseded by a later occurrence"))
        late = now_utc - newest.due_utc
        if late <= misfire.grace:
            decisions.append(Decision(newest, "run"))
        else:
            decisions.append(
                Decision(
                    newest,
                    "missed",
                    f"{int(late.total_seconds())}s late, beyond the grace "
                    f"window of {int(misfire.grace.total_seconds())}s",
                )
            )
    decisions.sort(key=lambda d: (d.occurrence.due_utc, d.occurrence.nominal_local))
    return decisions
