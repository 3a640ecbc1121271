"""Pure ledger rules: entry ids, chained entries, CSV rows, reconciliation, totals.

Every point movement is one immutable :class:`Entry`. Its id is a deterministic
function of ``(community, member, reason, ref)``, so the same event always
yields the same id and a retried write collides with the first instead of
crediting twice. Entries are never updated or deleted; a correction is a new
``adjustment`` entry.

* ``balance_after`` chains: each entry's ``balance_after`` is the previous
  one's plus its ``amount``, starting at 0 for a member's first entry.
* Every entry carries ``seq``, the account version its write committed as: the
  commit order of a member's movements. ``at_utc`` is taken *before* the
  transaction commits, so a write that lost a version race and retried can
  carry an earlier time than an entry committed before it; time is for people,
  ``seq`` is the order.
* Reconciliation checks, per member, that the entries sum to the stored balance,
  that ids are unique, and that the chain holds. The chain is followed in
  commit order: entries without ``seq`` (written before it existed) first, by
  ``(at_utc, entry_id)``, then by ``seq``. Entries of one step (one ``seq``: a
  check-in and its bonus; or, without ``seq``, one ``at_utc``) are accepted in
  *any* order that chains, because the hash-based id says nothing about the
  order in which they were applied.
* Amounts are bounded by :data:`MAX_POINTS` in both directions: DynamoDB keeps
  38 significant digits, and no real movement comes near a billion points.
* Totals group entries by the community's *local calendar* day or month (not by
  the check-in day boundary: finance periods are calendar periods).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from autopilot.timeutil import iso_utc, local_wall


class Reason(StrEnum):
    """Why points moved. The values are the strings stored in the ledger (entries,
    aggregates' ``r_<reason>`` attributes, markers' ``REF#<reason>#``), shown in the
    API and the CSV export: never change one."""

    CHECKIN = "checkin"
    STREAK_BONUS = "streak_bonus"
    MAKEUP = "makeup"
    REDEMPTION = "redemption"
    ADJUSTMENT = "adjustment"
    LOTTERY_PRIZE = "lottery_prize"
    REFERRAL = "referral"
    EXPIRY = "expiry"
    LOTTERY_ENTRY = "lottery_entry"
    LOTTERY_REFUND = "lottery_refund"


class MismatchKind(StrEnum):
    """What a reconciliation finding is about (the values appear in reports)."""

    BALANCE = "balance"
    DUPLICATE_ID = "duplicate_id"
    CHAIN = "chain"
    AGGREGATE = "aggregate"


class Period(StrEnum):
    """How totals are grouped: by community-local calendar day or month."""

    DAY = "day"
    MONTH = "month"

    def key(self, day: date) -> str:
        """The period ``day`` falls in: ``YYYY-MM-DD`` or ``YYYY-MM``."""
        return day.isoformat() if self is Period.DAY else day.isoformat()[:7]


REASONS = tuple(r.value for r in Reason)
CSV_COLUMNS = (
    "entry_id",
    "at_utc",
    "community_id",
    "member_id",
    "reason",
    "amount",
    "balance_after",
    "ref",
    "actor",
    "note",
)
MISMATCH_KINDS = tuple(k.value for k in MismatchKind)
# The largest |amount| of one movement, shared by the API parser, the CLI and the
# ledger domain (defence in depth: every path that moves points checks it).
MAX_POINTS = 1_000_000_000
# A spreadsheet evaluates a cell starting with one of these as a formula (OWASP
# "CSV injection"); a leading apostrophe makes it plain text.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_ID_SEPARATOR = "\x1f"  # ASCII unit separator: cannot occur in ids typed by people
_ID_HEX_CHARS = 32


@dataclass(frozen=True)
class Entry:
    """One immutable point movement of one member."""

    entry_id: str
    community_id: str
    member_id: str
    amount: int
    reason: Reason
    ref: str
    balance_after: int
    at_utc: datetime
    actor: str
    note: str = ""
    seq: int | None = None  # commit sequence (the account version written); None: legacy


@dataclass(frozen=True)
class Mismatch:
    """A reconciliation finding."""

    member_id: str
    kind: MismatchKind
    detail: str


@dataclass(frozen=True)
class Posting:
    """One movement to turn into an entry: ``ref`` makes it idempotent (the entry id
    is derived from it), ``note`` is for people."""

    reason: Reason
    amount: int
    ref: str
    note: str = ""


def entry_id(community_id: str, member_id: str, reason: str, ref: str) -> str:
    """Deterministic id: the first 32 hex chars of sha256 of the fields joined by 0x1F."""
    key = _ID_SEPARATOR.join((community_id, member_id, reason, ref))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:_ID_HEX_CHARS]


def build_entries(
    community_id: str,
    member_id: str,
    postings: Sequence[Posting],
    *,
    balance_before: int,
    at_utc: datetime,
    actor: str,
    seq: int | None = None,
) -> list[Entry]:
    """Entries for ``postings`` applied in order.

    ``balance_after`` accumulates from ``balance_before``; every entry gets the
    commit sequence ``seq``. Raises ``ValueError`` on an unknown reason, a
    non-integer, zero or out-of-bounds (``|amount| > MAX_POINTS``) amount, a
    balance going below zero at any step, or two movements with the same id in
    one batch.
    """
    if at_utc.tzinfo is None:
        raise ValueError("naive datetime where an aware one is required")
    if type(balance_before) is not int or balance_before < 0:
        raise ValueError(f"balance_before must be a non-negative int, got {balance_before!r}")
    moment = at_utc.astimezone(UTC)
    balance = balance_before
    seen: set[str] = set()
    entries: list[Entry] = []
    for posting in postings:
        amount, ref = posting.amount, posting.ref
        try:
            reason = Reason(posting.reason)
        except ValueError:
            raise ValueError(
                f"unknown ledger reason {posting.reason!r} (expected one of {REASONS})"
            ) from None
        # bool is an int subclass; True as "1 point" is a bug, not an amount.
        if type(amount) is not int:
            raise ValueError(f"amount must be an int, got {amount!r}")
        if amount == 0:
            raise ValueError(f"zero amount for {reason} {ref!r}: the ledger has no empty entries")
        if abs(amount) > MAX_POINTS:
            raise ValueError(f"amount {amount} of {reason} {ref!r} is beyond +-{MAX_POINTS}")
        balance += amount
        if balance < 0:
            raise ValueError(f"{reason} {ref!r} of {amount} would take the balance to {balance}")
        new_id = entry_id(community_id, member_id, reason, ref)
        if new_id in seen:
            raise ValueError(f"duplicate movement {reason} {ref!r} in one batch")
        seen.add(new_id)
        entries.append(
            Entry(
                entry_id=new_id,
                community_id=community_id,
                member_id=member_id,
                amount=amount,
                reason=reason,
                ref=ref,
                balance_after=balance,
                at_utc=moment,
                actor=actor,
                note=posting.note,
                seq=seq,
            )
        )
    return entries


def _safe_text(text: str) -> str:
    """``text`` made inert for spreadsheets (a formula prefix gets a leading ``'``)."""
    return "'" + text if text.startswith(_FORMULA_PREFIXES) else text


def csv_row(entry: Entry) -> list[str]:
    """The entry as CSV cells in :data:`CSV_COLUMNS` order, safe to open in a spreadsheet."""
    return [
        _safe_text(entry.entry_id),
        iso_utc(entry.at_utc),
        _safe_text(entry.community_id),
        _safe_text(entry.member_id),
        _safe_text(entry.reason),
        str(entry.amount),
        str(entry.balance_after),
        _safe_text(entry.ref),
        _safe_text(entry.actor),
        _safe_text(entry.note),
    ]


def reconcile(entries: Iterable[Entry], balances: Mapping[str, int]) -> list[Mismatch]:
    """Every disagreement between ``entries`` and the stored ``balances`` (by member).

    Checks per member: the entries sum to the balance; a member with a nonzero
    balance has entries and a member with entries has a balance record; every
    ``entry_id`` is unique; the ``balance_after`` chain holds from 0. An empty
    list means the ledger reconciles.
    """
    by_member: dict[str, list[Entry]] = defaultdict(list)
    by_id: dict[str, list[Entry]] = defaultdict(list)
    for entry in entries:
        by_member[entry.member_id].append(entry)
        by_id[entry.entry_id].append(entry)

    found: list[Mismatch] = []
    for eid, same in sorted(by_id.items()):
        if len(same) > 1:
            detail = f"entry {eid} appears {len(same)} times"
            found.append(Mismatch(same[0].member_id, MismatchKind.DUPLICATE_ID, detail))

    for member in sorted(set(by_member) | set(balances)):
        member_entries = by_member.get(member, [])
        total = sum(e.amount for e in member_entries)
        if member not in balances:
            found.append(
                Mismatch(
                    member,
                    MismatchKind.BALANCE,
                    f"{len(member_entries)} entries but no balance record",
                )
            )
        elif not member_entries:
            # A member who never earned anything may well have a 0 balance record.
            if balances[member] != 0:
                detail = f"balance {balances[member]} but no entries"
                found.append(Mismatch(member, MismatchKind.BALANCE, detail))
        elif total != balances[member]:
            detail = f"entries sum to {total}, balance is {balances[member]}"
            found.append(Mismatch(member, MismatchKind.BALANCE, detail))
        found.extend(_chain_mismatches(member, member_entries))
    return found


def outstanding_mismatch(aggregate: int, balances: Iterable[int]) -> Mismatch | None:
    """A mismatch when the all-time aggregate (the outstanding points) is not the
    sum of the members' balances, else ``None``."""
    total = sum(balances)
    if aggregate == total:
        return None
    return Mismatch(
        "*", MismatchKind.AGGREGATE, f"aggregate outstanding {aggregate} != sum of balances {total}"
    )


def _step(entry: Entry) -> tuple[int, int, datetime]:
    """The entry's place in commit order: legacy entries (no ``seq``) by time, first."""
    if entry.seq is None:
        return (0, 0, entry.at_utc)
    return (1, entry.seq, datetime.min.replace(tzinfo=UTC))


def _chain_mismatches(member: str, member_entries: list[Entry]) -> list[Mismatch]:
    """Breaks in the member's ``balance_after`` chain (see the module docstring)."""
    groups: dict[tuple[int, int, datetime], list[Entry]] = defaultdict(list)
    for entry in member_entries:
        groups[_step(entry)].append(entry)
    found: list[Mismatch] = []
    balance = 0
    for step in sorted(groups):
        moment = groups[step][0].at_utc
        group = sorted(groups[step], key=lambda e: e.entry_id)
        ordered = _chain_order(balance, group)
        if ordered is not None:
            balance = ordered[-1].balance_after
            continue
        for entry in group:
            if entry.balance_after != balance + entry.amount:
                found.append(
                    Mismatch(
                        member,
                        MismatchKind.CHAIN,
                        f"entry {entry.entry_id} at {iso_utc(moment)}: balance_after "
                        f"{entry.balance_after} != {balance} + {entry.amount}",
                    )
                )
            # Resynchronise on the entry so one break is reported once, not forever.
            balance = entry.balance_after
    return found


def _chain_order(start: int, group: list[Entry]) -> list[Entry] | None:
    """An order of ``group`` whose ``balance_after`` chains from ``start``, or ``None``.

    Each entry is an edge ``balance_before -> balance_after``; a valid order is an
    Eulerian trail from ``start`` (Hierholzer's algorithm, linear in the group).
    """
    if len(group) == 1:
        return group if group[0].balance_after == start + group[0].amount else None
    out: dict[int, list[Entry]] = defaultdict(list)
    # Reversed so that pop() takes edges in entry_id order: a deterministic result.
    for entry in reversed(group):
        out[entry.balance_after - entry.amount].append(entry)
    stack: list[tuple[int, Entry | None]] = [(start, None)]
    trail: list[Entry] = []
    while stack:
        node, via = stack[-1]
        if out[node]:
            edge = out[node].pop()
            stack.append((edge.balance_after, edge))
        else:
            stack.pop()
            if via is not None:
                trail.append(via)
    trail.reverse()
    if len(trail) != len(group):
        return None
    balance = start
    for entry in trail:
        if entry.balance_after - entry.amount != balance:
            return None
        balance = entry.balance_after
    return trail


def summarize(
    entries: Iterable[Entry], tz: ZoneInfo, by: Period | str = Period.DAY
) -> dict[str, Any]:
    """Totals by reason and by local period (``by`` is ``day`` or ``month``).

    Returns ``{"by_reason": {reason: total}, "by_period": {period: {reason: total}},
    "awarded": sum of positive amounts, "redeemed": points spent on redemptions
    (a positive number), "net": sum of all amounts}``. Periods are
    ``YYYY-MM-DD`` or ``YYYY-MM`` in the community's local calendar.
    """
    try:
        period = Period(by)
    except ValueError:
        raise ValueError(f"summarize by 'day' or 'month', not {by!r}") from None
    by_reason: dict[str, int] = defaultdict(int)
    by_period: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    awarded = redeemed = net = 0
    for entry in entries:
        key = period.key(local_wall(entry.at_utc, tz).date())
        by_reason[entry.reason] += entry.amount
        by_period[key][entry.reason] += entry.amount
        net += entry.amount
        if entry.amount > 0:
            awarded += entry.amount
        elif entry.reason == Reason.REDEMPTION:
            redeemed -= entry.amount
    return {
        "by_reason": dict(sorted(by_reason.items())),
        "by_period": {p: dict(sorted(r.items())) for p, r in sorted(by_period.items())},
        "awarded": awarded,
        "redeemed": redeemed,
        "net": net,
    }
