"""`autopilot schedule preview`: the next occurrences of every job, local and UTC."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TextIO

from autopilot.config.model import Community, Config, Job
from autopilot.scheduler.rules import DST_GAP, DST_OVERLAP, Occurrence, occurrences_between
from autopilot.timeutil import iso_utc, zone


@dataclass(frozen=True)
class PreviewRow:
    """One upcoming occurrence as ops see it."""

    community: Community
    job: Job
    occurrence: Occurrence

    def notes(self) -> list[str]:
        """Quiet-hours and DST remarks for this occurrence."""
        tz = zone(self.community.timezone)
        occ = self.occurrence
        notes = []
        if occ.dst == DST_GAP:
            notes.append(
                f"DST gap: {occ.nominal_local:%H:%M} does not exist that day; "
                f"runs at {occ.scheduled_utc.astimezone(tz):%H:%M %Z}"
            )
        elif occ.dst == DST_OVERLAP:
            notes.append(
                f"DST overlap: {occ.nominal_local:%H:%M} happens twice; runs once, "
                f"at the first ({occ.scheduled_utc.astimezone(tz):%Z})"
            )
        if occ.quiet == "deferred":
            notes.append(f"quiet hours: deferred to {occ.due_utc.astimezone(tz):%H:%M}")
        elif occ.quiet == "dropped":
            notes.append("quiet hours: dropped")
        return notes


def preview_rows(
    config: Config, start_utc: datetime, days: int, community_id: str | None = None
) -> list[PreviewRow]:
    """Every occurrence scheduled in ``(start_utc, start_utc + days]``, in time order."""
    end = start_utc + timedelta(days=days)
    rows = []
    for community in config.communities:
        if community_id and community.id != community_id:
            continue
        tz = zone(community.timezone)
        for job in community.jobs:
            if not job.enabled:
                continue
            for occ in occurrences_between(
                community.id, job, tz, community.quiet_hours, start_utc, end
            ):
                rows.append(PreviewRow(community, job, occ))
    rows.sort(key=lambda r: (r.occurrence.scheduled_utc, r.community.id, r.job.id))
    return rows


def print_preview(rows: list[PreviewRow], out: TextIO | None = None) -> None:
    """Print the rows as an aligned table grouped by community-local day."""
    out = out if out is not None else sys.stdout  # bound at call time, not import
    if not rows:
        out.write("nothing scheduled in this window\n")
        return
    # Columns as wide as the longest value (lottery jobs: lottery.<id>.<step>).
    job_width = max(18, *(len(r.job.id) for r in rows))
    action_width = max(8, *(len(r.job.action) for r in rows))
    current = None
    for row in rows:
        tz = zone(row.community.timezone)
        local = row.occurrence.scheduled_utc.astimezone(tz)
        day = (row.community.id, local.date())
        if day != current:
            current = day
            out.write(
                f"\n{row.community.name} ({row.community.id}, {row.community.timezone}) "
                f"— {local:%Y-%m-%d %a}\n"
            )
        notes = row.notes()
        line = (
            f"  {local.strftime('%H:%M %Z'):<10} {iso_utc(row.occurrence.scheduled_utc)}  "
            f"{row.job.id:<{job_width}} {row.job.action:<{action_width}}"
            + (f"  ⚠ {'; '.join(notes)}" if notes else "")
        )
        out.write(line.rstrip() + "\n")
