"""Simulated members who behave like people (for `autopilot simulate`).

Deterministic for a seed. Archetypes, with shares of the population:

* devoted (5 %) — streak-keepers: check in 98 % of days, early, never churn;
* regular (45 %) — 75 % of days, around a personal morning peak;
* casual (35 %) — 35 % of days, any time of the day, 1 % daily churn;
* lurker (15 %) — 5 % of days, 2 % daily churn.

Everyone checks in about 20 % less on weekends (local Saturday and Sunday), a
few join during the simulated period, and members who can afford a reward
redeem one now and then (3 % of check-ins at or above its cost).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

ARCHETYPES = (
    # name, share, daily propensity, churn per day, peak hour, spread (hours)
    ("devoted", 0.05, 0.98, 0.0, 6.8, 0.5),
    ("regular", 0.45, 0.75, 0.002, 7.6, 1.2),
    ("casual", 0.35, 0.35, 0.01, 12.0, 4.5),
    ("lurker", 0.15, 0.05, 0.02, 20.0, 2.5),
)
WEEKEND_FACTOR = 0.8
REDEEM_PROBABILITY = 0.03
# After a check-in, the chance a member who has not entered this week's draw enters it.
LOTTERY_ENTRY_PROBABILITY = 0.5
# The chance a member, at their first check-in, opts out of the streak reminders
# (PUT /me/preferences), and of every reminder.
OPT_OUT_STREAK_PROBABILITY = 0.08
OPT_OUT_ALL_PROBABILITY = 0.04
# The chance a reminded member checks in after the reminder, and how soon (minutes).
REMINDER_RESPONSE_PROBABILITY = 0.35
REMINDER_RESPONSE_MINUTES = (2, 150)


@dataclass
class SimMember:
    """One simulated member and their habits."""

    id: str
    display_name: str
    archetype: str
    propensity: float
    churn: float
    peak_hour: float
    spread_hours: float
    joins_on_day: int = 0
    churned_on_day: int | None = None


def _archetype(roll: float) -> tuple[str, float, float, float, float, float]:
    """The archetype a uniform ``roll`` in [0, 1) falls into."""
    for archetype in ARCHETYPES:
        roll -= archetype[1]
        if roll < 0:
            return archetype
    return ARCHETYPES[-1]


def population(size: int, seed: int, prefix: str, days: int) -> list[SimMember]:
    """``size`` members of a community, deterministic for ``seed``."""
    rng = random.Random(f"{seed}/{prefix}/population")
    members = []
    for index in range(size):
        name, _, propensity, churn, peak, spread = _archetype(rng.random())
        joins = 0 if rng.random() < 0.9 or days <= 1 else rng.randrange(1, days)
        members.append(
            SimMember(
                id=f"{prefix}-{index:05d}",
                display_name=f"{prefix} member {index}",
                archetype=name,
                propensity=min(0.995, max(0.0, rng.gauss(propensity, 0.05))),
                churn=churn,
                peak_hour=peak + rng.uniform(-0.5, 0.5),
                spread_hours=spread,
                joins_on_day=joins,
            )
        )
    return members


def checkin_time(
    member: SimMember, day_index: int, local_date: date, tz: ZoneInfo, rng: random.Random
) -> datetime | None:
    """When (an aware local datetime) the member checks in that day, or None."""
    if day_index < member.joins_on_day or member.churned_on_day is not None:
        return None
    if member.churn and rng.random() < member.churn:
        member.churned_on_day = day_index
        return None
    propensity = member.propensity * (WEEKEND_FACTOR if local_date.weekday() >= 5 else 1.0)
    if rng.random() >= propensity:
        return None
    hour = min(23.99, max(0.0, rng.gauss(member.peak_hour, member.spread_hours)))
    wall = datetime.combine(local_date, time(0)) + timedelta(hours=hour)
    return wall.replace(second=rng.randrange(60), tzinfo=tz)


def wants_to_redeem(rng: random.Random) -> bool:
    """Whether a member who can afford a reward redeems one after this check-in."""
    return rng.random() < REDEEM_PROBABILITY


def wants_to_enter_lottery(rng: random.Random) -> bool:
    """Whether a member, on this visit, enters the open lottery they have not entered."""
    return rng.random() < LOTTERY_ENTRY_PROBABILITY


def reminder_response(rng: random.Random) -> int | None:
    """Minutes after a reminder at which a member checks in (None: ignores it).

    Answers are spread over the evening, within the default 4-hour conversion window.
    """
    if rng.random() >= REMINDER_RESPONSE_PROBABILITY:
        return None
    return rng.randint(*REMINDER_RESPONSE_MINUTES)


def reminder_preferences(rng: random.Random) -> dict[str, object] | None:
    """The ``reminders`` a member sets at their first check-in (None: keeps the default)."""
    roll = rng.random()
    if roll < OPT_OUT_ALL_PROBABILITY:
        return {"reminders": False}
    if roll < OPT_OUT_ALL_PROBABILITY + OPT_OUT_STREAK_PROBABILITY:
        return {"reminders": {"streak_at_risk": False}}
    return None
