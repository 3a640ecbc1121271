"""A lottery's cycles: when each one opens, closes and draws. Pure: no AWS, no clock.

A lottery has three crons in its community's zone (``opens``, ``closes``,
``draws``), each run by the dispatcher as a job of its own
(:func:`autopilot.config.model.lottery_job_id`). A **cycle** starts at a firing of
``opens``; it closes at the first ``closes`` firing *strictly after* the open and
draws at the first ``draws`` firing *at or after* that close.

Firings are the dispatcher's occurrences, computed by the same code
(:func:`autopilot.scheduler.rules.occurrences_scheduled_between`: the nominal local
minute from croniter, mapped to an instant by ``resolve_local`` with its DST
rules, several skipped minutes coalesced into one). So the close occurrence's
``scheduled_utc`` *is* ``cycle.closes_utc``, and the open occurrence's nominal local
minute names the cycle: its **draw id** is ``<lottery id>-<YYYYMMDDTHHMM>`` of that
minute (``weekly-20260302T0000``), unique per cycle and readable back with
:func:`cycle_of_draw_id`.

:func:`schedule_problems` is what config validation reports about a schedule: over
the next cycles from a fixed reference (never the clock), each cycle must close
before the next one opens, its draw must come after its close, and the next open
must not come before its draw. :func:`lottery_schedule_issues` adds what the cycles
imply (impossible eligibility, steps inside quiet hours); ``autopilot config
validate`` passes it to :func:`autopilot.config.model.semantic_issues` (the config
model cannot import this module: the scheduler's rules import the model).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from autopilot.config.model import Community, Job, Lottery, MisfirePolicy
from autopilot.errors import ConfigIssue
from autopilot.lottery.eligibility import impossible_rules, window_for
from autopilot.scheduler.rules import Occurrence, occurrences_scheduled_between, resolve_local
from autopilot.timeutil import local_wall, zone

__all__ = [
    "CHECK_CYCLES",
    "CHECK_START_LOCAL",
    "DRAW_ID_TIME_FORMAT",
    "Cycle",
    "check_schedule",
    "check_start",
    "cycle_at",
    "cycle_of_draw_id",
    "cycle_opened_at",
    "draw_id_of",
    "lottery_schedule_issues",
    "next_firing",
    "schedule_problems",
]

#: How the open's nominal local minute is written in a draw id.
DRAW_ID_TIME_FORMAT = "%Y%m%dT%H%M"
_DRAW_ID = re.compile(r"^(?P<lottery>.+)-(?P<when>\d{8}T\d{4})$")
#: How far ahead a firing is looked for: a cron that fires less than once in five
#: years (``0 0 29 2 *`` fires every four) is treated as never firing.
HORIZON = timedelta(days=5 * 366 + 2)
_FIRST_WINDOW = timedelta(days=2)
_ONE_TICK = timedelta(microseconds=1)
_STEPS = ("opens", "closes", "draws")


@dataclass(frozen=True)
class Cycle:
    """One cycle of a lottery: its draw id and the instants of its three steps (UTC)."""

    lottery_id: str
    draw_id: str  # f"{lottery_id}-{opens_local:%Y%m%dT%H%M}"
    opens_utc: datetime
    closes_utc: datetime  # first closes-firing strictly after opens
    draws_utc: datetime  # first draws-firing at or after closes


def _job(cron: str) -> Job:
    # A stand-in job: only the cron matters; ``ignore`` and no message action mean
    # quiet hours never move a firing (the lottery jobs are derived the same way).
    return Job("lottery-step", cron, "lottery_step", {}, MisfirePolicy(), "ignore")


def _firings(cron: str, tz: ZoneInfo, start_utc: datetime, end_utc: datetime) -> list[Occurrence]:
    """The dispatcher's occurrences of ``cron`` scheduled in ``(start_utc, end_utc]``."""
    return occurrences_scheduled_between("", _job(cron), tz, None, start_utc, end_utc)


def next_firing(
    cron: str, tz: ZoneInfo, after_utc: datetime, horizon: timedelta = HORIZON
) -> Occurrence | None:
    """The first occurrence of ``cron`` scheduled strictly after ``after_utc`` (within
    ``horizon``), exactly as the dispatcher would run it; ``None`` if none."""
    start = after_utc
    window = _FIRST_WINDOW
    while start - after_utc < horizon:
        end = min(start + window, after_utc + horizon)
        found = _firings(cron, tz, start, end)
        if found:
            return found[0]
        start = end
        window = min(window * 2, timedelta(days=64))
    return None


def _previous_firing(
    cron: str, tz: ZoneInfo, at_utc: datetime, horizon: timedelta = HORIZON
) -> Occurrence | None:
    """The last occurrence of ``cron`` scheduled at or before ``at_utc`` (within ``horizon``)."""
    end = at_utc
    window = _FIRST_WINDOW
    while at_utc - end < horizon:
        start = max(end - window, at_utc - horizon)
        found = _firings(cron, tz, start, end)
        if found:
            return found[-1]
        end = start
        window = min(window * 2, timedelta(days=64))
    return None


def draw_id_of(lottery_id: str, opens_nominal_local: datetime) -> str:
    """The draw id of the cycle whose open occurrence has this nominal local minute."""
    return f"{lottery_id}-{opens_nominal_local.strftime(DRAW_ID_TIME_FORMAT)}"


def _cycle(lottery: Lottery, tz: ZoneInfo, opened: Occurrence) -> Cycle | None:
    close = next_firing(lottery.closes, tz, opened.scheduled_utc)
    if close is None:
        return None
    draw = next_firing(lottery.draws, tz, close.scheduled_utc - _ONE_TICK)
    if draw is None:
        return None
    return Cycle(
        lottery_id=lottery.id,
        draw_id=draw_id_of(lottery.id, opened.nominal_local),
        opens_utc=opened.scheduled_utc,
        closes_utc=close.scheduled_utc,
        draws_utc=draw.scheduled_utc,
    )


def _open_at(lottery: Lottery, tz: ZoneInfo, opens_utc: datetime) -> Occurrence | None:
    """The open occurrence scheduled exactly at ``opens_utc`` (``None``: not a firing)."""
    found = _firings(lottery.opens, tz, opens_utc - _ONE_TICK, opens_utc)
    return found[0] if found else None


def cycle_opened_at(lottery: Lottery, tz: ZoneInfo, opens_utc: datetime) -> Cycle:
    """The cycle that opens at ``opens_utc`` (the open occurrence's ``scheduled_utc``).

    Raises ``ValueError`` when ``opens_utc`` is not a firing of ``lottery.opens``, or
    when ``closes`` or ``draws`` never fire after it (config validation refuses both).
    """
    opened = _open_at(lottery, tz, opens_utc)
    if opened is None:
        raise ValueError(
            f"lottery {lottery.id!r}: {opens_utc.astimezone(UTC).isoformat()} is not a "
            f"firing of opens {lottery.opens!r}"
        )
    cycle = _cycle(lottery, tz, opened)
    if cycle is None:
        raise ValueError(
            f"lottery {lottery.id!r}: no close and draw after the open at "
            f"{opens_utc.astimezone(UTC).isoformat()}"
        )
    return cycle


def cycle_at(lottery: Lottery, tz: ZoneInfo, at_utc: datetime) -> Cycle | None:
    """The cycle current at ``at_utc``: the one that opened last, at or before it.

    It may already be closed or drawn (until the next open). ``None`` when
    ``opens`` has not fired in the look-back horizon (five years) before ``at_utc``.
    """
    opened = _previous_firing(lottery.opens, tz, at_utc)
    return None if opened is None else _cycle(lottery, tz, opened)


def cycle_of_draw_id(lottery: Lottery, tz: ZoneInfo, draw_id: str) -> Cycle | None:
    """The cycle named ``draw_id`` (as :func:`draw_id_of` writes it), or ``None`` if it
    names another lottery, is malformed, or no open occurrence has that minute."""
    match = _DRAW_ID.match(draw_id) if isinstance(draw_id, str) else None
    if match is None or match.group("lottery") != lottery.id:
        return None
    try:
        nominal = datetime.strptime(match.group("when"), DRAW_ID_TIME_FORMAT)
    except ValueError:
        return None
    instant, _ = resolve_local(nominal, tz)
    # The minute must be the one the dispatcher names the open occurrence by (a
    # skipped minute coalesced into another one names no cycle).
    opened = _open_at(lottery, tz, instant)
    if opened is None or opened.nominal_local != nominal:
        return None
    return _cycle(lottery, tz, opened)


def _local(moment: datetime, tz: ZoneInfo) -> str:
    return f"{local_wall(moment, tz):%a %Y-%m-%d %H:%M}"


def schedule_problems(
    lottery: Lottery, tz: ZoneInfo, start_utc: datetime, cycles: int = 60
) -> list[tuple[str, str]]:
    """What is wrong with the lottery's schedule, as ``(field, message)`` pairs
    (:func:`check_schedule`'s problems)."""
    return check_schedule(lottery, tz, start_utc, cycles)[0]


def check_schedule(
    lottery: Lottery, tz: ZoneInfo, start_utc: datetime, cycles: int = 60
) -> tuple[list[tuple[str, str]], list[Cycle]]:
    """What is wrong with the lottery's schedule, as ``(field, message)`` pairs, and
    the cycles looked at (complete only when there is no problem).

    ``field`` is ``opens``, ``closes`` or ``draws`` (the key under ``schedule``).
    Looks at the first ``cycles`` cycles opening at or after ``start_utc`` (a fixed
    reference: config validation uses the published time or 2026-01-01, never the
    clock), and reports each kind of problem once, with its first example:

    * a cron that never fires (within five years) after an open;
    * the lottery opens again before (or when) a cycle closes;
    * a draw firing between an open and its close, or at the close itself (the
      draw must come after the close: entrants are frozen first);
    * the next open before this cycle's draw.
    """
    problems: dict[tuple[str, str], str] = {}
    found: list[Cycle] = []

    def add(field: str, kind: str, message: str) -> None:
        problems.setdefault((field, kind), message)

    opened = next_firing(lottery.opens, tz, start_utc - _ONE_TICK)  # an open at the start counts
    if opened is None:
        return [("opens", f"opens {lottery.opens!r} never fires")], found
    for _ in range(cycles):
        following = next_firing(lottery.opens, tz, opened.scheduled_utc)
        close = next_firing(lottery.closes, tz, opened.scheduled_utc)
        if close is None:
            add("closes", "never", f"closes {lottery.closes!r} never fires after an open")
            break
        opens_at, closes_at = opened.scheduled_utc, close.scheduled_utc
        if following is not None and following.scheduled_utc <= closes_at:
            add(
                "closes",
                "overlap",
                f"the lottery opens at {_local(opens_at, tz)} and again at "
                f"{_local(following.scheduled_utc, tz)} before it closes at "
                f"{_local(closes_at, tz)}: each cycle must close before the next opens",
            )
        early = _firings(lottery.draws, tz, opens_at, closes_at)
        if early:
            at_close = early[-1].scheduled_utc == closes_at
            add(
                "draws",
                "at-close" if at_close else "before-close",
                f"draws at {_local(early[0].scheduled_utc, tz)}, "
                + (
                    "the same minute the lottery closes"
                    if at_close and len(early) == 1
                    else f"before the lottery closes at {_local(closes_at, tz)}"
                )
                + ": the draw must come after the close (entrants are frozen at the close)",
            )
        draw = next_firing(lottery.draws, tz, closes_at - _ONE_TICK)
        if draw is None:
            add("draws", "never", f"draws {lottery.draws!r} never fires after a close")
            break
        if following is not None and following.scheduled_utc < draw.scheduled_utc:
            add(
                "opens",
                "before-draw",
                f"the next cycle opens at {_local(following.scheduled_utc, tz)}, before this "
                f"cycle draws at {_local(draw.scheduled_utc, tz)} (it closed at "
                f"{_local(closes_at, tz)}): the next open must not come before the draw",
            )
        found.append(
            Cycle(
                lottery_id=lottery.id,
                draw_id=draw_id_of(lottery.id, opened.nominal_local),
                opens_utc=opens_at,
                closes_utc=closes_at,
                draws_utc=draw.scheduled_utc,
            )
        )
        if following is None:
            break
        opened = following
    return [(field, message) for (field, _), message in problems.items()], found


# -- config validation ------------------------------------------------------------------------

#: Where the schedule checks start when the document has no ``published_at``: a
#: fixed local time, never the clock, so validation answers the same every day.
CHECK_START_LOCAL = datetime(2026, 1, 1)
#: How many cycles the checks look at: a weekly lottery over a year, so both DST
#: changes of every zone are seen.
CHECK_CYCLES = 60


def check_start(tz: ZoneInfo, published_at: datetime | None) -> datetime:
    """Where config validation starts looking at cycles: ``published_at``, else
    2026-01-01 00:00 local (its first instant)."""
    if published_at is not None:
        return published_at.astimezone(UTC)
    return CHECK_START_LOCAL.replace(tzinfo=tz, fold=0).astimezone(UTC)


def lottery_schedule_issues(
    lottery: Lottery, community: Community, published_at: datetime | None
) -> list[ConfigIssue]:
    """What config validation reports about a lottery's schedule, paths relative to
    the lottery (a :data:`autopilot.config.model.LotteryCheck`).

    Over :data:`CHECK_CYCLES` cycles from :func:`check_start`: the
    :func:`schedule_problems` (errors at ``schedule.<field>``); then, for the
    cycle with the shortest window, :func:`~autopilot.lottery.eligibility.impossible_rules`
    (under ``eligibility``, ``weight`` and ``weight_cap``); then a warning for each
    step whose time falls inside the community's quiet hours (lottery steps ignore
    them, so the post goes out then). Call it only with valid crons and zone.
    """
    tz = zone(community.timezone)
    problems, cycles = check_schedule(lottery, tz, check_start(tz, published_at), CHECK_CYCLES)
    issues = [ConfigIssue(("schedule", key), message) for key, message in problems]
    if problems or not cycles:
        return issues  # the windows below would be meaningless
    windows = [
        window_for(c.opens_utc, c.closes_utc, community.timezone, community.day_boundary)
        for c in cycles
    ]
    shortest = min(windows, key=lambda w: (w.day_count, w.opens_at))
    tier_ids = [t.id for t in community.checkins.tiers]
    for issue in impossible_rules(
        lottery.rules, shortest, tier_ids=tier_ids, weighting=lottery.weighting
    ):
        top = issue.path[0] if issue.path else ""
        where = issue.path if top in ("weight", "weight_cap") else ("eligibility", *issue.path)
        issues.append(ConfigIssue(where, issue.message, issue.severity))
    quiet = community.quiet_hours
    if quiet is None or quiet.start == quiet.end or not lottery.enabled:
        return issues  # a paused lottery posts nothing: its quiet-hours warning is noise
    for key in _STEPS:
        for cycle in cycles:
            wall = local_wall(getattr(cycle, f"{key}_utc"), tz)
            if quiet.contains(wall.time()):
                issues.append(
                    ConfigIssue(
                        ("schedule", key),
                        f"{key} fires at {wall:%H:%M} local ({wall:%a %Y-%m-%d}), inside quiet "
                        f"hours {quiet.start:%H:%M}–{quiet.end:%H:%M}: lottery steps ignore "
                        "quiet hours, so the lottery's post goes out then",
                        "warning",
                    )
                )
                break
    return issues
