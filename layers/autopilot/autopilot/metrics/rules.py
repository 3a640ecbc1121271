"""Pure metric rules: the metrics day, the counters one event adds, and the snapshot.

Nothing here reads the clock or AWS. The ledger store adds an event's counters
(:func:`checkin_counters`, :func:`money_counters`, :func:`membership_counters`)
to the community's sharded metric items of the event's **metrics day** in the
event's own transaction; the snapshot job reads the items of a day (and of the
29 days before it, for the active-member windows) and :func:`build_snapshot`
turns them into the figures of docs/metrics.md.

Metrics day
-----------
The community's check-in day of the event's instant (its timezone and day
boundary: :func:`autopilot.checkins.rules.checkin_day`). Every figure of a
snapshot uses this one day, so a day's counters stop changing when the day is
over in the community, whatever zone a member lives in.

Distinct active members, exactly, in constant reads
---------------------------------------------------
Each check-in adds 1 to ``g<k>``, where ``k`` is the number of metrics days since
the member's previous check-in (``g0``: another check-in on the same metrics day,
which a member living in another zone can make; ``gmore``: more than
:data:`MAX_GAP` days, or their first check-in). A member who checked in on any
of the ``n`` days ``d - n + 1 .. d`` is counted exactly once: on their first
check-in inside the window, the one whose gap reaches back before the window. So

    active_n(d) = sum over e in [d - n + 1, d] of sum over k > e - (d - n + 1) of g_k(e)

with ``g_more`` counting as an infinite gap. ``dau``, ``wau`` and ``mau`` are
``n`` = 1, 7 and 30: exact (no sketch, no error bound), from 30 days of items,
whatever the number of members.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any

from autopilot.checkins.rules import checkin_day
from autopilot.timeutil import zone

VERSION = 1
#: The largest gap (in metrics days) counted on its own; longer gaps are ``gmore``.
MAX_GAP = 30
GAP_NAMES: tuple[str, ...] = (*(f"g{k}" for k in range(MAX_GAP + 1)), "gmore")
#: Streak buckets: (label in the snapshot, counter attribute, first, last or None).
STREAK_BUCKETS: tuple[tuple[str, str, int, int | None], ...] = (
    ("1-2", "s1_2", 1, 2),
    ("3-6", "s3_6", 3, 6),
    ("7-29", "s7_29", 7, 29),
    ("30-99", "s30_99", 30, 99),
    ("100+", "s100", 100, None),
)
#: Ledger reasons by snapshot group (docs/metrics.md).
REASON_GROUPS: dict[str, tuple[str, ...]] = {
    "awarded": ("checkin", "streak_bonus", "lottery_prize", "referral", "lottery_refund"),
    "redeemed": ("redemption", "lottery_entry"),
    "adjusted": ("adjustment", "makeup", "expiry"),
}
#: Every counter of a day's metric items (besides ``r_<reason>``).
COUNTERS: tuple[str, ...] = (
    "checkins",
    "makeups",
    "new_streaks",
    "joined",
    "left",
    "net",
    *GAP_NAMES,
    *(attr for _, attr, _, _ in STREAK_BUCKETS),
)
WINDOWS = {"dau": 1, "wau": 7, "mau": 30}


def metrics_day(at_utc: datetime, timezone: str, boundary: Any) -> date:
    """The metrics day of an instant in a community (its check-in day)."""
    return checkin_day(at_utc, zone(timezone), boundary)


def gap_name(previous: date | None, day: date) -> str:
    """The gap counter of a check-in on ``day`` after one on ``previous``."""
    if previous is None:
        return "gmore"
    gap = (day - previous).days
    if gap < 0:  # an earlier metrics day than the last one (a zone change): same day
        gap = 0
    return f"g{gap}" if gap <= MAX_GAP else "gmore"


def streak_attr(streak: int) -> str:
    """The counter of a streak length (after the check-in)."""
    for _, attr, first, last in STREAK_BUCKETS:
        if streak >= first and (last is None or streak <= last):
            return attr
    return STREAK_BUCKETS[0][1]


def checkin_counters(
    previous_day: date | None, day: date, streak_after: int, *, makeup: bool, joined: bool
) -> dict[str, int]:
    """What one check-in adds to the metric items of its metrics day."""
    counters = {
        "checkins": 1,
        gap_name(previous_day, day): 1,
        streak_attr(streak_after): 1,
    }
    if streak_after == 1:
        counters["new_streaks"] = 1
    if makeup:
        counters["makeups"] = 1
    if joined:
        counters["joined"] = 1
    return counters


def money_counters(amounts_by_reason: Mapping[str, int]) -> dict[str, int]:
    """What a movement's entries add: ``net`` and ``r_<reason>`` (zero amounts left out)."""
    out = {f"r_{reason}": amount for reason, amount in amounts_by_reason.items() if amount}
    total = sum(amounts_by_reason.values())
    if total:
        out["net"] = total
    return out


def membership_counters(*, joined: bool = False, left: bool = False) -> dict[str, int]:
    """A registration or a leave (a rejoin is a registration)."""
    out: dict[str, int] = {}
    if joined:
        out["joined"] = 1
    if left:
        out["left"] = 1
    return out


def merge(*parts: Mapping[str, int]) -> dict[str, int]:
    """Counters added together."""
    out: dict[str, int] = {}
    for part in parts:
        for name, value in part.items():
            out[name] = out.get(name, 0) + int(value)
    return {k: v for k, v in out.items() if v}


def active_counts(gaps_by_day: Mapping[date, Mapping[str, int]], day: date) -> dict[str, int]:
    """``dau``, ``wau``, ``mau`` on ``day`` from the gap counters of it and the 29
    days before (missing days count zero); see the module docstring."""
    out = {}
    for name, n in WINDOWS.items():
        start = day - timedelta(days=n - 1)
        total = 0
        for offset in range(n):
            e = start + timedelta(days=offset)
            counts = gaps_by_day.get(e) or {}
            reach = (e - start).days  # gaps > reach reach back before the window
            total += int(counts.get("gmore", 0))
            total += sum(int(counts.get(f"g{k}", 0)) for k in range(reach + 1, MAX_GAP + 1))
        out[name] = total
    return out


def _ratio(numerator: int, denominator: int) -> float:
    return round(numerator / denominator, 3) if denominator else 0.0


def build_snapshot(
    community_id: str,
    day: date,
    counters: Mapping[str, int],
    gaps_by_day: Mapping[date, Mapping[str, int]],
    *,
    previous: Mapping[str, Any] | None,
    members_baseline: int,
    outstanding_baseline: int,
    lottery: Mapping[str, int] | None = None,
    posts: Mapping[str, Mapping[str, int]] | None = None,
    reminders: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """The snapshot of ``day`` (docs/metrics.md) from its frozen counters.

    ``previous``: the snapshot of the day before (its totals are carried); without
    one, ``members_baseline`` / ``outstanding_baseline`` are the totals at the end
    of the day before (the caller derives them from the all-time counters).
    """
    joined, left = int(counters.get("joined", 0)), int(counters.get("left", 0))
    if previous is not None:
        members_before = int(previous["members"]["total"])
        outstanding_before = int(previous["points"]["outstanding"])
    else:
        members_before, outstanding_before = members_baseline, outstanding_baseline
    active = active_counts(gaps_by_day, day)
    checkins = int(counters.get("checkins", 0))
    points: dict[str, Any] = {}
    for group, reasons in REASON_GROUPS.items():
        points[group] = {r: int(counters.get(f"r_{r}", 0)) for r in reasons}
        points[f"{group}_total"] = sum(points[group].values())
    net = int(counters.get("net", 0))
    points["net"] = net
    points["outstanding"] = outstanding_before + net
    entrants = int((lottery or {}).get("entrants", 0))
    return {
        "community": community_id,
        "day": day.isoformat(),
        "version": VERSION,
        "members": {"total": members_before + joined - left, "joined": joined, "left": left},
        "active": active,
        "checkins": {
            "count": checkins,
            "rate": _ratio(checkins, active["wau"]),
            "new_streaks": int(counters.get("new_streaks", 0)),
            "makeups": int(counters.get("makeups", 0)),
        },
        "streaks": {label: int(counters.get(attr, 0)) for label, attr, _, _ in STREAK_BUCKETS},
        "points": points,
        "lottery": {
            "entries": int((lottery or {}).get("entries", 0)),
            "entrants": entrants,
            "participation": _ratio(entrants, active["wau"]),
        },
        "posts": {
            "published": dict(sorted((posts or {}).get("published", {}).items())),
            "failed": dict(sorted((posts or {}).get("failed", {}).items())),
        },
        "reminders": {
            "sent": int((reminders or {}).get("sent", 0)),
            "converted": int((reminders or {}).get("converted", 0)),
        },
    }


def days(first: date, last: date) -> Iterable[date]:
    """``first`` .. ``last`` inclusive."""
    for offset in range((last - first).days + 1):
        yield first + timedelta(days=offset)
