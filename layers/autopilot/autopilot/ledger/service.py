"""Ledger operations finance and ops rely on: redemptions, adjustments, queries,
summaries, monthly exports and reconciliation.

Every point movement goes through :meth:`LedgerStore.commit`: one transaction
with the event's idempotency marker, the account (version-checked) and the
immutable entries. Nothing updates or deletes an entry; a correction is a new
``adjustment`` entry with a required reason, made by ops.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import heapq
import io
import json
import logging
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any, BinaryIO

from autopilot.checkins.rules import AccountState, tier_for
from autopilot.config.model import Community
from autopilot.errors import (
    BadRequest,
    Conflict,
    IdempotencyKeyReused,
    InsufficientPoints,
    MemberLeft,
    NotAMember,
    RewardOutOfStock,
    UnknownReward,
)
from autopilot.ledger.rules import (
    CSV_COLUMNS,
    MAX_POINTS,
    REASONS,
    Entry,
    Period,
    Posting,
    Reason,
    build_entries,
    csv_row,
)
from autopilot.ledger.store import (
    AGG_SHARDS,
    ENTRY_SHARDS,
    Account,
    Duplicate,
    EntryItem,
    ExtraItem,
    LedgerStore,
    MetricsDelta,
    Movement,
    OutOfStock,
    StaleAccount,
    entry_from_item,
)
from autopilot.metrics.rules import metrics_day, money_counters
from autopilot.timeutil import iso_utc, local_wall, parse_iso, zone

logger = logging.getLogger(__name__)

MAX_PAGE = 500
REF_PATTERN_MAX = 128


def _check_ref(ref: Any, what: str) -> str:
    if not isinstance(ref, str) or not ref.strip() or len(ref) > REF_PATTERN_MAX:
        raise BadRequest(
            f"{what} must be a non-empty string of at most {REF_PATTERN_MAX} characters"
        )
    if any(ch == "#" or ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in ref):
        raise BadRequest(f"{what} must not contain '#' or control characters")
    return ref.strip()


def local_day_of(at_utc: datetime, community: Community) -> date:
    """The community-local calendar date of an instant (finance periods)."""
    return local_wall(at_utc, zone(community.timezone)).date()


def _days(since: date, until: date) -> Iterator[date]:
    """``since``..``until`` inclusive, without stepping past ``date.max``."""
    for offset in range((until - since).days + 1):
        yield since + timedelta(days=offset)


@dataclass(frozen=True, kw_only=True)
class Redemption:
    """A member's request to redeem ``reward_id``; ``request_id`` makes it idempotent."""

    member_id: str
    reward_id: str
    request_id: str


@dataclass(frozen=True, kw_only=True)
class Adjustment:
    """An ops correction of ``amount`` points with a required ``reason``; ``ref`` makes
    it idempotent, ``actor`` is who made it (``ops:<name>``)."""

    member_id: str
    amount: int
    reason: str
    ref: str
    actor: str


@dataclass(frozen=True)
class MovementResult:
    """The answer to a redemption or an adjustment (a repeat: the first answer with
    ``repeat`` True). ``reward``/``reward_name`` are set for redemptions only."""

    community: str
    member: str
    reason: Reason
    amount: int
    ref: str
    entry_id: str
    balance: int
    at_utc: datetime
    repeat: bool = False
    reward: str | None = None
    reward_name: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON document (key order is part of the API's answer)."""
        out: dict[str, Any] = {
            "community": self.community,
            "member": self.member,
            "reason": self.reason.value,
            "amount": self.amount,
            "ref": self.ref,
            "entry_id": self.entry_id,
            "balance": self.balance,
            "at_utc": iso_utc(self.at_utc),
            "repeat": self.repeat,
        }
        if self.reward is not None:
            out["reward"] = self.reward
            out["reward_name"] = self.reward_name
        return out

    @classmethod
    def from_json(cls, stored: Mapping[str, Any], *, repeat: bool) -> MovementResult:
        """A stored answer (an idempotency marker's) as a result; ``repeat`` as given."""
        return cls(
            community=stored["community"],
            member=stored["member"],
            reason=Reason(stored["reason"]),
            amount=int(stored["amount"]),
            ref=stored["ref"],
            entry_id=stored["entry_id"],
            balance=int(stored["balance"]),
            at_utc=parse_iso(stored["at_utc"]),
            repeat=repeat,
            reward=stored.get("reward"),
            reward_name=stored.get("reward_name"),
        )


@dataclass(frozen=True, kw_only=True)
class _Move:
    """One movement to write: its marker, its posting, and what guards it."""

    member_id: str
    marker: str
    posting: Posting
    actor: str
    stock: tuple[str, int] | None = None
    require_active: bool = True
    reward: tuple[str, str] | None = None  # (id, name) of a redeemed reward
    same: Mapping[str, Any] | None = None  # result fields a repeat must match
    extra_items: tuple[ExtraItem, ...] = ()  # another capability's rows, same transaction


def _same_request(first: MovementResult, expected: Mapping[str, Any], key: str) -> None:
    """Refuse a reused idempotency key whose first request differed (as Stripe does)."""
    differing = sorted(k for k, v in expected.items() if getattr(first, k) != v)
    if differing:
        raise IdempotencyKeyReused(
            f"{key} was already used for a different request "
            f"({', '.join(f'{k}: {getattr(first, k)!r}' for k in differing)}); use a new key"
        )


@dataclass(frozen=True)
class EntryPage:
    """One page of ``GET /ledger``: entries oldest first, and where the next page starts."""

    entries: tuple[Entry, ...]
    next_cursor: str | None

    def to_json(self) -> dict[str, Any]:
        """The JSON document."""
        return {"entries": [_entry_json(e) for e in self.entries], "next_cursor": self.next_cursor}


@dataclass(frozen=True)
class LedgerSummary:
    """Totals of a period (``GET /ledger/summary``) and the outstanding balance."""

    community: str
    since: date
    until: date
    by: Period
    by_reason: Mapping[str, int]
    by_period: Mapping[str, Mapping[str, int]]
    awarded: int
    redeemed: int
    net: int
    checkins: int
    outstanding: int
    shards: int

    def to_json(self) -> dict[str, Any]:
        """The JSON document (key order is part of the API's answer)."""
        return {
            "community": self.community,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "by": self.by.value,
            "by_reason": {str(k): v for k, v in self.by_reason.items()},
            "by_period": {p: {str(k): v for k, v in r.items()} for p, r in self.by_period.items()},
            "awarded": self.awarded,
            "redeemed": self.redeemed,
            "net": self.net,
            "checkins": self.checkins,
            "outstanding": self.outstanding,
            "shards": self.shards,
        }


class LedgerService:
    """Point movements other than check-ins, and reading the ledger."""

    def __init__(self, store: LedgerStore, cache: Any = None):
        self._store = store
        self._cache = cache  # the check-in service's AccountCache, kept coherent

    # -- movements --------------------------------------------------------------
    def _load(
        self, community: Community, member_id: str, marker: str
    ) -> tuple[Account, dict[str, Any] | None]:
        account, stored = self._store.account_and_marker(community.id, member_id, marker)
        if stored is not None:
            return account or Account(community.id, member_id, AccountState()), stored
        if account is None:
            raise NotAMember(f"member {member_id!r} is not in community {community.id!r}")
        return account, None

    def _move(self, community: Community, move: _Move, at_utc: datetime) -> MovementResult:
        """Write one movement; a repeat answers the first result (if it matches ``same``)."""
        member_id, posting, stock = move.member_id, move.posting, move.stock
        key = posting.ref.split(":", 1)[-1]

        def repeat(stored: Mapping[str, Any]) -> MovementResult:
            first = MovementResult.from_json(stored, repeat=True)
            _same_request(first, move.same or {}, f"idempotency key {key!r}")
            return first

        account, stored = self._load(community, member_id, move.marker)
        if stored is not None:
            return repeat(stored)
        for _ in range(4):
            # Checked on every attempt: a retry's fresh account may have left.
            if move.require_active and not account.active:
                raise MemberLeft(f"member {member_id!r} left community {community.id!r}")
            if stock is not None and stock[1] <= 0:
                raise RewardOutOfStock(f"reward {stock[0]!r} is out of stock")
            if account.state.balance + posting.amount < 0:
                raise InsufficientPoints(
                    f"balance {account.state.balance} does not cover {-posting.amount} points"
                )
            (entry,) = build_entries(
                community.id,
                member_id,
                [posting],
                balance_before=account.state.balance,
                at_utc=at_utc,
                actor=move.actor,
                seq=account.state.version + 1,
            )
            lifetime = account.state.lifetime_points + max(posting.amount, 0)
            new_tier = tier_for(lifetime, community.checkins.tiers)
            state = replace(
                account.state, balance=entry.balance_after, lifetime_points=lifetime, tier=new_tier
            )
            tier_change = (
                (account.state.tier, new_tier)
                if new_tier != account.state.tier and new_tier
                else None
            )
            result = MovementResult(
                community=community.id,
                member=member_id,
                reason=entry.reason,
                amount=posting.amount,
                ref=posting.ref,
                entry_id=entry.entry_id,
                balance=entry.balance_after,
                at_utc=at_utc,
                reward=move.reward[0] if move.reward else None,
                reward_name=move.reward[1] if move.reward else None,
            )
            try:
                self._store.commit(
                    Movement(
                        account=account,
                        new_state=state,
                        marker_sk=move.marker,
                        result=result.to_json(),
                        entries=[entry],
                        local_day=local_day_of(at_utc, community),
                        tier_change=tier_change,
                        stock=stock,
                        require_active=move.require_active,
                        extra_items=move.extra_items,
                        metrics=MetricsDelta(
                            metrics_day(at_utc, community.timezone, community.day_boundary),
                            money_counters({entry.reason: entry.amount}),
                        ),
                    ),
                    at_utc,
                )
            except Duplicate as dup:
                return repeat(dup.result)
            except StaleAccount as stale:
                if stale.current is None:
                    raise NotAMember(
                        f"member {member_id!r} is not in community {community.id!r}"
                    ) from None
                account = stale.current
                continue
            except OutOfStock:
                raise RewardOutOfStock(
                    f"reward {stock[0] if stock else ''!r} is out of stock"
                ) from None
            if self._cache is not None:
                self._cache.forget(community.id, member_id)
            return result
        raise Conflict("too many concurrent changes to this member; retry")

    def redeem(
        self, community: Community, redemption: Redemption, at_utc: datetime
    ) -> MovementResult:
        """Redeem a catalog reward: atomic with the balance (never below 0) and the stock."""
        if not isinstance(redemption.reward_id, str):
            raise BadRequest("reward must be a string id")
        request_id = _check_ref(redemption.request_id, "request_id (or the Idempotency-Key header)")
        try:
            reward = community.reward(redemption.reward_id)
        except KeyError:
            known = ", ".join(r.id for r in community.rewards) or "none"
            raise UnknownReward(
                f"unknown reward {redemption.reward_id!r} (catalog: {known})"
            ) from None
        member_id = redemption.member_id
        return self._move(
            community,
            _Move(
                member_id=member_id,
                marker=f"REF#{Reason.REDEMPTION}#{request_id}",
                posting=Posting(
                    Reason.REDEMPTION,
                    -reward.cost_points,
                    f"{Reason.REDEMPTION}:{request_id}",
                    reward.name,
                ),
                actor=f"member:{member_id}",
                stock=(reward.id, reward.stock) if reward.stock is not None else None,
                reward=(reward.id, reward.name),
                same={"reward": reward.id},
            ),
            at_utc,
        )

    def adjust(
        self, community: Community, adjustment: Adjustment, at_utc: datetime
    ) -> MovementResult:
        """An ops correction: a new ``adjustment`` entry with a required reason."""
        amount, reason_text = adjustment.amount, adjustment.reason
        if type(amount) is not int or amount == 0 or abs(amount) > MAX_POINTS:
            raise BadRequest(f"amount must be a non-zero integer within +-{MAX_POINTS}")
        if not isinstance(reason_text, str) or not reason_text.strip():
            raise BadRequest("an adjustment needs a reason")
        ref = _check_ref(adjustment.ref, "ref")
        return self._move(
            community,
            _Move(
                member_id=adjustment.member_id,
                marker=f"REF#{Reason.ADJUSTMENT}#{ref}",
                posting=Posting(
                    Reason.ADJUSTMENT,
                    amount,
                    f"{Reason.ADJUSTMENT}:{ref}",
                    reason_text.strip()[:500],
                ),
                actor=adjustment.actor,
                require_active=False,
                same={"amount": amount},
            ),
            at_utc,
        )

    def post(
        self,
        community: Community,
        member_id: str,
        posting: Posting,
        at_utc: datetime,
        *,
        actor: str,
        require_active: bool = True,
        extra_items: tuple[ExtraItem, ...] = (),
    ) -> MovementResult:
        """Write one posting of another capability (a lottery entry's cost, a prize, a
        refund) as a movement, idempotent by ``posting.ref``: a repeat answers the
        first result. ``extra_items`` commit in the same transaction (all or nothing;
        a failed condition raises ``ExtraConditionFailed`` naming the item). A debit
        never takes the balance below 0 (``InsufficientPoints``)."""
        ref = posting.ref
        if not ref or len(ref) > 512 or any(ord(ch) < 0x20 for ch in ref):
            raise BadRequest("a posting ref must be 1..512 characters without control characters")
        return self._move(
            community,
            _Move(
                member_id=member_id,
                marker=f"REF#{posting.reason}#{ref}",
                posting=posting,
                actor=actor,
                require_active=require_active,
                same={"amount": posting.amount},
                extra_items=extra_items,
            ),
            at_utc,
        )

    # -- reading ------------------------------------------------------------------
    def entries(
        self,
        community: Community,
        *,
        since: date,
        until: date,
        member_id: str | None = None,
        reason: Reason | str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> EntryPage:
        """Entries of local days ``since``..``until`` (inclusive), oldest first, paginated."""
        if until < since:
            raise BadRequest("until is before since")
        if (until - since).days > 366:
            raise BadRequest("a period is at most 366 days; page through months instead")
        if reason is not None and reason not in REASONS:
            raise BadRequest(f"unknown reason {reason!r} (known: {', '.join(REASONS)})")
        wanted = None if reason is None else Reason(reason)
        if not 1 <= limit <= MAX_PAGE:
            raise BadRequest(f"limit must be 1-{MAX_PAGE}")
        position = _decode_cursor(cursor)
        if position is not None:
            # A cursor names the last entry of a page of this query: its local day is
            # in since..until (a forged instant at the ends of the calendar has none).
            try:
                resume = local_day_of(parse_iso(position.split("#", 1)[0]), community)
            except (OverflowError, ValueError):
                raise BadRequest("invalid cursor") from None
            if not since <= resume <= until:
                raise BadRequest("invalid cursor: it does not belong to this period")
        items: list[Entry] = []
        next_cursor = None
        stream = (
            self._member_stream(community, member_id, since, until, position)
            if member_id
            else self.period_entries(community, since, until, position)
        )
        for entry in stream:
            if wanted and entry.reason != wanted:
                continue
            if len(items) == limit:
                next_cursor = _encode_cursor(f"{iso_utc(items[-1].at_utc)}#{items[-1].entry_id}")
                break
            items.append(entry)
        return EntryPage(tuple(items), next_cursor)

    def _member_stream(
        self,
        community: Community,
        member_id: str,
        since: date,
        until: date,
        after: str | None = None,
    ) -> Iterator[Entry]:
        for entry in self._store.member_entries(community.id, member_id, after=after):
            day = local_day_of(entry.at_utc, community)
            if since <= day <= until:
                yield entry

    def period_entries(
        self, community: Community, since: date, until: date, after: str | None = None
    ) -> Iterator[Entry]:
        """Entries of each local day, merged across shards in (time, id) order; flat memory.

        ``after`` (``<at UTC>#<entry id>``, from a cursor) resumes right after that
        entry without reading what came before it.
        """
        start = since
        if after:
            start = max(since, local_day_of(parse_iso(after.split("#", 1)[0]), community))
        for day in _days(start, until) if start <= until else ():
            shards = [
                self._day_shard(community.id, day, shard, after) for shard in range(ENTRY_SHARDS)
            ]
            yield from heapq.merge(*shards, key=lambda e: (iso_utc(e.at_utc), e.entry_id))

    def _day_shard(
        self, community_id: str, day: date, shard: int, after: str | None
    ) -> Iterator[Entry]:
        item: EntryItem
        for item in self._store.entries_of_day(community_id, day, shard, after=after):
            yield entry_from_item(item)

    def summary(
        self, community: Community, *, since: date, until: date, by: Period | str = Period.DAY
    ) -> LedgerSummary:
        """Totals by reason and by day or month, and the outstanding balance.

        Built from the sharded aggregates kept as entries are written: one
        BatchGetItem per day of the period plus one for the all-time totals.
        """
        if by not in tuple(Period):
            raise BadRequest("by must be day or month")
        period = Period(by)
        if until < since or (until - since).days > 366:
            raise BadRequest("period must be 1-367 days with since <= until")
        by_period: dict[str, dict[str, int]] = {}
        by_reason: dict[str, int] = {}
        checkins = 0
        for day in _days(since, until):
            key = period.key(day)
            for agg in self._store.aggregates(community.id, day.isoformat()):
                for reason, amount in agg.by_reason().items():
                    if amount:
                        bucket = by_period.setdefault(key, {})
                        bucket[reason] = bucket.get(reason, 0) + amount
                        by_reason[reason] = by_reason.get(reason, 0) + amount
                checkins += int(agg.checkins or 0)
        outstanding = sum(int(a.net or 0) for a in self._store.aggregates(community.id, "ALL"))
        awarded = sum(v for v in by_reason.values() if v > 0)
        redeemed = -by_reason.get(Reason.REDEMPTION, 0)
        return LedgerSummary(
            community=community.id,
            since=since,
            until=until,
            by=period,
            by_reason=by_reason,
            by_period=by_period,
            awarded=awarded,
            redeemed=redeemed,
            net=sum(by_reason.values()),
            checkins=checkins,
            outstanding=outstanding,
            shards=AGG_SHARDS,
        )

    # -- finance jobs --------------------------------------------------------------
    def export_month(self, community: Community, month: str, out: BinaryIO) -> dict[str, Any]:
        """Stream the month's entries (community-local month) as CSV into ``out``.

        Returns the manifest: count, totals by reason, sha256 of the file. Memory
        stays flat: entries stream from the period index day by day.
        """
        try:
            first = date.fromisoformat(f"{month}-01")
            last = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
        except (ValueError, OverflowError):
            raise BadRequest(f"invalid month {month!r} (expected YYYY-MM up to 9999-11)") from None
        digest = hashlib.sha256()
        count = 0
        totals: dict[str, int] = {}
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")

        def flush() -> None:
            data = text.getvalue().encode("utf-8")
            digest.update(data)
            out.write(data)
            text.seek(0)
            text.truncate()

        writer.writerow(CSV_COLUMNS)
        for entry in self.period_entries(community, first, last):
            writer.writerow(csv_row(entry))
            count += 1
            totals[entry.reason] = totals.get(entry.reason, 0) + entry.amount
            if count % 1000 == 0:
                flush()
        flush()
        return {
            "community": community.id,
            "month": month,
            "count": count,
            "totals_by_reason": dict(sorted(totals.items())),
            "net": sum(totals.values()),
            "sha256": digest.hexdigest(),
            "columns": list(CSV_COLUMNS),
        }

    def reconcile(self, community: Community) -> dict[str, Any]:
        """The full audit in one call: every member's history, the verified total
        against the aggregate (ledger/reconcile.py; the worker runs it paginated)."""
        from autopilot.clock import get_clock
        from autopilot.ledger.reconcile import Reconciler

        return Reconciler(self._store).audit_all(community.id, get_clock().now()).as_dict()


def _entry_json(entry: Entry) -> dict[str, Any]:
    return {
        "entry_id": entry.entry_id,
        "at_utc": iso_utc(entry.at_utc),
        "community": entry.community_id,
        "member": entry.member_id,
        "reason": entry.reason.value,
        "amount": entry.amount,
        "balance_after": entry.balance_after,
        "ref": entry.ref,
        "actor": entry.actor,
        "note": entry.note,
        "seq": entry.seq,
    }


def _encode_cursor(position: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": position}).encode()).decode()


def _decode_cursor(cursor: str | None) -> str | None:
    if not cursor:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor.encode()))["after"]
    except (ValueError, KeyError, TypeError, IndexError, RecursionError):
        # RecursionError: a cursor can carry deeply nested JSON.
        raise BadRequest("invalid cursor") from None
    if not isinstance(value, str):
        raise BadRequest("invalid cursor")
    # The position is "<at UTC>#<entry id>" and is parsed when paging resumes: a
    # forged or truncated cursor must be a 400 here, not a ValueError later.
    at, sep, entry = value.partition("#")
    try:
        parse_iso(at)
    except ValueError:
        raise BadRequest("invalid cursor") from None
    if not sep or not entry:
        raise BadRequest("invalid cursor")
    return value


def export_to_s3(
    service: LedgerService, s3: Any, bucket: str, community: Community, month: str
) -> dict[str, Any]:
    """Export a month to ``s3://bucket/exports/<community>/<month>/`` (CSV + manifest)."""
    with tempfile.TemporaryFile() as spool:
        manifest = service.export_month(community, month, spool)
        spool.seek(0)
        key = f"exports/{community.id}/{month}/ledger.csv"
        s3.upload_fileobj(
            spool,
            bucket,
            key,
            ExtraArgs={
                "ContentType": "text/csv; charset=utf-8",
                "ServerSideEncryption": "AES256",
                "Metadata": {"sha256": manifest["sha256"]},
            },
        )
    manifest["csv_key"] = key
    s3.put_object(
        Bucket=bucket,
        Key=f"exports/{community.id}/{month}/manifest.json",
        Body=json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True).encode(),
        ContentType="application/json",
        ServerSideEncryption="AES256",
    )
    logger.info(
        "exported %s %s: %d entries, sha256 %s",
        community.id,
        month,
        manifest["count"],
        manifest["sha256"],
    )
    return manifest
