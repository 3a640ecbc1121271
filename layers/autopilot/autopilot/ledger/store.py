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
* ``pk = TOUCH#<community>#<UTC day>#<shard>``, ``sk = M#<member>`` — the member
  moved points that day (written in each movement's transaction): nightly
  reconciliation finds the members to check by Query on these partitions.
* ``pk = M#<community>#<member>``, ``sk = RECON`` — how far reconciliation has
  verified the member's chain (account ``seq`` and balance at that point).
* ``pk = RECON#<community>``, ``sk = CHECKPOINT`` — the reconciliation watermark
  and the verified running total (the sum of every ``RECON`` balance).
* ``pk = WORK#<job id>``, ``sk = JOB`` — a worker job (export, reconcile, audit):
  status, resumable cursor, outcome.

Accounts are also in ``gsi1`` (``gsi1pk = A#<community>#<shard>``, ``gsi1sk =
<member>``): the full audit pages through a community's members by Query.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    NumberAttribute,
    UnicodeAttribute,
)
from pynamodb.exceptions import PutError, TransactWriteError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, IncludeProjection
from pynamodb.models import Model

from autopilot.checkins.rules import AccountState
from autopilot.dynamo import bind_table, transaction
from autopilot.ledger.rules import Entry, Reason
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


class MemberIndex(GlobalSecondaryIndex["AccountItem"]):
    """Accounts by (community, shard), ordered by member id (the audit's pages)."""

    class Meta:
        index_name = "gsi1"
        projection = AllProjection()

    gsi1pk = UnicodeAttribute(hash_key=True)
    gsi1sk = UnicodeAttribute(range_key=True)


def members_pk(community_id: str, shard: int) -> str:
    """``gsi1`` partition of a community's accounts (one of ``ENTRY_SHARDS``)."""
    return f"A#{community_id}#{shard}"


def touch_pk(community_id: str, day: date, shard: int) -> str:
    """Partition of the members who moved points on UTC ``day`` (one of ``ENTRY_SHARDS``)."""
    return f"TOUCH#{community_id}#{day.isoformat()}#{shard}"


class LastDayIndex(GlobalSecondaryIndex["AccountItem"]):
    """Members by (community, shard), ordered by last check-in day (reminders' ``gsi2``).

    Sparse: only members who have checked in and not left are in it
    (:func:`last_day_index_keys`). Projects only what reminder selection reads.
    """

    class Meta:
        index_name = "gsi2"
        projection = IncludeProjection(
            [
                "member_id",
                "display_name",
                "streak",
                "freezes",
                "last_day",
                "timezone",
                "reminders_opt_out",
                "reminder_opt_outs",
                "dm_address",
            ]
        )

    gsi2pk = UnicodeAttribute(hash_key=True)
    gsi2sk = UnicodeAttribute(range_key=True)


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
    # The member index (absent on accounts last written before it existed).
    gsi1pk = UnicodeAttribute(null=True)
    gsi1sk = UnicodeAttribute(null=True)
    by_member = MemberIndex()
    # The sparse last-check-in-day index of reminders (``gsi2``): set only on
    # members who have not left and have checked in at least once.
    gsi2pk = UnicodeAttribute(null=True)
    gsi2sk = UnicodeAttribute(null=True)
    reminder_opt_outs = JSONAttribute(null=True)  # reminder kinds opted out of
    last_metric_day = UnicodeAttribute(null=True)  # metrics day of the last check-in
    by_last_day = LastDayIndex()


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
    r_lottery_entry = NumberAttribute(default=0)
    r_lottery_refund = NumberAttribute(default=0)

    def by_reason(self) -> dict[str, int]:
        """Totals by ledger reason."""
        return {
            name[2:]: int(getattr(self, name) or 0)
            for name in self.get_attributes()
            if name.startswith("r_")
        }


def _metric_counter_names() -> tuple[str, ...]:
    from autopilot.metrics.rules import COUNTERS

    return (*COUNTERS, "members", *(f"r_{reason.value}" for reason in Reason))


class MetricItem(Model):
    """A community's metric counters of one metrics day (or ``ALL``), sharded.

    ``pk = MET#<community>#<day|ALL>#<shard>``: every counter of
    :data:`autopilot.metrics.rules.COUNTERS` and ``r_<reason>``, added in the
    transaction of the event they count (docs/metrics.md); ``ALL`` holds
    ``members`` (registrations minus leaves) and ``net`` since counting began.
    """

    class Meta:
        table_name = "LedgerTable"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default="TOTALS")
    for _name in _metric_counter_names():
        locals()[_name] = NumberAttribute(default=0)
    del _name

    def counters(self) -> dict[str, int]:
        """Every counter of the item (absent ones are 0)."""
        return {
            name: int(getattr(self, name) or 0)
            for name in self.get_attributes()
            if name not in ("pk", "sk")
        }


def metric_pk(community_id: str, period: str, shard: int) -> str:
    """Partition of one shard of a community's metric counters for ``period``."""
    return f"MET#{community_id}#{period}#{shard}"


@dataclass(frozen=True)
class MetricsDelta:
    """What one event adds to its metrics day's counters (``autopilot.metrics.rules``)."""

    day: date
    counters: Mapping[str, int]

    def updates(self) -> dict[str, list[Action]]:
        """The ``ADD`` actions on the day's item and on ``ALL``."""
        day = [getattr(MetricItem, name).add(value) for name, value in self.counters.items()]
        members = int(self.counters.get("joined", 0)) - int(self.counters.get("left", 0))
        total: list[Action] = []
        if members:
            total.append(MetricItem.members.add(members))  # type: ignore[attr-defined]
        if self.counters.get("net"):
            total.append(MetricItem.net.add(int(self.counters["net"])))  # type: ignore[attr-defined]
        out = {self.day.isoformat(): day} if day else {}
        if total:
            out["ALL"] = total
        return out


class StockItem(Model):
    """Redemptions of one reward so far."""

    class Meta:
        table_name = "LedgerTable"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default="STOCK")
    redeemed = NumberAttribute(default=0)


class TouchItem(Model):
    """A member moved points on a UTC day (one item per member and day)."""

    class Meta:
        table_name = "LedgerTable"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    member_id = UnicodeAttribute()


class ReconItem(Model):
    """How far a member's chain is verified: up to account version ``seq``."""

    class Meta:
        table_name = "LedgerTable"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default="RECON")
    member_id = UnicodeAttribute()
    seq = NumberAttribute()
    balance = NumberAttribute()
    at_utc = UnicodeAttribute(null=True)  # latest at_utc among the verified entries
    verified_at = UnicodeAttribute()


class CheckpointItem(Model):
    """A community's reconciliation watermark and verified running total."""

    class Meta:
        table_name = "LedgerTable"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default="CHECKPOINT")
    total = NumberAttribute(default=0)  # the sum of the community's RECON balances
    through_day = UnicodeAttribute(null=True)  # UTC day: touch partitions done up to it
    cursor = JSONAttribute(null=True)  # where an interrupted nightly run stopped
    suspects = JSONAttribute(null=True)  # members with open mismatches, re-checked nightly
    updated_at = UnicodeAttribute(null=True)


class JobItem(Model):
    """A worker job: its status, resumable cursor and outcome."""

    class Meta:
        table_name = "LedgerTable"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default="JOB")
    kind = UnicodeAttribute()
    community_id = UnicodeAttribute()
    status = UnicodeAttribute()  # running | done | failed
    cursor = JSONAttribute(null=True)
    state = JSONAttribute(null=True)  # partial results carried across continuations
    outcome = JSONAttribute(null=True)
    runs = NumberAttribute(default=0)
    lease_ms = NumberAttribute(null=True)  # a worker holds the job until then
    updated_at = UnicodeAttribute(null=True)


def recon_pk(community_id: str) -> str:
    """Partition of a community's reconciliation checkpoint."""
    return f"RECON#{community_id}"


ALL_MODELS: tuple[type[Model], ...] = (
    AccountItem,
    RefItem,
    EntryItem,
    TierItem,
    AggItem,
    StockItem,
    MetricItem,
    TouchItem,
    ReconItem,
    CheckpointItem,
    JobItem,
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
    # Reminder kinds (``autopilot.reminders.rules.ReminderKind`` values) the member
    # opted out of; ``reminders_opt_out`` opts out of every kind.
    reminder_opt_outs: tuple[str, ...] = ()
    # The metrics day (community's check-in day) of the member's last check-in.
    last_metric_day: date | None = None

    @property
    def active(self) -> bool:
        """Not left (an account not yet stored is active: first check-ins register)."""
        return self.left_at is None


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
        reminder_opt_outs=tuple(item.reminder_opt_outs or ()),
        last_metric_day=date.fromisoformat(item.last_metric_day) if item.last_metric_day else None,
    )


def _account_item(account: Account, state: AccountState, now: datetime) -> AccountItem:
    index = last_day_index_keys(account, state)
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
        gsi1pk=members_pk(account.community_id, shard_of(account.member_id, ENTRY_SHARDS)),
        gsi1sk=account.member_id,
        reminder_opt_outs=sorted(account.reminder_opt_outs) or None,
        last_metric_day=account.last_metric_day.isoformat() if account.last_metric_day else None,
        gsi2pk=index["gsi2pk"],
        gsi2sk=index["gsi2sk"],
    )


#: Shards of the last-check-in-day index (``gsi2``): members spread over this many
#: partitions per community, so a busy morning's index writes share the load.
LAST_DAY_SHARDS = 4


def last_day_index_keys(account: Account, state: AccountState) -> dict[str, str | None]:
    """``gsi2pk``/``gsi2sk`` of the reminders' sparse index of members by last
    check-in day (``autopilot.reminders.rules``): ``LD#<community>#<shard>`` /
    ``<last day>#<member>``; both ``None`` (not indexed) for a member who left
    or never checked in."""
    from autopilot.reminders.rules import index_partition, index_sort_key
    from autopilot.reminders.rules import shard_of as index_shard

    if account.left_at is not None or state.last_day is None:
        return {"gsi2pk": None, "gsi2sk": None}
    shard = index_shard(account.member_id, LAST_DAY_SHARDS)
    return {
        "gsi2pk": "LD#" + index_partition(account.community_id, shard),
        "gsi2sk": index_sort_key(state.last_day, account.member_id),
    }


def entry_from_item(item: EntryItem) -> Entry:
    """Convert a stored entry."""
    return Entry(
        item.entry_id,
        item.community_id,
        item.member_id,
        int(item.amount),
        Reason(item.reason),
        item.ref,
        int(item.balance_after),
        parse_iso(item.at_utc),
        item.actor,
        item.note,
        None if item.seq is None else int(item.seq),
    )


@dataclass(frozen=True)
class ExtraItem:
    """One more item written in a movement's transaction: another capability's row
    that must commit with the points or not at all (a lottery entry with its cost).

    ``actions`` given: an update of ``model``'s key with them; otherwise a put of
    ``model``. ``condition`` guards it; when it fails the whole movement is cancelled
    and :class:`ExtraConditionFailed` names ``label``.
    """

    label: str
    model: Model
    condition: Condition | None = None
    actions: Sequence[Action] | None = None


class ExtraConditionFailed(Exception):
    """The condition of an extra item (``label``) failed: nothing was written."""

    def __init__(self, label: str):
        super().__init__(f"condition of {label!r} failed")
        self.label = label


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
    # Written in the same transaction, after the ledger's own items (see ExtraItem).
    extra_items: Sequence[ExtraItem] = ()
    # The metric counters this movement adds (docs/metrics.md).
    metrics: MetricsDelta | None = None


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

    # -- reconciliation (ledger/reconcile.py) ------------------------------------
    def touched(self, community_id: str, day: date, shard: int) -> Iterator[str]:
        """Members who moved points on UTC ``day`` in ``shard`` (a consistent Query)."""
        for item in TouchItem.query(touch_pk(community_id, day, shard), consistent_read=True):
            yield item.member_id

    def member_page(
        self, community_id: str, shard: int, after: str | None, limit: int
    ) -> list[str]:
        """Up to ``limit`` member ids of one shard of the member index, after ``after``."""
        condition = AccountItem.gsi1sk > after if after else None
        items = AccountItem.by_member.query(members_pk(community_id, shard), condition, limit=limit)
        return [item.member_id for item in items]

    def accounts_and_recons(
        self, community_id: str, members: Sequence[str]
    ) -> dict[str, tuple[Account | None, ReconItem | None]]:
        """Each member's account and ``RECON`` item: one BatchGetItem per 50 members."""
        found: dict[str, tuple[Account | None, ReconItem | None]] = {
            m: (None, None) for m in members
        }
        connection = AccountItem._get_connection()
        for start in range(0, len(members), 50):
            keys: list[Any] = [
                {"pk": {"S": member_pk(community_id, m)}, "sk": {"S": sk}}
                for m in members[start : start + 50]
                for sk in ("ACCOUNT", "RECON")
            ]
            while keys:
                response = connection.batch_get_item(keys, consistent_read=True)
                for raw in response.get("Responses", {}).get(self.table_name, []):
                    member = raw["pk"]["S"].split("#", 2)[2]
                    account, recon = found[member]
                    if raw["sk"]["S"] == "ACCOUNT":
                        account = account_from_item(AccountItem.from_raw_data(raw))
                    else:
                        recon = ReconItem.from_raw_data(raw)
                    found[member] = (account, recon)
                keys = response.get("UnprocessedKeys", {}).get(self.table_name, {}).get("Keys", [])
        return found

    def members_by_last_day(
        self,
        community_id: str,
        shard: int,
        first: str,
        last: str,
        min_streak: int | None = None,
    ) -> Iterator[AccountItem]:
        """Members of one shard of the last-day index whose sort key is in
        ``[first, last]`` (``<day>#<member>`` strings), with ``streak >= min_streak``
        when given: Query pages of ``gsi2``, never a Scan."""
        from autopilot.reminders.rules import index_partition

        return AccountItem.by_last_day.query(
            "LD#" + index_partition(community_id, shard),
            AccountItem.gsi2sk.between(first, last),
            filter_condition=(AccountItem.streak >= min_streak) if min_streak else None,
        )

    def accounts_of(self, community_id: str, member_ids: Sequence[str]) -> dict[str, Account]:
        """The stored accounts of ``member_ids`` (BatchGetItem, 100 keys per request)."""
        keys = [(member_pk(community_id, m), "ACCOUNT") for m in dict.fromkeys(member_ids)]
        return {item.member_id: account_from_item(item) for item in AccountItem.batch_get(keys)}

    def checkpoint(self, community_id: str) -> CheckpointItem | None:
        """The community's reconciliation checkpoint (GetItem), if any."""
        try:
            return CheckpointItem.get(recon_pk(community_id), "CHECKPOINT", consistent_read=True)
        except CheckpointItem.DoesNotExist:
            return None

    def save_verified(
        self,
        community_id: str,
        verified: Sequence[tuple[ReconItem | None, ReconItem]],
        now: datetime,
    ) -> bool:
        """Advance ``RECON`` items and add their balance changes to the verified total.

        One transaction: each ``(old, new)`` is written only if the stored item is
        still ``old`` (by ``seq``), so a duplicate or concurrent run cannot add a
        change twice; returns False (nothing written) when another run got there
        first. At most 99 members per call.
        """
        delta = 0
        try:
            with transaction(ReconItem) as tx:
                for old, new in verified:
                    condition = (
                        ReconItem.pk.does_not_exist() if old is None else ReconItem.seq == old.seq
                    )
                    tx.save(new, condition=condition)
                    delta += int(new.balance) - (int(old.balance) if old is not None else 0)
                tx.update(
                    CheckpointItem(recon_pk(community_id), "CHECKPOINT"),
                    actions=[
                        CheckpointItem.total.add(delta),
                        CheckpointItem.updated_at.set(iso_utc(now)),
                    ],
                )
        except TransactWriteError as exc:
            reasons = exc.cancellation_reasons or []
            if any(r is not None and r.code == "ConditionalCheckFailed" for r in reasons):
                return False
            raise
        return True

    def save_checkpoint(
        self,
        community_id: str,
        *,
        through_day: date | None,
        cursor: dict[str, Any] | None,
        suspects: list[str],
        now: datetime,
    ) -> None:
        """Move the watermark (never back), the nightly cursor and the open suspects."""
        actions: list[Action] = [
            CheckpointItem.cursor.set(cursor) if cursor else CheckpointItem.cursor.remove(),
            CheckpointItem.suspects.set(suspects) if suspects else CheckpointItem.suspects.remove(),
            CheckpointItem.updated_at.set(iso_utc(now)),
            CheckpointItem.total.set(CheckpointItem.total | 0),
        ]
        condition = None
        if through_day is not None:
            actions.append(CheckpointItem.through_day.set(through_day.isoformat()))
            condition = CheckpointItem.through_day.does_not_exist() | (
                CheckpointItem.through_day <= through_day.isoformat()
            )
        try:
            CheckpointItem(recon_pk(community_id), "CHECKPOINT").update(
                actions=actions, condition=condition
            )
        except UpdateError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise
            # A later run already moved the watermark further: keep it.

    # -- worker jobs -------------------------------------------------------------
    def job(self, job_id: str) -> JobItem | None:
        """A worker job's record (GetItem), if any."""
        try:
            return JobItem.get(f"WORK#{job_id}", "JOB", consistent_read=True)
        except JobItem.DoesNotExist:
            return None

    def claim_job(
        self, job_id: str, kind: str, community_id: str, now: datetime, lease: timedelta
    ) -> JobItem | None:
        """Claim a job for one worker (conditional UpdateItem), or None.

        None when it is ``done``/``failed`` or another worker's lease is live: a
        duplicated message never runs a job twice, nor twice at the same time.
        """
        now_ms = int(now.timestamp() * 1000)
        item = JobItem(f"WORK#{job_id}", "JOB")
        try:
            item.update(
                actions=[
                    JobItem.kind.set(kind),
                    JobItem.community_id.set(community_id),
                    JobItem.status.set("running"),
                    JobItem.lease_ms.set(now_ms + int(lease.total_seconds() * 1000)),
                    JobItem.runs.set((JobItem.runs | 0) + 1),
                    JobItem.updated_at.set(iso_utc(now)),
                ],
                condition=JobItem.pk.does_not_exist()
                | (
                    (JobItem.status == "running")
                    & (JobItem.lease_ms.does_not_exist() | (JobItem.lease_ms < now_ms))
                ),
            )
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return None
            raise
        return item

    def release_job(self, item: JobItem, now: datetime) -> None:
        """Save a running job's cursor and give up its lease (a continuation follows)."""
        JobItem(item.pk, "JOB").update(
            actions=[
                JobItem.cursor.set(item.cursor) if item.cursor else JobItem.cursor.remove(),
                JobItem.lease_ms.remove(),
                JobItem.updated_at.set(iso_utc(now)),
            ],
            condition=JobItem.status == "running",
        )

    def finish_job(self, item: JobItem, now: datetime) -> None:
        """Record a job's final status and outcome."""
        JobItem(item.pk, "JOB").update(
            actions=[
                JobItem.status.set(item.status),
                JobItem.outcome.set(item.outcome),
                JobItem.cursor.remove(),
                JobItem.lease_ms.remove(),
                JobItem.updated_at.set(iso_utc(now)),
            ]
        )

    # -- writes ---------------------------------------------------------------
    def put_account(
        self,
        account: Account,
        now: datetime,
        *,
        create: bool,
        metrics: MetricsDelta | None = None,
    ) -> Account:
        """Create or update a profile (no points move here).

        ``metrics``: a registration or a leave, counted in the same transaction.
        """
        state = account.state
        new_state = AccountState(**{**state.__dict__, "version": state.version + 1})
        item = _account_item(account, new_state, now)
        condition = (
            AccountItem.pk.does_not_exist() if create else AccountItem.version == state.version
        )
        try:
            if metrics is None:
                item.save(condition=condition)
            else:
                shard = shard_of(account.member_id, AGG_SHARDS)
                with transaction(AccountItem) as tx:
                    tx.save(item, condition=condition)
                    for period, actions in metrics.updates().items():
                        tx.update(
                            MetricItem(metric_pk(account.community_id, period, shard)),
                            actions=actions,
                        )
        except (PutError, TransactWriteError) as exc:
            code = exc.cause_response_code
            reasons = getattr(exc, "cancellation_reasons", None) or []
            failed = code == "ConditionalCheckFailedException" or any(
                r is not None and r.code == "ConditionalCheckFailed" for r in reasons
            )
            if failed:
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
        # Labels of the request's items in the order DynamoDB sees them (PynamoDB
        # sends puts before updates): a cancellation reason is explained by its label.
        puts: list[str] = ["marker", "account"]
        updates: list[str] = []
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
                    updates.append("aggregate")
                if movement.metrics is not None:
                    for period, actions in movement.metrics.updates().items():
                        tx.update(
                            MetricItem(metric_pk(account.community_id, period, agg_shard)),
                            actions=actions,
                        )
                        updates.append("metrics")
                if movement.stock is not None:
                    reward_id, limit = movement.stock
                    tx.update(
                        StockItem(f"REWARD#{account.community_id}#{reward_id}", "STOCK"),
                        actions=[StockItem.redeemed.add(1)],
                        condition=StockItem.redeemed.does_not_exist()
                        | (StockItem.redeemed < limit),
                    )
                    updates.append("stock")
                if movement.entries:
                    # Unconditioned, so it never explains a cancellation. The UTC
                    # day of ``now`` (taken before the commit; see reconcile.COMMIT_LAG).
                    tx.save(
                        TouchItem(
                            touch_pk(account.community_id, now.astimezone(UTC).date(), entry_shard),
                            f"M#{account.member_id}",
                            member_id=account.member_id,
                        )
                    )
                    puts.append("touch")
                for extra in movement.extra_items:
                    if extra.actions is not None:
                        tx.update(
                            extra.model, actions=list(extra.actions), condition=extra.condition
                        )
                        updates.append(f"extra:{extra.label}")
                    else:
                        tx.save(extra.model, condition=extra.condition)
                        puts.append(f"extra:{extra.label}")
        except TransactWriteError as exc:
            self._explain(exc, puts + updates, movement)
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
    def _explain(exc: TransactWriteError, labels: list[str], movement: Movement) -> None:
        """Raise the error a cancelled movement means: the first answer (``Duplicate``),
        a changed account, no stock, or a failed extra item; in that order of priority."""
        reasons = exc.cancellation_reasons or []
        failed = {
            label: reason
            for label, reason in zip(labels, reasons, strict=False)
            if reason is not None and reason.code == "ConditionalCheckFailed"
        }
        if "marker" in failed:
            raw = failed["marker"].raw_item or {}
            result = json.loads(raw["result"]["S"]) if "result" in raw else {}
            raise Duplicate(result) from exc
        if "account" in failed:
            stored = failed["account"].raw_item
            current = account_from_item(AccountItem.from_raw_data(stored)) if stored else None
            raise StaleAccount(current) from exc
        if "stock" in failed and movement.stock:
            raise OutOfStock(movement.stock[0]) from exc
        for label in failed:
            if label.startswith("extra:"):
                raise ExtraConditionFailed(label.removeprefix("extra:")) from exc
