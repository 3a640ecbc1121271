"""Check-ins: one transaction that checks the day, moves the streak and balance, and
writes the entries.

Request cost (DynamoDB requests, see docs/benchmarks.md):

* a new check-in by a member this container has seen (or a first-ever check-in
  after the initial read): **1** — the transaction;
* a new check-in by a member this container has not seen: 2 — one BatchGetItem
  of the account *and* today's marker, then the transaction;
* a repeat (of a check-in or a make-up): 1 — one BatchGetItem of the stored
  account and the day's marker, which answers with the first result.

The account's ``version`` (and, for the member being active, ``left_at``) is the
transaction's condition, so a cached account that went stale (another container
checked the member in, ops removed them or changed their zone) can never credit
on stale facts: the transaction fails, returns the current account with
``ReturnValuesOnConditionCheckFailure`` and is recomputed — membership checked
again, the day recomputed in the current zone — with no extra read. A refusal is
never decided on the cache: it re-reads the account first.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from autopilot.checkins.rules import (
    AlreadyCheckedIn,
    CheckinOutcome,
    MakeupNotAllowed,
    MakeupRefusal,
    check_in_at,
    checkin_day,
    day_gap,
)
from autopilot.config.model import Community
from autopilot.errors import (
    BadRequest,
    Conflict,
    InsufficientPoints,
    MemberLeft,
    NotAMember,
    RequestError,
)
from autopilot.ledger.rules import Entry, Posting, Reason, build_entries
from autopilot.ledger.store import (
    Account,
    Duplicate,
    LedgerStore,
    MetricsDelta,
    Movement,
    StaleAccount,
)
from autopilot.members.service import MemberProfile, MemberService
from autopilot.metrics.rules import checkin_counters, merge, metrics_day, money_counters
from autopilot.timeutil import iso_utc, local_wall, parse_iso, zone

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 6  # a refresh of a stale cached account plus commit retries
CACHE_SIZE = 50_000


class AccountCache:
    """Per-container LRU of accounts; correctness never depends on it (versions do)."""

    def __init__(self, size: int = CACHE_SIZE):
        self._items: OrderedDict[tuple[str, str], Account] = OrderedDict()
        self._size = size

    def get(self, community_id: str, member_id: str) -> Account | None:
        key = (community_id, member_id)
        account = self._items.get(key)
        if account is not None:
            self._items.move_to_end(key)
        return account

    def put(self, account: Account) -> None:
        key = (account.community_id, account.member_id)
        self._items[key] = account
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def forget(self, community_id: str, member_id: str) -> None:
        self._items.pop((community_id, member_id), None)


def _by_reason(entries: Sequence[Entry]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for entry in entries:
        totals[entry.reason] = totals.get(entry.reason, 0) + entry.amount
    return totals


def _marker(day: date) -> str:
    """The idempotency marker of the check-in for ``day`` (a make-up's is the made-up day)."""
    return f"REF#checkin#{day.isoformat()}"


class CheckinSource(StrEnum):
    """Where a check-in came from (stored in the answer and in entries' ``actor``)."""

    API = "api"
    CHAT = "chat"


# The API error of each make-up refusal, decided on the refusal's code, never on its
# message. Every MakeupRefusal must be here (a test checks it).
MAKEUP_ERRORS: dict[MakeupRefusal, type[RequestError]] = {
    MakeupRefusal.DISABLED: BadRequest,
    MakeupRefusal.NOTHING_TO_MAKE_UP: BadRequest,
    MakeupRefusal.ALREADY_CHECKED_IN_TODAY: BadRequest,
    MakeupRefusal.INSUFFICIENT_BALANCE: InsufficientPoints,
}


@dataclass(frozen=True)
class AwardResult:
    """One ledger entry a check-in wrote."""

    reason: Reason
    amount: int
    detail: str
    entry_id: str

    def to_json(self) -> dict[str, Any]:
        """The award as answered by the API."""
        return {
            "reason": self.reason.value,
            "amount": self.amount,
            "detail": self.detail,
            "entry_id": self.entry_id,
        }


@dataclass(frozen=True)
class CheckinResult:
    """The answer to a check-in or make-up; a repeat answers the first one with
    ``repeat`` True. :meth:`to_json` is the API's document and what the idempotency
    marker stores; :meth:`from_json` reads a stored one back."""

    community: str
    member: str
    day: date
    makeup: bool
    repeat: bool
    streak: int
    longest_streak: int
    freezes: int
    freezes_used: int
    freeze_earned: bool
    awards: tuple[AwardResult, ...]
    points_awarded: int
    balance: int
    lifetime_points: int
    tier: str | None
    tier_change: tuple[str | None, str] | None
    at_utc: datetime
    source: CheckinSource

    def to_json(self) -> dict[str, Any]:
        """The JSON document (key order is part of the API's byte-for-byte answer)."""
        return {
            "community": self.community,
            "member": self.member,
            "day": self.day.isoformat(),
            "makeup": self.makeup,
            "repeat": self.repeat,
            "streak": self.streak,
            "longest_streak": self.longest_streak,
            "freezes": self.freezes,
            "freezes_used": self.freezes_used,
            "freeze_earned": self.freeze_earned,
            "awards": [a.to_json() for a in self.awards],
            "points_awarded": self.points_awarded,
            "balance": self.balance,
            "lifetime_points": self.lifetime_points,
            "tier": self.tier,
            "tier_change": list(self.tier_change) if self.tier_change else None,
            "at_utc": iso_utc(self.at_utc),
            "source": self.source.value,
        }

    @classmethod
    def from_json(cls, stored: Mapping[str, Any], *, repeat: bool) -> CheckinResult:
        """A stored answer (an idempotency marker's) as a result; ``repeat`` as given."""
        change = stored.get("tier_change")
        return cls(
            community=stored["community"],
            member=stored["member"],
            day=date.fromisoformat(stored["day"]),
            makeup=bool(stored.get("makeup", False)),
            repeat=repeat,
            streak=int(stored["streak"]),
            longest_streak=int(stored["longest_streak"]),
            freezes=int(stored["freezes"]),
            freezes_used=int(stored["freezes_used"]),
            freeze_earned=bool(stored["freeze_earned"]),
            awards=tuple(
                AwardResult(Reason(a["reason"]), int(a["amount"]), a["detail"], a["entry_id"])
                for a in stored["awards"]
            ),
            points_awarded=int(stored["points_awarded"]),
            balance=int(stored["balance"]),
            lifetime_points=int(stored["lifetime_points"]),
            tier=stored.get("tier"),
            tier_change=(change[0], change[1]) if change else None,
            at_utc=parse_iso(stored["at_utc"]),
            source=CheckinSource(stored.get("source", CheckinSource.API)),
        )

    def as_repeat(self) -> CheckinResult:
        """This answer given again to a repeated request."""
        return replace(self, repeat=True)


def _result(
    community: Community,
    account: Account,
    outcome: CheckinOutcome,
    entries: list[Entry],
    at_utc: datetime,
    source: CheckinSource,
) -> CheckinResult:
    state = outcome.state
    return CheckinResult(
        community=community.id,
        member=account.member_id,
        day=outcome.day,
        makeup=outcome.made_up,
        repeat=False,
        streak=state.streak,
        longest_streak=state.longest_streak,
        freezes=state.freezes,
        freezes_used=outcome.freezes_used,
        freeze_earned=outcome.freeze_earned,
        awards=tuple(AwardResult(e.reason, e.amount, e.note, e.entry_id) for e in entries),
        points_awarded=sum(e.amount for e in entries),
        balance=state.balance,
        lifetime_points=state.lifetime_points,
        tier=state.tier,
        tier_change=outcome.tier_change,
        at_utc=at_utc,
        source=source,
    )


@dataclass(frozen=True)
class TierRef:
    """A tier as shown to members."""

    id: str
    name: str


@dataclass(frozen=True)
class MemberStatus:
    """A member's account as ``GET /me`` answers it."""

    community: str
    member: str
    profile: MemberProfile
    streak: int
    longest_streak: int
    last_checkin_day: date | None
    freezes: int
    balance: int
    lifetime_points: int
    checkins: int
    tier: TierRef | None
    recent_entries: tuple[Entry, ...]

    def to_json(self) -> dict[str, Any]:
        """The JSON document (key order is part of the API's answer)."""
        return {
            "community": self.community,
            "member": self.member,
            "profile": self.profile.to_json(),
            "streak": self.streak,
            "longest_streak": self.longest_streak,
            "last_checkin_day": self.last_checkin_day.isoformat()
            if self.last_checkin_day
            else None,
            "freezes": self.freezes,
            "balance": self.balance,
            "lifetime_points": self.lifetime_points,
            "checkins": self.checkins,
            "tier": {"id": self.tier.id, "name": self.tier.name} if self.tier else None,
            "recent_entries": [
                {
                    "entry_id": e.entry_id,
                    "at_utc": iso_utc(e.at_utc),
                    "reason": e.reason.value,
                    "amount": e.amount,
                    "balance_after": e.balance_after,
                    "ref": e.ref,
                    "note": e.note,
                }
                for e in self.recent_entries
            ],
        }


class CheckinService:
    """Check-ins and make-ups of members."""

    def __init__(
        self, store: LedgerStore, members: MemberService, cache: AccountCache | None = None
    ):
        self._store = store
        self._members = members
        self.cache = cache or AccountCache()
        # Called after each new (not repeated, not make-up) check-in with
        # (community, member id, check-in day, instant, the member's own zone name):
        # reminder conversions.
        self.on_checked_in: Callable[[Community, str, date, datetime, str | None], Any] | None = (
            None
        )

    def _zone(self, community: Community, account: Account) -> ZoneInfo:
        """The member's own zone if set (and still valid), else the community's."""
        if account.timezone:
            try:
                return zone(account.timezone)
            except ValueError:
                logger.warning(
                    "member %s has an unknown zone; using the community's", account.member_id
                )
        return zone(community.timezone)

    def _read(
        self, community: Community, member_id: str, marker_sk: str | None, at_utc: datetime
    ) -> tuple[Account, dict[str, dict[str, Any]]]:
        """The stored account (or a new, unsaved one) and, if asked, one marker: 1 request."""
        markers: dict[str, dict[str, Any]] = {}
        if marker_sk is None:
            account = self._store.account(community.id, member_id)
        else:
            account, stored = self._store.account_and_marker(community.id, member_id, marker_sk)
            if stored is not None:
                markers[marker_sk] = stored
        if account is None:
            account = self._members.new_account(community, member_id, at_utc, "checkin")
        return account, markers

    def check_in(
        self,
        community: Community,
        member_id: str,
        at_utc: datetime,
        *,
        source: CheckinSource = CheckinSource.API,
        makeup: bool = False,
        display_name: str | None = None,
    ) -> CheckinResult:
        """Check ``member_id`` in (``makeup``: for yesterday, at the configured cost).

        Returns the answer; a repeat returns the first answer with ``repeat`` True.

        The cached account only ever *proposes* a write: the transaction is
        conditioned on its version (which every profile, membership and zone change
        bumps) and on the member being active, and every refusal (left, already
        checked in, make-up refused) is decided on a fresh read, never on the
        cache. Each attempt recomputes the day in the member's current zone.
        """
        rules = community.checkins
        boundary = community.day_boundary
        account = self.cache.get(community.id, member_id)
        fresh = False
        markers: dict[str, dict[str, Any]] = {}
        if account is None:
            # Guess the day in the community's zone so a repeat costs one request.
            guess = checkin_day(at_utc, zone(community.timezone), boundary)
            guess -= timedelta(days=1) if makeup else timedelta(0)
            account, markers = self._read(community, member_id, _marker(guess), at_utc)
            fresh = True
        for _ in range(MAX_ATTEMPTS):
            if not account.exists and display_name:
                account = replace(account, display_name=display_name[:200])
            if not account.active:
                if not fresh:  # the cache may not know the member rejoined
                    account, markers = self._read(community, member_id, None, at_utc)
                    fresh = True
                    continue
                raise MemberLeft(f"member {member_id!r} left community {community.id!r}")
            tz = self._zone(community, account)
            try:
                outcome = check_in_at(account.state, at_utc, tz, boundary, rules, makeup=makeup)
            except AlreadyCheckedIn as done:
                sk = _marker(done.day)
                if not fresh:  # decide on the stored account, not the cached one
                    account, markers = self._read(community, member_id, sk, at_utc)
                    fresh = True
                    continue
                stored = (
                    markers[sk]
                    if sk in markers
                    else self._store.marker(community.id, member_id, sk)
                )
                if stored is None:
                    raise Conflict("check-in state is inconsistent; retry") from None
                self.cache.put(account)
                return CheckinResult.from_json(stored, repeat=True)
            except MakeupNotAllowed as exc:
                # A retried make-up finds yesterday done: answer its first result.
                today, _ = day_gap(account.state, at_utc, tz, boundary)
                sk = _marker(today - timedelta(days=1))
                if not fresh:
                    account, markers = self._read(community, member_id, sk, at_utc)
                    fresh = True
                    continue
                if exc.code in (
                    MakeupRefusal.NOTHING_TO_MAKE_UP,
                    MakeupRefusal.ALREADY_CHECKED_IN_TODAY,
                ):
                    stored = (
                        markers[sk]
                        if sk in markers
                        else self._store.marker(community.id, member_id, sk)
                    )
                    if stored is not None and stored.get("makeup"):
                        self.cache.put(account)
                        return CheckinResult.from_json(stored, repeat=True)
                raise MAKEUP_ERRORS[exc.code](str(exc)) from exc
            marker = _marker(outcome.day)
            if marker in markers:  # read with the account: recorded already
                return CheckinResult.from_json(markers[marker], repeat=True)
            entries = build_entries(
                community.id,
                member_id,
                [
                    Posting(a.reason, a.amount, f"{a.reason}:{outcome.day.isoformat()}", a.detail)
                    for a in outcome.awards
                ],
                balance_before=account.state.balance,
                at_utc=at_utc,
                actor=f"{CheckinSource(source)}:{member_id}",
                seq=account.state.version + 1,
            )
            result = _result(community, account, outcome, entries, at_utc, CheckinSource(source))
            day = metrics_day(at_utc, community.timezone, boundary)
            metrics = MetricsDelta(
                day,
                merge(
                    checkin_counters(
                        account.last_metric_day,
                        day,
                        outcome.state.streak,
                        makeup=makeup,
                        joined=not account.exists,
                    ),
                    money_counters(_by_reason(entries)),
                ),
            )
            # The account as written: its last metrics day moves to this one.
            account = replace(account, last_metric_day=max(day, account.last_metric_day or day))
            try:
                new_state = self._store.commit(
                    Movement(
                        account=account,
                        new_state=outcome.state,
                        marker_sk=marker,
                        result=result.to_json(),
                        entries=entries,
                        local_day=local_wall(at_utc, zone(community.timezone)).date(),
                        checkin=True,
                        checkin_day=outcome.day,
                        tier_change=outcome.tier_change,
                        require_active=True,
                        metrics=metrics,
                    ),
                    at_utc,
                )
            except Duplicate as dup:
                self.cache.forget(community.id, member_id)
                return CheckinResult.from_json(dup.result, repeat=True)
            except StaleAccount as stale:
                # The stored account moved on (or left, or changed zone): start over
                # from it; the loop re-checks membership and recomputes the day.
                account = stale.current or self._members.new_account(
                    community, member_id, at_utc, "checkin"
                )
                fresh = True
                markers = {}
                continue
            account = replace(account, state=new_state, exists=True)
            self.cache.put(account)
            logger.info(
                "check-in %s/%s day %s streak %d +%d",
                community.id,
                member_id,
                outcome.day,
                new_state.streak,
                result.points_awarded,
            )
            if self.on_checked_in is not None and not makeup:
                self.on_checked_in(community, member_id, outcome.day, at_utc, account.timezone)
            return result
        self.cache.forget(community.id, member_id)
        raise Conflict("too many concurrent changes to this member; retry")

    def me(self, community: Community, member_id: str, recent: int = 10) -> MemberStatus:
        """Streak, freezes, balance, tier and recent entries (at most 2 requests)."""
        account = self._store.account(community.id, member_id)
        if account is None:
            raise NotAMember(f"member {member_id!r} has not joined community {community.id!r}")
        self.cache.put(account)
        state = account.state
        entries = self._store.recent_entries(community.id, member_id, recent)
        tier = next((t for t in community.checkins.tiers if t.id == state.tier), None)
        return MemberStatus(
            community=community.id,
            member=member_id,
            profile=MemberProfile.of(account),
            streak=state.streak,
            longest_streak=state.longest_streak,
            last_checkin_day=state.last_day,
            freezes=state.freezes,
            balance=state.balance,
            lifetime_points=state.lifetime_points,
            checkins=state.checkins,
            tier=TierRef(tier.id, tier.name) if tier else None,
            recent_entries=tuple(entries),
        )
