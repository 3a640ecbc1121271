"""Who may enter a lottery and with what weight: pure rules, no AWS, no clock.

This module owns the *eligibility* of a member for one lottery and their *weight*
in its draw. Everything comes in as arguments (the lottery's window, the
community's zone, day boundary and tier order, the member's facts read at the
close) and a small, storable verdict comes out (:class:`Eligibility`), stored with
each entry so a member who was left out can be shown exactly why.
``docs/lottery.md`` ("Eligibility and weights") is the specification.

Days
----
Days are **check-in days** exactly as in :mod:`autopilot.checkins.rules`: the
local calendar date in the community's zone after shifting the local wall-clock
time back by the day boundary (:func:`~autopilot.checkins.rules.checkin_day`).

* The window is the half-open interval ``[opens_at, closes_at)``. Its **days**
  run from the day of ``opens_at`` to the day of the *last instant before*
  ``closes_at`` (a close exactly at a day boundary does not add the day that only
  begins then). A partial first or last day counts as a whole window day.
* The **close day** is the day of the instant ``closes_at`` itself: the day a
  check-in made at the close would count for. Streaks are judged against it.

Rules (each optional; all given must hold)
------------------------------------------
* :class:`MinCheckins` ``n``: at least ``n`` check-ins whose check-in day is a
  window day (a make-up counts for the day it made up; at most one per day, so
  ``n`` above the window's day count is impossible: see :func:`impossible_rules`).
* :class:`MinStreak` ``k``: the streak *alive at the close* is at least ``k``.
  A streak is alive when the next check-in would continue it: with
  ``missed = (close_day - last_checkin_day) - 1`` days since the last check-in,
  it is alive iff ``missed <= 0`` (checked in on the close day or the day
  before) or the member holds at least ``missed`` freezes, which would bridge
  the gap exactly as :func:`~autopilot.checkins.rules.check_in` does. A streak
  that is not alive counts as 0.
* :class:`MinTier` ``tier``: the member's tier is ``tier`` or a higher one in the
  community's tier order (lowest first). No tier yet, or a tier id the community
  no longer has, is below every tier.
* :class:`JoinedBeforeOpen`: ``joined_at < opens_at`` (strictly).
* :class:`NotRecentWinner` ``d``: no win whose check-in day is one of the ``d``
  days before the close day, or the close day itself; eligible again when
  ``close_day - win_day > d`` (with ``d = 7``, last week's winner of a weekly draw
  sits one draw out). Calendar days, not 24-hour periods: the same on DST weeks.
* :class:`NotLeft`: the member had not left at the close (``left_at`` unset or
  at/after ``closes_at``).

Weights
-------
An eligible member's weight is ``1`` (:attr:`WeightMode.EQUAL`),
``clamp(tickets, 1, cap)`` (:attr:`WeightMode.TICKETS`) or
``clamp(check-ins in the window, 1, cap)`` (:attr:`WeightMode.CHECKINS`), with
``cap`` from 1 to :data:`~autopilot.lottery.draw.MAX_WEIGHT` (that by default).
An ineligible member has no weight and is not an entrant.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any, ClassVar, Protocol
from zoneinfo import ZoneInfo

from autopilot.checkins.rules import checkin_day
from autopilot.errors import AutopilotError, ConfigIssue
from autopilot.lottery.draw import MAX_WEIGHT, check_member_id
from autopilot.timeutil import parse_iso, zone

ELIGIBILITY_FORMAT = 1
"""Version of :meth:`Eligibility.to_json`'s form (its ``"format"`` field)."""

_ONE_TICK = timedelta(microseconds=1)  # the finest step of a datetime


class InvalidEligibility(AutopilotError, ValueError):
    """Eligibility rules, a weighting, a window or member facts that cannot be used;
    ``issues`` name each field and what is wrong with it. Nothing was decided."""

    def __init__(self, issues: Sequence[ConfigIssue]):
        self.issues = list(issues)
        super().__init__("; ".join(str(i) for i in self.issues))


def _raise_if(issues: list[ConfigIssue]) -> None:
    errors = [i for i in issues if i.severity == "error"]
    if errors:
        raise InvalidEligibility(errors)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _aware(value: object, name: str, issues: list[ConfigIssue]) -> None:
    if not isinstance(value, datetime) or value.tzinfo is None:
        issues.append(ConfigIssue((name,), f"must be a timezone-aware datetime, got {value!r}"))


# -- the window -------------------------------------------------------------------------


@dataclass(frozen=True)
class LotteryWindow:
    """One lottery's window ``[opens_at, closes_at)`` in the community's zone ``tz``
    with its check-in day ``boundary``. Raises :class:`InvalidEligibility` when it is
    empty or a time is naive."""

    opens_at: datetime
    closes_at: datetime
    tz: ZoneInfo
    boundary: time = time(0)

    def __post_init__(self) -> None:
        issues: list[ConfigIssue] = []
        _aware(self.opens_at, "opens_at", issues)
        _aware(self.closes_at, "closes_at", issues)
        if not issues and self.closes_at <= self.opens_at:
            issues.append(
                ConfigIssue(
                    ("closes_at",),
                    f"the window is empty: closes_at {self.closes_at.isoformat()} is not "
                    f"after opens_at {self.opens_at.isoformat()}",
                )
            )
        _raise_if(issues)

    @property
    def first_day(self) -> date:
        """The check-in day of ``opens_at``: the window's first day."""
        return checkin_day(self.opens_at, self.tz, self.boundary)

    @property
    def last_day(self) -> date:
        """The check-in day of the last instant before ``closes_at``: the last window day."""
        return checkin_day(self.closes_at - _ONE_TICK, self.tz, self.boundary)

    @property
    def close_day(self) -> date:
        """The check-in day of the instant ``closes_at``: streaks are judged against it."""
        return checkin_day(self.closes_at, self.tz, self.boundary)

    @property
    def day_count(self) -> int:
        """How many check-in days the window touches: the most check-ins it can hold."""
        return (self.last_day - self.first_day).days + 1

    def day_of(self, moment: datetime) -> date:
        """The check-in day of ``moment`` in this window's zone and boundary."""
        return checkin_day(moment, self.tz, self.boundary)

    def contains_day(self, day: date) -> bool:
        """Whether the check-in day ``day`` is one of the window's days."""
        return self.first_day <= day <= self.last_day


def count_window_checkins(checkin_days: Iterable[date], window: LotteryWindow) -> int:
    """The check-ins in ``window``: the distinct check-in days (made-up days
    included) that are window days. Feed it the days of the member's check-ins
    recorded before the close."""
    first, last = window.first_day, window.last_day
    return len({d for d in checkin_days if first <= d <= last})


# -- member facts -------------------------------------------------------------------------


@dataclass(frozen=True)
class MemberFacts:
    """What eligibility and weight are decided on, read for one member at the close.

    ``streak``/``last_checkin_day``/``freezes``/``tier`` are the member's check-in
    account (``AccountState``); ``checkins_in_window`` is
    :func:`count_window_checkins` of their check-in days; ``last_won_at`` the
    instant of their latest lottery win in the community (any lottery), ``None`` if
    never; ``tickets`` the tickets bought for this lottery. Raises
    :class:`InvalidEligibility` on a value of the wrong type or sign.
    """

    member_id: str
    joined_at: datetime | None = None
    left_at: datetime | None = None
    checkins_in_window: int = 0
    streak: int = 0
    last_checkin_day: date | None = None
    freezes: int = 0
    tier: str | None = None
    last_won_at: datetime | None = None
    tickets: int = 0

    def __post_init__(self) -> None:
        issues: list[ConfigIssue] = []
        try:
            check_member_id(self.member_id, where="member_id")
        except ValueError as exc:
            # The same limits as an entrant's id: whoever is eligible can be drawn.
            issues.append(ConfigIssue(("member_id",), str(exc).removeprefix("member_id: ")))
        for name in ("joined_at", "left_at", "last_won_at"):
            if getattr(self, name) is not None:
                _aware(getattr(self, name), name, issues)
        for name in ("checkins_in_window", "streak", "freezes", "tickets"):
            value = getattr(self, name)
            if not _is_int(value) or value < 0:
                issues.append(ConfigIssue((name,), f"must be an integer >= 0, got {value!r}"))
        day = self.last_checkin_day
        if day is not None and (not isinstance(day, date) or isinstance(day, datetime)):
            issues.append(ConfigIssue(("last_checkin_day",), f"must be a date, got {day!r}"))
        if self.tier is not None and not isinstance(self.tier, str):
            issues.append(ConfigIssue(("tier",), f"must be a tier id or None, got {self.tier!r}"))
        _raise_if(issues)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (instants as ISO-8601 UTC with ``Z``, days as ISO dates)."""
        return {
            "member_id": self.member_id,
            "joined_at": _instant_text(self.joined_at),
            "left_at": _instant_text(self.left_at),
            "checkins_in_window": self.checkins_in_window,
            "streak": self.streak,
            "last_checkin_day": _day_text(self.last_checkin_day),
            "freezes": self.freezes,
            "tier": self.tier,
            "last_won_at": _instant_text(self.last_won_at),
            "tickets": self.tickets,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MemberFacts:
        """The facts :meth:`to_json` produced; :class:`InvalidEligibility` if malformed."""
        if not isinstance(data, Mapping):
            raise InvalidEligibility([ConfigIssue(("facts",), "expected an object")])
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidEligibility(
                [ConfigIssue(("facts",), f"unknown field(s) {', '.join(map(repr, unknown))}")]
            )
        try:
            return cls(
                member_id=data.get("member_id"),  # type: ignore[arg-type]  # checked in init
                joined_at=_parse_instant(data.get("joined_at"), "joined_at"),
                left_at=_parse_instant(data.get("left_at"), "left_at"),
                checkins_in_window=data.get("checkins_in_window", 0),
                streak=data.get("streak", 0),
                last_checkin_day=_parse_day(data.get("last_checkin_day"), "last_checkin_day"),
                freezes=data.get("freezes", 0),
                tier=data.get("tier"),
                last_won_at=_parse_instant(data.get("last_won_at"), "last_won_at"),
                tickets=data.get("tickets", 0),
            )
        except InvalidEligibility as exc:
            raise InvalidEligibility(
                [ConfigIssue(("facts", *i.path), i.message) for i in exc.issues]
            ) from None


def _instant_text(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    utc = moment.astimezone(UTC)
    # Whole seconds read like every other instant the API returns (iso_utc); finer
    # instants keep their microseconds so the round trip is exact.
    pattern = "%Y-%m-%dT%H:%M:%S.%fZ" if utc.microsecond else "%Y-%m-%dT%H:%M:%SZ"
    return utc.strftime(pattern)


def _parse_instant(text: object, name: str) -> datetime | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise InvalidEligibility(
            [ConfigIssue((name,), f"expected an ISO-8601 instant, got {text!r}")]
        )
    try:
        return parse_iso(text)
    except ValueError as exc:
        raise InvalidEligibility([ConfigIssue((name,), str(exc))]) from None


def _day_text(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


def _parse_day(text: object, name: str) -> date | None:
    if text is None:
        return None
    try:
        if not isinstance(text, str):
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidEligibility(
            [ConfigIssue((name,), f"expected an ISO date YYYY-MM-DD, got {text!r}")]
        ) from None


# -- the rules ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    """What a rule is judged against besides the member's facts: the window and the
    community's tier ids, lowest first."""

    window: LotteryWindow
    tier_ids: tuple[str, ...] = ()


class Rule(Protocol):
    """One eligibility rule: ``kind`` names it (in config, reasons and records);
    ``failure`` is ``None`` when the member passes, else the reason in words."""

    kind: ClassVar[str]

    def field_issues(self, tier_ids: Sequence[str] | None) -> list[ConfigIssue]:
        """Problems of the rule's own values (paths relative to the rules object)."""
        ...

    def failure(self, facts: MemberFacts, context: Context) -> str | None:
        """Why ``facts`` fail this rule, or ``None`` when they pass."""
        ...


def _int_at_least(value: object, minimum: int, kind: str) -> list[ConfigIssue]:
    if not _is_int(value) or value < minimum:  # type: ignore[operator]
        return [ConfigIssue((kind,), f"must be an integer >= {minimum}, got {value!r}")]
    return []


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


@dataclass(frozen=True)
class MinCheckins:
    """At least ``count`` check-ins on the window's days."""

    count: int
    kind: ClassVar[str] = "min_checkins"

    def field_issues(self, tier_ids: Sequence[str] | None) -> list[ConfigIssue]:
        """``count`` must be an integer >= 0."""
        return _int_at_least(self.count, 0, self.kind)

    def failure(self, facts: MemberFacts, context: Context) -> str | None:
        """Fails with "3 check-ins in the window, 5 needed"."""
        if facts.checkins_in_window >= self.count:
            return None
        w = context.window
        return (
            f"{_plural(facts.checkins_in_window, 'check-in')} in the window "
            f"({w.first_day.isoformat()} to {w.last_day.isoformat()}), {self.count} needed"
        )


def streak_at_close(facts: MemberFacts, close_day: date) -> int:
    """The member's streak if it is still alive on ``close_day`` (see the module
    docstring), else 0."""
    if facts.last_checkin_day is None or facts.streak == 0:
        return 0
    missed = (close_day - facts.last_checkin_day).days - 1
    return facts.streak if missed <= 0 or missed <= facts.freezes else 0


@dataclass(frozen=True)
class MinStreak:
    """A streak of at least ``days`` still alive at the close."""

    days: int
    kind: ClassVar[str] = "min_streak"

    def field_issues(self, tier_ids: Sequence[str] | None) -> list[ConfigIssue]:
        """``days`` must be an integer >= 0."""
        return _int_at_least(self.days, 0, self.kind)

    def failure(self, facts: MemberFacts, context: Context) -> str | None:
        """Fails with the streak at the close and, if it was broken, when it ended."""
        close_day = context.window.close_day
        alive = streak_at_close(facts, close_day)
        if alive >= self.days:
            return None
        if alive == 0 and facts.streak > 0 and facts.last_checkin_day is not None:
            return (
                f"streak of {_plural(facts.streak, 'day')} ended with the last check-in on "
                f"{facts.last_checkin_day.isoformat()} and was broken by the close day "
                f"{close_day.isoformat()}; a streak of {self.days} needed"
            )
        return f"streak of {_plural(alive, 'day')} at the close, {self.days} needed"


@dataclass(frozen=True)
class MinTier:
    """The member's tier is ``tier`` or higher in the community's tier order."""

    tier: str
    kind: ClassVar[str] = "min_tier"

    def field_issues(self, tier_ids: Sequence[str] | None) -> list[ConfigIssue]:
        """``tier`` must be one of the community's tier ids (when they are given)."""
        if not isinstance(self.tier, str) or not self.tier:
            return [ConfigIssue((self.kind,), f"must be a tier id, got {self.tier!r}")]
        if tier_ids is not None and self.tier not in tier_ids:
            known = ", ".join(map(repr, tier_ids)) or "none"
            return [
                ConfigIssue(
                    (self.kind,),
                    f"unknown tier {self.tier!r}; the community's tiers are: {known}",
                )
            ]
        return []

    def failure(self, facts: MemberFacts, context: Context) -> str | None:
        """Fails when the member has no tier, a lower one, or one no longer defined."""
        order = context.tier_ids
        if self.tier not in order:
            # Config validation refuses this; at run time no one passes an unknown bar.
            return f"tier {self.tier!r} needed, which the community no longer defines"
        if facts.tier is None:
            return f"no tier yet, tier {self.tier!r} or higher needed"
        if facts.tier not in order:
            return (
                f"tier {facts.tier!r} is no longer one of the community's tiers, "
                f"tier {self.tier!r} or higher needed"
            )
        if order.index(facts.tier) >= order.index(self.tier):
            return None
        return f"tier {facts.tier!r}, tier {self.tier!r} or higher needed"


@dataclass(frozen=True)
class JoinedBeforeOpen:
    """Joined strictly before the lottery opened."""

    kind: ClassVar[str] = "joined_before_open"

    def field_issues(self, tier_ids: Sequence[str] | None) -> list[ConfigIssue]:
        """No values to check."""
        return []

    def failure(self, facts: MemberFacts, context: Context) -> str | None:
        """Fails when ``joined_at`` is unknown or not before ``opens_at``."""
        opens_at = context.window.opens_at
        if facts.joined_at is not None and facts.joined_at < opens_at:
            return None
        joined = _instant_text(facts.joined_at) or "at an unknown time"
        return f"joined {joined}, not before the lottery opened at {_instant_text(opens_at)}"


@dataclass(frozen=True)
class NotRecentWinner:
    """No win on the close day or any of the ``days`` days before it."""

    days: int
    kind: ClassVar[str] = "not_won_within_days"

    def field_issues(self, tier_ids: Sequence[str] | None) -> list[ConfigIssue]:
        """``days`` must be an integer >= 1."""
        return _int_at_least(self.days, 1, self.kind)

    def failure(self, facts: MemberFacts, context: Context) -> str | None:
        """Fails with the win's day and the first day the member may win again."""
        if facts.last_won_at is None:
            return None
        window = context.window
        won_day = window.day_of(facts.last_won_at)
        if (window.close_day - won_day).days > self.days:
            return None
        again = won_day + timedelta(days=self.days + 1)
        return (
            f"won a lottery on {won_day.isoformat()}, within {_plural(self.days, 'day')} "
            f"of the close day {window.close_day.isoformat()}; eligible again for lotteries "
            f"closing on {again.isoformat()} or later"
        )


@dataclass(frozen=True)
class NotLeft:
    """Still a member at the close."""

    kind: ClassVar[str] = "not_left"

    def field_issues(self, tier_ids: Sequence[str] | None) -> list[ConfigIssue]:
        """No values to check."""
        return []

    def failure(self, facts: MemberFacts, context: Context) -> str | None:
        """Fails when ``left_at`` is before ``closes_at``."""
        if facts.left_at is None or facts.left_at >= context.window.closes_at:
            return None
        return f"left the community at {_instant_text(facts.left_at)}"


RULE_KINDS: tuple[str, ...] = (
    MinCheckins.kind,
    MinStreak.kind,
    MinTier.kind,
    JoinedBeforeOpen.kind,
    NotRecentWinner.kind,
    NotLeft.kind,
)
"""Every rule's kind, in the order rules are checked and reasons listed."""


@dataclass(frozen=True)
class EligibilityRules:
    """A lottery's rules: every one must hold (an empty set admits every member).

    At most one rule of each kind. Build it from config values with :meth:`of`;
    :meth:`problems` lists what is wrong, and construction raises
    :class:`InvalidEligibility` on anything but an unknown tier (which needs the
    community's tiers: :meth:`problems` with ``tier_ids`` checks it).
    """

    rules: tuple[Rule, ...] = ()

    def __post_init__(self) -> None:
        _raise_if(self.problems())

    @classmethod
    def of(
        cls,
        *,
        min_checkins: int | None = None,
        min_streak: int | None = None,
        min_tier: str | None = None,
        joined_before_open: bool = False,
        not_won_within_days: int | None = None,
        not_left: bool = False,
    ) -> EligibilityRules:
        """The rules named by config keys (``None``/``False``: that rule is off)."""
        rules: list[Rule] = []
        if min_checkins is not None:
            rules.append(MinCheckins(min_checkins))
        if min_streak is not None:
            rules.append(MinStreak(min_streak))
        if min_tier is not None:
            rules.append(MinTier(min_tier))
        if joined_before_open:
            rules.append(JoinedBeforeOpen())
        if not_won_within_days is not None:
            rules.append(NotRecentWinner(not_won_within_days))
        if not_left:
            rules.append(NotLeft())
        return cls(tuple(rules))

    def problems(self, tier_ids: Sequence[str] | None = None) -> list[ConfigIssue]:
        """Every problem of the rules, each naming its field (``min_checkins``...);
        with ``tier_ids`` (the community's, lowest first) also an unknown tier."""
        issues: list[ConfigIssue] = []
        seen: set[str] = set()
        for rule in self.rules:
            kind = getattr(rule, "kind", None)
            if kind not in RULE_KINDS:
                issues.append(ConfigIssue(("rules",), f"not an eligibility rule: {rule!r}"))
                continue
            if kind in seen:
                issues.append(ConfigIssue((kind,), "given more than once"))
            seen.add(kind)
            issues.extend(rule.field_issues(tier_ids))
        return issues

    def and_(self, rule: Rule) -> EligibilityRules:
        """These rules plus ``rule`` (replacing a rule of the same kind)."""
        kept = tuple(r for r in self.rules if r.kind != rule.kind)
        return EligibilityRules((*kept, rule))

    def ordered(self) -> list[Rule]:
        """The rules in :data:`RULE_KINDS` order (the order reasons are listed in)."""
        return sorted(self.rules, key=lambda r: RULE_KINDS.index(r.kind))


# -- weights --------------------------------------------------------------------------------


class WeightMode(StrEnum):
    """How an eligible member's weight is computed (see :func:`weight_of`)."""

    EQUAL = "equal"
    TICKETS = "tickets"
    CHECKINS = "checkins"


@dataclass(frozen=True)
class Weighting:
    """A weight mode and its ``cap`` (1..MAX_WEIGHT; ignored by ``equal``)."""

    mode: WeightMode = WeightMode.EQUAL
    cap: int = MAX_WEIGHT

    def __post_init__(self) -> None:
        _raise_if(self.problems())
        # Config text ("tickets") becomes the enum, so the verdict never holds a bare str.
        object.__setattr__(self, "mode", WeightMode(self.mode))

    def problems(self) -> list[ConfigIssue]:
        """What is wrong with the mode or the cap, each naming its field."""
        issues: list[ConfigIssue] = []
        if self.mode not in tuple(WeightMode):
            modes = ", ".join(m.value for m in WeightMode)
            issues.append(ConfigIssue(("weight",), f"unknown mode {self.mode!r}; use {modes}"))
        if not _is_int(self.cap) or not 1 <= self.cap <= MAX_WEIGHT:
            issues.append(
                ConfigIssue(
                    ("weight_cap",), f"must be an integer 1..{MAX_WEIGHT}, got {self.cap!r}"
                )
            )
        return issues


def weight_of(weighting: Weighting, facts: MemberFacts) -> int:
    """An eligible member's weight, always in ``1..MAX_WEIGHT``:
    ``1``, ``clamp(tickets, 1, cap)`` or ``clamp(checkins_in_window, 1, cap)``."""
    if weighting.mode == WeightMode.TICKETS:
        raw = facts.tickets
    elif weighting.mode == WeightMode.CHECKINS:
        raw = facts.checkins_in_window
    else:
        return 1
    # Zero tickets or check-ins still weigh 1: being eligible is an entry.
    return max(1, min(raw, weighting.cap, MAX_WEIGHT))


# -- the verdict ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """One rule a member failed: its ``kind`` and the reason in words."""

    rule: str
    reason: str


@dataclass(frozen=True)
class Eligibility:
    """The verdict for one member, stored with their entry (or non-entry).

    ``weight`` is ``None`` exactly when ``eligible`` is false; ``failures`` lists
    every failed rule in :data:`RULE_KINDS` order; ``close_day`` is the day streaks
    and wins were judged against; ``facts`` are the facts used.
    """

    member_id: str
    eligible: bool
    weight: int | None
    failures: tuple[Failure, ...]
    close_day: date
    facts: MemberFacts

    def reasons(self) -> list[str]:
        """The failures' reasons, for showing the member."""
        return [f.reason for f in self.failures]

    def to_json(self) -> dict[str, Any]:
        """The stable JSON form (``format`` 1): keys and their meaning never change
        within a format; :meth:`from_json` reads it back exactly."""
        return {
            "format": ELIGIBILITY_FORMAT,
            "member_id": self.member_id,
            "eligible": self.eligible,
            "weight": self.weight,
            "failures": [{"rule": f.rule, "reason": f.reason} for f in self.failures],
            "close_day": self.close_day.isoformat(),
            "facts": self.facts.to_json(),
        }

    def to_json_text(self) -> str:
        """:meth:`to_json` as compact JSON text with sorted keys (byte-stable)."""
        return json.dumps(self.to_json(), ensure_ascii=False, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | str) -> Eligibility:
        """Read :meth:`to_json` (or its text) back; :class:`InvalidEligibility` if malformed."""
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except ValueError as exc:
                raise InvalidEligibility([ConfigIssue(("eligibility",), str(exc))]) from None
            except RecursionError:
                issue = ConfigIssue(("eligibility",), "JSON nested too deeply")
                raise InvalidEligibility([issue]) from None
        if not isinstance(data, Mapping):
            raise InvalidEligibility([ConfigIssue(("eligibility",), "expected an object")])
        if data.get("format") != ELIGIBILITY_FORMAT:
            raise InvalidEligibility(
                [ConfigIssue(("format",), f"unsupported format {data.get('format')!r}")]
            )
        failures_raw = data.get("failures")
        if not isinstance(failures_raw, list) or not all(
            isinstance(f, Mapping)
            and set(f) == {"rule", "reason"}
            and f["rule"] in RULE_KINDS
            and isinstance(f["reason"], str)
            for f in failures_raw
        ):
            raise InvalidEligibility(
                [ConfigIssue(("failures",), "expected a list of {rule, reason} objects")]
            )
        failures = tuple(Failure(f["rule"], f["reason"]) for f in failures_raw)
        eligible, weight = data.get("eligible"), data.get("weight")
        if not isinstance(eligible, bool) or eligible == bool(failures):
            raise InvalidEligibility(
                [ConfigIssue(("eligible",), "must be true exactly when there are no failures")]
            )
        if eligible != (weight is not None) or (
            weight is not None and (not _is_int(weight) or not 1 <= weight <= MAX_WEIGHT)
        ):
            raise InvalidEligibility(
                [ConfigIssue(("weight",), f"must be 1..{MAX_WEIGHT} when eligible, else null")]
            )
        facts = MemberFacts.from_json(data.get("facts"))  # type: ignore[arg-type]
        if data.get("member_id") != facts.member_id:
            raise InvalidEligibility([ConfigIssue(("member_id",), "differs from facts.member_id")])
        close_day = _parse_day(data.get("close_day"), "close_day")
        if close_day is None:
            raise InvalidEligibility([ConfigIssue(("close_day",), "missing")])
        return cls(facts.member_id, eligible, weight, failures, close_day, facts)


def evaluate(
    rules: EligibilityRules,
    facts: MemberFacts,
    window: LotteryWindow,
    *,
    tier_ids: Sequence[str] = (),
    weighting: Weighting | None = None,
) -> Eligibility:
    """Judge ``facts`` against every rule (all are checked, so the verdict lists
    every reason) and, when eligible, weigh the member (:func:`weight_of`; equal
    weights without ``weighting``). ``tier_ids`` are the community's, lowest first."""
    context = Context(window, tuple(tier_ids))
    failures = []
    for rule in rules.ordered():
        reason = rule.failure(facts, context)
        if reason is not None:
            failures.append(Failure(rule.kind, reason))
    eligible = not failures
    weight = weight_of(weighting or Weighting(), facts) if eligible else None
    return Eligibility(facts.member_id, eligible, weight, tuple(failures), window.close_day, facts)


# -- impossible and degenerate rule sets ------------------------------------------------------


def impossible_rules(
    rules: EligibilityRules,
    window: LotteryWindow,
    *,
    tier_ids: Sequence[str] | None = None,
    weighting: Weighting | None = None,
) -> list[ConfigIssue]:
    """Problems config validation reports for a lottery with ``window`` (call it for
    each window the schedule produces, or the shortest): the rules' own problems,
    then *errors* for what no member could ever meet and *warnings* for settings
    that have no effect. Paths are relative to the lottery's eligibility settings.

    Impossible: ``min_checkins`` above the window's day count (one check-in per
    day). Not impossible, only strict: any ``min_streak`` (a streak may begin long
    before the window), any ``not_won_within_days``, ``joined_before_open``.
    """
    issues = rules.problems(tier_ids)
    if weighting is not None:
        issues.extend(weighting.problems())
    days = window.day_count
    span = f"{window.first_day.isoformat()} to {window.last_day.isoformat()}"
    min_checkins = next((r for r in rules.rules if isinstance(r, MinCheckins)), None)
    if min_checkins is not None and _is_int(min_checkins.count) and min_checkins.count > days:
        issues.append(
            ConfigIssue(
                (MinCheckins.kind,),
                f"{min_checkins.count} check-ins needed, but the window ({span}) has only "
                f"{_plural(days, 'day')} and a member checks in at most once a day: "
                "no one could ever be eligible",
            )
        )
    if weighting is not None and weighting.mode == WeightMode.CHECKINS and _is_int(weighting.cap):
        if weighting.cap > days:
            issues.append(
                ConfigIssue(
                    ("weight_cap",),
                    f"cap {weighting.cap} is above the window's {_plural(days, 'day')} "
                    f"({span}): no weight can exceed {days}",
                    severity="warning",
                )
            )
        if min_checkins is not None and _is_int(min_checkins.count):
            top = min(weighting.cap, days)
            if min_checkins.count >= top:
                issues.append(
                    ConfigIssue(
                        ("weight",),
                        f"every eligible member has at least {min_checkins.count} check-ins "
                        f"and the weight is capped at {top}: all weights are equal",
                        severity="warning",
                    )
                )
    return issues


def window_for(
    opens_at: datetime, closes_at: datetime, timezone: str, day_boundary: time
) -> LotteryWindow:
    """A :class:`LotteryWindow` from a community's zone name and day boundary."""
    return LotteryWindow(opens_at, closes_at, zone(timezone), day_boundary)


__all__ = [
    "ELIGIBILITY_FORMAT",
    "RULE_KINDS",
    "Context",
    "Eligibility",
    "EligibilityRules",
    "Failure",
    "InvalidEligibility",
    "JoinedBeforeOpen",
    "LotteryWindow",
    "MemberFacts",
    "MinCheckins",
    "MinStreak",
    "MinTier",
    "NotLeft",
    "NotRecentWinner",
    "Rule",
    "WeightMode",
    "Weighting",
    "count_window_checkins",
    "evaluate",
    "impossible_rules",
    "streak_at_close",
    "weight_of",
    "window_for",
]
