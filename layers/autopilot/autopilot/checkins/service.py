"""Check-ins: one transaction that checks the day, moves the streak and balance, and
writes the entries.

Request cost (DynamoDB requests, see docs/benchmarks.md):

* a new check-in by a member this container has seen (or a first-ever check-in
  after the initial read): **1** — the transaction;
* a new check-in by a member this container has not seen: 2 — one BatchGetItem
  of the account *and* today's marker, then the transaction;
* a repeat: 1 or 2 — the marker read answers it with the first result.

The account's ``version`` is the transaction's condition, so a cached account
that went stale (another container checked the member in) can never credit on
stale numbers: the transaction fails, returns the current account with
``ReturnValuesOnConditionCheckFailure`` and is recomputed — no extra read.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

from autopilot.checkins.rules import (
    AlreadyCheckedIn,
    CheckinOutcome,
    MakeupNotAllowed,
    check_in,
    checkin_day,
    make_up,
)
from autopilot.config.model import Community
from autopilot.errors import BadRequest, Conflict, InsufficientPoints, MemberLeft, NotAMember
from autopilot.ledger.rules import build_entries
from autopilot.ledger.store import Account, Duplicate, LedgerStore, Movement, StaleAccount
from autopilot.members.service import MemberService
from autopilot.timeutil import iso_utc, local_wall, zone

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 4
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


def _result(
    community: Community,
    account: Account,
    outcome: CheckinOutcome,
    entries: list[Any],
    at_utc: datetime,
    source: str,
    makeup: bool,
) -> dict[str, Any]:
    state = outcome.state
    return {
        "community": community.id,
        "member": account.member_id,
        "day": outcome.day.isoformat(),
        "makeup": makeup,
        "repeat": False,
        "streak": state.streak,
        "longest_streak": state.longest_streak,
        "freezes": state.freezes,
        "freezes_used": outcome.freezes_used,
        "freeze_earned": outcome.freeze_earned,
        "awards": [
            {"reason": e.reason, "amount": e.amount, "detail": e.note, "entry_id": e.entry_id}
            for e in entries
        ],
        "points_awarded": sum(e.amount for e in entries),
        "balance": state.balance,
        "lifetime_points": state.lifetime_points,
        "tier": state.tier,
        "tier_change": list(outcome.tier_change) if outcome.tier_change else None,
        "at_utc": iso_utc(at_utc),
        "source": source,
    }


class CheckinService:
    """Check-ins and make-ups of members."""

    def __init__(
        self, store: LedgerStore, members: MemberService, cache: AccountCache | None = None
    ):
        self._store = store
        self._members = members
        self.cache = cache or AccountCache()

    def _day(self, community: Community, account: Account | None, at_utc: datetime) -> date:
        tz_name = account.timezone if account and account.timezone else community.timezone
        return checkin_day(at_utc, zone(tz_name), community.day_boundary)

    def check_in(
        self,
        community: Community,
        member_id: str,
        at_utc: datetime,
        *,
        source: str = "api",
        makeup: bool = False,
        display_name: str | None = None,
    ) -> dict[str, Any]:
        """Check ``member_id`` in (``makeup``: for yesterday, at the configured cost).

        Returns the answer; a repeat returns the first answer with ``repeat`` True.
        """
        account = self.cache.get(community.id, member_id)
        today = self._day(community, account, at_utc)
        day = today - timedelta(days=1) if makeup else today
        marker = f"REF#checkin#{day.isoformat()}"
        if account is None:
            account, stored = self._store.account_and_marker(community.id, member_id, marker)
            if stored is not None:
                return {**stored, "repeat": True}
            if account is None:
                account = self._members.new_account(community, member_id, at_utc, "checkin")
                if display_name:
                    account = replace(account, display_name=display_name[:200])
            elif account.timezone:
                # A member's own zone can move their day: recompute before writing.
                today = self._day(community, account, at_utc)
                day = today - timedelta(days=1) if makeup else today
                marker = f"REF#checkin#{day.isoformat()}"
        if not account.active:
            raise MemberLeft(f"member {member_id!r} left community {community.id!r}")

        for _ in range(MAX_ATTEMPTS):
            if account.state.last_day is not None and account.state.last_day >= day:
                stored = self._store.marker(community.id, member_id, marker)
                if stored is not None:
                    return {**stored, "repeat": True}
                if makeup:
                    raise BadRequest("nothing to make up: yesterday or today is already checked in")
            try:
                outcome = (
                    make_up(account.state, today, community.checkins)
                    if makeup
                    else check_in(account.state, day, community.checkins)
                )
            except AlreadyCheckedIn:
                stored = self._store.marker(community.id, member_id, marker)
                if stored is None:
                    raise Conflict("check-in state is inconsistent; retry") from None
                return {**stored, "repeat": True}
            except MakeupNotAllowed as exc:
                text = str(exc)
                if "balance" in text:
                    raise InsufficientPoints(text) from exc
                raise BadRequest(text) from exc
            entries = build_entries(
                community.id,
                member_id,
                [
                    (a.reason, a.amount, f"{a.reason}:{outcome.day.isoformat()}", a.detail)
                    for a in outcome.awards
                ],
                account.state.balance,
                at_utc,
                actor=f"{source}:{member_id}",
            )
            result = _result(community, account, outcome, entries, at_utc, source, makeup)
            try:
                new_state = self._store.commit(
                    Movement(
                        account=account,
                        new_state=outcome.state,
                        marker_sk=marker,
                        result=result,
                        entries=entries,
                        local_day=local_wall(at_utc, zone(community.timezone)).date(),
                        checkin=True,
                        tier_change=outcome.tier_change,
                    ),
                    at_utc,
                )
            except Duplicate as dup:
                self.cache.forget(community.id, member_id)
                return {**dup.result, "repeat": True}
            except StaleAccount as stale:
                if stale.current is None:
                    self.cache.forget(community.id, member_id)
                    account = self._members.new_account(community, member_id, at_utc, "checkin")
                else:
                    account = stale.current
                continue
            account = replace(account, state=new_state, exists=True)
            self.cache.put(account)
            logger.info(
                "check-in %s/%s day %s streak %d +%d",
                community.id,
                member_id,
                day,
                new_state.streak,
                result["points_awarded"],
            )
            return result
        raise Conflict("too many concurrent changes to this member; retry")

    def me(self, community: Community, member_id: str, recent: int = 10) -> dict[str, Any]:
        """Streak, freezes, balance, tier and recent entries (at most 2 requests)."""
        account = self._store.account(community.id, member_id)
        if account is None:
            raise NotAMember(f"member {member_id!r} has not joined community {community.id!r}")
        self.cache.put(account)
        state = account.state
        entries = self._store.recent_entries(community.id, member_id, recent)
        tier = next((t for t in community.checkins.tiers if t.id == state.tier), None)
        return {
            "community": community.id,
            "member": member_id,
            "profile": account.profile(),
            "streak": state.streak,
            "longest_streak": state.longest_streak,
            "last_checkin_day": state.last_day.isoformat() if state.last_day else None,
            "freezes": state.freezes,
            "balance": state.balance,
            "lifetime_points": state.lifetime_points,
            "checkins": state.checkins,
            "tier": {"id": tier.id, "name": tier.name} if tier else None,
            "recent_entries": [
                {
                    "entry_id": e.entry_id,
                    "at_utc": iso_utc(e.at_utc),
                    "reason": e.reason,
                    "amount": e.amount,
                    "balance_after": e.balance_after,
                    "ref": e.ref,
                    "note": e.note,
                }
                for e in entries
            ],
        }
