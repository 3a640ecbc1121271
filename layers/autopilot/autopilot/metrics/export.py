"""Daily snapshots as one CSV table: what ops and finance open in a spreadsheet.

``GET /metrics?format=csv`` answers :func:`snapshots_csv`. A snapshot
(docs/metrics.md) nests its figures; here each figure is one column named by
its path joined with ``_`` (``members.total`` -> ``members_total``), one row
per snapshot, in this order (docs/api.md documents it):

``day``, ``members_total``, ``members_joined``, ``members_left``,
``active_dau``, ``active_wau``, ``active_mau``, ``checkins_count``,
``checkins_rate``, ``checkins_new_streaks``, ``checkins_makeups``,
``streaks_<bucket>`` (1-2, 3-6, 7-29, 30-99, 100+), for each ledger group
(awarded, redeemed, adjusted) ``points_<group>_<reason>`` then
``points_<group>_total``, ``points_net``, ``points_outstanding``,
``lottery_entries``, ``lottery_entrants``, ``lottery_participation``, then for
every channel present in any row (sorted) ``posts_published_<channel>`` and
``posts_failed_<channel>``, and ``reminders_sent``, ``reminders_converted``.

The columns are fixed by :mod:`autopilot.metrics.rules` (buckets, reasons), so
two exports of different periods line up; only the channel columns depend on
the rows, because a community's channels change over time. A channel absent
from a day had no delivery that day: 0. A reason a future snapshot version
adds is not dropped: it gets its column after the known ones of its group.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date
from typing import Any

from autopilot.metrics.rules import REASON_GROUPS, STREAK_BUCKETS, days

# A spreadsheet evaluates a text cell starting with one of these as a formula (OWASP
# "CSV injection"); a leading apostrophe makes it plain text. The same rule as the
# ledger's CSV (autopilot.ledger.rules). Numbers are never prefixed: -300 stays a number.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

_Getter = Callable[[Mapping[str, Any]], Any]


def safe_text(text: str) -> str:
    """``text`` made inert for spreadsheets (a formula prefix gets a leading ``'``)."""
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def _path(*keys: str) -> _Getter:
    """A getter of a nested figure (None when the snapshot has no such figure)."""

    def get(snapshot: Mapping[str, Any]) -> Any:
        value: Any = snapshot
        for key in keys:
            if not isinstance(value, Mapping):
                return None
            value = value.get(key)
        return value

    return get


def _channel_count(kind: str, channel: str) -> _Getter:
    """A channel's deliveries of ``kind`` (published/failed) on the day: 0 when absent."""

    def get(snapshot: Mapping[str, Any]) -> Any:
        counts = _path("posts", kind)(snapshot)
        return counts.get(channel, 0) if isinstance(counts, Mapping) else 0

    return get


def _keys_of(snapshots: Sequence[Mapping[str, Any]], *path: str) -> set[str]:
    """Every key of the mapping at ``path`` in any snapshot."""
    keys: set[str] = set()
    for snapshot in snapshots:
        found = _path(*path)(snapshot)
        if isinstance(found, Mapping):
            keys.update(str(key) for key in found)
    return keys


def columns(snapshots: Sequence[Mapping[str, Any]]) -> list[tuple[str, _Getter]]:
    """The CSV's columns for ``snapshots``: (header, getter), in the documented order."""
    cols: list[tuple[str, _Getter]] = [("day", _path("day"))]
    cols += [(f"members_{k}", _path("members", k)) for k in ("total", "joined", "left")]
    cols += [(f"active_{k}", _path("active", k)) for k in ("dau", "wau", "mau")]
    cols += [
        (f"checkins_{k}", _path("checkins", k)) for k in ("count", "rate", "new_streaks", "makeups")
    ]
    cols += [(f"streaks_{label}", _path("streaks", label)) for label, *_ in STREAK_BUCKETS]
    for group, reasons in REASON_GROUPS.items():
        extra = sorted(_keys_of(snapshots, "points", group) - set(reasons))
        cols += [(f"points_{group}_{r}", _path("points", group, r)) for r in (*reasons, *extra)]
        cols.append((f"points_{group}_total", _path("points", f"{group}_total")))
    cols += [(f"points_{k}", _path("points", k)) for k in ("net", "outstanding")]
    cols += [
        (f"lottery_{k}", _path("lottery", k)) for k in ("entries", "entrants", "participation")
    ]
    channels = sorted(
        _keys_of(snapshots, "posts", "published") | _keys_of(snapshots, "posts", "failed")
    )
    for channel in channels:
        cols.append((f"posts_published_{channel}", _channel_count("published", channel)))
        cols.append((f"posts_failed_{channel}", _channel_count("failed", channel)))
    cols += [(f"reminders_{k}", _path("reminders", k)) for k in ("sent", "converted")]
    return cols


def _cell(value: Any) -> str:
    """A figure as a cell: numbers as written in the snapshot, text made inert, absent empty."""
    if value is None:
        return ""
    if isinstance(value, bool):  # not a figure of version 1; never render it as 1/0
        return str(value).lower()
    if isinstance(value, int | float):
        return repr(value)
    return safe_text(str(value))


def snapshots_csv(snapshots: Iterable[Mapping[str, Any]]) -> str:
    """``snapshots`` (in day order) as CSV text: a header, then one row per snapshot.

    No snapshot: the header alone (without channel columns), so an empty period
    still opens as a table with its columns.
    """
    rows = list(snapshots)
    cols = columns(rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([safe_text(name) for name, _ in cols])
    for snapshot in rows:
        writer.writerow([_cell(get(snapshot)) for _, get in cols])
    return out.getvalue()


def missing_days(snapshots: Iterable[Mapping[str, Any]], first: date, last: date) -> list[str]:
    """The days of ``first`` .. ``last`` (ISO) without a snapshot: days not snapshotted
    yet (today, the future, a job that has not caught up) or before the community's
    first snapshot. The JSON answer lists them so a gap is never mistaken for zeros."""
    present = {snapshot.get("day") for snapshot in snapshots}
    return [d.isoformat() for d in days(first, last) if d.isoformat() not in present]
