"""Pure reminder rules: kinds, selection plans, the at-most-once key, quiet hours, rechecks.

Nothing here reads the clock, the environment or AWS: instants, zones, the day
boundary and the member's facts come in as arguments. The reminder service
(selection in the dispatcher, sending in the ReminderFunction) joins these rules
to the stores and channels.

Days
----
Every "day" is a **check-in day** exactly as in :mod:`autopilot.checkins.rules`
(:func:`~autopilot.checkins.rules.checkin_day`): the local date after shifting the
local wall-clock time back by the community's day boundary. The community's zone
decides the day of a *selection*; a member's **own** zone, when set and valid
(otherwise the community's), decides that member's day for the at-most-once key,
the recheck and quiet hours of their DM (:func:`member_zone`, :func:`member_today`).

Kinds and specs
---------------
* ``not_checked_in`` (:class:`NotCheckedInSpec` ``active_days`` N): *active*
  members (last check-in day within the last N days: ``[today - N, today - 1]``)
  who have not checked in today.
* ``streak_at_risk`` (:class:`StreakAtRiskSpec` ``min_streak`` N): members whose
  last check-in day is yesterday with a streak of at least N; the streak ends
  tonight unless they check in today. Whether a freeze would bridge tonight's miss
  is :attr:`StreakRisk.freeze_covers` (:func:`streak_risk`), with the check-in
  rules' semantics: missing today leaves ``today - last_day`` missed days at the
  next check-in, bridged when the member holds at least that many freezes.
* ``inactive`` (:class:`InactiveSpec` ``days`` D): members whose last check-in day
  is **exactly** D days ago. A member is selected on one day per last check-in day
  only, so a win-back nudge goes out at most once per D days (a second nudge needs
  a check-in on some day X >= the first nudge's day, then D more days).
* ``lottery`` (:class:`LotterySpec`): the ``entrants`` of a lottery that draws
  today, or its ``eligible_non_entrants`` (active members who have not entered).

Selection plans (no Scan)
-------------------------
Selection reads a **sparse index of members by last check-in day**: partition
key ``<community>#<shard>`` (:func:`index_partition`; a member's shard is
:func:`shard_of`, a stable hash of the member id, so a few shards spread the
write load of a busy day), sort key ``<last_day ISO>#<member id>``
(:func:`index_sort_key`); it projects the streak, freezes, zone and opt-outs so
selection needs no GetItem per member.
:func:`plan_selection` turns a spec into a :class:`SelectionPlan`: the inclusive
range of last check-in days to Query in each shard (``BETWEEN`` the two strings of
:meth:`SelectionPlan.sort_key_range`) and an optional post-filter.

* ``not_checked_in`` reads days ``[today - N, today - 1]``: exactly the active
  members who have not checked in today (members who checked in today sort under
  ``today`` and are never read).
* ``streak_at_risk`` reads day ``today - 1`` with the post-filter
  ``streak >= N`` (a FilterExpression on the projected streak): it reads the
  members who checked in yesterday but not yet today, a superset of the result
  that shrinks to it as N falls; members bridging a longer gap with freezes are
  not selected.
* ``inactive`` reads the single day ``today - D``: exactly the result.
* ``lottery`` entrants are read from the lottery's entries (one Query of the
  cycle's entries partition), not from this index; eligible non-entrants read
  days ``[today - N, today]`` with the post-filter ``not_entered`` (the service
  removes the entrants it read for the cycle).

Each Query returns up to 1 MB per page, so its cost is (number of shards) +
(bytes of the items in the range / 1 MB) requests: proportional to the members
in the range, never to the table. For ``not_checked_in`` and ``inactive`` the
items read are exactly the recipients.

The range is in the **community's** days (the day of the occurrence's scheduled
instant); :func:`still_due` then judges each member on their own day. A member
whose own zone runs a day *ahead* of the community's at the job's time, and who
checked in on the community's today (their yesterday), sorts under ``today`` and
is not selected that run (widening the range to ``today`` would read everyone who
checked in today): a known limit, met only by members far east of their community.

At most once
------------
:func:`reminder_key` is the key of the conditional write (``attribute_not_exists``)
made before a send: one per (community, job, member's local day, member). The
local day is the member's day at the job occurrence's *scheduled* instant, carried
with the queued message, so a redelivery, a duplicated tick or a deferral keeps
the same key even when it is processed after the day boundary.

Quiet hours
-----------
:func:`quiet_decision`: a send whose local wall-clock time (in the member's zone
for a DM, the community's for a group message) lies in the quiet window is
*deferred* to the first instant the window has ended or *dropped*, per the job's
policy (``defer`` or ``drop``; reminders never ``ignore`` quiet hours). The end
is computed on the wall clock and mapped to an instant in the zone: an end time
skipped by a spring-forward jump maps to the end of the gap, a repeated one to
its first pass, so a deferral is never an hour late or early on a DST night.

Recheck before send
-------------------
:func:`still_due` re-decides, at send time, with the member's current facts,
whether the reminder still applies, and names the reason it is skipped
(:class:`SkipReason`): checked in since the selection, opted out, left, streak
lost, lottery entered or closed, the reminder's day over, or quiet hours.
Every condition is judged on the reminder's day (the member's day in its key):
"not checked in today", "ends tonight" and a lottery reminder are skipped
(``day_over``) once the member's day has moved on, so a quiet-hours deferral
that would end on the member's next day is a skip (``quiet_hours``) at once;
an ``inactive`` nudge stays true and may be deferred past the day boundary.

Conversion and counters
-----------------------
:func:`converted`: a check-in in ``[reminded_at, reminded_at + window)``.
Per job and day the outcomes are counted under :data:`SELECTED`, :data:`SENT`,
``skipped_<reason>`` (:func:`skipped_counter`), :data:`FAILED` and
:data:`CONVERTED`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from autopilot.checkins.rules import checkin_day
from autopilot.config.model import QuietHours
from autopilot.scheduler.rules import resolve_local
from autopilot.timeutil import local_wall, zone


class ReminderKind(StrEnum):
    """What a reminder job reminds about (``kind`` in the config)."""

    NOT_CHECKED_IN = "not_checked_in"
    STREAK_AT_RISK = "streak_at_risk"
    INACTIVE = "inactive"
    LOTTERY = "lottery"


class LotteryAudience(StrEnum):
    """Who a ``lottery`` reminder goes to."""

    ENTRANTS = "entrants"
    ELIGIBLE_NON_ENTRANTS = "eligible_non_entrants"


def _positive(value: object, name: str) -> None:
    # bool is an int: True must not pass as 1 day.
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


@dataclass(frozen=True)
class NotCheckedInSpec:
    """Remind active members (last check-in within ``active_days`` days) not checked in today."""

    active_days: int = 7
    kind: ReminderKind = field(default=ReminderKind.NOT_CHECKED_IN, init=False)

    def __post_init__(self) -> None:
        _positive(self.active_days, "not_checked_in.active_days")


@dataclass(frozen=True)
class StreakAtRiskSpec:
    """Remind members whose streak of at least ``min_streak`` days ends tonight."""

    min_streak: int = 3
    kind: ReminderKind = field(default=ReminderKind.STREAK_AT_RISK, init=False)

    def __post_init__(self) -> None:
        _positive(self.min_streak, "streak_at_risk.min_streak")


@dataclass(frozen=True)
class InactiveSpec:
    """Win back members whose last check-in day is exactly ``days`` days ago."""

    days: int = 7
    kind: ReminderKind = field(default=ReminderKind.INACTIVE, init=False)

    def __post_init__(self) -> None:
        _positive(self.days, "inactive.days")


@dataclass(frozen=True)
class LotterySpec:
    """Remind the ``audience`` of lottery ``lottery_id`` on the day it draws.

    ``active_days`` bounds the eligible non-entrants read (members whose last
    check-in day is within ``[today - active_days, today]``).
    """

    lottery_id: str
    audience: LotteryAudience = LotteryAudience.ELIGIBLE_NON_ENTRANTS
    active_days: int = 7
    kind: ReminderKind = field(default=ReminderKind.LOTTERY, init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.lottery_id, str) or not self.lottery_id or "#" in self.lottery_id:
            raise ValueError(f"lottery.lottery_id must be a non-empty id, got {self.lottery_id!r}")
        object.__setattr__(self, "audience", LotteryAudience(self.audience))
        _positive(self.active_days, "lottery.active_days")


ReminderSpec = NotCheckedInSpec | StreakAtRiskSpec | InactiveSpec | LotterySpec

_SPEC_FIELDS: dict[ReminderKind, tuple[type[Any], frozenset[str]]] = {
    ReminderKind.NOT_CHECKED_IN: (NotCheckedInSpec, frozenset({"active_days"})),
    ReminderKind.STREAK_AT_RISK: (StreakAtRiskSpec, frozenset({"min_streak"})),
    ReminderKind.INACTIVE: (InactiveSpec, frozenset({"days"})),
    ReminderKind.LOTTERY: (LotterySpec, frozenset({"lottery_id", "audience", "active_days"})),
}


def parse_spec(kind: str, params: Mapping[str, Any]) -> ReminderSpec:
    """The typed spec of a reminder of ``kind`` with ``params``; ``ValueError`` naming
    the unknown kind, an unknown parameter or the invalid value."""
    try:
        known = ReminderKind(kind)
    except ValueError:
        kinds = ", ".join(k.value for k in ReminderKind)
        raise ValueError(f"unknown reminder kind {kind!r} (expected one of {kinds})") from None
    cls, allowed = _SPEC_FIELDS[known]
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ValueError(
            f"{known.value}: unknown parameter(s) {', '.join(map(repr, unknown))} "
            f"(allowed: {', '.join(sorted(allowed))})"
        )
    if known is ReminderKind.LOTTERY and "audience" in params:
        try:
            LotteryAudience(params["audience"])
        except ValueError:
            raise ValueError(
                f"lottery.audience must be one of "
                f"{', '.join(a.value for a in LotteryAudience)}, got {params['audience']!r}"
            ) from None
    try:
        spec: ReminderSpec = cls(**params)
    except TypeError as exc:  # a required parameter is missing
        raise ValueError(f"{known.value}: {exc}") from None
    return spec


# --- days and zones ---------------------------------------------------------------


def member_zone(member_zone_name: str | None, community_zone: ZoneInfo) -> ZoneInfo:
    """The member's own zone when set and valid, otherwise the community's.

    A stored zone name that is no longer valid falls back rather than failing a send.
    """
    if member_zone_name:
        try:
            return zone(member_zone_name)
        except ValueError:
            pass
    return community_zone


def member_today(
    at_utc: datetime, member_zone_name: str | None, community_zone: ZoneInfo, boundary: time
) -> date:
    """The member's check-in day at ``at_utc``: in their own zone when set, with the
    community's day boundary (:func:`~autopilot.checkins.rules.checkin_day`)."""
    return checkin_day(at_utc, member_zone(member_zone_name, community_zone), boundary)


# --- selection plans ----------------------------------------------------------------


class SelectionSource(StrEnum):
    """What a selection Queries."""

    ACTIVE_BY_LAST_DAY = "active_by_last_day"  # the sparse index by last check-in day
    LOTTERY_ENTRIES = "lottery_entries"  # the entries of the lottery's current cycle


class PostFilter(StrEnum):
    """A filter applied to the items a selection reads (named, with a threshold)."""

    STREAK_AT_LEAST = "streak_at_least"
    NOT_ENTERED = "not_entered"


@dataclass(frozen=True)
class SelectionPlan:
    """What one selection reads: last check-in days ``first_day..last_day`` (inclusive)
    of ``source``, then ``post_filter`` (with ``threshold``) when set.

    ``first_day``/``last_day`` are ``None`` for :attr:`SelectionSource.LOTTERY_ENTRIES`.
    """

    kind: ReminderKind
    today: date
    source: SelectionSource
    first_day: date | None
    last_day: date | None
    post_filter: PostFilter | None = None
    threshold: int | None = None
    lottery_id: str | None = None

    def sort_key_range(self) -> tuple[str, str]:
        """The two strings of the sort key's ``BETWEEN`` on the last-day index.

        Keys are ``<day>#<member>``; the upper bound ``<last_day>$`` sorts after
        every ``<last_day>#...`` (``$`` follows ``#``) and before the next day.
        """
        if self.first_day is None or self.last_day is None:
            raise ValueError(f"a {self.source.value} selection has no day range")
        return self.first_day.isoformat(), self.last_day.isoformat() + "$"


def shard_of(member_id: str, shards: int) -> int:
    """The member's shard of the last-day index, ``0 <= shard < shards``: the first
    8 bytes of the SHA-256 of the UTF-8 member id, modulo ``shards``. Stable across
    processes and Python versions (``hash()`` is salted per process)."""
    _positive(shards, "shards")
    if not member_id:
        raise ValueError("member id is empty")
    digest = hashlib.sha256(member_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % shards


def index_partition(community: str, shard: int) -> str:
    """The partition key of one shard of a community's last-day index:
    ``<community>#<shard>``."""
    if not community or "#" in community:
        raise ValueError(f"community {community!r} must be non-empty and contain no '#'")
    if isinstance(shard, bool) or not isinstance(shard, int) or shard < 0:
        raise ValueError(f"shard must be an integer >= 0, got {shard!r}")
    return f"{community}#{shard}"


def index_sort_key(last_day: date, member_id: str) -> str:
    """The sort key of a member in the last-day index: ``<last_day ISO>#<member id>``."""
    if not member_id:
        raise ValueError("member id is empty")
    return f"{last_day.isoformat()}#{member_id}"


def plan_selection(
    spec: ReminderSpec, now_utc: datetime, community_zone: ZoneInfo, boundary: time
) -> SelectionPlan:
    """The selection plan of ``spec`` for the community day of ``now_utc`` (the job
    occurrence's scheduled instant); see "Selection plans" in the module docstring."""
    today = checkin_day(now_utc, community_zone, boundary)
    one = timedelta(days=1)
    active = SelectionSource.ACTIVE_BY_LAST_DAY
    match spec:
        case NotCheckedInSpec(active_days=n):
            return SelectionPlan(spec.kind, today, active, today - n * one, today - one)
        case StreakAtRiskSpec(min_streak=n):
            yesterday = today - one
            return SelectionPlan(
                spec.kind, today, active, yesterday, yesterday, PostFilter.STREAK_AT_LEAST, n
            )
        case InactiveSpec(days=d):
            return SelectionPlan(spec.kind, today, active, today - d * one, today - d * one)
        case LotterySpec(audience=LotteryAudience.ENTRANTS):
            return SelectionPlan(
                spec.kind,
                today,
                SelectionSource.LOTTERY_ENTRIES,
                None,
                None,
                lottery_id=spec.lottery_id,
            )
        case LotterySpec():
            return SelectionPlan(
                spec.kind,
                today,
                active,
                today - spec.active_days * one,
                today,
                PostFilter.NOT_ENTERED,
                lottery_id=spec.lottery_id,
            )
    raise TypeError(f"not a reminder spec: {spec!r}")


def draws_today(
    draw_at_utc: datetime, now_utc: datetime, community_zone: ZoneInfo, boundary: time
) -> bool:
    """Whether a lottery drawing at ``draw_at_utc`` draws on the community day of
    ``now_utc`` and has not drawn yet (a ``lottery`` reminder runs only then)."""
    return draw_at_utc > now_utc and checkin_day(
        draw_at_utc, community_zone, boundary
    ) == checkin_day(now_utc, community_zone, boundary)


# --- streaks --------------------------------------------------------------------------


@dataclass(frozen=True)
class StreakRisk:
    """A member's streak on ``today`` (:func:`streak_risk`).

    ``alive``: the next check-in would continue the streak; ``at_risk``: alive, not
    checked in today, and missing today would need ``freezes_needed`` freezes at the
    next check-in; ``freeze_covers``: the member holds that many.
    """

    alive: bool
    at_risk: bool
    freezes_needed: int
    freeze_covers: bool


def streak_risk(last_day: date | None, streak: int, freezes: int, today: date) -> StreakRisk:
    """Whether the streak ending on ``last_day`` is at risk tonight and whether the
    member's freezes would bridge the miss (:func:`autopilot.checkins.rules.check_in`:
    a gap of ``k`` days is bridged by ``k - 1`` freezes, all or none)."""
    if last_day is None or streak < 1:
        return StreakRisk(alive=False, at_risk=False, freezes_needed=0, freeze_covers=False)
    gap_today = (today - last_day).days
    if gap_today <= 0:  # checked in today (or on a later day after a zone change)
        return StreakRisk(alive=True, at_risk=False, freezes_needed=0, freeze_covers=False)
    alive = freezes >= gap_today - 1
    # Missing today: the next check-in (tomorrow) has a gap of gap_today + 1.
    needed = gap_today
    return StreakRisk(
        alive=alive, at_risk=alive, freezes_needed=needed, freeze_covers=alive and freezes >= needed
    )


# --- at most once -------------------------------------------------------------------


def reminder_key(community: str, job_id: str, member_id: str, local_day: date) -> str:
    """The key of the conditional write made before sending one reminder:
    ``rem#<community>#<local day>#<job>#<member>``.

    Community and job ids never contain ``#`` (refused here) and the day is fixed
    width, so the member id, which may contain anything, is the unambiguous rest.
    ``local_day`` is :func:`member_today` at the occurrence's scheduled instant.
    """
    for name, value in (("community", community), ("job id", job_id)):
        if not value or "#" in value:
            raise ValueError(f"{name} {value!r} must be non-empty and contain no '#'")
    if not member_id:
        raise ValueError("member id is empty")
    return f"rem#{community}#{local_day.isoformat()}#{job_id}#{member_id}"


# --- quiet hours ----------------------------------------------------------------------


class QuietAction(StrEnum):
    """What quiet hours make of one send."""

    SEND = "send"
    DEFER = "defer"
    DROP = "drop"


@dataclass(frozen=True)
class QuietDecision:
    """Send now, defer until ``until_utc``, or drop."""

    action: QuietAction
    until_utc: datetime | None = None


def quiet_end_after(send_utc: datetime, quiet: QuietHours, tz: ZoneInfo) -> datetime:
    """The first instant at or after ``send_utc`` at which the quiet window has ended,
    computed on the wall clock of ``tz`` (DST-safe: see the module docstring)."""
    wall = local_wall(send_utc, tz)
    end = datetime.combine(wall.date(), quiet.end)
    if end <= wall:
        end += timedelta(days=1)
    instant, _ = resolve_local(end, tz)
    return max(instant, send_utc)


def quiet_decision(
    send_utc: datetime, tz: ZoneInfo, quiet: QuietHours | None, policy: str
) -> QuietDecision:
    """Quiet hours for one send at ``send_utc`` in ``tz`` (the member's zone for a DM,
    :func:`member_zone`) under the job's ``policy`` (``defer`` or ``drop``)."""
    if policy not in (QuietAction.DEFER, QuietAction.DROP):
        raise ValueError(f"reminder quiet-hours policy must be 'defer' or 'drop', got {policy!r}")
    if send_utc.tzinfo is None:
        raise ValueError("naive datetime where an aware one is required")
    if quiet is None or not quiet.contains(local_wall(send_utc, tz).time()):
        return QuietDecision(QuietAction.SEND)
    if policy == QuietAction.DROP:
        return QuietDecision(QuietAction.DROP)
    return QuietDecision(QuietAction.DEFER, quiet_end_after(send_utc, quiet, tz).astimezone(UTC))


# --- recheck before send ------------------------------------------------------------------


class SkipReason(StrEnum):
    """Why a selected member is not reminded (``skipped_<reason>`` counters)."""

    OPTED_OUT = "opted_out"
    LEFT = "left"
    ALREADY_CHECKED_IN = "already_checked_in"
    NOT_ACTIVE = "not_active"
    STREAK_TOO_SHORT = "streak_too_short"
    STREAK_LOST = "streak_lost"
    ALREADY_ENTERED = "already_entered"
    NOT_ENTERED = "not_entered"
    ENTRY_CLOSED = "entry_closed"
    LOTTERY_DRAWN = "lottery_drawn"
    DAY_OVER = "day_over"
    QUIET_HOURS = "quiet_hours"


@dataclass(frozen=True)
class MemberFacts:
    """What the recheck reads about one member at send time.

    ``opted_out``: the reminder kinds the member opted out of; ``zone``: their own
    zone name (``None``: the community's); ``lottery_entered``: whether they entered
    the lottery's current cycle (only for ``lottery`` reminders).
    """

    member_id: str
    last_day: date | None
    streak: int = 0
    freezes: int = 0
    zone: str | None = None
    opted_out: frozenset[str] = frozenset()
    left: bool = False
    lottery_entered: bool | None = None


@dataclass(frozen=True)
class LotteryCycle:
    """The instants of the lottery cycle a ``lottery`` reminder is about."""

    closes_at_utc: datetime
    draw_at_utc: datetime


@dataclass(frozen=True)
class Recheck:
    """The verdict at send time: send, skip (``reason``) or defer (to ``until_utc``)."""

    action: QuietAction | None
    reason: SkipReason | None = None
    until_utc: datetime | None = None

    @property
    def due(self) -> bool:
        """Whether to send now."""
        return self.action is QuietAction.SEND


_SEND = Recheck(QuietAction.SEND)


def _skip(reason: SkipReason) -> Recheck:
    return Recheck(None, reason)


def still_due(
    kind: ReminderKind | str,
    spec: ReminderSpec,
    facts: MemberFacts,
    now_utc: datetime,
    *,
    reminder_day: date,
    community_zone: ZoneInfo,
    boundary: time,
    quiet: QuietHours | None = None,
    quiet_policy: str = "defer",
    direct: bool = True,
    lottery: LotteryCycle | None = None,
) -> Recheck:
    """Whether ``facts``' member should still get the reminder at ``now_utc``.

    ``reminder_day`` is the member's day the reminder is for (the day in its
    :func:`reminder_key`). Checks, in order: opted out of ``kind``, left, the kind's
    own condition against ``reminder_day``, the reminder's day over in the member's
    zone (for every kind but ``inactive``, whose nudge stays true), the lottery's
    close or draw passed, then quiet hours in the member's zone for a ``direct``
    message (the community's for a group message). A deferral is returned as
    :attr:`QuietAction.DEFER` with ``until_utc`` and reason ``quiet_hours``; one
    that would end after the reminder's day (every kind but ``inactive``) is a
    skip with reason ``quiet_hours`` instead, as the policy ``drop`` is.
    """
    kind = ReminderKind(kind)
    if kind is not spec.kind:
        raise ValueError(f"spec {spec!r} is not a {kind.value} spec")
    if now_utc.tzinfo is None:
        raise ValueError("naive datetime where an aware one is required")
    if kind.value in facts.opted_out:
        return _skip(SkipReason.OPTED_OUT)
    if facts.left:
        return _skip(SkipReason.LEFT)
    day = reminder_day
    last = facts.last_day
    one = timedelta(days=1)
    match spec:
        case NotCheckedInSpec(active_days=n):
            if last is not None and last >= day:
                return _skip(SkipReason.ALREADY_CHECKED_IN)
            if last is None or last < day - n * one:
                return _skip(SkipReason.NOT_ACTIVE)
        case StreakAtRiskSpec(min_streak=n):
            if last is not None and last >= day:
                return _skip(SkipReason.ALREADY_CHECKED_IN)
            risk = streak_risk(last, facts.streak, facts.freezes, day)
            if not risk.alive:
                return _skip(SkipReason.STREAK_LOST)
            if facts.streak < n:
                return _skip(SkipReason.STREAK_TOO_SHORT)
        case InactiveSpec(days=d):
            if last is None:
                return _skip(SkipReason.NOT_ACTIVE)
            if last > day - d * one:
                return _skip(SkipReason.ALREADY_CHECKED_IN)
        case LotterySpec(audience=audience):
            if audience is LotteryAudience.ENTRANTS and not facts.lottery_entered:
                return _skip(SkipReason.NOT_ENTERED)
            if audience is LotteryAudience.ELIGIBLE_NON_ENTRANTS and facts.lottery_entered:
                return _skip(SkipReason.ALREADY_ENTERED)
    own_zone = member_zone(facts.zone, community_zone)
    if kind is not ReminderKind.INACTIVE and checkin_day(now_utc, own_zone, boundary) > day:
        # "Not checked in today" / "ends tonight" no longer hold on the next day.
        return _skip(SkipReason.DAY_OVER)
    if lottery is not None:
        if now_utc >= lottery.draw_at_utc:
            return _skip(SkipReason.LOTTERY_DRAWN)
        if (
            isinstance(spec, LotterySpec)
            and spec.audience is LotteryAudience.ELIGIBLE_NON_ENTRANTS
            and now_utc >= lottery.closes_at_utc
        ):
            return _skip(SkipReason.ENTRY_CLOSED)
    decision = quiet_decision(now_utc, own_zone if direct else community_zone, quiet, quiet_policy)
    if decision.action is QuietAction.DROP:
        return _skip(SkipReason.QUIET_HOURS)
    if decision.action is QuietAction.DEFER:
        until = decision.until_utc
        if (
            until is not None
            and kind is not ReminderKind.INACTIVE
            and checkin_day(until, own_zone, boundary) > day
        ):
            # The window ends on the member's next day, when the reminder would be
            # skipped as day_over anyway: skip it now instead of requeueing it.
            return _skip(SkipReason.QUIET_HOURS)
        return Recheck(QuietAction.DEFER, SkipReason.QUIET_HOURS, decision.until_utc)
    return _SEND


# --- conversion and counters ----------------------------------------------------------------


def converted(reminded_at: datetime, checkin_at: datetime, window: timedelta) -> bool:
    """Whether a check-in at ``checkin_at`` converts a reminder sent at ``reminded_at``:
    ``reminded_at <= checkin_at < reminded_at + window`` (aware instants)."""
    if reminded_at.tzinfo is None or checkin_at.tzinfo is None:
        raise ValueError("naive datetime where an aware one is required")
    if window <= timedelta(0):
        raise ValueError(f"conversion window must be positive, got {window}")
    return reminded_at <= checkin_at < reminded_at + window


SELECTED = "selected"
SENT = "sent"
FAILED = "failed"
#: Sends whose outcome is unknown (no answer from the platform, or a crash after
#: the send intent): they may have reached the member and are never re-sent.
UNCERTAIN = "uncertain"
CONVERTED = "converted"
SKIPPED_PREFIX = "skipped_"


def skipped_counter(reason: SkipReason | str) -> str:
    """The counter name of a skip: ``skipped_<reason>``."""
    return SKIPPED_PREFIX + SkipReason(reason).value


OUTCOME_COUNTERS: tuple[str, ...] = (
    SELECTED,
    SENT,
    *(skipped_counter(r) for r in SkipReason),
    FAILED,
    UNCERTAIN,
    CONVERTED,
)
"""Every per-job, per-day outcome counter, in report order."""
