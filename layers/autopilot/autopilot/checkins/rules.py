"""Pure check-in rules: the check-in day, streaks, freezes, make-ups, points, tiers.

Nothing here reads the clock, the environment or AWS: the instant, the account
state and the rules come in as arguments, and a new state plus the ledger
movements (:class:`Award`) come out. The store applies the outcome atomically
and increments ``AccountState.version``.

The check-in day
----------------
A check-in belongs to the *local calendar date* of its instant in the
community's zone after the local **wall-clock** time is shifted back by the day
boundary: with a 04:00 boundary, 03:59 local on the 27th belongs to the 26th and
04:00 belongs to the 27th. The shift is done on the naive wall-clock value
(``wall - timedelta(hours=4)``), never by adding or subtracting 86,400 s to an
instant, so days that last 23, 23.5, 24.5 or 25 hours are still one day each.

* A boundary wall time that falls in a DST gap does not exist that day; the day
  simply starts at the first instant whose shifted wall time is >= 00:00 of that
  date (with boundary 02:30 in New York on 2027-03-14, the 14th starts at 03:00
  EDT, the instant the gap ends).
* In a repeated (fall-back) hour both instants have the same wall time, so both
  map to the same day, with one exception that keeps the day from ever going
  back: when the boundary itself lies inside the repeated hour, the new day
  starts at the boundary's *first* pass, and the second pass through the wall
  times before the boundary stays in the new day (boundary 01:30 in New York on
  2026-11-01: 01:15 EDT belongs to the 31st, 01:15 EST to the 1st).
* Zones whose clocks jump at local midnight (America/Santiago, America/Havana,
  Asia/Beirut) are handled by the same rule: the day begins at the first instant
  whose wall time is past the boundary, even if 00:00 itself never happens.

Streaks
-------
Gaps are counted in calendar days with ``date`` subtraction:
``gap = (day - last_day).days``.

* first check-in ever: streak 1;
* ``gap <= 0``: :class:`AlreadyCheckedIn` for the last check-in day (a repeat
  credits nothing; the check-in day never goes back, so a day before the last
  one, reached by moving the member's zone west, is "already checked in" too);
* ``gap == 1``: streak + 1;
* ``gap == k > 1``: the ``k - 1`` missed days are bridged by freezes when the
  member holds at least ``k - 1`` of them (all ``k - 1`` are used; the streak
  goes up by one: frozen days keep the streak, they do not lengthen it);
  otherwise the streak restarts at 1 and no freeze is used (freezes are never
  spent on a streak they cannot save).

Points
------
Each check-in awards ``base_points`` (reason ``checkin``) and, when the new
streak equals a milestone's ``days``, that milestone's bonus (reason
``streak_bonus``). ``daily_cap`` caps their sum, truncating the bonus first and
then the base. Awards of zero points are omitted (the ledger has no zero
entries). ``lifetime_points`` grows by the positive awards, ``balance`` by all
of them (a make-up cost is negative).

Freezes
-------
One freeze is earned when the new streak is a multiple of ``freeze_every_days``
and the member holds fewer than ``freeze_max_held`` freezes *after* any freezes
this check-in used.

Make-up (补签)
--------------
``make_up(state, today)`` checks in for *yesterday* (``today - 1``) at a cost of
``makeup_cost`` points, under exactly the same streak, points, milestone and
freeze rules as a check-in on that day. The cost is the *first* award
(reason ``makeup``, negative). It is refused (:class:`MakeupNotAllowed`) when
make-ups are disabled, when yesterday or today is already checked in, or when
the balance *before* the day's awards is below the cost, so the balance never
goes below zero. A make-up costing 0 points writes no ``makeup`` entry.

Zone changes
------------
A member (or a community) may change time zone between two check-ins.
:func:`check_in_at` computes the day in the *current* zone and remembers that
zone on the state (``last_zone``). When the zone changed since the last
check-in, the **gap** is the smaller of the gaps measured in the current zone and
in ``last_zone``:

* moving **west** makes the local day lag: a day <= the last check-in day is
  answered as already checked in (never an error, never a second credit), and
  the next day arrives later, with gap 1, so the streak goes on;
* moving **east** makes the local day jump ahead: the next check-in credits only
  once the day of the last check-in has ended *where it was made* as well (no
  second credit seconds after the first one by moving east, nor by moving east
  then west), and a date skipped by the jump is not a missed day (the gap in
  the old zone counts), so a zone change never breaks a streak by itself;
* the day recorded is the current zone's, so from then on days follow the new
  zone.

So however zones change, check-in days strictly increase, and one member earns
at most as many check-ins in a stretch of real time as a member who stays in
one zone with 23-hour DST days (tested with a property test).

Tiers
-----
The tier is the last tier (tiers ascend by ``min_lifetime_points``) whose
threshold the lifetime points reach, or ``None`` below the first one. It is
recomputed on every outcome and reported in ``tier_change`` when it differs
from the stored one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from itertools import pairwise
from zoneinfo import ZoneInfo

from autopilot.ledger.rules import Reason
from autopilot.timeutil import zone

CHECKIN = Reason.CHECKIN
STREAK_BONUS = Reason.STREAK_BONUS
MAKEUP = Reason.MAKEUP


class MakeupRefusal(StrEnum):
    """Why a make-up was refused (:class:`MakeupNotAllowed`); each maps to one API error."""

    DISABLED = "disabled"
    NOTHING_TO_MAKE_UP = "nothing_to_make_up"
    ALREADY_CHECKED_IN_TODAY = "already_checked_in_today"
    INSUFFICIENT_BALANCE = "insufficient_balance"


@dataclass(frozen=True)
class Milestone:
    """A bonus of ``bonus`` points when the streak reaches exactly ``days``."""

    days: int
    bonus: int


@dataclass(frozen=True)
class Tier:
    """A membership level reached at ``min_lifetime_points`` lifetime points."""

    id: str
    name: str
    min_lifetime_points: int


@dataclass(frozen=True)
class CheckinRules:
    """A community's check-in rules (see the module docstring for their meaning).

    Invalid combinations raise ``ValueError`` on construction, so an outcome can
    never be computed from rules the config validation should have refused.
    """

    base_points: int = 10
    daily_cap: int | None = None
    milestones: tuple[Milestone, ...] = ()
    freeze_every_days: int | None = None
    freeze_max_held: int = 0
    makeup_cost: int | None = None
    tiers: tuple[Tier, ...] = ()

    def __post_init__(self) -> None:
        problems: list[str] = []
        if self.base_points < 0:
            problems.append("base_points must be >= 0")
        if self.daily_cap is not None and self.daily_cap < 0:
            problems.append("daily_cap must be >= 0")
        days = [m.days for m in self.milestones]
        if any(d < 1 for d in days):
            problems.append("milestone days must be >= 1")
        if len(set(days)) != len(days):
            # Two bonuses for one day would make "the" milestone ambiguous.
            problems.append("milestone days must be unique")
        if any(m.bonus < 0 for m in self.milestones):
            problems.append("milestone bonus must be >= 0")
        if self.freeze_every_days is not None and self.freeze_every_days < 1:
            problems.append("freeze_every_days must be >= 1")
        if self.freeze_max_held < 0:
            problems.append("freeze_max_held must be >= 0")
        if self.makeup_cost is not None and self.makeup_cost < 0:
            problems.append("makeup_cost must be >= 0")
        thresholds = [t.min_lifetime_points for t in self.tiers]
        if any(b <= a for a, b in pairwise(thresholds)):
            problems.append("tiers must ascend strictly by min_lifetime_points")
        ids = [t.id for t in self.tiers]
        if len(set(ids)) != len(ids):
            problems.append("tier ids must be unique")
        if problems:
            raise ValueError("invalid check-in rules: " + "; ".join(problems))

    def milestone_bonus(self, streak: int) -> int:
        """The bonus for reaching exactly ``streak`` days (0 if no milestone)."""
        return next((m.bonus for m in self.milestones if m.days == streak), 0)


@dataclass(frozen=True)
class AccountState:
    """A member's check-in account as stored (``version`` guards concurrent writes)."""

    balance: int = 0
    lifetime_points: int = 0
    streak: int = 0
    longest_streak: int = 0
    last_day: date | None = None
    freezes: int = 0
    tier: str | None = None
    checkins: int = 0
    version: int = 0
    last_zone: str | None = None  # the zone ``last_day`` was computed in (None: unknown)


@dataclass(frozen=True)
class Award:
    """One ledger movement: ``reason`` is ``checkin``, ``streak_bonus`` or ``makeup``."""

    reason: Reason
    amount: int
    detail: str


@dataclass(frozen=True)
class CheckinOutcome:
    """The result of a check-in or make-up for ``day``.

    ``state`` is the account *after* the outcome, with ``version`` unchanged (the
    store increments it in the same write). ``awards`` are the ledger movements
    in order.
    """

    day: date
    state: AccountState
    awards: tuple[Award, ...]
    freezes_used: int
    freeze_earned: bool
    tier_change: tuple[str | None, str] | None
    made_up: bool = False

    @property
    def points_awarded(self) -> int:
        """Net points this outcome moved (a make-up cost counts negative)."""
        return sum(a.amount for a in self.awards)


class AlreadyCheckedIn(Exception):
    """The member has already checked in for ``day``; nothing is credited."""

    def __init__(self, day: date) -> None:
        super().__init__(f"already checked in for {day.isoformat()}")
        self.day = day


class MakeupNotAllowed(Exception):
    """A make-up check-in was refused; ``code`` says why (callers decide on it, never
    on the message, which is for people)."""

    def __init__(self, message: str, *, code: MakeupRefusal) -> None:
        super().__init__(message)
        self.code = MakeupRefusal(code)


def checkin_day(at_utc: datetime, tz: ZoneInfo, boundary: time) -> date:
    """The check-in day of the instant ``at_utc`` in ``tz`` with day boundary ``boundary``.

    Computed on the naive local wall-clock value, so the result never depends on
    how long a day lasts in real seconds (see the module docstring).
    """
    if at_utc.tzinfo is None:
        raise ValueError("naive datetime where an aware one is required")
    shift = timedelta(
        hours=boundary.hour,
        minutes=boundary.minute,
        seconds=boundary.second,
        microseconds=boundary.microsecond,
    )
    local = at_utc.astimezone(tz)
    day = (local.replace(tzinfo=None) - shift).date()
    if local.fold == 1:
        # Second pass through a repeated hour: if the next day's boundary lies in
        # that hour, its first pass already started the next day, and a day must
        # never go back (check_in refuses it), so the second pass stays there.
        next_start = datetime.combine(day + timedelta(days=1), boundary, tzinfo=tz)
        if next_start <= at_utc:
            return day + timedelta(days=1)
    return day


def tier_for(lifetime_points: int, tiers: tuple[Tier, ...]) -> str | None:
    """The id of the highest tier reached with ``lifetime_points``, or ``None``."""
    reached: str | None = None
    for tier in sorted(tiers, key=lambda t: t.min_lifetime_points):
        if lifetime_points >= tier.min_lifetime_points:
            reached = tier.id
    return reached


def _known_zone(name: str | None) -> ZoneInfo | None:
    """The zone ``name`` or ``None`` when it is unset or no longer a valid zone."""
    if not name:
        return None
    try:
        return zone(name)
    except ValueError:
        return None


def day_gap(
    state: AccountState, at_utc: datetime, tz: ZoneInfo, boundary: time
) -> tuple[date, int | None]:
    """The check-in day of ``at_utc`` in ``tz`` and the gap since the last check-in day.

    The gap is ``None`` before the first check-in. When the zone changed since the
    last check-in (``state.last_zone``), it is the smaller of the gaps in the two
    zones (see "Zone changes" in the module docstring).
    """
    today = checkin_day(at_utc, tz, boundary)
    if state.last_day is None:
        return today, None
    gap = (today - state.last_day).days
    previous = _known_zone(state.last_zone)
    if previous is not None and previous.key != tz.key:
        gap = min(gap, (checkin_day(at_utc, previous, boundary) - state.last_day).days)
    return today, gap


def check_in_at(
    state: AccountState,
    at_utc: datetime,
    tz: ZoneInfo,
    boundary: time,
    rules: CheckinRules,
    *,
    makeup: bool = False,
) -> CheckinOutcome:
    """Check in (or make up yesterday) at the instant ``at_utc`` in the member's zone ``tz``.

    The day and the gap come from :func:`day_gap`; the new state remembers ``tz``
    as ``last_zone``. Raises :class:`AlreadyCheckedIn` (with the last check-in
    day) or :class:`MakeupNotAllowed`; never ``ValueError`` for any instant or zone
    sequence.
    """
    today, gap = day_gap(state, at_utc, tz, boundary)
    outcome = (
        make_up(state, today, rules, gap=gap) if makeup else check_in(state, today, rules, gap=gap)
    )
    return replace(outcome, state=replace(outcome.state, last_zone=tz.key))


def check_in(
    state: AccountState, day: date, rules: CheckinRules, *, gap: int | None = None
) -> CheckinOutcome:
    """Check in for the check-in day ``day``; raises :class:`AlreadyCheckedIn` on a repeat.

    ``gap`` overrides ``(day - last_day).days`` (a zone change, see :func:`day_gap`).
    A day on or before the last check-in day is a repeat of the last check-in.
    """
    return _apply(state, day, rules, (), made_up=False, gap=gap)


def make_up(
    state: AccountState, today: date, rules: CheckinRules, *, gap: int | None = None
) -> CheckinOutcome:
    """Check in for ``today - 1`` at the cost of ``rules.makeup_cost`` points (补签).

    Raises :class:`MakeupNotAllowed` when make-ups are disabled, yesterday or
    today is already checked in (a ``today`` before the last check-in day, after a
    zone change west, counts as checked in), or the balance cannot pay the cost.
    ``gap`` is today's gap since the last check-in day (see :func:`day_gap`).
    """
    if rules.makeup_cost is None:
        raise MakeupNotAllowed("make-up check-ins are disabled", code=MakeupRefusal.DISABLED)
    yesterday = today - timedelta(days=1)
    last = state.last_day
    if last is not None:
        if gap is None:
            gap = (today - last).days
        # gap <= today - last (day_gap takes the smaller of two zones' gaps), so
        # these also cover a today on or before the last check-in day.
        if gap <= 0:
            # Making up yesterday after today would rewrite a streak already built on.
            raise MakeupNotAllowed(
                "already checked in today; yesterday can no longer be made up",
                code=MakeupRefusal.ALREADY_CHECKED_IN_TODAY,
            )
        if gap == 1:
            raise MakeupNotAllowed(
                "nothing to make up: yesterday is already checked in",
                code=MakeupRefusal.NOTHING_TO_MAKE_UP,
            )
    if state.balance < rules.makeup_cost:
        # The made-up day's own points cannot pay for the make-up.
        raise MakeupNotAllowed(
            f"make-up costs {rules.makeup_cost} points, balance is {state.balance}",
            code=MakeupRefusal.INSUFFICIENT_BALANCE,
        )
    cost = (
        (Award(MAKEUP, -rules.makeup_cost, f"make-up for {yesterday.isoformat()}"),)
        if rules.makeup_cost
        else ()
    )
    return _apply(state, yesterday, rules, cost, made_up=True, gap=None if gap is None else gap - 1)


def _apply(
    state: AccountState,
    day: date,
    rules: CheckinRules,
    leading: tuple[Award, ...],
    *,
    made_up: bool,
    gap: int | None = None,
) -> CheckinOutcome:
    """The check-in for ``day`` with ``leading`` awards (a make-up cost) placed first."""
    freezes = state.freezes
    freezes_used = 0
    if state.last_day is None:
        streak = 1
    else:
        if gap is None:
            gap = (day - state.last_day).days
        if gap <= 0 or day <= state.last_day:
            # The check-in day never goes back: a day before the last one (the
            # zone moved west) is the last day's check-in, already recorded.
            raise AlreadyCheckedIn(state.last_day)
        missed = gap - 1
        if missed == 0:
            streak = state.streak + 1
        elif freezes >= missed:
            freezes_used = missed
            freezes -= missed
            streak = state.streak + 1
        else:
            streak = 1

    base = rules.base_points
    bonus = rules.milestone_bonus(streak)
    if rules.daily_cap is not None and base + bonus > rules.daily_cap:
        # The bonus is trimmed first: the everyday reward stays predictable.
        excess = base + bonus - rules.daily_cap
        trimmed = min(bonus, excess)
        bonus -= trimmed
        base -= excess - trimmed
    awards = list(leading)
    if base:
        awards.append(Award(CHECKIN, base, f"check-in {day.isoformat()}"))
    if bonus:
        awards.append(Award(STREAK_BONUS, bonus, f"{streak}-day milestone"))

    freeze_earned = (
        rules.freeze_every_days is not None
        and streak % rules.freeze_every_days == 0
        and freezes < rules.freeze_max_held
    )
    if freeze_earned:
        freezes += 1

    balance = state.balance + sum(a.amount for a in awards)
    if balance < 0:
        raise ValueError(f"outcome would leave a negative balance ({balance})")
    lifetime = state.lifetime_points + sum(a.amount for a in awards if a.amount > 0)
    tier = tier_for(lifetime, rules.tiers)
    tier_change = (state.tier, tier) if tier is not None and tier != state.tier else None
    new_state = replace(
        state,
        balance=balance,
        lifetime_points=lifetime,
        streak=streak,
        longest_streak=max(state.longest_streak, streak),
        last_day=day,
        freezes=freezes,
        tier=tier,
        checkins=state.checkins + 1,
    )
    return CheckinOutcome(
        day=day,
        state=new_state,
        awards=tuple(awards),
        freezes_used=freezes_used,
        freeze_earned=freeze_earned,
        tier_change=tier_change,
        made_up=made_up,
    )
