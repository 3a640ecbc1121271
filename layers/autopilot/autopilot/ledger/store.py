"""The ledger table: accounts, idempotency markers, entries, aggregates, stock (PynamoDB).

One table holds everything a point movement touches, so a movement is a single
``TransactWriteItems`` request:

* ``pk = M#<community>#<member>``
  * ``sk = ACCOUNT`` — profile, balance, streak state and an optimistic ``version``;
  * ``sk = REF#<reason>#<ref>`` — the idempotency marker of one business event (a
    check-in day, a redemption request, an adjustment) holding the answer given
    the first time; written with ``attribute_not_exists``, so a retry — seconds or
    months later — credits nothing and gets the same answer;
  * ``sk = E#<at UTC>#<entry id>`` — an immutable entry (no code path updates or
    deletes it); ``gsi1pk = L#<community>#<local day>#<shard>`` indexes it by
    period for finance without a hot partition;
  * ``sk = TIER#<at UTC>`` — a tier change.
* ``pk = AGG#<community>#<local day | ALL>#<shard>``, ``sk = TOTALS`` — running
  totals by reason, sharded so a million check-ins at 07:00 do not hit one item.
* ``pk = REWARD#<community>#<reward>``, ``sk = STOCK`` — how many were redeemed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from pynamodb.attributes import (
    BooleanAttribute,
    NumberAttribute,
    UnicodeAttribute,
)
from pynamodb.exceptions import PutError, TransactWriteError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from autopilot.checkins.rules import AccountState
from autopilot.dynamo import bind_table, transaction
from autopilot.ledger.rules import Entry
from autopilot.timeutil import iso_utc, parse_iso

AGG_SHARDS = 8
ENTRY_SHARDS = 4


def member_pk(community_id: str, member_id: str) -> str:
    """Partition of one member's account, markers and entries."""
    return f"M#{community_id}#{member_id}"


def shard_of(member_id: str, shards: int) -> int:
    """A stable shard for a member (spreads hot per-day items across partitions)."""
    return int.from_bytes(hashlib.sha256(member_id.encode()).digest()[:4], "big") % shards


class PeriodIndex(GlobalSecondaryIndex["EntryItem"]):
    """Entries by (community, local day, shard), ordered by time."""

    class Meta:
        index_name = "gsi1"
        projection = AllProjection()

    gsi1pk = UnicodeAttribute(hash_key=True)
    gsi1sk = UnicodeAttribute(range_key=True)


class AccountItem(Model):
    """A member: profile and points/streak state."""

    class Meta:
        table_name = "LedgerTable"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default="ACCOUNT")
    community_id = UnicodeAttribute()
    member_id = UnicodeAttribute()
    display_name = UnicodeAttribute(null=True)
    joined_at = UnicodeAttribute(null=True)
    left_at = UnicodeAttribute(null=True)
    timezone = UnicodeAttribute(null=True)
    reminders_opt_out = BooleanAttribute(default=False)
    dm_address = UnicodeAttribute(null=True)
    referred_by = UnicodeAttribute(null=True)
    joined_via = UnicodeAttribute(null=True)
    balance = NumberAttribute(default=0)
    lifetime_points = NumberAttribute(default=0)
    streak = NumberAttribute(default=0)
    longest_streak = NumberAttribute(default=0)
    last_day = UnicodeAttribute(null=True)
    freezes = NumberAttribute(default=0)
    tier = UnicodeAttribute(null=True)
    checkins = NumberAttribute(default=0)
    version = NumberAttribute(default=0)
    last_zone = UnicodeAttribute(null=True)  # the zone last_day was computed in
    updated_at = UnicodeAttribute(null=True)


class RefItem(Model):
    """Idempotency marker of one business event, with the answer given first."""

    class Meta:
        table_name = "LedgerTable"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    result = UnicodeAttribute()  # JSON of the first answer
    at_utc = UnicodeAttribute()


class EntryItem(Model):
    """An immutable ledger entry."""

    class Meta:
        table_name = "LedgerTable"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    entry_id = UnicodeAttribute()
    community_id = UnicodeAttribute()
    member_id = UnicodeAttribute()
    amount = NumberAttribute()
    reason = UnicodeAttribute()
    ref = UnicodeAttribute()
    balance_after = NumberAttribute()
    at_utc = UnicodeAttribute()
    actor = UnicodeAttribute()
    note = UnicodeAttribute(default="")
    # Commit sequence: the account version the entry's movement wrote (absent on
    # entries written before it existed). Reconciliation chains by it, not by time.
    seq = NumberAttribute(null=True)
    gsi1pk = UnicodeAttribute()
    gsi1sk = UnicodeAttribute()
    by_period = PeriodIndex()


class TierItem(Model):
    """A tier change of a member."""

    class Meta:
        table_name = "LedgerTable"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    old_tier = UnicodeAttribute(null=True)
    new_tier = UnicodeAttribute()
    lifetime_points = NumberAttribute()
    at_utc = UnicodeAttribute()


class AggItem(Model):
    """Sharded running totals of a community (per local day, and all time)."""

    class Meta:
        table_name = "LedgerTable"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default="TOTALS")
    checkins = NumberAttribute(default=0)
    net = NumberAttribute(default=0)
    r_checkin = NumberAttribute(default=0)
    r_streak_bonus = NumberAttribute(default=0)
    r_makeup = NumberAttribute(default=0)
    r_redemption = NumberAttribute(default=0)
    r_adjustment = NumberAttribute(default=0)
    r_lottery_prize = NumberAttribute(default=0)
    r_referral = NumberAttribute(default=0)
    r_expiry = NumberAttribute(default=0)

    def by_reason(self) -> dict[str, int]:
        """Totals by ledger reason."""
        return {
            name[2:]: int(getattr(self, name) or 0)
            for name in self.get_attributes()
            if name.startswith("r_")
        }


class StockItem(Model):
    """Redemptions of one reward so far."""

    class Meta:
        table_name = "LedgerTable"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default="STOCK")
    redeemed = NumberAttribute(default=0)


ALL_MODELS: tuple[type[Model], ...] = (
    AccountItem,
    RefItem,
    EntryItem,
    TierItem,
    AggItem,
    StockItem,
)


@dataclass
class Account:
    """A member's account as services see it."""

    community_id: str
    member_id: str
    state: AccountState
    display_name: str | None = None
    joined_at: str | None = None
    left_at: str | None = None
    timezone: str | None = None
    reminders_opt_out: bool = False
    dm_address: str | None = None
    referred_by: str | None = None
    joined_via: str | None = None
    exists: bool = True

    @property
    def active(self) -> bool:
        """Not left (an account not yet stored is active: first check-ins register)."""
        return self.left_at is None

    def profile(self) -> dict[str, Any]:
        return {
            "member_id": self.member_id,
            "display_name": self.display_name,
            "joined_at": self.joined_at,
            "left_at": self.left_at,
            "timezone": self.timezone,
            "reminders_opt_out": self.reminders_opt_out,
            "dm_address": self.dm_address,
            "referred_by": self.referred_by,
        }


def account_from_item(item: AccountItem) -> Account:
    """Convert a stored account."""
    state = AccountState(
        balance=int(item.balance),
        lifetime_points=int(item.lifetime_points),
        streak=int(item.streak),
        longest_streak=int(item.longest_streak),
        last_day=date.fromisoformat(item.last_day) if item.last_day else None,
        freezes=int(item.freezes),
        tier=item.tier,
        checkins=int(item.checkins),
        version=int(item.version),
        last_zone=item.last_zone,
    )
    return Account(
        item.community_id,
        item.member_id,
        state,
        item.display_name,
        item.joined_at,
        item.left_at,
        item.timezone,
        bool(item.reminders_opt_out),
        item.dm_address,
        item.referred_by,
        item.joined_via,
    )


def _account_item(account: Account, state: AccountState, now: datetime) -> AccountItem:
    return AccountItem(
        member_pk(account.community_id, account.member_id),
        "ACCOUNT",
        community_id=account.community_id,
        member_id=account.member_id,
        display_name=account.display_name,
        joined_at=account.joined_at,
        left_at=account.left_at,
        timezone=account.timezone,
        reminders_opt_out=account.reminders_opt_out,
        dm_address=account.dm_address,
        referred_by=account.referred_by,
        joined_via=account.joined_via,
        balance=state.balance,
        lifetime_points=state.lifetime_points,
        streak=state.streak,
        longest_streak=state.longest_streak,
        last_day=state.last_day.isoformat() if state.last_day else None,
        freezes=state.freezes,
        tier=state.tier,
        checkins=state.checkins,
        version=state.version,
        last_zone=state.last_zone,
        updated_at=iso_utc(now),
    )


def entry_from_item(item: EntryItem) -> Entry:
    """Convert a stored entry."""
    return Entry(
        item.entry_id,
        item.community_id,
        item.member_id,
        int(item.amount),
        item.reason,
        item.ref,
        int(item.balance_after),
        parse_iso(item.at_utc),
        item.actor,
        item.note,
        None if item.seq is None else int(item.seq),
    )


@dataclass
class Movement:
    """Everything one business event writes, committed as one transaction."""

    account: Account  # as read (its state.version is the expected version)
    new_state: AccountState  # version is set by the store
    marker_sk: str  # REF#<reason>#<ref>
    result: Mapping[str, Any]  # the answer, stored on the marker
    entries: Sequence[Entry]
    local_day: date  # community-local calendar day: money aggregates and the period index
    checkin: bool = False
    checkin_day: date | None = None  # the check-in day counted (defaults to local_day)
    require_active: bool = False  # condition the write on the member not having left
    tier_change: tuple[str | None, str] | None = None
    stock: tuple[str, int] | None = None  # (reward id, stock limit) when redeeming
    aggregates: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


class Duplicate(Exception):
    """The event was already recorded; ``result`` is the first answer."""

    def __init__(self, result: Mapping[str, Any]):
        super().__init__("already recorded")
        self.result = result


class StaleAccount(Exception):
    """The account changed since it was read; ``current`` is what is stored now."""

    def __init__(self, current: Account | None):
        super().__init__("account changed")
        self.current = current


class OutOfStock(Exception):
    """The reward has no stock left."""


class LedgerStore:
    """DynamoDB access for accounts and the ledger."""

    def __init__(self, table_name: str, region: str):
        bind_table(table_name, *ALL_MODELS, region=region)
        self.table_name = table_name

    # -- reads ----------------------------------------------------------------
    def account_and_marker(
        self, community_id: str, member_id: str, marker_sk: str
    ) -> tuple[Account | None, dict[str, Any] | None]:
        """The account and one idempotency marker in a single BatchGetItem."""
        pk = member_pk(community_id, member_id)
        # The model's table connection knows the key schema (no DescribeTable call).
        keys: list[Any] = [
            {"pk": {"S": pk}, "sk": {"S": "ACCOUNT"}},
            {"pk": {"S": pk}, "sk": {"S": marker_sk}},
        ]
        response = AccountItem._get_connection().batch_get_item(keys, consistent_read=True)
        account, result = None, None
        for raw in response.get("Responses", {}).get(self.table_name, []):
            if raw["sk"]["S"] == "ACCOUNT":
                account = account_from_item(AccountItem.from_raw_data(raw))
            else:
                result = dict(json.loads(raw["result"]["S"]))
        return account, result

    def account(self, community_id: str, member_id: str) -> Account | None:
        """One account (GetItem)."""
        try:
            return account_from_item(
                AccountItem.get(member_pk(community_id, member_id), "ACCOUNT", consistent_read=True)
            )
        except AccountItem.DoesNotExist:
            return None

    def marker(self, community_id: str, member_id: str, marker_sk: str) -> dict[str, Any] | None:
        """The stored answer of an event (GetItem)."""
        try:
            item = RefItem.get(member_pk(community_id, member_id), marker_sk, consistent_read=True)
        except RefItem.DoesNotExist:
            return None
        return dict(json.loads(item.result))

    def recent_entries(self, community_id: str, member_id: str, limit: int = 10) -> list[Entry]:
        """A member's latest entries, newest first (one Query)."""
        items = EntryItem.query(
            member_pk(community_id, member_id),
            EntryItem.sk.startswith("E#"),
            scan_index_forward=False,
            limit=limit,
            consistent_read=True,
        )
        return [entry_from_item(item) for item in items]

    def member_entries(
        self, community_id: str, member_id: str, after: str | None = None
    ) -> Iterator[Entry]:
        """Every entry of a member, oldest first (after ``<at UTC>#<id>`` if given)."""
        # A key condition takes one range operator: BETWEEN (inclusive) and skip the
        # entry the cursor names. Two ANDed comparisons are not a key condition.
        start = f"E#{after}" if after else None
        condition = EntryItem.sk.between(start, "E#~") if start else EntryItem.sk.startswith("E#")
        for item in EntryItem.query(
            member_pk(community_id, member_id), condition, consistent_read=True
        ):
            if item.sk != start:
                yield entry_from_item(item)

    def entries_of_day(
        self, community_id: str, day: date, shard: int, after: str | None = None
    ) -> Iterator[EntryItem]:
        """Entries of one local day and shard from the period index, in time order."""
        condition = EntryItem.gsi1sk > after if after else None
        return EntryItem.by_period.query(f"L#{community_id}#{day.isoformat()}#{shard}", condition)

    def aggregates(self, community_id: str, period: str) -> list[AggItem]:
        """Every shard of an aggregate (``period`` is a local day or ``ALL``): one BatchGetItem."""
        keys = [(f"AGG#{community_id}#{period}#{s}", "TOTALS") for s in range(AGG_SHARDS)]
        return list(AggItem.batch_get(keys))

    def checkins_on(self, community_id: str, day: date) -> int:
        """Check-ins *for* the check-in day ``day`` (make-ups on the day they make up)."""
        return sum(int(a.checkins or 0) for a in self.aggregates(community_id, day.isoformat()))

    def scan_accounts(self, community_id: str | None = None) -> Iterator[Account]:
        """Every account (audit jobs only: reconciliation)."""
        condition = AccountItem.sk == "ACCOUNT"
        if community_id:
            condition &= AccountItem.community_id == community_id
        for item in AccountItem.scan(condition):
            yield account_from_item(item)

    # -- writes ---------------------------------------------------------------
    def put_account(self, account: Account, now: datetime, *, create: bool) -> Account:
        """Create or update a profile (no points move here)."""
        state = account.state
        new_state = AccountState(**{**state.__dict__, "version": state.version + 1})
        item = _account_item(account, new_state, now)
        condition = (
            AccountItem.pk.does_not_exist() if create else AccountItem.version == state.version
        )
        try:
            item.save(condition=condition)
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                raise StaleAccount(self.account(account.community_id, account.member_id)) from exc
            raise
        account.state = new_state
        account.exists = True
        return account

    def commit(self, movement: Movement, now: datetime) -> AccountState:
        """Write a movement atomically; raise ``Duplicate``/``StaleAccount``/``OutOfStock``."""
        account = movement.account
        pk = member_pk(account.community_id, account.member_id)
        expected = account.state.version
        new_state = AccountState(**{**movement.new_state.__dict__, "version": expected + 1})
        marker = RefItem(
            pk,
            movement.marker_sk,
            result=json.dumps(movement.result, ensure_ascii=False, sort_keys=True),
            at_utc=iso_utc(now),
        )
        account_item = _account_item(account, new_state, now)
        account_condition: Condition = (
            AccountItem.pk.does_not_exist()
            if not account.exists
            else AccountItem.version == expected
        )
        if movement.require_active and account.exists:
            # Belt and braces: leaving bumps the version too, but the rule that a
            # member who left earns and spends nothing is stated in the write itself.
            account_condition &= AccountItem.left_at.does_not_exist()
        if movement.stock is not None and movement.stock[1] <= 0:
            raise OutOfStock(movement.stock[0])
        day = movement.local_day.isoformat()
        entry_shard = shard_of(account.member_id, ENTRY_SHARDS)
        agg_shard = shard_of(account.member_id, AGG_SHARDS)
        puts: list[str] = ["marker", "account"]
        try:
            with transaction(EntryItem) as tx:
                tx.save(marker, condition=RefItem.pk.does_not_exist(), return_values="ALL_OLD")
                tx.save(account_item, condition=account_condition, return_values="ALL_OLD")
                for entry in movement.entries:
                    at = iso_utc(entry.at_utc)
                    tx.save(
                        EntryItem(
                            pk,
                            f"E#{at}#{entry.entry_id}",
                            entry_id=entry.entry_id,
                            community_id=entry.community_id,
                            member_id=entry.member_id,
                            amount=entry.amount,
                            reason=entry.reason,
                            ref=entry.ref,
                            balance_after=entry.balance_after,
                            at_utc=at,
                            actor=entry.actor,
                            note=entry.note,
                            seq=entry.seq,
                            gsi1pk=f"L#{account.community_id}#{day}#{entry_shard}",
                            gsi1sk=f"{at}#{entry.entry_id}",
                        ),
                        condition=EntryItem.pk.does_not_exist(),
                    )
                    puts.append("entry")
                if movement.tier_change is not None:
                    old, new = movement.tier_change
                    tx.save(
                        TierItem(
                            pk,
                            f"TIER#{iso_utc(now)}#{new}",
                            old_tier=old,
                            new_tier=new,
                            lifetime_points=new_state.lifetime_points,
                            at_utc=iso_utc(now),
                        ),
                        condition=TierItem.pk.does_not_exist(),
                    )
                    puts.append("tier")
                for period, actions in self._agg_updates(movement).items():
                    tx.update(
                        AggItem(f"AGG#{account.community_id}#{period}#{agg_shard}", "TOTALS"),
                        actions=actions,
                    )
                if movement.stock is not None:
                    reward_id, limit = movement.stock
                    tx.update(
                        StockItem(f"REWARD#{account.community_id}#{reward_id}", "STOCK"),
                        actions=[StockItem.redeemed.add(1)],
                        condition=StockItem.redeemed.does_not_exist()
                        | (StockItem.redeemed < limit),
                    )
        except TransactWriteError as exc:
            self._explain(exc, puts, movement)
            raise
        return new_state

    @staticmethod
    def _agg_updates(movement: Movement) -> dict[str, list[Action]]:
        """The aggregate updates by period: money on the calendar day and ``ALL``, the
        check-in count on the check-in day (one update per item: a transaction may
        not touch an item twice)."""
        updates: dict[str, list[Action]] = {}
        if not movement.aggregates:
            return updates
        if movement.entries:
            totals: dict[str, int] = {}
            for entry in movement.entries:
                totals[entry.reason] = totals.get(entry.reason, 0) + entry.amount
            money: list[Action] = [AggItem.net.add(sum(totals.values()))]
            # ADD works on top-level attributes only, hence one attribute per reason.
            money += [
                getattr(AggItem, f"r_{reason}").add(amount) for reason, amount in totals.items()
            ]
            for period in (movement.local_day.isoformat(), "ALL"):
                updates[period] = list(money)
        if movement.checkin:
            counted = (movement.checkin_day or movement.local_day).isoformat()
            updates.setdefault(counted, []).append(AggItem.checkins.add(1))
        return updates

    @staticmethod
    def _explain(exc: TransactWriteError, puts: list[str], movement: Movement) -> None:
        reasons = exc.cancellation_reasons or []
        if not reasons:
            return
        marker_reason = reasons[0]
        if marker_reason is not None and marker_reason.code == "ConditionalCheckFailed":
            raw = marker_reason.raw_item or {}
            result = json.loads(raw["result"]["S"]) if "result" in raw else {}
            raise Duplicate(result) from exc
        account_reason = reasons[1] if len(reasons) > 1 else None
        if account_reason is not None and account_reason.code == "ConditionalCheckFailed":
            stored = account_reason.raw_item
            current = account_from_item(AccountItem.from_raw_data(stored)) if stored else None
            raise StaleAccount(current) from exc
        for reason in reasons[len(puts) :]:
            if reason is not None and reason.code == "ConditionalCheckFailed" and movement.stock:
                raise OutOfStock(movement.stock[0]) from exc
