"""Time zones, local wall-clock times and durations.

Zone data always comes from the ``tzdata`` package shipped in the layer: Lambda's
Python runtimes do not dependably ship ``/usr/share/zoneinfo``, and the system
zone or ``TZ`` must never leak into a community's schedule. ``zoneinfo`` is told
to search no system path, so local runs and Lambda see the same rules.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache

# Only the tzdata package: identical zone rules on every machine and in Lambda.
zoneinfo.reset_tzpath(to=[])

_DURATION = re.compile(r"^(\d+)([smhd])$")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


# IANA names are at most ~30 characters; a longer one is refused before any file lookup.
MAX_ZONE_NAME = 64


@lru_cache(maxsize=256)
def zone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA zone ``name``; raises ``ValueError`` with a clear message if unknown.

    Every way a name can fail is this one error, so validators and the API can
    answer "unknown time zone" instead of crashing: a folder of the zone
    database (``America``, ``Etc``: ``IsADirectoryError``), a path (``..``,
    ``Asia/``), a NUL or a surrogate, an over-long name (``File name too long``)
    or a file of the database that is not a zone (``zone1970.tab``).
    """
    if not isinstance(name, str) or not name or len(name) > MAX_ZONE_NAME:
        raise ValueError(f"unknown time zone {str(name)[:MAX_ZONE_NAME]!r}")
    if name.startswith(("/", ".")):
        raise ValueError(f"unknown time zone {name!r}")
    try:
        return zoneinfo.ZoneInfo(name)
    # ZoneInfoNotFoundError is a KeyError; OSError covers IsADirectoryError and
    # over-long names; ValueError covers NUL, unnormalised paths, UnicodeError
    # and files that are not TZif data.
    except (KeyError, OSError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name such as Asia/Shanghai)"
        ) from exc


def parse_duration(text: str) -> timedelta:
    """Parse ``30s``, ``10m``, ``2h`` or ``1d`` into a timedelta."""
    match = _DURATION.match(str(text).strip())
    if not match:
        raise ValueError(f"invalid duration {text!r} (expected e.g. 30s, 10m, 2h, 1d)")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def parse_hhmm(text: str) -> time:
    """Parse a local wall-clock time ``HH:MM`` (00:00–23:59)."""
    match = _HHMM.match(str(text).strip())
    if not match:
        raise ValueError(f"invalid time of day {text!r} (expected HH:MM, 00:00-23:59)")
    return time(int(match.group(1)), int(match.group(2)))


def to_utc(moment: datetime) -> datetime:
    """Normalise an aware datetime to UTC (naive datetimes are refused)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime where an aware one is required")
    return moment.astimezone(UTC)


def local_wall(moment_utc: datetime, tz: zoneinfo.ZoneInfo) -> datetime:
    """The naive local wall-clock time of an instant in ``tz``."""
    return moment_utc.astimezone(tz).replace(tzinfo=None)


def iso_utc(moment: datetime) -> str:
    """Fixed-width ISO-8601 UTC with a ``Z`` suffix (sorts lexicographically)."""
    return to_utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    """Parse an ISO-8601 instant; a missing offset is refused rather than guessed.

    Every bad input is a ``ValueError``, including instants whose UTC value falls
    outside the calendar (``0001-01-01T00:00:00+14:00``), so callers parsing
    untrusted text (cursors) need to catch only that.
    """
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            raise ValueError(f"timestamp {text!r} has no UTC offset")
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"timestamp {text[:40]!r} is out of range") from None
