"""Lotteries in the product: the dispatcher's open/close/draw/expire steps, entries,
status, records, claims and ops' changes. The shell around the pure library.

The mathematics live in :mod:`autopilot.lottery.draw`, who may enter and with what
weight in :mod:`~autopilot.lottery.eligibility`, what is paid and under which ref in
:mod:`~autopilot.lottery.prizes`; this module reads and writes
(:mod:`autopilot.lottery.store`, the ledger, S3, channels) and never re-decides
what those functions decide.

**State machine** (``META.state``, every change a conditional update):
``open`` → ``closing`` → ``closed`` → ``drawn`` → ``paid``; ``open``/``closing``/
``closed`` → ``cancelled``. Each dispatcher step looks at the state and does what
is left, so a duplicated, concurrent or crashed occurrence only ever finishes the
same work: the seed is written once, the entrant list is frozen once (entries are
conditional on ``open``), the record is deterministic, each payout is idempotent by
its ref (ledger marker, conditional slot status, conditional coupon code).
``docs/lottery.md`` ("Operations") gives the full argument.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from autopilot.channels import Message
from autopilot.clock import Clock, get_clock
from autopilot.config.model import Community, Lottery
from autopilot.errors import (
    BadRequest,
    LotteryConflict,
    LotteryNotOpen,
    MemberLeft,
    NotAMember,
    NotEligible,
    NothingToClaim,
    UnknownLottery,
)
from autopilot.ledger.rules import Posting
from autopilot.ledger.service import LedgerService
from autopilot.ledger.store import (
    ENTRY_SHARDS,
    Account,
    ExtraConditionFailed,
    ExtraItem,
    LedgerStore,
    RefItem,
    member_pk,
)
from autopilot.lottery import draw as drawlib
from autopilot.lottery.eligibility import (
    Eligibility,
    LotteryWindow,
    MemberFacts,
    count_window_checkins,
    evaluate,
    window_for,
)
from autopilot.lottery.prizes import (
    PRIZE_REASON,
    CouponPrize,
    Payout,
    PointsPrize,
    PrizePlan,
    RewardPrize,
    assign_coupon_codes,
    entry_cost_posting,
    payout_plan,
    refund_postings,
)
from autopilot.lottery.schedule import cycle_opened_at
from autopilot.lottery.store import (
    FROZEN_CHUNK_BYTES,
    EntryRow,
    HolderItem,
    LotteryStore,
    MetaItem,
    PayItem,
    StateChanged,
    draw_pk,
    pay_sk,
)
from autopilot.posts.rules import render
from autopilot.scheduler.service import ActionContext, ActionResult
from autopilot.timeutil import iso_utc, local_wall, parse_iso, zone

logger = logging.getLogger(__name__)

# Rules a member can still come to meet before the close (check-ins, streak, tier):
# failing them at entry is "pending", judged again at the close. The others
# (left, joined after the opening, a recent win) refuse the entry at once.
PENDING_RULES = frozenset({"min_checkins", "min_streak", "min_tier"})
MAX_REQUEST_ID = 128
MAX_CODE_ATTEMPTS = 8
PAYABLE = ("pending", "awaiting_claim", "short")  # slot statuses a payment may move on
RECORD_PREFIX = "lotteries"
_WEEKDAYS_ZH = ("星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日")


SeedSource = Callable[[str, str], bytes]
"""Makes the secret seed of a draw from ``(community id, draw id)``."""


def _fresh_seed(community_id: str, draw_id: str) -> bytes:
    return drawlib.new_seed()  # secrets.token_bytes: unpredictable, never derived


_seed_source: SeedSource = _fresh_seed


def set_seed_source(source: SeedSource | None) -> SeedSource:
    """Replace how draw seeds are made (``None``: fresh ``secrets`` bytes, the default
    and the only choice in production); returns the previous source.

    For simulations and tests only, like ``autopilot.clock.set_clock``: a simulated
    week must be the same for the same simulation seed, commitments included.
    """
    global _seed_source
    previous = _seed_source
    _seed_source = source or _fresh_seed
    return previous


@dataclass(frozen=True)
class EntryResult:
    """The answer to an entry (a repeat: the stored entry with ``repeat`` True)."""

    community: str
    lottery: str
    draw_id: str
    member: str
    tickets: int
    cost_points: int
    entered_at: str
    pending: tuple[str, ...] = ()
    repeat: bool = False
    balance: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON document (key order is part of the API's answer)."""
        return {
            "community": self.community,
            "lottery": self.lottery,
            "draw_id": self.draw_id,
            "member": self.member,
            "tickets": self.tickets,
            "cost_points": self.cost_points,
            "entered_at": self.entered_at,
            "pending": list(self.pending),
            "repeat": self.repeat,
            "balance": self.balance,
        }


@dataclass
class _Outcome:
    """What one step did, for the occurrence's detail."""

    draw_id: str | None = None
    state: str | None = None
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def result(self, posted: ActionResult | None = None) -> ActionResult:
        errors = list(self.errors)
        detail: dict[str, Any] = {"draw_id": self.draw_id, "state": self.state, **self.extra}
        if self.notes:
            detail["notes"] = self.notes
        if posted is not None:
            detail["post"] = dict(posted.detail)
            if not posted.ok and posted.error:
                errors.append(posted.error)
        return ActionResult(ok=not errors, detail=detail, error="; ".join(errors) or None)


def _check_request_id(request_id: Any) -> str:
    if (
        not isinstance(request_id, str)
        or not request_id.strip()
        or len(request_id) > MAX_REQUEST_ID
    ):
        raise BadRequest(
            "request_id (or the Idempotency-Key header) must be a non-empty string of at "
            f"most {MAX_REQUEST_ID} characters"
        )
    if any(ch == "#" or ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in request_id):
        raise BadRequest("request_id must not contain '#' or control characters")
    return request_id.strip()


def _lottery(community: Community, lottery_id: Any) -> Lottery:
    if not isinstance(lottery_id, str):
        raise BadRequest("lottery id must be a string")
    try:
        return community.lottery(lottery_id)
    except KeyError:
        known = ", ".join(lot.id for lot in community.lotteries) or "none"
        raise UnknownLottery(
            f"community {community.id!r} has no lottery {lottery_id!r} (lotteries: {known})"
        ) from None


def _plan(meta: MetaItem) -> PrizePlan:
    return PrizePlan.from_dict(json.loads(meta.plan))


class LotteryService:
    """Runs lotteries: dispatcher steps and member/ops operations."""

    def __init__(
        self,
        store: LotteryStore,
        ledger_store: LedgerStore,
        ledger_service: LedgerService,
        members: Any,
        posts: Any,
        s3: Any,
        bucket: str,
        *,
        clock: Clock | None = None,
    ):
        self._store = store
        self._ledger_store = ledger_store
        self._ledger = ledger_service
        self._members = members
        self._posts = posts
        self._s3 = s3
        self._bucket = bucket
        self._clock = clock

    def _now(self) -> datetime:
        return (self._clock or get_clock()).now()

    # == dispatcher steps ===========================================================
    def open(self, ctx: ActionContext) -> ActionResult:
        """Open the draw of this occurrence: its seed (written once), its state with
        the commitment, then the announcement. Idempotent."""
        community, occ = ctx.community, ctx.occurrence
        lottery = _lottery(community, ctx.job.params.get("lottery"))
        if lottery.plan is None:
            return ActionResult(ok=False, error=f"lottery {lottery.id!r} has no prizes")
        tz = zone(community.timezone)
        try:  # the draw id and instants exactly as the derived jobs fire (lottery.schedule)
            cycle = cycle_opened_at(lottery, tz, occ.scheduled_utc)
        except ValueError as exc:
            return ActionResult(ok=False, error=str(exc))
        out = _Outcome(cycle.draw_id)
        meta = self._store.meta(community.id, cycle.draw_id)
        if meta is None:
            seed = _seed_source(community.id, cycle.draw_id)
            seed_hex = self._store.put_seed(community.id, cycle.draw_id, seed.hex())
            commitment = drawlib.commit(bytes.fromhex(seed_hex))
            plan = lottery.plan
            meta = MetaItem(
                draw_pk(community.id, cycle.draw_id),
                "META",
                community_id=community.id,
                lottery_id=lottery.id,
                draw_id=cycle.draw_id,
                state="open",
                commitment=commitment,
                opens_utc=iso_utc(cycle.opens_utc),
                closes_utc=iso_utc(cycle.closes_utc),
                draws_utc=iso_utc(cycle.draws_utc),
                entry_mode=lottery.entry,
                cost_points=lottery.cost_points,
                max_tickets=lottery.max_tickets,
                plan=json.dumps(plan.to_dict(), ensure_ascii=False, sort_keys=True),
                plan_fingerprint=plan.fingerprint(),
                weighting=json.dumps(
                    {"mode": lottery.weighting.mode.value, "cap": lottery.weighting.cap}
                ),
                claim_window_s=int(lottery.claim_window.total_seconds())
                if lottery.claim_window
                else None,
                entries=0,
                external_value="",
                version=0,
                updated_at=iso_utc(self._now()),
            )
            if not self._store.create_draw(meta, cycle.opens_utc):
                meta = self._store.meta(community.id, cycle.draw_id)
                assert meta is not None
        # Outside the creation: a crash after it still moves the pointer on the rerun.
        self._store.advance_current(community.id, lottery.id, cycle.draw_id, cycle.opens_utc)
        out.state = meta.state
        out.extra["commitment"] = meta.commitment
        posted = self._post(ctx, lottery, meta, "announce")
        return out.result(posted)

    def close(self, ctx: ActionContext) -> ActionResult:
        """Close this occurrence's draw: no entry after this; auto mode enters every
        eligible member; each entry's verdict at the close is recorded; the entrant
        list is hashed by Query pages and uploaded; then the closed post."""
        community = ctx.community
        lottery = _lottery(community, ctx.job.params.get("lottery"))
        meta = self._draw_for(
            community, lottery, ctx.occurrence.scheduled_utc, "closes_utc", ("open", "closing")
        )
        if meta is None:
            return _Outcome(notes=["no open draw to close"]).result()
        meta = self._close(community, lottery, meta)
        out = _Outcome(meta.draw_id, meta.state)
        out.extra.update(entrants=int(meta.entrants_count or 0), entrants_hash=meta.entrants_hash)
        if meta.state == "cancelled":
            return out.result()
        return out.result(self._post(ctx, lottery, meta, "closed"))

    def draw(self, ctx: ActionContext) -> ActionResult:
        """Draw this occurrence's draw (closing it first if the close has not run),
        publish the record, pay or await claims, post the winners and DM them."""
        community = ctx.community
        lottery = _lottery(community, ctx.job.params.get("lottery"))
        meta = self._draw_for(
            community,
            lottery,
            ctx.occurrence.scheduled_utc,
            "draws_utc",
            ("open", "closing", "closed", "drawn"),
        )
        if meta is None:
            return _Outcome(notes=["no draw to run"]).result()
        if meta.state in ("open", "closing"):
            meta = self._close(community, lottery, meta)
        if meta.state == "cancelled":
            return _Outcome(meta.draw_id, "cancelled").result()
        if meta.state == "closed":
            meta = self._make_draw(community, meta)
        out = _Outcome(meta.draw_id)
        record = self._record_of(meta)
        self._sync_slots(community, meta, record, out)
        self._pay_pending(community, meta, out)
        if meta.state == "drawn":
            # A concurrent run may have got there first.
            with contextlib.suppress(StateChanged):
                self._store.transition(community.id, meta.draw_id, ["drawn"], "paid", self._now())
            meta = self._store.meta(community.id, meta.draw_id) or meta
        out.state = meta.state
        out.extra["winners"] = [
            {"slot": int(p.slot), "member": p.member_id, "tier": p.tier_id, "status": p.status}
            for p in self._store.pay_items(community.id, meta.draw_id)
        ]
        posted = self._post(ctx, lottery, meta, "winners")
        self._notify(community, lottery, meta, out)
        return out.result(posted)

    def expire(self, ctx: ActionContext) -> ActionResult:
        """Reroll every prize whose claim window passed (or whose holder was
        disqualified) to the next entrant in key order, then pay or await the claim."""
        community = ctx.community
        lottery = _lottery(community, ctx.job.params.get("lottery"))
        now = ctx.occurrence.scheduled_utc
        out = _Outcome()
        rerolled = 0
        for draw_id in self._store.draws_of(community.id, lottery.id, until_utc=now, limit=3):
            meta = self._store.meta(community.id, draw_id)
            if meta is None or meta.state not in ("drawn", "paid"):
                continue
            rerolled += self._expire_draw(community, lottery, meta, now, out)
        out.extra["rerolled"] = rerolled
        return out.result()

    # == member and ops operations =====================================================
    def enter(
        self,
        community: Community,
        lottery_id: str,
        member_id: str,
        *,
        tickets: Any = 1,
        request_id: Any,
        at_utc: datetime,
    ) -> EntryResult:
        """Enter the member in the lottery's open draw; with a cost, the ledger debit
        and the entry are one transaction. A repeat answers the stored entry.

        Raises ``UnknownLottery`` (404), ``BadRequest`` (400: tickets, request id,
        automatic entry), ``NotAMember`` (404), ``MemberLeft``/``NotEligible`` (403),
        ``LotteryNotOpen`` (409), ``InsufficientPoints`` (409), ``LotteryConflict``
        (409: entered already with other tickets). Nothing is written on an error.
        """
        lottery = _lottery(community, lottery_id)
        request_id = _check_request_id(request_id)
        if lottery.entry != "enter":
            raise BadRequest(
                f"lottery {lottery.id!r} enters every eligible member automatically at the "
                "close; there is nothing to enter"
            )
        if isinstance(tickets, bool) or not isinstance(tickets, int):
            raise BadRequest(f"tickets must be an integer, got {tickets!r}")
        if not 1 <= tickets <= lottery.max_tickets:
            raise BadRequest(f"tickets must be 1..{lottery.max_tickets}, got {tickets}")
        try:
            drawlib.check_member_id(member_id, where="member")
        except drawlib.DrawInputError as exc:
            raise BadRequest(str(exc)) from None
        draw_ids = self._store.current(community.id, lottery.id)[:1]
        if not draw_ids:
            raise LotteryNotOpen(f"lottery {lottery.id!r} has not opened yet")
        draw_id = draw_ids[0]
        meta, row, _ = self._store.entry_and_meta(community.id, draw_id, member_id)
        if meta is None:
            raise LotteryNotOpen(f"lottery {lottery.id!r} has not opened yet")
        if row is not None:
            return self._repeat(community, lottery, draw_id, row, tickets)
        if meta.state != "open" or at_utc >= parse_iso(meta.closes_utc):
            raise LotteryNotOpen(
                f"draw {draw_id} of lottery {lottery.id!r} is {meta.state}; entries closed "
                f"at {meta.closes_utc}"
            )
        account = self._ledger_store.account(community.id, member_id)
        if account is None:
            raise NotAMember(f"member {member_id!r} is not in community {community.id!r}")
        if not account.active:
            raise MemberLeft(f"member {member_id!r} left community {community.id!r}")
        window = self._window(community, meta)
        wins = self._store.last_wins(community.id, [member_id])
        verdict = self._verdict(community, lottery, window, account, wins, tickets, at_utc)
        hard = [f.reason for f in verdict.failures if f.rule not in PENDING_RULES]
        if hard:
            raise NotEligible(
                f"member {member_id!r} may not enter lottery {lottery.id!r}: " + "; ".join(hard),
                reasons=hard,
            )
        pending = tuple(f.reason for f in verdict.failures if f.rule in PENDING_RULES)
        cost = int(meta.cost_points or 0) * tickets
        entered_at = iso_utc(at_utc)
        row = self._store.entry_row(
            community.id,
            draw_id,
            member_id,
            tickets=tickets,
            cost_paid=cost,
            eligibility=verdict.to_json_text(),
            entered_at=entered_at,
            request_id=request_id,
        )
        balance = None
        posting = entry_cost_posting(draw_id, member_id, cost)
        try:
            if posting is None:
                self._store.new_entry((draw_pk(community.id, draw_id), "META"), row)
            else:
                moved = self._ledger.post(
                    community,
                    member_id,
                    posting,
                    at_utc,
                    actor=f"member:{member_id}",
                    extra_items=(
                        ExtraItem("entry", row, condition=EntryRow.pk.does_not_exist()),
                        ExtraItem(
                            "draw",
                            MetaItem(draw_pk(community.id, draw_id), "META"),
                            condition=MetaItem.state == "open",
                            actions=(MetaItem.entries.add(1),),
                        ),
                    ),
                )
                if moved.repeat:  # the debit and its entry were written by a first attempt
                    return self._repeat_stored(community, lottery, draw_id, member_id, tickets)
                balance = moved.balance
        except (FileExistsError, ExtraConditionFailed) as exc:
            if isinstance(exc, ExtraConditionFailed) and exc.label == "draw":
                raise LotteryNotOpen(f"draw {draw_id} closed before the entry") from None
            return self._repeat_stored(community, lottery, draw_id, member_id, tickets)
        except StateChanged:
            raise LotteryNotOpen(f"draw {draw_id} closed before the entry") from None
        return EntryResult(
            community.id,
            lottery.id,
            draw_id,
            member_id,
            tickets,
            cost,
            entered_at,
            pending,
            balance=balance,
        )

    def status(
        self, community: Community, lottery_id: str, member_id: str, *, draw_id: str | None = None
    ) -> dict[str, Any]:
        """``GET /lotteries/{id}``: the draw's state, window, commitment, the member's
        entry and verdict, the entrant count and hash once closed, winners once drawn."""
        lottery = _lottery(community, lottery_id)
        meta = self._meta_for(community, lottery, draw_id, required=draw_id is not None)
        out: dict[str, Any] = {
            "community": community.id,
            "lottery": lottery.id,
            "title": lottery.title,
            "entry": lottery.entry,
            "cost_points": lottery.cost_points,
            "keywords": list(lottery.keywords),
        }
        if meta is None:
            return {**out, "state": "not_open", "draw_id": None}
        _, row, holder = self._store.entry_and_meta(community.id, meta.draw_id, member_id)
        out.update(
            draw_id=meta.draw_id,
            state=meta.state,
            opens_utc=meta.opens_utc,
            closes_utc=meta.closes_utc,
            draws_utc=meta.draws_utc,
            commitment=meta.commitment,
            external_value=meta.external_value or "",
            entries=int(meta.entries or 0),
        )
        if meta.entrants_hash:
            out.update(entrants=int(meta.entrants_count or 0), entrants_hash=meta.entrants_hash)
        entry: dict[str, Any] | None = None
        if row is not None:
            verdict = json.loads(row.eligibility) if row.eligibility else None
            entry = {
                "tickets": int(row.tickets or 1),
                "cost_paid": int(row.cost_paid or 0),
                "weight": None if row.weight is None else int(row.weight),
                "excluded": bool(row.excluded),
                "entered_at": row.entered_at,
                "reasons": [f["reason"] for f in (verdict or {}).get("failures", [])],
            }
        out["my_entry"] = entry
        if meta.state in ("drawn", "paid"):
            slots = self._store.pay_items(community.id, meta.draw_id)
            out["record_key"] = meta.record_key
            out["winners"] = [
                {"slot": int(p.slot), "member": p.member_id, "prize": p.title, "status": p.status}
                for p in slots
            ]
            mine = next(
                (p for p in slots if holder is not None and int(p.slot) == int(holder.slot)),
                None,
            )
            if mine is not None and mine.member_id == member_id:
                out["my_prize"] = {
                    "slot": int(mine.slot),
                    "prize": mine.title,
                    "tier": mine.tier_id,
                    "status": mine.status,
                    "claim_by": mine.claim_by,
                    "code": mine.code,
                }
        return out

    def record(
        self, community: Community, lottery_id: str, *, draw_id: str | None = None
    ) -> dict[str, Any]:
        """``GET /lotteries/{id}/record``: the published draw record. ``text`` is its
        exact bytes (what ``autopilot lottery verify`` checks), ``record`` parsed."""
        lottery = _lottery(community, lottery_id)
        meta = self._meta_for(community, lottery, draw_id, required=True)
        assert meta is not None
        if meta.state not in ("drawn", "paid") or not meta.record_key:
            raise LotteryConflict(f"draw {meta.draw_id} is {meta.state}: no record yet")
        text = self._read(meta.record_key)
        return {
            "draw_id": meta.draw_id,
            "record_key": meta.record_key,
            "entrants_key": meta.entrants_key,
            "sha256": hashlib.sha256(text.encode()).hexdigest(),
            "record": json.loads(text),
            "text": text,
        }

    def entrant_list(
        self, community: Community, lottery_id: str, *, draw_id: str | None = None
    ) -> Iterator[tuple[str, int]]:
        """The draw's canonical entrant list once closed (``(member_id, weight)`` in
        member-id byte order, streamed from Query pages): what ``verify`` takes.
        ``LotteryConflict`` (409) before the close."""
        lottery = _lottery(community, lottery_id)
        meta = self._meta_for(community, lottery, draw_id, required=True)
        assert meta is not None
        if not meta.entrants_hash:
            raise LotteryConflict(f"draw {meta.draw_id} is {meta.state}: no entrant list yet")
        return self._store.frozen_entrants(community.id, meta.draw_id)

    def claim(
        self, community: Community, lottery_id: str, member_id: str, *, at_utc: datetime
    ) -> dict[str, Any]:
        """Claim the member's prize (within its claim window): it is paid now. A
        repeat answers the paid prize. ``NothingToClaim`` (404) when none is held or
        the window passed."""
        lottery = _lottery(community, lottery_id)
        for draw_id in self._store.current(community.id, lottery.id):
            meta, _, holder = self._store.entry_and_meta(community.id, draw_id, member_id)
            if meta is None or holder is None or meta.state not in ("drawn", "paid"):
                continue
            slot = self._store.pay_item(community.id, draw_id, int(holder.slot))
            if slot is None or slot.member_id != member_id:
                continue
            if slot.status == "awaiting_claim":
                if slot.claim_by and at_utc > parse_iso(slot.claim_by):
                    raise NothingToClaim(
                        f"the claim window of your prize in draw {draw_id} ended at {slot.claim_by}"
                    )
                # Claimed: from now on no expire step may reroll it (it rerolls only
                # awaiting_claim slots, after marking them; whoever moves first wins).
                if not self._store.update_slot(
                    community.id,
                    draw_id,
                    int(slot.slot),
                    [PayItem.status.set("pending")],
                    ref=slot.ref,
                    statuses=["awaiting_claim"],
                ):
                    continue  # rerolled meanwhile: re-read below finds nothing held
                if _plan(meta).tier(slot.tier_id).prize.kind != "coupon":
                    # Points and rewards are paid at once. A coupon code needs the pool
                    # and the record: the next expire step (every 15 minutes) gives it.
                    self._pay_slot(community, meta, slot, at_utc, _Outcome(draw_id))
                slot = self._store.pay_item(community.id, draw_id, int(holder.slot)) or slot
                if slot.member_id != member_id:
                    continue
            if slot.status in ("paid", "short", "pending"):
                return {
                    "draw_id": draw_id,
                    "member": member_id,
                    "prize": slot.title,
                    "tier": slot.tier_id,
                    "status": slot.status,
                    "code": slot.code,
                    "note": slot.note,
                }
        raise NothingToClaim(f"member {member_id!r} holds no prize of lottery {lottery.id!r}")

    def disqualify(
        self,
        community: Community,
        lottery_id: str,
        member_id: str,
        *,
        reason: Any,
        actor: str,
        at_utc: datetime,
        draw_id: str | None = None,
    ) -> dict[str, Any]:
        """Ops: take an unpaid prize from its holder; the next expire step rerolls it to
        the next entrant in key order. A paid prize cannot be taken back (409)."""
        lottery = _lottery(community, lottery_id)
        if not isinstance(reason, str) or not reason.strip():
            raise BadRequest("a disqualification needs a reason")
        meta = self._meta_for(community, lottery, draw_id, required=True)
        assert meta is not None
        _, _, holder = self._store.entry_and_meta(community.id, meta.draw_id, member_id)
        slot = (
            self._store.pay_item(community.id, meta.draw_id, int(holder.slot)) if holder else None
        )
        if slot is None or slot.member_id != member_id:
            raise NothingToClaim(f"member {member_id!r} holds no prize in draw {meta.draw_id}")
        if slot.status == "disqualified":
            return {"draw_id": meta.draw_id, "member": member_id, "status": "disqualified"}
        note = f"disqualified by {actor} at {iso_utc(at_utc)}: {reason.strip()[:300]}"
        if not self._store.update_slot(
            community.id,
            meta.draw_id,
            int(slot.slot),
            [PayItem.status.set("disqualified"), PayItem.note.set(note)],
            ref=slot.ref,
            statuses=["pending", "awaiting_claim"],
        ):
            raise LotteryConflict(
                f"the prize of {member_id!r} in draw {meta.draw_id} is {slot.status}; a paid "
                "prize cannot be taken back"
            )
        return {"draw_id": meta.draw_id, "member": member_id, "status": "disqualified"}

    def set_external_value(
        self, community: Community, lottery_id: str, value: Any, *, actor: str, at_utc: datetime
    ) -> dict[str, Any]:
        """Ops: record the public value (a randomness beacon round) the draw mixes in;
        only before the draw (409 after)."""
        lottery = _lottery(community, lottery_id)
        if not isinstance(value, str) or not value:
            raise BadRequest("external value must be a non-empty string")
        encoded = value.encode("utf-8", "surrogatepass")
        if len(encoded) > drawlib.MAX_EXTERNAL_VALUE_BYTES:
            raise BadRequest(
                f"external value is {len(encoded)} bytes; at most "
                f"{drawlib.MAX_EXTERNAL_VALUE_BYTES} allowed"
            )
        try:
            encoded.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("external value must be valid Unicode text") from None
        meta = self._meta_for(community, lottery, None, required=True)
        assert meta is not None
        if not self._store.update_meta(
            community.id,
            meta.draw_id,
            [MetaItem.external_value.set(value), MetaItem.updated_at.set(iso_utc(at_utc))],
            MetaItem.state.is_in("open", "closing", "closed"),
        ):
            raise LotteryConflict(f"draw {meta.draw_id} is already drawn or cancelled")
        logger.info("external value of %s set by %s", meta.draw_id, actor)
        return {"draw_id": meta.draw_id, "external_value": value}

    def cancel(
        self, community: Community, lottery_id: str, *, reason: Any, actor: str, at_utc: datetime
    ) -> dict[str, Any]:
        """Ops: cancel the current draw before it is drawn and refund every entry cost
        (one ledger credit per paying member, idempotent by its ref). Safe to repeat."""
        lottery = _lottery(community, lottery_id)
        if not isinstance(reason, str) or not reason.strip():
            raise BadRequest("a cancellation needs a reason")
        meta = self._meta_for(community, lottery, None, required=True)
        assert meta is not None
        if meta.state != "cancelled":
            try:
                self._store.transition(
                    community.id,
                    meta.draw_id,
                    ["open", "closing", "closed"],
                    "cancelled",
                    at_utc,
                    actions=[MetaItem.cancel_reason.set(f"{actor}: {reason.strip()[:300]}")],
                )
            except StateChanged:
                current = self._store.meta(community.id, meta.draw_id)
                if current is None or current.state != "cancelled":
                    raise LotteryConflict(
                        f"draw {meta.draw_id} is {current.state if current else 'gone'}; "
                        "only a draw not yet drawn can be cancelled"
                    ) from None
        refunded = self._refund(community, meta.draw_id, at_utc)
        return {"draw_id": meta.draw_id, "state": "cancelled", "refunds": refunded}

    # == internals ====================================================================
    def _repeat(
        self, community: Community, lottery: Lottery, draw_id: str, row: EntryRow, tickets: int
    ) -> EntryResult:
        if int(row.tickets or 1) != tickets:
            raise LotteryConflict(
                f"already entered draw {draw_id} with {int(row.tickets or 1)} ticket(s)"
            )
        verdict = json.loads(row.eligibility) if row.eligibility else {}
        pending = tuple(
            f["reason"] for f in verdict.get("failures", []) if f["rule"] in PENDING_RULES
        )
        return EntryResult(
            community.id,
            lottery.id,
            draw_id,
            row.member_id,
            int(row.tickets or 1),
            int(row.cost_paid or 0),
            row.entered_at,
            pending,
            repeat=True,
        )

    def _repeat_stored(
        self, community: Community, lottery: Lottery, draw_id: str, member_id: str, tickets: int
    ) -> EntryResult:
        _, row, _ = self._store.entry_and_meta(community.id, draw_id, member_id)
        if row is None:
            raise LotteryNotOpen(f"draw {draw_id} closed before the entry")
        return self._repeat(community, lottery, draw_id, row, tickets)

    def _meta_for(
        self, community: Community, lottery: Lottery, draw_id: str | None, *, required: bool
    ) -> MetaItem | None:
        if draw_id is not None:
            if not isinstance(draw_id, str) or not draw_id.startswith(f"{lottery.id}-"):
                raise UnknownLottery(f"lottery {lottery.id!r} has no draw {draw_id!r}")
            meta = self._store.meta(community.id, draw_id)
            if meta is None:
                raise UnknownLottery(f"lottery {lottery.id!r} has no draw {draw_id!r}")
            return meta
        ids = self._store.current(community.id, lottery.id)
        meta = self._store.meta(community.id, ids[0]) if ids else None
        if meta is None and required:
            raise UnknownLottery(f"lottery {lottery.id!r} has not opened yet")
        return meta

    def _draw_for(
        self,
        community: Community,
        lottery: Lottery,
        scheduled: datetime,
        field_name: str,
        unfinished: Sequence[str],
    ) -> MetaItem | None:
        """The draw a close/draw occurrence at ``scheduled`` belongs to: the one whose
        instant it is, else (the schedule changed) the newest opened before it whose
        instant has passed and whose step is ``unfinished`` (never an earlier draw's
        finished step: its posts would go out again)."""
        fallback = None
        for draw_id in self._store.draws_of(community.id, lottery.id, until_utc=scheduled, limit=3):
            meta = self._store.meta(community.id, draw_id)
            if meta is None:
                continue
            if getattr(meta, field_name) == iso_utc(scheduled):
                return meta
            if (
                fallback is None
                and meta.state in unfinished
                and parse_iso(getattr(meta, field_name)) <= scheduled
            ):
                fallback = meta
        return fallback

    def _window(self, community: Community, meta: MetaItem) -> LotteryWindow:
        return window_for(
            parse_iso(meta.opens_utc),
            parse_iso(meta.closes_utc),
            community.timezone,
            community.day_boundary,
        )

    def _checkin_days(self, community_id: str, member_id: str, window: LotteryWindow) -> list[date]:
        """The member's check-in days within the window: their check-in markers
        (``REF#checkin#<day>``, make-ups included) for each window day, by
        BatchGetItem (100 days a request; the chat function has no Query)."""
        pk = member_pk(community_id, member_id)
        days = [window.first_day + timedelta(days=n) for n in range(window.day_count)]
        connection = RefItem._get_connection()
        table = self._ledger_store.table_name
        found: list[date] = []
        for start in range(0, len(days), 100):
            keys: list[Any] = [
                {"pk": {"S": pk}, "sk": {"S": f"REF#checkin#{day.isoformat()}"}}
                for day in days[start : start + 100]
            ]
            while keys:
                response = connection.batch_get_item(keys, consistent_read=True)
                for raw in response.get("Responses", {}).get(table, []):
                    found.append(date.fromisoformat(raw["sk"]["S"].rsplit("#", 1)[1]))
                keys = response.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])
        return found

    def _verdict(
        self,
        community: Community,
        lottery: Lottery,
        window: LotteryWindow,
        account: Account,
        wins: dict[str, str],
        tickets: int,
        at_utc: datetime,
    ) -> Eligibility:
        days = self._checkin_days(community.id, account.member_id, window)
        state = account.state
        left_at = parse_iso(account.left_at) if account.left_at else None
        facts = MemberFacts(
            member_id=account.member_id,
            joined_at=parse_iso(account.joined_at) if account.joined_at else None,
            left_at=left_at if left_at is None or left_at <= at_utc else None,
            checkins_in_window=count_window_checkins(days, window),
            streak=state.streak,
            last_checkin_day=state.last_day,
            freezes=state.freezes,
            tier=state.tier,
            last_won_at=parse_iso(wins[account.member_id]) if account.member_id in wins else None,
            tickets=tickets,
        )
        return evaluate(
            lottery.rules,
            facts,
            window,
            tier_ids=[t.id for t in community.checkins.tiers],
            weighting=lottery.weighting,
        )

    def _close(self, community: Community, lottery: Lottery, meta: MetaItem) -> MetaItem:
        """Do what is left of closing ``meta``; returns the draw's state after."""
        now = self._now()
        if meta.state == "open":
            with contextlib.suppress(StateChanged):
                self._store.transition(community.id, meta.draw_id, ["open"], "closing", now)
            meta = self._store.meta(community.id, meta.draw_id) or meta
        if meta.state != "closing":
            return meta
        window = self._window(community, meta)
        closes = parse_iso(meta.closes_utc)
        if meta.entry_mode == "auto":
            self._auto_enter(community, lottery, meta, window, closes)
        else:
            self._judge_entries(community, lottery, meta, window, closes)
        hasher = drawlib.EntrantsHasher()
        key = f"{RECORD_PREFIX}/{community.id}/{meta.draw_id}/entrants.tsv"
        chunk, chunk_count, chunks = bytearray(), 0, 0
        with tempfile.TemporaryFile() as spool:
            for member_id, weight in self._entrant_pairs(community.id, meta.draw_id):
                encoded = hasher.add(member_id, weight)
                line = b"%s\t%d\n" % (encoded, weight)
                spool.write(line)
                if len(chunk) + len(line) > FROZEN_CHUNK_BYTES:
                    self._store.put_frozen_chunk(
                        community.id, meta.draw_id, chunks, bytes(chunk), chunk_count
                    )
                    chunk, chunk_count, chunks = bytearray(), 0, chunks + 1
                chunk += line
                chunk_count += 1
            if chunk:
                # The frozen list the draw and rerolls read (deterministic chunks: a
                # rerun of the close writes the same items).
                self._store.put_frozen_chunk(
                    community.id, meta.draw_id, chunks, bytes(chunk), chunk_count
                )
            spool.seek(0)
            self._s3.upload_fileobj(
                spool,
                self._bucket,
                key,
                ExtraArgs={
                    "ContentType": "text/tab-separated-values; charset=utf-8",
                    "ServerSideEncryption": "AES256",
                    "Metadata": {"sha256": hasher.hexdigest()},
                },
            )
        # StateChanged: a concurrent close froze the same list (or ops cancelled).
        with contextlib.suppress(StateChanged):
            self._store.transition(
                community.id,
                meta.draw_id,
                ["closing"],
                "closed",
                self._now(),
                actions=[
                    MetaItem.entrants_hash.set(hasher.hexdigest()),
                    MetaItem.entrants_count.set(hasher.count),
                    MetaItem.entrants_key.set(key),
                ],
            )
        return self._store.meta(community.id, meta.draw_id) or meta

    def _entrant_pairs(self, community_id: str, draw_id: str) -> Iterator[tuple[str, int]]:
        """The eligible entry rows as ``(member_id, weight)`` in canonical order, from
        Query pages: what the close freezes (the draw and rerolls read the frozen list)."""
        return self._store.weighted_entrants(community_id, draw_id)

    def _auto_enter(
        self,
        community: Community,
        lottery: Lottery,
        meta: MetaItem,
        window: LotteryWindow,
        closes: datetime,
    ) -> None:
        """Auto mode: judge every member (member index Query pages, never a Scan) and
        write their entry with the verdict (excluded when ineligible)."""
        for shard in range(ENTRY_SHARDS):
            after = None
            while True:
                page = self._ledger_store.member_page(community.id, shard, after, 100)
                if not page:
                    break
                after = page[-1]
                accounts = self._ledger_store.accounts_and_recons(community.id, page)
                wins = self._store.last_wins(community.id, page)
                for member_id in page:
                    account = accounts[member_id][0]
                    if account is None:
                        continue
                    try:
                        verdict = self._verdict(
                            community, lottery, window, account, wins, 0, closes
                        )
                    except ValueError as exc:  # an id the draw cannot take: left out, logged
                        logger.warning("lottery %s: %s left out: %s", meta.draw_id, member_id, exc)
                        continue
                    self._store.save_entry(
                        self._store.entry_row(
                            community.id,
                            meta.draw_id,
                            member_id,
                            tickets=1,
                            cost_paid=0,
                            weight=verdict.weight,
                            excluded=not verdict.eligible,
                            eligibility=verdict.to_json_text(),
                            entered_at=iso_utc(closes),
                        ),
                        create=False,
                    )
                if len(page) < 100:
                    break

    def _judge_entries(
        self,
        community: Community,
        lottery: Lottery,
        meta: MetaItem,
        window: LotteryWindow,
        closes: datetime,
    ) -> None:
        """Enter mode: judge each entry with the member's facts at the close; an entry
        no longer eligible is excluded and its cost refunded."""
        batch: list[Any] = []

        def flush() -> None:
            members = [e.member_id for e in batch]
            accounts = self._ledger_store.accounts_and_recons(community.id, members)
            wins = self._store.last_wins(community.id, members)
            for entrant in batch:
                account = accounts[entrant.member_id][0]
                if account is None:
                    verdict_text, weight = entrant_json_missing(entrant.member_id), None
                else:
                    verdict = self._verdict(
                        community, lottery, window, account, wins, entrant.tickets, closes
                    )
                    verdict_text, weight = verdict.to_json_text(), verdict.weight
                self._store.set_verdict(
                    community.id, meta.draw_id, entrant.member_id, weight, verdict_text
                )
                if weight is None and entrant.cost_paid > 0:
                    self._refund_one(community, meta.draw_id, entrant.member_id, entrant.cost_paid)
            batch.clear()

        for entrant in self._store.entries(community.id, meta.draw_id):
            batch.append(entrant)
            if len(batch) >= 100:
                flush()
        if batch:
            flush()

    def _refund_one(self, community: Community, draw_id: str, member_id: str, cost: int) -> None:
        for refund in refund_postings(draw_id, [(member_id, cost)]):
            self._ledger.post(
                community,
                member_id,
                refund.posting,
                self._now(),
                actor=f"lottery:{draw_id}",
                require_active=False,
            )

    def _refund(self, community: Community, draw_id: str, at_utc: datetime) -> int:
        count = 0
        pairs = ((e.member_id, e.cost_paid) for e in self._store.entries(community.id, draw_id))
        for refund in refund_postings(draw_id, pairs):
            self._ledger.post(
                community,
                refund.member_id,
                refund.posting,
                at_utc,
                actor=f"lottery:{draw_id}",
                require_active=False,
            )
            count += 1
        return count

    def _make_draw(self, community: Community, meta: MetaItem) -> MetaItem:
        """Draw a closed draw: the deterministic record to S3, then ``drawn``."""
        seed_hex = self._store.seed(community.id, meta.draw_id)
        if seed_hex is None:
            raise RuntimeError(f"draw {meta.draw_id}: the seed is missing")
        plan = _plan(meta)
        if plan.fingerprint() != meta.plan_fingerprint:
            raise RuntimeError(
                f"draw {meta.draw_id}: the stored plan does not match its fingerprint"
            )
        external = meta.external_value or ""
        record = drawlib.draw(
            self._store.frozen_entrants(community.id, meta.draw_id),
            seed=bytes.fromhex(seed_hex),
            entrants_hash=meta.entrants_hash or "",
            prizes=plan.draw_prizes(),
            external_value=external,
            commitment=meta.commitment,
        )
        key, sha = self._write_record(community.id, meta.draw_id, record)
        try:
            self._store.transition(
                community.id,
                meta.draw_id,
                ["closed"],
                "drawn",
                self._now(),
                actions=[
                    MetaItem.record_key.set(key),
                    MetaItem.record_sha256.set(sha),
                    MetaItem.winners_count.set(len(record.winners)),
                ],
                condition=MetaItem.external_value == external,
            )
        except StateChanged:
            current = self._store.meta(community.id, meta.draw_id)
            if current is not None and current.state == "closed":
                return self._make_draw(community, current)  # the external value changed
            if current is None:
                raise
            return current
        return self._store.meta(community.id, meta.draw_id) or meta

    def _write_record(
        self, community_id: str, draw_id: str, record: drawlib.DrawRecord
    ) -> tuple[str, str]:
        text = record.to_json().encode("utf-8")
        key = f"{RECORD_PREFIX}/{community_id}/{draw_id}/record.json"
        sha = hashlib.sha256(text).hexdigest()
        self._s3.put_object(
            Bucket=self._bucket,
            Key=key,
            Body=text,
            ContentType="application/json; charset=utf-8",
            ServerSideEncryption="AES256",
            Metadata={"sha256": sha},
        )
        return key, sha

    def _read(self, key: str) -> str:
        body = self._s3.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        return str(body.decode("utf-8"))

    def _record_of(self, meta: MetaItem) -> drawlib.DrawRecord:
        assert meta.record_key
        text = self._read(meta.record_key)
        if hashlib.sha256(text.encode()).hexdigest() != meta.record_sha256:
            raise RuntimeError(f"draw {meta.draw_id}: the stored record is not the one drawn")
        return drawlib.DrawRecord.from_json(text)

    def _sync_slots(
        self, community: Community, meta: MetaItem, record: drawlib.DrawRecord, out: _Outcome
    ) -> None:
        """Make the slots match the record's holders: create missing slots (once),
        hand a rerolled slot to its new holder (a crash between the record and the
        slot resumes here)."""
        plan = payout_plan(meta.draw_id, record, _plan(meta))
        window = int(meta.claim_window_s) if meta.claim_window_s else None
        existing = {int(p.slot): p for p in self._store.pay_items(community.id, meta.draw_id)}
        now = self._now()
        for payout in plan.payouts:
            slot = existing.get(payout.slot)
            new = self._slot_item(community.id, meta.draw_id, payout, window, now)
            if slot is None:
                self._store.create_slot(
                    new,
                    HolderItem(
                        draw_pk(community.id, meta.draw_id),
                        f"W#{payout.member_id}",
                        slot=payout.slot,
                    ),
                )
            elif slot.ref != payout.ref:
                self._store.reassign_slot(slot, new, now)
        for tier_id, count in plan.unawarded:
            out.notes.append(f"{count} prize(s) of tier {tier_id!r} had no entrant left")

    @staticmethod
    def _slot_item(
        community_id: str, draw_id: str, payout: Payout, window: int | None, now: datetime
    ) -> PayItem:
        return PayItem(
            draw_pk(community_id, draw_id),
            pay_sk(payout.slot),
            slot=payout.slot,
            member_id=payout.member_id,
            rank=payout.rank,
            tier_id=payout.tier_id,
            title=payout.title,
            kind=payout.kind.value,
            ref=payout.ref,
            status="awaiting_claim" if window else "pending",
            claim_by=iso_utc(now + timedelta(seconds=window)) if window else None,
            notified=False,
        )

    def _pay_pending(self, community: Community, meta: MetaItem, out: _Outcome) -> None:
        for slot in self._store.pay_items(community.id, meta.draw_id):
            # A short slot (no code, no stock) is tried again: ops may have uploaded codes.
            if slot.status in ("pending", "short"):
                self._pay_slot(community, meta, slot, self._now(), out)

    def _pay_slot(
        self, community: Community, meta: MetaItem, slot: PayItem, now: datetime, out: _Outcome
    ) -> None:
        """Pay one slot exactly once (its ref: a ledger marker, a conditional status,
        a conditional coupon code)."""
        spec = _plan(meta).tier(slot.tier_id)
        prize = spec.prize
        statuses = list(PAYABLE)
        if isinstance(prize, PointsPrize):
            try:
                self._ledger.post(
                    community,
                    slot.member_id,
                    Posting(
                        PRIZE_REASON,
                        prize.amount_points,
                        slot.ref,
                        f"lottery {meta.draw_id}: {spec.title} (rank {int(slot.rank)})",
                    ),
                    now,
                    actor=f"lottery:{meta.draw_id}",
                    require_active=False,
                )
            except NotAMember:
                self._short(community, meta, slot, "the winner has no account", out)
                return
        elif isinstance(prize, RewardPrize):
            try:
                stock = community.reward(prize.reward_id).stock
            except KeyError:
                self._short(community, meta, slot, f"reward {prize.reward_id!r} is gone", out)
                return
            try:
                if not self._store.pay_reward(slot, community.id, prize.reward_id, stock, now):
                    self._short(
                        community, meta, slot, f"reward {prize.reward_id!r} is out of stock", out
                    )
                    return
            except StateChanged:
                return  # paid (or rerolled) by a concurrent run
            self._store.record_win(community.id, slot.member_id, meta.draw_id, now)
            return
        elif isinstance(prize, CouponPrize):
            code = self._give_code(community, meta, slot, prize.pool_id, now)
            if code is None:
                self._short(
                    community,
                    meta,
                    slot,
                    f"coupon pool {prize.pool_id!r} has no unused code; upload more codes: "
                    "the next run of this draw's step (or an expire step) pays it",
                    out,
                )
                return
        self._store.update_slot(
            community.id,
            meta.draw_id,
            int(slot.slot),
            [PayItem.status.set("paid"), PayItem.paid_at.set(iso_utc(now))],
            ref=slot.ref,
            statuses=statuses,
        )
        self._store.record_win(community.id, slot.member_id, meta.draw_id, now)

    def _short(
        self, community: Community, meta: MetaItem, slot: PayItem, why: str, out: _Outcome
    ) -> None:
        out.errors.append(f"slot {int(slot.slot)} ({slot.member_id}): {why}")
        self._store.update_slot(
            community.id,
            meta.draw_id,
            int(slot.slot),
            [PayItem.status.set("short"), PayItem.note.set(why)],
            ref=slot.ref,
            statuses=list(PAYABLE),
        )

    def _give_code(
        self, community: Community, meta: MetaItem, slot: PayItem, pool_id: str, now: datetime
    ) -> str | None:
        """The slot's coupon code: the one recorded, or a fresh one assigned by
        ``assign_coupon_codes`` and recorded conditionally (recomputed on conflict)."""
        for _ in range(MAX_CODE_ATTEMPTS):
            current = self._store.pay_item(community.id, meta.draw_id, int(slot.slot))
            if current is None or current.ref != slot.ref:
                return None
            if current.code:
                return current.code
            record = self._record_of(meta)
            plan = payout_plan(meta.draw_id, record, _plan(meta))
            given = {
                p.ref: p.code
                for p in [
                    *self._store.pay_items(community.id, meta.draw_id),
                    *self._store.pay_items(community.id, meta.draw_id, "PAYR#"),
                ]
                if p.code
            }
            waiting = sum(
                1
                for p in plan.payouts
                if isinstance(p.prize, CouponPrize)
                and p.prize.pool_id == pool_id
                and p.ref not in given
            )
            unused = self._store.unused_codes(community.id, pool_id, waiting)
            by_code = {c.code: c for c in unused}
            assignment = assign_coupon_codes(plan, {pool_id: [c.code for c in unused]}, given)
            code = assignment.codes.get(slot.ref)
            if code is None:
                return None
            if code in given.values():
                return code
            if self._store.give_code(by_code[code], current, now):
                return code
        return None

    def _expire_draw(
        self,
        community: Community,
        lottery: Lottery,
        meta: MetaItem,
        now: datetime,
        out: _Outcome,
    ) -> int:
        rerolled = 0
        record = self._record_of(meta)
        self._sync_slots(community, meta, record, out)
        for slot in self._store.pay_items(community.id, meta.draw_id):
            expired = (
                slot.status == "awaiting_claim" and slot.claim_by and parse_iso(slot.claim_by) < now
            )
            if not (expired or slot.status in ("disqualified", "rerolling")):
                continue
            disqualified = slot.status == "disqualified" or (
                slot.status == "rerolling" and (slot.note or "").startswith("disqualified")
            )
            reason = (
                drawlib.RerollReason.DISQUALIFIED
                if disqualified
                else drawlib.RerollReason.UNCLAIMED
            )
            # Marked first, so a claim arriving now cannot be paid to this holder too.
            if slot.status != "rerolling" and not self._store.update_slot(
                community.id,
                meta.draw_id,
                int(slot.slot),
                [PayItem.status.set("rerolling")],
                ref=slot.ref,
                statuses=[slot.status],
            ):
                continue  # claimed (or changed) meanwhile
            try:
                record = drawlib.reroll(
                    record,
                    self._store.frozen_entrants(community.id, meta.draw_id),
                    replaces_rank=int(slot.rank),
                    reason=reason,
                )
            except drawlib.NoEntrantsLeft as exc:
                # Every entrant holds or held a prize: the prize is forfeited (a final
                # status, never paid to the holder who let it lapse).
                out.notes.append(str(exc))
                self._store.update_slot(
                    community.id,
                    meta.draw_id,
                    int(slot.slot),
                    [PayItem.status.set("forfeited"), PayItem.note.set(str(exc))],
                    ref=slot.ref,
                    statuses=["rerolling"],
                )
                continue
            _key, sha = self._write_record(community.id, meta.draw_id, record)
            if not self._store.update_meta(
                community.id,
                meta.draw_id,
                [MetaItem.record_sha256.set(sha)],
                MetaItem.record_sha256 == meta.record_sha256,
            ):
                # A concurrent expire rerolled first: its record stands; re-read it.
                meta = self._store.meta(community.id, meta.draw_id) or meta
                return rerolled
            meta.record_sha256 = sha
            rerolled += 1
            self._sync_slots(community, meta, record, out)
        self._pay_pending(community, meta, out)
        if rerolled:
            self._notify(community, lottery, meta, out)
        return rerolled

    # -- posts and direct messages ----------------------------------------------------
    def _fields(self, community: Community, lottery: Lottery, meta: MetaItem) -> dict[str, Any]:
        tz = zone(community.timezone)
        now_local = local_wall(self._now(), tz)

        def local(text: str | None) -> str:
            return f"{local_wall(parse_iso(text), tz):%Y-%m-%d %H:%M}" if text else ""

        weekday = (
            _WEEKDAYS_ZH[now_local.weekday()] if community.locale == "zh-CN" else f"{now_local:%A}"
        )
        fields: dict[str, Any] = {
            "community": community.name,
            "date": now_local.date().isoformat(),
            "date_iso": now_local.date().isoformat(),
            "weekday": weekday,
            "time": f"{now_local:%H:%M}",
            "lottery": lottery.title,
            "lottery_id": lottery.id,
            "draw_id": meta.draw_id,
            "commitment": meta.commitment,
            "opens": local(meta.opens_utc),
            "closes": local(meta.closes_utc),
            "draws": local(meta.draws_utc),
            "cost_points": int(meta.cost_points or 0),
            "keyword": lottery.keywords[0] if lottery.keywords else "",
            "entrants": int(meta.entrants_count or 0),
            "entrants_hash": meta.entrants_hash or "",
            "external_value": meta.external_value or "",
            "record": meta.record_key or "",
            "seed": "",
            "winners": "",
            "winner_count": 0,
            "claim_keyword": lottery.claim_keywords[0] if lottery.claim_keywords else "",
            "prize": "",
            "claim_by": "",
        }
        if meta.state in ("drawn", "paid") and meta.record_key:
            slots = self._store.pay_items(community.id, meta.draw_id)
            fields["winners"] = "\n".join(f"{p.title}: {p.member_id}" for p in slots)
            fields["winner_count"] = len(slots)
            fields["seed"] = self._store.seed(community.id, meta.draw_id) or ""
        return fields

    def _post(
        self, ctx: ActionContext, lottery: Lottery, meta: MetaItem, which: str
    ) -> ActionResult | None:
        posts = lottery.posts
        if posts is None or not posts.channels:
            return None
        template = getattr(posts, which)
        try:
            text = render(template, self._fields(ctx.community, lottery, meta))
        except (KeyError, ValueError, IndexError) as exc:
            return ActionResult(ok=False, error=f"{which} template: {exc}")
        return self._posts.publish(ctx, text, lottery.title, posts.channels)

    def _notify(
        self, community: Community, lottery: Lottery, meta: MetaItem, out: _Outcome
    ) -> None:
        """Tell each winner privately how to claim, where a channel can (once per slot
        holder: ``notified`` is set after the send)."""
        posts = lottery.posts
        if posts is None or not posts.claim_dm:
            return
        channels = [
            self._posts.channel(community, c)
            for c in posts.channels
            if self._posts.channel(community, c).supports_direct
        ]
        if not channels:
            return
        fields = self._fields(community, lottery, meta)
        tz = zone(community.timezone)
        sent = 0
        slots = [
            s
            for s in self._store.pay_items(community.id, meta.draw_id)
            if not s.notified and s.status in ("awaiting_claim", "paid")
        ]
        accounts = self._ledger_store.accounts_and_recons(
            community.id, sorted({s.member_id for s in slots})
        )
        for slot in slots:
            account = accounts[slot.member_id][0]
            if account is None or not account.dm_address:
                continue
            claim_by = (
                f"{local_wall(parse_iso(slot.claim_by), tz):%Y-%m-%d %H:%M}"
                if slot.claim_by
                else ""
            )
            try:
                text = render(posts.claim_dm, {**fields, "prize": slot.title, "claim_by": claim_by})
            except (KeyError, ValueError, IndexError) as exc:
                out.errors.append(f"claim_dm template: {exc}")
                return
            message = Message(
                text=text,
                key=f"{community.id}:{slot.ref}",
                community_id=community.id,
                title=lottery.title,
                idempotency_key=slot.ref,
            )
            delivery = channels[0].send_to_member(account.dm_address, message, now=self._now())
            if delivery.ok:
                self._store.update_slot(
                    community.id,
                    meta.draw_id,
                    int(slot.slot),
                    [PayItem.notified.set(True)],
                    ref=slot.ref,
                    statuses=[slot.status],
                )
                sent += 1
        out.extra["dms"] = out.extra.get("dms", 0) + sent


def entrant_json_missing(member_id: str) -> str:
    """The stored verdict of an entry whose member has no account at the close."""
    return json.dumps(
        {"format": 1, "member_id": member_id, "eligible": False, "missing_account": True},
        sort_keys=True,
    )


__all__ = ["EntryResult", "LotteryService", "SeedSource", "set_seed_source"]
