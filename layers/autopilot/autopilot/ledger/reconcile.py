"""Ledger reconciliation: nightly and incremental, plus the full audit ops run on demand.

Nightly work is proportional to the members who moved points since the last run,
never to the size of the ledger (docs/ledger.md, "Reconciliation"):

* every movement's transaction also writes a *touch* item, ``TOUCH#<community>#<UTC
  day>#<shard>`` / ``M#<member>``; the nightly run Queries those partitions (no Scan)
  for the days since its watermark;
* each member carries a ``RECON`` item: the account version (``seq``) and balance up
  to which its chain is verified. For a touched member only the entries committed
  after that point are read and chained from the verified balance to the account;
* the community's ``CHECKPOINT`` carries the watermark and the *verified total*, the
  sum of every member's verified balance; it is compared with the sharded all-time
  aggregate. Advancing ``RECON`` items and the total is one conditional transaction,
  so a duplicated or concurrent run never counts a change twice (idempotent).

Watermark: ``through_day`` is the last UTC day whose touch partitions can receive no
more writes and were all processed. A touch item's day is the day of the movement's
``now``, taken *before* its transaction commits, so a day is closed only
:data:`COMMIT_LAG` after it ends. A run processes every day after the watermark up to
today; members touched while it runs are in today's (or a later) partition, which is
never behind the watermark, so the next run sees them.

The full audit re-reads every member's full history, page by page through the
member index (``gsi1``, ``A#<community>#<shard>``), with a cursor to resume from.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from autopilot.ledger.rules import Entry, _chain_order, reconcile
from autopilot.ledger.store import ENTRY_SHARDS, LedgerStore, ReconItem, member_pk
from autopilot.timeutil import iso_utc, parse_iso

# How long a movement's transaction can commit after its ``now`` was taken: every
# writer is a Lambda invocation (15 minutes at most), with a wide margin.
COMMIT_LAG = timedelta(hours=1)
# Members verified per transaction (RECON items + the checkpoint: at most 100 items).
BATCH = 25
# Members per page of the full audit.
AUDIT_PAGE = 100
# Open mismatches kept on the checkpoint and re-checked every night.
MAX_SUSPECTS = 1000

Deadline = Callable[[], bool]


def _never() -> bool:
    return False


def finding(member: str, kind: str, detail: str) -> dict[str, str]:
    """A reconciliation finding as reports carry it."""
    return {"member": member, "kind": str(kind), "detail": detail}


def verify_increment(
    member_id: str,
    base: tuple[int, int] | None,
    entries: Iterable[Entry],
    balance: int,
    version: int,
) -> tuple[list[dict[str, str]], datetime | None]:
    """Check a member's entries against the account read as (``balance``, ``version``).

    ``base`` is the verified point ``(balance, seq)``; ``None`` checks the full
    history (the rules of :func:`autopilot.ledger.rules.reconcile`). Otherwise only
    entries with ``seq`` after the base count, chained in ``seq`` order from the
    base balance to the account's balance. Entries with ``seq`` above ``version``
    committed after the account was read and are left for the next run. Returns
    the findings and the latest ``at_utc`` among the entries checked.
    """
    found: list[dict[str, str]] = []
    if base is None:
        kept = [e for e in entries if e.seq is None or e.seq <= version]
        found = [
            finding(m.member_id, m.kind, m.detail) for m in reconcile(kept, {member_id: balance})
        ]
        return found, max((e.at_utc for e in kept), default=None)
    start_balance, start_seq = base
    new: list[Entry] = []
    seen: set[str] = set()
    for entry in entries:
        if entry.seq is None:
            if entry.entry_id not in seen:
                found.append(
                    finding(
                        member_id,
                        "chain",
                        f"entry {entry.entry_id} without seq after seq {start_seq}",
                    )
                )
            continue
        if start_seq < entry.seq <= version:
            if entry.entry_id in seen:
                found.append(finding(member_id, "duplicate_id", f"entry {entry.entry_id} repeats"))
                continue
            seen.add(entry.entry_id)
            new.append(entry)
    groups: dict[int, list[Entry]] = defaultdict(list)
    for entry in new:
        groups[entry.seq or 0].append(entry)
    running = start_balance
    for seq in sorted(groups):
        group = sorted(groups[seq], key=lambda e: e.entry_id)
        ordered = _chain_order(running, group)
        if ordered is None:
            ids = ", ".join(e.entry_id for e in group)
            found.append(
                finding(
                    member_id, "chain", f"seq {seq} ({ids}) does not chain from balance {running}"
                )
            )
            running += sum(e.amount for e in group)
        else:
            running = ordered[-1].balance_after
    if running != balance:
        found.append(
            finding(
                member_id,
                "balance",
                f"verified {start_balance} at seq {start_seq} plus entries gives {running}, "
                f"balance is {balance}",
            )
        )
    return found, max((e.at_utc for e in new), default=None)


@dataclass
class ReconcileReport:
    """What a reconciliation run (nightly or audit) found."""

    community: str
    mode: str  # nightly | audit
    members: int = 0  # members checked
    mismatches: list[dict[str, str]] = field(default_factory=list)
    aggregate_outstanding: int | None = None
    verified_total: int | None = None
    through_day: str | None = None
    complete: bool = True  # False: stopped for time; ``cursor`` resumes it
    cursor: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """No mismatch found (an incomplete run is not ok yet)."""
        return self.complete and not self.mismatches

    def with_cursor_key(self, key: str) -> ReconcileReport:
        """This report with its cursor nested under ``key`` (a job's cursor by phase)."""
        if self.cursor is not None:
            self.cursor = {key: self.cursor}
        return self

    def as_dict(self) -> dict[str, Any]:
        """JSON form (occurrence and job outcomes, the CLI)."""
        return {
            "community": self.community,
            "mode": self.mode,
            "members": self.members,
            "ok": self.ok,
            "complete": self.complete,
            "aggregate_outstanding": self.aggregate_outstanding,
            "verified_total": self.verified_total,
            "through_day": self.through_day,
            "mismatches": self.mismatches,
            "cursor": self.cursor,
        }


class Reconciler:
    """Nightly incremental reconciliation and the resumable full audit."""

    def __init__(self, store: LedgerStore):
        self._store = store

    # -- checking members -------------------------------------------------------
    def _check(
        self,
        community_id: str,
        members: Sequence[str],
        now: datetime,
        report: ReconcileReport,
        suspects: set[str],
        *,
        full: bool,
    ) -> None:
        """Verify ``members`` and advance their ``RECON`` items and the total."""
        for start in range(0, len(members), BATCH):
            chunk = members[start : start + BATCH]
            for _ in range(3):
                if self._check_chunk(community_id, chunk, now, report, suspects, full=full):
                    break
            else:
                # Other runs kept moving these members first: not verified by this run.
                report.complete = False
            report.members += len(chunk)

    def _check_chunk(
        self,
        community_id: str,
        chunk: Sequence[str],
        now: datetime,
        report: ReconcileReport,
        suspects: set[str],
        *,
        full: bool,
    ) -> bool:
        state = self._store.accounts_and_recons(community_id, chunk)
        verified: list[tuple[ReconItem | None, ReconItem]] = []
        found: list[dict[str, str]] = []
        for member in chunk:
            account, recon = state[member]
            if account is None:
                if recon is not None:
                    found.append(finding(member, "balance", "verified entries but no account"))
                continue
            balance, version = account.state.balance, account.state.version
            if recon is not None and not full and int(recon.seq) == version:
                if int(recon.balance) != balance:
                    detail = f"balance {balance} but {int(recon.balance)} verified at the same seq"
                    found.append(finding(member, "balance", detail))
                else:
                    suspects.discard(member)
                continue
            if recon is not None and int(recon.seq) > version:
                detail = f"account version {version} is behind verified seq {int(recon.seq)}"
                found.append(finding(member, "chain", detail))
                continue
            if full or recon is None:
                entries = self._store.member_entries(community_id, member)
                base = None
            else:
                after = iso_utc(parse_iso(recon.at_utc) - COMMIT_LAG) if recon.at_utc else None
                verified_at = parse_iso(recon.at_utc) if recon.at_utc else None
                # Legacy entries (no seq) up to the verified point were verified then.
                entries = (
                    e
                    for e in self._store.member_entries(community_id, member, after=after)
                    if e.seq is not None or verified_at is None or e.at_utc > verified_at
                )
                base = (int(recon.balance), int(recon.seq))
            problems, last_at = verify_increment(member, base, entries, balance, version)
            if problems:
                found.extend(problems)
                continue
            suspects.discard(member)
            if recon is not None and int(recon.seq) == version and int(recon.balance) == balance:
                continue  # a full check of an already verified point: nothing to move
            at = iso_utc(last_at) if last_at else (recon.at_utc if recon is not None else None)
            new = ReconItem(
                member_pk(community_id, member),
                "RECON",
                member_id=member,
                seq=version,
                balance=balance,
                at_utc=at,
                verified_at=iso_utc(now),
            )
            verified.append((recon, new))
        if verified and not self._store.save_verified(community_id, verified, now):
            return False  # another run moved one of these members first: read again
        for item in found:
            suspects.add(item["member"])
        report.mismatches.extend(found)
        return True

    def _compare_total(
        self, community_id: str, now: datetime, report: ReconcileReport, suspects: set[str]
    ) -> None:
        """Compare the verified total with the all-time aggregate.

        Movements keep committing while this runs: on a difference, members touched
        today are verified again and the comparison repeated before it is reported.
        """
        for attempt in range(3):
            outstanding = sum(int(a.net or 0) for a in self._store.aggregates(community_id, "ALL"))
            checkpoint = self._store.checkpoint(community_id)
            total = int(checkpoint.total) if checkpoint is not None else 0
            report.aggregate_outstanding, report.verified_total = outstanding, total
            if outstanding == total or attempt == 2:
                break
            today = now.astimezone(UTC).date()
            recent = sorted(
                {
                    m
                    for s in range(ENTRY_SHARDS)
                    for m in self._store.touched(community_id, today, s)
                }
            )
            self._check(
                community_id,
                recent,
                now,
                ReconcileReport(community_id, "recheck"),
                suspects,
                full=False,
            )
        if report.aggregate_outstanding != report.verified_total:
            report.mismatches.append(
                finding(
                    "*",
                    "aggregate",
                    f"aggregate outstanding {report.aggregate_outstanding} != verified total "
                    f"{report.verified_total}",
                )
            )

    # -- nightly ----------------------------------------------------------------
    def nightly(
        self, community_id: str, now: datetime, *, deadline: Deadline = _never
    ) -> ReconcileReport:
        """Verify the members touched since the watermark (see the module docstring).

        Needs an established checkpoint (from a completed :meth:`audit`); without one
        it returns an incomplete report whose cursor says ``audit``. Stops when
        ``deadline()`` says so, saving a cursor the next call resumes from.
        """
        report = ReconcileReport(community_id, "nightly")
        checkpoint = self._store.checkpoint(community_id)
        if checkpoint is None or checkpoint.through_day is None:
            report.complete, report.cursor = False, {"audit": True}
            return report
        through = date.fromisoformat(checkpoint.through_day)
        closed = (now - COMMIT_LAG).astimezone(UTC).date() - timedelta(days=1)
        cursor = dict(checkpoint.cursor or {})
        day = date.fromisoformat(cursor["day"]) if "day" in cursor else through + timedelta(days=1)
        shard = int(cursor.get("shard", 0))
        suspects = set(checkpoint.suspects or [])
        seen: set[str] = set()
        today = now.astimezone(UTC).date()
        while day <= today:
            while shard < ENTRY_SHARDS:
                members = [
                    m for m in self._store.touched(community_id, day, shard) if m not in seen
                ]
                self._check(community_id, members, now, report, suspects, full=False)
                seen.update(members)
                shard += 1
                if deadline() and (shard < ENTRY_SHARDS or day < today):
                    report.complete = False
                    report.cursor = {"day": day.isoformat(), "shard": shard}
                    self._store.save_checkpoint(
                        community_id,
                        through_day=None,
                        cursor=report.cursor,
                        suspects=sorted(suspects)[:MAX_SUSPECTS],
                        now=now,
                    )
                    return report
            day, shard = day + timedelta(days=1), 0
        # Members with open mismatches are checked every night until they reconcile.
        self._check(community_id, sorted(suspects - seen), now, report, suspects, full=False)
        self._compare_total(community_id, now, report, suspects)
        new_through = max(through, closed)
        report.through_day = new_through.isoformat()
        self._store.save_checkpoint(
            community_id,
            through_day=new_through,
            cursor=None,
            suspects=sorted(suspects)[:MAX_SUSPECTS],
            now=now,
        )
        return report

    # -- full audit ---------------------------------------------------------------
    def audit(
        self,
        community_id: str,
        now: datetime,
        *,
        cursor: dict[str, Any] | None = None,
        deadline: Deadline = _never,
        page: int = AUDIT_PAGE,
    ) -> ReconcileReport:
        """Check every member's full history, one page of members at a time.

        ``cursor`` (from an incomplete report) resumes after the last page done; it
        carries the audit's start time. On completion the total is compared with the
        aggregate and, if the community had no watermark yet, it is set so that the
        nightly run covers every member touched since the audit started.
        """
        report = ReconcileReport(community_id, "audit")
        position = dict(cursor or {"shard": 0, "after": None, "started": iso_utc(now)})
        started = parse_iso(position["started"])
        suspects: set[str] = set()
        while int(position["shard"]) < ENTRY_SHARDS:
            members = self._store.member_page(
                community_id, int(position["shard"]), position.get("after"), page
            )
            self._check(community_id, members, now, report, suspects, full=True)
            if len(members) < page:
                position = {**position, "shard": int(position["shard"]) + 1, "after": None}
            else:
                position = {**position, "after": members[-1]}
            if deadline() and int(position["shard"]) < ENTRY_SHARDS:
                report.complete, report.cursor = False, position
                return report
        self._compare_total(community_id, now, report, suspects)
        checkpoint = self._store.checkpoint(community_id)
        merged = suspects | set((checkpoint.suspects if checkpoint else None) or [])
        established = checkpoint is not None and checkpoint.through_day is not None
        through = (
            None
            if established
            else (started - COMMIT_LAG).astimezone(UTC).date() - timedelta(days=1)
        )
        self._store.save_checkpoint(
            community_id,
            through_day=through,
            cursor=checkpoint.cursor if checkpoint is not None else None,
            suspects=sorted(merged)[:MAX_SUSPECTS],
            now=now,
        )
        report.through_day = (
            through.isoformat()
            if through
            else (checkpoint.through_day if checkpoint is not None else None)
        )
        return report

    def audit_all(self, community_id: str, now: datetime) -> ReconcileReport:
        """The full audit in one call (tests, the CLI's small ledgers, simulations)."""
        return self.audit(community_id, now)
