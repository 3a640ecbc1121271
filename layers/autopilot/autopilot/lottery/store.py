"""The lottery tables (PynamoDB): draws, entrants, payouts, coupon pools, seeds.

``LotteryTable`` (``pk``/``sk`` strings):

* ``pk = LOT#<community>#<draw id>``
  * ``sk = META`` — the draw's state (``open|closing|closed|drawn|paid|cancelled``),
    its lottery, commitment, window and draw instants, the prize plan snapshot and
    its fingerprint, the weighting, the entrant count and list hash, the external
    value, where the record is (and its SHA-256), the number of entries so far and
    an optimistic ``version``. Every state change is a conditional update.
  * ``sk = E#<member id>`` — one entry: tickets, cost paid, weight (absent while
    the entry is pending or when it was excluded at the close), the eligibility
    verdict (``Eligibility.to_json``). A Query of ``begins_with(sk, "E#")`` returns
    entries in member-id byte order: the canonical entrant-list order.
  * ``sk = F#<chunk:06d>`` — the frozen entrant list, written by the close: at most
    ``FROZEN_CHUNK_BYTES`` of its canonical serialisation per item; the draw and
    rerolls read these (Query pages of ``FROZEN_CHUNKS_PAGE``), never the rows.
  * ``sk = PAY#<slot:05d>`` — the prize of one slot: its current holder, rank,
    tier, ref, status (``pending|awaiting_claim|paid|short``), claim deadline and
    coupon code.
  * ``sk = PAYR#<rank:05d>`` — a holder a reroll replaced (``rerolled``), kept with
    any code recorded for them (a code shown once is never given again).
  * ``sk = W#<member id>`` — the slot a member holds (claims find it by GetItem).
* ``pk = LOTS#<community>#<lottery id>``, ``sk = C#<opens UTC>`` — one item per
  opened draw: the lottery's draws in time order (the current draw is the newest).
* ``pk = POOL#<community>#<pool>``, ``sk = CODE#<seq:08d>`` — a coupon code in
  upload order, ``given_to`` the payout ref it was given to (written once, with
  ``attribute_not_exists(given_to)``). Uploaded by ``autopilot lottery codes``.
* ``pk = WIN#<community>#<member>``, ``sk = LAST`` — the member's latest win
  (``not_won_within_days``).

``LotterySeedTable`` (``pk`` string): ``<community>#<draw id>`` → the secret seed
(hex), written once at the opening with ``attribute_not_exists(pk)``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pynamodb.attributes import (
    BinaryAttribute,
    BooleanAttribute,
    NumberAttribute,
    UnicodeAttribute,
)
from pynamodb.exceptions import PutError, TransactWriteError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.models import Model

from autopilot.dynamo import bind_table, transaction
from autopilot.ledger.store import StockItem
from autopilot.lottery.draw import parse_entrants
from autopilot.timeutil import iso_utc

# The frozen entrant list is stored in chunks of at most this many bytes of its
# canonical serialisation (well under DynamoDB's 400 KB item limit): a draw reads a
# million entrants in ~25 Query pages of three chunks, and botocore decodes one
# binary value per chunk instead of walking a structure per entrant (~80 us each).
FROZEN_CHUNK_BYTES = 300_000
FROZEN_CHUNKS_PAGE = 3
# Entrants per Query page: DynamoDB also stops a page at 1 MB, whichever comes first.
# The iterator holds one page at a time, so a draw's memory is bounded by this (and by
# the winners), never by the number of entrants.
ENTRANTS_PAGE = 5000


def draw_pk(community_id: str, draw_id: str) -> str:
    """Partition of one draw: its state, entries and payouts."""
    return f"LOT#{community_id}#{draw_id}"


def cycles_pk(community_id: str, lottery_id: str) -> str:
    """Partition listing a lottery's opened draws in time order."""
    return f"LOTS#{community_id}#{lottery_id}"


def pool_pk(community_id: str, pool_id: str) -> str:
    """Partition of a coupon pool's codes (in upload order)."""
    return f"POOL#{community_id}#{pool_id}"


def code_sk(seq: int) -> str:
    """Sort key of the ``seq``-th code of a pool (upload order)."""
    return f"CODE#{seq:08d}"


def win_pk(community_id: str, member_id: str) -> str:
    """Item of a member's latest lottery win in a community."""
    return f"WIN#{community_id}#{member_id}"


def pay_sk(slot: int) -> str:
    """Sort key of a prize slot."""
    return f"PAY#{slot:05d}"


class MetaItem(Model):
    """A draw's state."""

    class Meta:
        table_name = "LotteryTable"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default="META")
    community_id = UnicodeAttribute()
    lottery_id = UnicodeAttribute()
    draw_id = UnicodeAttribute()
    state = UnicodeAttribute()
    commitment = UnicodeAttribute()
    opens_utc = UnicodeAttribute()
    closes_utc = UnicodeAttribute()
    draws_utc = UnicodeAttribute()
    entry_mode = UnicodeAttribute()
    cost_points = NumberAttribute(default=0)
    max_tickets = NumberAttribute(default=1)
    plan = UnicodeAttribute()  # JSON of PrizePlan.to_dict
    plan_fingerprint = UnicodeAttribute()
    weighting = UnicodeAttribute()  # JSON {"mode", "cap"}
    claim_window_s = NumberAttribute(null=True)
    entries = NumberAttribute(default=0)  # entries made so far (enter mode)
    entrants_count = NumberAttribute(null=True)
    entrants_hash = UnicodeAttribute(null=True)
    entrants_key = UnicodeAttribute(null=True)
    external_value = UnicodeAttribute(default="")
    record_key = UnicodeAttribute(null=True)
    record_sha256 = UnicodeAttribute(null=True)
    winners_count = NumberAttribute(null=True)
    cancel_reason = UnicodeAttribute(null=True)
    version = NumberAttribute(default=0)
    updated_at = UnicodeAttribute(null=True)


class EntryRow(Model):
    """One member's entry in a draw."""

    class Meta:
        table_name = "LotteryTable"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    member_id = UnicodeAttribute()
    tickets = NumberAttribute(default=1)
    cost_paid = NumberAttribute(default=0)
    weight = NumberAttribute(null=True)  # set when eligible at the close
    excluded = BooleanAttribute(default=False)
    eligibility = UnicodeAttribute(null=True)  # Eligibility.to_json_text()
    entered_at = UnicodeAttribute()
    request_id = UnicodeAttribute(null=True)


class PayItem(Model):
    """One prize slot (``PAY#``) or a replaced holder (``PAYR#``)."""

    class Meta:
        table_name = "LotteryTable"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    slot = NumberAttribute()
    member_id = UnicodeAttribute()
    rank = NumberAttribute()
    tier_id = UnicodeAttribute()
    title = UnicodeAttribute()
    kind = UnicodeAttribute()
    ref = UnicodeAttribute()
    status = UnicodeAttribute()
    claim_by = UnicodeAttribute(null=True)
    code = UnicodeAttribute(null=True)
    paid_at = UnicodeAttribute(null=True)
    notified = BooleanAttribute(default=False)
    note = UnicodeAttribute(null=True)


class HolderItem(Model):
    """The slot a member holds in a draw (``W#<member>``)."""

    class Meta:
        table_name = "LotteryTable"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    slot = NumberAttribute()


class CycleItem(Model):
    """An opened draw of a lottery (``LOTS#``/``C#<opens UTC>``)."""

    class Meta:
        table_name = "LotteryTable"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    draw_id = UnicodeAttribute()


class PointerItem(Model):
    """A lottery's current and previous draw (``LOTS#``/``CURRENT``): members' requests
    find their draw with one GetItem (the chat function may not Query this table)."""

    class Meta:
        table_name = "LotteryTable"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default="CURRENT")
    draw_id = UnicodeAttribute()
    opens_utc = UnicodeAttribute()
    previous_draw_id = UnicodeAttribute(default="")


class CodeItem(Model):
    """A coupon code of a pool."""

    class Meta:
        table_name = "LotteryTable"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    code = UnicodeAttribute()
    given_to = UnicodeAttribute(null=True)
    given_at = UnicodeAttribute(null=True)


class WinItem(Model):
    """A member's latest lottery win in a community."""

    class Meta:
        table_name = "LotteryTable"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default="LAST")
    won_at = UnicodeAttribute()
    draw_id = UnicodeAttribute()


class FrozenChunk(Model):
    """A piece of a closed draw's frozen entrant list, in its canonical serialisation."""

    class Meta:
        table_name = "LotteryTable"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)  # F#<chunk:06d>
    data = BinaryAttribute(legacy_encoding=False)  # "member_id\tweight\n" lines
    entrants = NumberAttribute()


class SeedItem(Model):
    """A draw's secret seed (LotterySeedTable)."""

    class Meta:
        table_name = "LotterySeedTable"

    pk = UnicodeAttribute(hash_key=True)
    seed = UnicodeAttribute()


LOTTERY_MODELS: tuple[type[Model], ...] = (
    MetaItem,
    EntryRow,
    PayItem,
    HolderItem,
    CycleItem,
    PointerItem,
    CodeItem,
    WinItem,
    FrozenChunk,
)


class StateChanged(Exception):
    """A conditional state change found the draw in another state (someone else moved it)."""


@dataclass(frozen=True)
class Entrant:
    """An entry as the close and the draw read it."""

    member_id: str
    tickets: int
    cost_paid: int
    weight: int | None
    excluded: bool
    eligibility: dict[str, Any] | None
    entered_at: str


def _entrant(item: EntryRow) -> Entrant:
    return Entrant(
        item.member_id,
        int(item.tickets or 1),
        int(item.cost_paid or 0),
        None if item.weight is None else int(item.weight),
        bool(item.excluded),
        json.loads(item.eligibility) if item.eligibility else None,
        item.entered_at,
    )


class LotteryStore:
    """DynamoDB access for lotteries (the seed table only where it is configured)."""

    def __init__(self, table_name: str, region: str, seed_table: str = ""):
        self.table_name = table_name
        if table_name:
            bind_table(table_name, *LOTTERY_MODELS, region=region)
        if seed_table:
            bind_table(seed_table, SeedItem, region=region)
        self.has_seeds = bool(seed_table)

    # -- draws -----------------------------------------------------------------
    def meta(self, community_id: str, draw_id: str) -> MetaItem | None:
        """A draw's state (consistent GetItem), or None."""
        try:
            return MetaItem.get(draw_pk(community_id, draw_id), "META", consistent_read=True)
        except MetaItem.DoesNotExist:
            return None

    def create_draw(self, meta: MetaItem, opens_utc: datetime) -> bool:
        """Create a draw (``open``) and list it under its lottery; False if it exists."""
        try:
            with transaction(MetaItem) as tx:
                tx.save(meta, condition=MetaItem.pk.does_not_exist())
                tx.save(
                    CycleItem(
                        cycles_pk(meta.community_id, meta.lottery_id),
                        f"C#{iso_utc(opens_utc)}",
                        draw_id=meta.draw_id,
                    )
                )
        except TransactWriteError as exc:
            reasons = exc.cancellation_reasons or []
            if reasons and reasons[0] is not None and reasons[0].code == "ConditionalCheckFailed":
                return False
            raise
        return True

    def advance_current(
        self, community_id: str, lottery_id: str, draw_id: str, opens_utc: datetime
    ) -> None:
        """Point the lottery's ``CURRENT`` at a newer draw (never back; the one it
        replaces becomes ``previous_draw_id``). Idempotent."""
        opens = iso_utc(opens_utc)
        try:
            PointerItem(cycles_pk(community_id, lottery_id), "CURRENT").update(
                actions=[
                    PointerItem.previous_draw_id.set(PointerItem.draw_id | ""),
                    PointerItem.draw_id.set(draw_id),
                    PointerItem.opens_utc.set(opens),
                ],
                condition=PointerItem.opens_utc.does_not_exist() | (PointerItem.opens_utc < opens),
            )
        except UpdateError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise

    def current(self, community_id: str, lottery_id: str) -> list[str]:
        """The lottery's current draw id and the one before it (GetItem; [] before the
        first opening)."""
        try:
            item = PointerItem.get(
                cycles_pk(community_id, lottery_id), "CURRENT", consistent_read=True
            )
        except PointerItem.DoesNotExist:
            return []
        return [d for d in (item.draw_id, item.previous_draw_id) if d]

    def draws_of(
        self,
        community_id: str,
        lottery_id: str,
        *,
        until_utc: datetime | None = None,
        limit: int = 5,
    ) -> list[str]:
        """The lottery's draw ids opened at or before ``until_utc``, newest first."""
        condition = CycleItem.sk <= f"C#{iso_utc(until_utc)}" if until_utc else None
        items = CycleItem.query(
            cycles_pk(community_id, lottery_id),
            condition,
            scan_index_forward=False,
            limit=limit,
            consistent_read=True,
        )
        return [item.draw_id for item in items]

    def transition(
        self,
        community_id: str,
        draw_id: str,
        from_states: Sequence[str],
        to_state: str,
        now: datetime,
        actions: Sequence[Action] = (),
        condition: Condition | None = None,
    ) -> None:
        """Move a draw's state (conditional on it being in ``from_states``);
        ``StateChanged`` if it is not."""
        guard = MetaItem.state.is_in(*from_states)
        if condition is not None:
            guard &= condition
        try:
            MetaItem(draw_pk(community_id, draw_id), "META").update(
                actions=[
                    MetaItem.state.set(to_state),
                    MetaItem.version.add(1),
                    MetaItem.updated_at.set(iso_utc(now)),
                    *actions,
                ],
                condition=guard,
            )
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                raise StateChanged(f"draw {draw_id} is not {'/'.join(from_states)}") from exc
            raise

    def update_meta(
        self, community_id: str, draw_id: str, actions: Sequence[Action], condition: Condition
    ) -> bool:
        """A conditional change of a draw's fields; False if the condition failed."""
        try:
            MetaItem(draw_pk(community_id, draw_id), "META").update(
                actions=[*actions, MetaItem.version.add(1)], condition=condition
            )
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    # -- seeds -------------------------------------------------------------------
    def put_seed(self, community_id: str, draw_id: str, seed_hex: str) -> str:
        """Store the draw's seed once; returns the stored one (a rerun keeps the first)."""
        pk = f"{community_id}#{draw_id}"
        try:
            SeedItem(pk, seed=seed_hex).save(condition=SeedItem.pk.does_not_exist())
            return seed_hex
        except PutError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise
        stored = self.seed(community_id, draw_id)
        assert stored is not None
        return stored

    def seed(self, community_id: str, draw_id: str) -> str | None:
        """The draw's seed (hex), or None."""
        try:
            return SeedItem.get(f"{community_id}#{draw_id}", consistent_read=True).seed
        except SeedItem.DoesNotExist:
            return None

    # -- entries -----------------------------------------------------------------
    def entry_and_meta(
        self, community_id: str, draw_id: str, member_id: str
    ) -> tuple[MetaItem | None, EntryRow | None, HolderItem | None]:
        """The draw's state, the member's entry and held slot: one BatchGetItem."""
        pk = draw_pk(community_id, draw_id)
        keys: list[Any] = [
            {"pk": {"S": pk}, "sk": {"S": "META"}},
            {"pk": {"S": pk}, "sk": {"S": f"E#{member_id}"}},
            {"pk": {"S": pk}, "sk": {"S": f"W#{member_id}"}},
        ]
        meta = entry = holder = None
        pending = keys
        connection = MetaItem._get_connection()
        while pending:
            response = connection.batch_get_item(pending, consistent_read=True)
            for raw in response.get("Responses", {}).get(self.table_name, []):
                sk = raw["sk"]["S"]
                if sk == "META":
                    meta = MetaItem.from_raw_data(raw)
                elif sk.startswith("E#"):
                    entry = EntryRow.from_raw_data(raw)
                else:
                    holder = HolderItem.from_raw_data(raw)
            pending = response.get("UnprocessedKeys", {}).get(self.table_name, {}).get("Keys", [])
        return meta, entry, holder

    def entry_row(self, community_id: str, draw_id: str, member: str, **fields: Any) -> EntryRow:
        """An entry row (not yet written)."""
        return EntryRow(draw_pk(community_id, draw_id), f"E#{member}", member_id=member, **fields)

    def entries(
        self, community_id: str, draw_id: str, after: str | None = None
    ) -> Iterator[Entrant]:
        """Every entry of a draw in member-id byte order, by Query pages (never a Scan)."""
        condition = (
            EntryRow.sk.between(f"E#{after}", "E$") if after else EntryRow.sk.startswith("E#")
        )
        for item in EntryRow.query(
            draw_pk(community_id, draw_id), condition, consistent_read=True, page_size=ENTRANTS_PAGE
        ):
            if after is not None and item.member_id == after:
                continue
            yield _entrant(item)

    def entered(self, community_id: str, draw_id: str, member_ids: Sequence[str]) -> set[str]:
        """Which of ``member_ids`` have an entry in the draw (BatchGetItem, 100 keys each)."""
        keys = [(draw_pk(community_id, draw_id), f"E#{m}") for m in dict.fromkeys(member_ids)]
        return {
            item.member_id for item in EntryRow.batch_get(keys, attributes_to_get=["member_id"])
        }

    def weighted_entrants(self, community_id: str, draw_id: str) -> Iterator[tuple[str, int]]:
        """The canonical entrant list: ``(member_id, weight)`` of each eligible entry in
        member-id byte order, streamed from Query pages reading only those attributes
        (the draw's memory stays O(winners); verdicts are never parsed here)."""
        # The raw pages, not models: building a PynamoDB model per row cost ~75 us, most
        # of a million-entrant draw's CPU (docs/benchmarks.md, "Lottery").
        connection = EntryRow._get_connection()
        start: dict[str, Any] | None = None
        while True:
            page = connection.query(
                draw_pk(community_id, draw_id),
                EntryRow.sk.startswith("E#"),
                attributes_to_get=["member_id", "weight", "excluded"],
                consistent_read=True,
                exclusive_start_key=start,
                limit=ENTRANTS_PAGE,
            )
            for raw in page.get("Items", ()):
                weight = raw.get("weight")
                if weight is not None and not raw.get("excluded", {}).get("BOOL", False):
                    yield raw["member_id"]["S"], int(weight["N"])
            start = page.get("LastEvaluatedKey")
            if not start:
                return

    def put_frozen_chunk(
        self, community_id: str, draw_id: str, index: int, data: bytes, count: int
    ) -> None:
        """Write chunk ``index`` of the frozen entrant list (the same bytes on a rerun)."""
        FrozenChunk(
            draw_pk(community_id, draw_id), f"F#{index:06d}", data=data, entrants=count
        ).save()

    def frozen_entrants(self, community_id: str, draw_id: str) -> Iterator[tuple[str, int]]:
        """The frozen entrant list, ``(member_id, weight)`` in canonical order, streamed
        from Query pages of chunks (one page in memory at a time)."""
        connection = FrozenChunk._get_connection()
        start: dict[str, Any] | None = None
        while True:
            page = connection.query(
                draw_pk(community_id, draw_id),
                FrozenChunk.sk.startswith("F#"),
                consistent_read=True,
                exclusive_start_key=start,
                # Three chunks fit DynamoDB's 1 MB page; saying so bounds the memory
                # everywhere (moto has no page size limit).
                limit=FROZEN_CHUNKS_PAGE,
            )
            for raw in page.get("Items", ()):
                yield from parse_entrants(raw["data"]["B"].splitlines(keepends=True))
            start = page.get("LastEvaluatedKey")
            if not start:
                return

    def save_entry(self, row: EntryRow, *, create: bool) -> bool:
        """Write an entry row (``create``: only if absent); False if it already exists."""
        try:
            row.save(condition=EntryRow.pk.does_not_exist() if create else None)
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def new_entry(self, meta_key: tuple[str, str], row: EntryRow) -> None:
        """A free entry: the row and the draw's entry count, only while the draw is open
        (one transaction); ``StateChanged`` if closed, ``FileExistsError`` if entered."""
        try:
            with transaction(EntryRow) as tx:
                tx.save(row, condition=EntryRow.pk.does_not_exist())
                tx.update(
                    MetaItem(*meta_key),
                    actions=[MetaItem.entries.add(1)],
                    condition=MetaItem.state == "open",
                )
        except TransactWriteError as exc:
            reasons = exc.cancellation_reasons or []
            if reasons and reasons[0] is not None and reasons[0].code == "ConditionalCheckFailed":
                raise FileExistsError(row.sk) from exc
            if (
                len(reasons) > 1
                and reasons[1] is not None
                and reasons[1].code == "ConditionalCheckFailed"
            ):
                raise StateChanged("the draw is no longer open") from exc
            raise

    def set_verdict(
        self, community_id: str, draw_id: str, member_id: str, weight: int | None, verdict: str
    ) -> None:
        """Record the close's verdict on an entry: its weight, or excluded."""
        actions: list[Action] = [EntryRow.eligibility.set(verdict)]
        if weight is None:
            actions += [EntryRow.weight.remove(), EntryRow.excluded.set(True)]
        else:
            actions += [EntryRow.weight.set(weight), EntryRow.excluded.set(False)]
        EntryRow(draw_pk(community_id, draw_id), f"E#{member_id}").update(actions=actions)

    # -- payouts -------------------------------------------------------------------
    def pay_items(self, community_id: str, draw_id: str, prefix: str = "PAY#") -> list[PayItem]:
        """Every prize slot (or replaced holder with ``PAYR#``), in slot order (Query)."""
        return list(
            PayItem.query(
                draw_pk(community_id, draw_id), PayItem.sk.startswith(prefix), consistent_read=True
            )
        )

    def pay_item(self, community_id: str, draw_id: str, slot: int) -> PayItem | None:
        """One prize slot (GetItem)."""
        try:
            return PayItem.get(draw_pk(community_id, draw_id), pay_sk(slot), consistent_read=True)
        except PayItem.DoesNotExist:
            return None

    def create_slot(self, item: PayItem, holder: HolderItem) -> bool:
        """Create a prize slot and its holder pointer once; False if the slot exists."""
        try:
            with transaction(PayItem) as tx:
                tx.save(item, condition=PayItem.pk.does_not_exist())
                tx.save(holder)
        except TransactWriteError as exc:
            reasons = exc.cancellation_reasons or []
            if reasons and reasons[0] is not None and reasons[0].code == "ConditionalCheckFailed":
                return False
            raise
        return True

    def update_slot(
        self,
        community_id: str,
        draw_id: str,
        slot: int,
        actions: Sequence[Action],
        *,
        ref: str,
        statuses: Sequence[str],
    ) -> bool:
        """Change a slot still held under ``ref`` in one of ``statuses``; False if not."""
        try:
            PayItem(draw_pk(community_id, draw_id), pay_sk(slot)).update(
                actions=list(actions),
                condition=(PayItem.ref == ref) & PayItem.status.is_in(*statuses),
            )
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def reassign_slot(self, old: PayItem, new: PayItem, now: datetime) -> bool:
        """A reroll: keep the replaced holder (``PAYR#<rank>``, status ``rerolled``) and
        give the slot to ``new`` (conditional on the slot still being ``old``'s and
        marked ``rerolling``)."""
        replaced = PayItem(
            old.pk,
            f"PAYR#{int(old.rank):05d}",
            **{
                name: getattr(old, name)
                for name in (
                    "slot",
                    "member_id",
                    "rank",
                    "tier_id",
                    "title",
                    "kind",
                    "ref",
                    "claim_by",
                    "code",
                    "paid_at",
                    "notified",
                )
            },
            status="rerolled",
            note=f"replaced at {iso_utc(now)}",
        )
        try:
            with transaction(PayItem) as tx:
                # Only a slot marked for its reroll changes hands (a claim moved first
                # otherwise, and the prize stays with its claimant).
                tx.save(new, condition=(PayItem.ref == old.ref) & (PayItem.status == "rerolling"))
                tx.save(replaced)
                tx.save(HolderItem(old.pk, f"W#{new.member_id}", slot=int(new.slot)))
        except TransactWriteError as exc:
            reasons = exc.cancellation_reasons or []
            if reasons and reasons[0] is not None and reasons[0].code == "ConditionalCheckFailed":
                return False
            raise
        return True

    def pay_reward(
        self, slot: PayItem, community_id: str, reward_id: str, stock: int | None, now: datetime
    ) -> bool:
        """Pay a reward prize: the slot's status and the reward's stock in one
        transaction (stock never below zero); False if the stock is used up.
        ``StateChanged`` if the slot is no longer payable under its ref."""
        try:
            with transaction(PayItem) as tx:
                tx.update(
                    PayItem(slot.pk, slot.sk),
                    actions=[PayItem.status.set("paid"), PayItem.paid_at.set(iso_utc(now))],
                    condition=(PayItem.ref == slot.ref)
                    & PayItem.status.is_in("pending", "awaiting_claim", "short"),
                )
                condition = None
                if stock is not None:
                    condition = StockItem.redeemed.does_not_exist() | (StockItem.redeemed < stock)
                tx.update(
                    StockItem(f"REWARD#{community_id}#{reward_id}", "STOCK"),
                    actions=[StockItem.redeemed.add(1)],
                    condition=condition,
                )
        except TransactWriteError as exc:
            reasons = exc.cancellation_reasons or []
            if reasons and reasons[0] is not None and reasons[0].code == "ConditionalCheckFailed":
                raise StateChanged(f"slot {slot.sk} is no longer payable") from exc
            if (
                len(reasons) > 1
                and reasons[1] is not None
                and reasons[1].code == "ConditionalCheckFailed"
            ):
                return False
            raise
        return True

    def record_win(self, community_id: str, member_id: str, draw_id: str, won_at: datetime) -> None:
        """Remember the member's latest win (never moved back in time)."""
        at = iso_utc(won_at)
        try:
            WinItem(win_pk(community_id, member_id), "LAST", won_at=at, draw_id=draw_id).save(
                condition=WinItem.pk.does_not_exist() | (WinItem.won_at <= at)
            )
        except PutError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise

    def last_wins(self, community_id: str, members: Sequence[str]) -> dict[str, str]:
        """Members' latest wins (ISO UTC), one BatchGetItem per 100 members."""
        found: dict[str, str] = {}
        for start in range(0, len(members), 100):
            keys = [(win_pk(community_id, m), "LAST") for m in members[start : start + 100]]
            for item in WinItem.batch_get(keys, consistent_read=True):
                found[item.pk.split("#", 2)[2]] = item.won_at
        return found

    # -- coupon codes ------------------------------------------------------------------
    def unused_codes(self, community_id: str, pool_id: str, limit: int) -> list[CodeItem]:
        """Up to ``limit`` codes of a pool not given yet, in upload order (Query pages)."""
        found: list[CodeItem] = []
        if limit <= 0:
            return found
        for item in CodeItem.query(
            pool_pk(community_id, pool_id),
            CodeItem.sk.startswith("CODE#"),
            filter_condition=CodeItem.given_to.does_not_exist(),
            consistent_read=True,
        ):
            found.append(item)
            if len(found) >= limit:
                break
        return found

    def give_code(self, code: CodeItem, slot: PayItem, now: datetime) -> bool:
        """Record ``code`` as given to the slot's ref: the code only if unused, the slot
        only if it has no code yet and is still held under that ref (one transaction).
        False on any conflict (recompute and try again)."""
        try:
            with transaction(CodeItem) as tx:
                tx.update(
                    CodeItem(code.pk, code.sk),
                    actions=[
                        CodeItem.given_to.set(slot.ref),
                        CodeItem.given_at.set(iso_utc(now)),
                    ],
                    condition=CodeItem.given_to.does_not_exist(),
                )
                tx.update(
                    PayItem(slot.pk, slot.sk),
                    actions=[PayItem.code.set(code.code)],
                    condition=(PayItem.ref == slot.ref) & PayItem.code.does_not_exist(),
                )
        except TransactWriteError as exc:
            reasons = exc.cancellation_reasons or []
            if any(r is not None and r.code == "ConditionalCheckFailed" for r in reasons):
                return False
            raise
        return True
