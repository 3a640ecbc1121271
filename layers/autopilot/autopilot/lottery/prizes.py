"""Prize rules of a lottery draw: pure (no AWS, no clock), deterministic.

This module owns what a draw *gives*: the typed prize plan ops configure, its
validation, the tiers handed to :func:`autopilot.lottery.draw.draw`, the payouts of
a drawn record (who gets what, under which idempotency ref), the assignment of
coupon codes, and the refunds of a cancelled draw. The shell (a lottery service)
executes what these functions return; running them again on the same inputs
returns the same thing, which is what makes a retried or crashed payout safe.

**Prize plan.** A draw's :class:`PrizePlan` is an ordered tuple of
:class:`PrizeTierSpec` ``(tier_id, title, count, prize)``; tiers take ranks in the
order listed (1 first prize, then 3 second, then 20 third: ranks 1, 2-4, 5-24). A
prize is one of:

* :class:`PointsPrize` ``(amount_points)``: credited through the ledger, reason
  ``lottery_prize``; ``1 <= amount_points <= MAX_POINTS`` (the ledger's bound).
* :class:`RewardPrize` ``(reward_id)``: a catalog reward; its stock is decremented
  by the shell when paying. :func:`reward_stock_problems` reports a plan that needs
  more of a reward than its stock (summed over the tiers naming it).
* :class:`CouponPrize` ``(pool_id)``: one code from a pool of codes ops upload.
  :func:`coupon_pool_problems` reports a pool with fewer unused codes than prizes.

:func:`plan_problems` lists *every* problem, each naming its tier and with a path
``(tier index, field)`` that config validation prefixes with the lottery's own
path for file:line: at least one tier; tier ids and pool/reward ids are config ids
(``[a-z0-9][a-z0-9_-]{0,47}``) and tier ids are unique; titles are 1..80
characters without control characters; ``count >= 1``; all counts together at most
:data:`~autopilot.lottery.draw.MAX_WINNERS`. :func:`check_plan` raises
:class:`PrizePlanError` with all of them. :func:`parse_plan` reads config-shaped
tiers (``{"id", "title", "count"}`` plus exactly one of ``"points"``, ``"reward"``,
``"coupon_pool"``) and reports shape and rule problems together, at the tiers'
document positions; :meth:`PrizePlan.to_dict`/:meth:`~PrizePlan.from_dict` are the
same form, for a snapshot stored with the draw, and :meth:`PrizePlan.fingerprint`
its SHA-256 (pay only with the plan the draw was made with).
:meth:`PrizePlan.draw_prizes` gives the ``PrizeTier`` tuple for the draw (tier name =
tier id).

**Payouts and refs.** :func:`payout_plan` turns a :class:`~autopilot.lottery.draw.DrawRecord`
into one :class:`Payout` per current holder (``record.holders()``: rerolls applied),
in slot order. Each payout's ``ref`` is::

    lottery:<draw_id>:rank:<rank>:<member_id>

where ``rank`` is the *holder's own rank* in the draw order (equal to the prize slot
unless the slot was rerolled: a reroll's winner has rank ``k + j``). A rank belongs
to exactly one entrant, so the ref is unique per holder, the same on every
recomputation (a crashed payout resumes with the same refs and the ledger's
deterministic entry id turns a repeat into a no-op), and a rerolled slot's new
holder gets a new ref, paid once, while the replaced holder's ref is no longer in
the plan (it is listed in :attr:`PayoutPlan.replaced`, never to be executed anew).
Given the member (which the ledger's entry id also includes), the ref determines
``draw_id`` and ``rank`` uniquely even when ``draw_id`` contains ``:``, because the
rank is all digits. For a points prize, :attr:`Payout.posting` is the ledger
:class:`~autopilot.ledger.rules.Posting` ``(lottery_prize, amount_points, ref)``.

**Coupon codes.** :func:`assign_coupon_codes` gives each coupon payout one code:

1. a payout whose ref already has a code recorded (``given``) keeps it;
2. the others, in *rank order*, take their pool's unused codes in *pool order*
   (the order ops uploaded them); codes already recorded as given are skipped;
3. a code recorded for a *replaced* holder (a winner who did not claim, or was
   disqualified) is **retired, never given again**: it may already have been shown
   to that member, and "each code given once" must hold even then. The replacement
   takes a fresh code. Retired codes are listed in :attr:`CouponAssignment.retired`.
4. when a pool has too few unused codes, the payouts ranked last go without and
   :attr:`CouponAssignment.shortages` says which pool, how many codes are missing and
   which ranks wait; nothing is given twice to make up for it.

Recomputing after a crash is stable: if the codes recorded so far are a subset of an
earlier assignment (and no other draw took codes of the pool meanwhile), the
recomputation returns that same assignment, because rank order and pool order are
both monotone. The shell records a code as given (conditional on it being unused,
and on the ref having no code yet) *before* telling the member, and recomputes on a
conflict; a code not yet recorded was never shown to anyone, so a recomputation may
move it freely.

**Refunds.** :func:`refund_postings` turns the entries of a cancelled draw (member
id, points paid, in member-id order as the entrant list is) into one credit per
member who paid, ref ``lottery:<draw_id>:refund:<member_id>``; an entry that cost 0
gets no posting. The matching debit of an entry's cost is :func:`entry_cost_posting`,
ref ``lottery:<draw_id>:entry:<member_id>``; their ledger reasons are
``lottery_entry`` and ``lottery_refund``.

Draw ids (:func:`check_draw_id`): 1..96 characters, no ``#`` (the ledger's key
separator), no whitespace or control characters.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from autopilot.config.document import ID_RE
from autopilot.errors import AutopilotError
from autopilot.ledger.rules import MAX_POINTS, Posting, Reason
from autopilot.lottery.draw import MAX_WINNERS, DrawRecord, PrizeTier, Winner

PRIZE_REASON = Reason.LOTTERY_PRIZE
"""The ledger reason of a points prize."""
# The reason is part of the entry id and of the idempotency marker: never change these,
# or a retried refund could credit a second time.
ENTRY_COST_REASON = Reason.LOTTERY_ENTRY
"""The ledger reason of an entry's cost (a debit)."""
REFUND_REASON = Reason.LOTTERY_REFUND
"""The ledger reason of a cancelled draw's refund (a credit)."""

MAX_TITLE_CHARS = 80
MAX_DRAW_ID_CHARS = 96
_ID = re.compile(ID_RE)
_CONTROL_CHARS = re.compile("[\x00-\x1f\x7f-\x9f]")
_BAD_DRAW_ID_CHARS = re.compile(r"[#\s\x00-\x1f\x7f-\x9f]")


class PrizeError(AutopilotError, ValueError):
    """Input the prize rules refuse; the message says what is wrong and where."""


class PrizePlanError(PrizeError):
    """A prize plan is invalid: ``problems`` lists every problem, each naming its tier."""

    def __init__(self, problems: Sequence[PrizeProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(p.message for p in self.problems))


class PlanMismatch(PrizeError):
    """A draw record's prizes are not the plan's tiers (the plan changed since the draw)."""


class CouponStateError(PrizeError):
    """The recorded coupon codes are inconsistent (one code given twice, a code
    recorded for a ref that is not a coupon payout of this draw)."""


class PoolShort(PrizeError):
    """A coupon pool has fewer unused codes than the payouts waiting for one."""


class PrizeKind(StrEnum):
    """What a prize is (the values appear in payouts and the draw's announcements)."""

    POINTS = "points"
    REWARD = "reward"
    COUPON = "coupon"


@dataclass(frozen=True)
class PointsPrize:
    """``amount_points`` credited through the ledger (reason ``lottery_prize``)."""

    amount_points: int

    @property
    def kind(self) -> PrizeKind:
        """:attr:`PrizeKind.POINTS`."""
        return PrizeKind.POINTS


@dataclass(frozen=True)
class RewardPrize:
    """One unit of the catalog reward ``reward_id`` (its stock decremented when paid)."""

    reward_id: str

    @property
    def kind(self) -> PrizeKind:
        """:attr:`PrizeKind.REWARD`."""
        return PrizeKind.REWARD


@dataclass(frozen=True)
class CouponPrize:
    """One code from the coupon pool ``pool_id`` (each code given once)."""

    pool_id: str

    @property
    def kind(self) -> PrizeKind:
        """:attr:`PrizeKind.COUPON`."""
        return PrizeKind.COUPON


Prize = PointsPrize | RewardPrize | CouponPrize


@dataclass(frozen=True)
class PrizeTierSpec:
    """``count`` prizes of one tier: its id (the draw's tier name), title, and prize."""

    tier_id: str
    title: str
    count: int
    prize: Prize


@dataclass(frozen=True)
class PrizeProblem:
    """One problem of a prize plan. ``path`` is ``(tier index, field)`` (``()`` for the
    plan as a whole), for config validation to prefix with the lottery's path."""

    path: tuple[str | int, ...]
    message: str


@dataclass(frozen=True)
class PrizePlan:
    """A draw's prize tiers, in rank order."""

    tiers: tuple[PrizeTierSpec, ...]

    @property
    def total_prizes(self) -> int:
        """All tiers' counts together: the number of winners the draw picks."""
        return sum(t.count for t in self.tiers)

    def tier(self, tier_id: str) -> PrizeTierSpec:
        """The tier ``tier_id`` (KeyError if the plan has none)."""
        for spec in self.tiers:
            if spec.tier_id == tier_id:
                return spec
        raise KeyError(tier_id)

    def draw_prizes(self) -> tuple[PrizeTier, ...]:
        """The tiers as the draw takes them: ``PrizeTier(tier_id, count)``, in order."""
        return tuple(PrizeTier(t.tier_id, t.count) for t in self.tiers)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for a snapshot stored with the draw)."""
        return {"tiers": [_tier_to_dict(t) for t in self.tiers]}

    def fingerprint(self) -> str:
        """Hex SHA-256 of the canonical JSON of :meth:`to_dict`: store it with the draw
        and pay only with a plan of the same fingerprint, so a config edit between a
        crash and its resumption cannot change what a holder receives."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PrizePlan:
        """Parse :meth:`to_dict`'s form (a stored snapshot); :class:`PrizePlanError`
        lists every problem."""
        if not isinstance(data, Mapping) or set(data) != {"tiers"}:
            raise PrizePlanError([PrizeProblem((), "prize plan: expected {'tiers': [...]}")])
        plan, problems = parse_plan(data["tiers"])
        if plan is None:
            raise PrizePlanError(problems)
        return plan


_PRIZE_KEYS = ("points", "reward", "coupon_pool")
_TIER_NUMBER = re.compile(r"prize tier #(\d+)")
_TIER_KEYS = frozenset(("id", "title", "count", *_PRIZE_KEYS))


def parse_plan(items: object) -> tuple[PrizePlan | None, list[PrizeProblem]]:
    """A plan from config-shaped tiers (``{"id", "title", "count"}`` and exactly one of
    ``"points"``, ``"reward"``, ``"coupon_pool"`` each), with every problem found
    (shape and :func:`plan_problems`); the plan is ``None`` when there is any."""
    if not isinstance(items, Sequence) or isinstance(items, str):
        return None, [PrizeProblem((), "prizes: expected a list of prize tiers")]
    problems: list[PrizeProblem] = []
    tiers: list[PrizeTierSpec] = []
    origin: list[int] = []  # the document index of each well-formed tier
    for index, item in enumerate(items):
        label = f"prize tier #{index + 1}"
        if not isinstance(item, Mapping):
            problems.append(PrizeProblem((index,), f"{label}: expected an object"))
            continue
        label = f"{label} ({item.get('id')!r})"
        shape = [
            PrizeProblem((index, key), f"{label}: unknown key {key!r}")
            for key in sorted(set(item) - _TIER_KEYS, key=str)
        ]
        shape += [
            PrizeProblem((index, key), f"{label}: required key {key!r} is missing")
            for key in ("id", "title", "count")
            if key not in item
        ]
        kinds = [key for key in _PRIZE_KEYS if key in item]
        if len(kinds) != 1:
            shape.append(
                PrizeProblem(
                    (index,),
                    f"{label}: give exactly one of 'points', 'reward' or 'coupon_pool' "
                    f"(got {', '.join(map(repr, kinds)) or 'none'})",
                )
            )
        if shape:
            problems += shape
            continue
        kind = kinds[0]
        prize: Prize = (
            PointsPrize(item[kind])
            if kind == "points"
            else RewardPrize(item[kind])
            if kind == "reward"
            else CouponPrize(item[kind])
        )
        tiers.append(PrizeTierSpec(item["id"], item["title"], item["count"], prize))
        origin.append(index)
    plan = PrizePlan(tuple(tiers))
    if not problems:
        problems = plan_problems(plan)
        return (None, problems) if problems else (plan, [])
    # Report the rules' problems of the well-formed tiers too, at their own index
    # (and with their own number: the messages count from the document's list).
    for problem in plan_problems(plan) if tiers else []:
        if problem.path and isinstance(problem.path[0], int):
            message = _TIER_NUMBER.sub(
                lambda m: f"prize tier #{_renumber(int(m.group(1)), origin)}", problem.message
            )
            problems.append(PrizeProblem((origin[problem.path[0]], *problem.path[1:]), message))
        else:
            problems.append(problem)
    # Stable: by tier (plan-wide problems first), each tier's problems in check order.
    return None, sorted(problems, key=lambda p: p.path[0] if p.path else -1)


def _renumber(number: int, origin: Sequence[int]) -> int:
    """The document's 1-based number of the well-formed tier numbered ``number``."""
    return origin[number - 1] + 1 if 1 <= number <= len(origin) else number


def _tier_to_dict(spec: PrizeTierSpec) -> dict[str, Any]:
    prize: dict[str, Any]
    if isinstance(spec.prize, PointsPrize):
        prize = {"points": spec.prize.amount_points}
    elif isinstance(spec.prize, RewardPrize):
        prize = {"reward": spec.prize.reward_id}
    else:
        prize = {"coupon_pool": spec.prize.pool_id}
    return {"id": spec.tier_id, "title": spec.title, "count": spec.count, **prize}


# -- validation ----------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _id_problem(value: object, what: str) -> str | None:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        return (
            f"{what} {value!r} is not a valid id: use 1-48 characters a-z, 0-9, '-' or '_', "
            "starting with a letter or digit"
        )
    return None


def plan_problems(plan: PrizePlan) -> list[PrizeProblem]:
    """Every problem of ``plan`` (empty when valid), each naming its tier.

    Checks: at least one tier; each tier id a config id and unique; a title of
    1..:data:`MAX_TITLE_CHARS` characters without control characters; ``count`` an
    integer >= 1; points an integer in ``1..MAX_POINTS``; reward and pool ids config
    ids; all counts together at most :data:`~autopilot.lottery.draw.MAX_WINNERS`.
    """
    tiers = tuple(plan.tiers)
    if not tiers:
        return [PrizeProblem((), "prizes: at least one prize tier is needed")]
    problems: list[PrizeProblem] = []
    seen: dict[str, int] = {}
    total = 0
    for index, spec in enumerate(tiers):
        if not isinstance(spec, PrizeTierSpec):
            problems.append(PrizeProblem((index,), f"prize tier #{index + 1}: not a prize tier"))
            continue
        label = f"prize tier #{index + 1} ({spec.tier_id!r})"

        def add(field_name: str, message: str, label: str = label, index: int = index) -> None:
            problems.append(PrizeProblem((index, field_name), f"{label}: {message}"))

        bad_id = _id_problem(spec.tier_id, "tier id")
        if bad_id:
            add("id", bad_id)
        elif spec.tier_id in seen:
            add(
                "id",
                f"tier id {spec.tier_id!r} is already used by prize tier #{seen[spec.tier_id]}",
            )
        else:
            seen[spec.tier_id] = index + 1
        title = spec.title
        if not isinstance(title, str) or not title.strip():
            add("title", "title must be non-empty text")
        elif len(title) > MAX_TITLE_CHARS or _CONTROL_CHARS.search(title):
            add(
                "title",
                f"title must be at most {MAX_TITLE_CHARS} characters without control "
                f"characters (got {len(title)} characters)",
            )
        if not _is_int(spec.count) or spec.count < 1:
            add("count", f"count must be an integer >= 1, got {spec.count!r}")
        else:
            total += spec.count
        prize = spec.prize
        if isinstance(prize, PointsPrize):
            amount = prize.amount_points
            if not _is_int(amount) or not 1 <= amount <= MAX_POINTS:
                add("points", f"points must be an integer in 1..{MAX_POINTS}, got {amount!r}")
        elif isinstance(prize, RewardPrize):
            bad = _id_problem(prize.reward_id, "reward id")
            if bad:
                add("reward", bad)
        elif isinstance(prize, CouponPrize):
            bad = _id_problem(prize.pool_id, "coupon pool id")
            if bad:
                add("coupon_pool", bad)
        else:
            add("prize", f"prize must be points, a reward or a coupon pool, got {prize!r}")
    if total > MAX_WINNERS:
        problems.append(
            PrizeProblem((), f"prizes: {total} prizes in all, at most {MAX_WINNERS} per draw")
        )
    return problems


def check_plan(plan: PrizePlan) -> PrizePlan:
    """``plan`` if :func:`plan_problems` finds nothing, else :class:`PrizePlanError`."""
    problems = plan_problems(plan)
    if problems:
        raise PrizePlanError(problems)
    return plan


def reward_stock_problems(
    plan: PrizePlan, stock_of: Mapping[str, int | None]
) -> list[PrizeProblem]:
    """Reward prizes the catalog cannot cover. ``stock_of`` maps each catalog reward id
    to its stock (``None``: unlimited). A reward the catalog lacks is *unknown*; a
    reward whose tiers together need more than its stock is *beyond stock* (reported
    on the first tier naming it, with every tier listed)."""
    problems: list[PrizeProblem] = []
    needed: dict[str, list[tuple[int, PrizeTierSpec]]] = {}
    for index, spec in enumerate(plan.tiers):
        if isinstance(spec.prize, RewardPrize):
            rid = spec.prize.reward_id
            if rid not in stock_of:
                problems.append(
                    PrizeProblem(
                        (index, "reward"),
                        f"prize tier #{index + 1} ({spec.tier_id!r}): unknown reward {rid!r} "
                        "(not in the community's catalog)",
                    )
                )
            else:
                needed.setdefault(rid, []).append((index, spec))
    for rid, uses in needed.items():
        stock = stock_of[rid]
        count = sum(spec.count for _, spec in uses)
        if stock is not None and count > stock:
            index, spec = uses[0]
            tiers = ", ".join(f"{s.tier_id!r} ({s.count})" for _, s in uses)
            problems.append(
                PrizeProblem(
                    (index, "count"),
                    f"prize tier #{index + 1} ({spec.tier_id!r}): prize count beyond stock: "
                    f"reward {rid!r} is needed {count} times (tiers {tiers}), "
                    f"its stock is {stock}",
                )
            )
    return problems


def coupon_pool_problems(plan: PrizePlan, unused_of: Mapping[str, int]) -> list[PrizeProblem]:
    """Coupon prizes the pools cannot cover. ``unused_of`` maps each known pool id to its
    number of unused codes; a pool not in it is *unknown*; a pool whose tiers together
    need more codes than it has unused is *short* (reported on the first tier naming it)."""
    problems: list[PrizeProblem] = []
    needed: dict[str, list[tuple[int, PrizeTierSpec]]] = {}
    for index, spec in enumerate(plan.tiers):
        if isinstance(spec.prize, CouponPrize):
            pid = spec.prize.pool_id
            if pid not in unused_of:
                problems.append(
                    PrizeProblem(
                        (index, "coupon_pool"),
                        f"prize tier #{index + 1} ({spec.tier_id!r}): unknown coupon pool {pid!r}",
                    )
                )
            else:
                needed.setdefault(pid, []).append((index, spec))
    for pid, uses in needed.items():
        count = sum(spec.count for _, spec in uses)
        if count > unused_of[pid]:
            index, spec = uses[0]
            tiers = ", ".join(f"{s.tier_id!r} ({s.count})" for _, s in uses)
            problems.append(
                PrizeProblem(
                    (index, "count"),
                    f"prize tier #{index + 1} ({spec.tier_id!r}): coupon pool {pid!r} has "
                    f"{unused_of[pid]} unused code(s), tiers {tiers} need {count}",
                )
            )
    return problems


def check_draw_id(draw_id: object) -> str:
    """``draw_id`` if usable in refs (1..96 characters, no ``#``, whitespace or
    control character), else :class:`PrizeError`."""
    if not isinstance(draw_id, str) or not 1 <= len(draw_id) <= MAX_DRAW_ID_CHARS:
        raise PrizeError(f"draw id must be 1..{MAX_DRAW_ID_CHARS} characters, got {draw_id!r}")
    bad = _BAD_DRAW_ID_CHARS.search(draw_id)
    if bad:
        raise PrizeError(
            f"draw id {draw_id!r} must not contain '#', whitespace or control characters "
            f"(found {bad.group()!r} at position {bad.start()})"
        )
    return draw_id


# -- payouts -------------------------------------------------------------------------------


def payout_ref(draw_id: str, rank: int, member_id: str) -> str:
    """The idempotency ref of the prize held by ``member_id`` at ``rank``:
    ``lottery:<draw_id>:rank:<rank>:<member_id>``."""
    return f"lottery:{check_draw_id(draw_id)}:rank:{rank}:{member_id}"


@dataclass(frozen=True)
class Payout:
    """One prize to pay: ``slot`` is the rank first drawn for it (1..k), ``rank`` the
    holder's own rank (``slot`` unless rerolled), ``ref`` its idempotency ref."""

    draw_id: str
    slot: int
    rank: int
    member_id: str
    tier_id: str
    title: str
    prize: Prize
    ref: str

    @property
    def kind(self) -> PrizeKind:
        """What the prize is."""
        return self.prize.kind

    @property
    def posting(self) -> Posting | None:
        """The ledger posting of a points prize (``None`` for rewards and coupons)."""
        if not isinstance(self.prize, PointsPrize):
            return None
        return Posting(
            reason=PRIZE_REASON,
            amount=self.prize.amount_points,
            ref=self.ref,
            note=f"lottery {self.draw_id}: {self.title} (rank {self.rank})",
        )


@dataclass(frozen=True)
class PayoutPlan:
    """What a draw pays: ``payouts`` (one per current holder, in slot order),
    ``replaced`` (payouts of holders a reroll replaced, in the order replaced: never
    to be executed anew; one already executed stays the shell's to report), and
    ``unawarded`` (``(tier_id, count)`` of prizes no entrant was left for)."""

    payouts: tuple[Payout, ...]
    replaced: tuple[Payout, ...] = ()
    unawarded: tuple[tuple[str, int], ...] = ()

    @property
    def total_points(self) -> int:
        """The points all payouts credit together."""
        return sum(p.prize.amount_points for p in self.payouts if isinstance(p.prize, PointsPrize))


def payout_plan(draw_id: str, record: DrawRecord, plan: PrizePlan) -> PayoutPlan:
    """The payouts of ``record`` under ``plan``: pure and deterministic.

    ``plan`` must be valid and its tiers (ids and counts, in order) must be the
    record's prizes, else :class:`PlanMismatch`; the record's rerolls must be
    consistent (else :class:`~autopilot.lottery.draw.InvalidRecord` from ``holders``).
    """
    check_draw_id(draw_id)
    check_plan(plan)
    if tuple(record.prizes) != plan.draw_prizes():
        raise PlanMismatch(
            f"draw {draw_id}: the record's prizes "
            f"{[(p.tier, p.count) for p in record.prizes]} are not the plan's tiers "
            f"{[(p.tier, p.count) for p in plan.draw_prizes()]}"
        )
    specs = {spec.tier_id: spec for spec in plan.tiers}

    def payout(slot: int, holder: Winner) -> Payout:
        spec = specs[holder.tier]
        return Payout(
            draw_id=draw_id,
            slot=slot,
            rank=holder.rank,
            member_id=holder.member_id,
            tier_id=spec.tier_id,
            title=spec.title,
            prize=spec.prize,
            ref=payout_ref(draw_id, holder.rank, holder.member_id),
        )

    holders = record.holders()  # validates the rerolls' chain
    slots = [w.rank for w in record.winners]
    # Follow each slot through its rerolls to list who was replaced (and from which slot).
    current = {w.rank: (w.rank, w) for w in record.winners}
    replaced: list[Payout] = []
    for reroll_ in record.rerolls:
        slot, old = current.pop(reroll_.replaces_rank)
        replaced.append(payout(slot, old))
        current[reroll_.winner.rank] = (slot, reroll_.winner)
    payouts = tuple(payout(slot, holder) for slot, holder in zip(slots, holders, strict=True))
    awarded: dict[str, int] = {}
    for winner in record.winners:
        awarded[winner.tier] = awarded.get(winner.tier, 0) + 1
    unawarded = tuple(
        (spec.tier_id, spec.count - awarded.get(spec.tier_id, 0))
        for spec in plan.tiers
        if spec.count > awarded.get(spec.tier_id, 0)
    )
    return PayoutPlan(payouts, tuple(replaced), unawarded)


# -- coupon codes --------------------------------------------------------------------------


@dataclass(frozen=True)
class PoolShortage:
    """A pool that cannot cover its payouts: ``missing`` codes, for ``waiting`` refs."""

    pool_id: str
    missing: int
    waiting: tuple[Payout, ...]

    @property
    def message(self) -> str:
        """What is short, for ops: the pool, how many codes, which ranks wait."""
        ranks = ", ".join(
            f"rank {p.rank} ({p.member_id}, tier {p.tier_id!r})" for p in self.waiting
        )
        return (
            f"coupon pool {self.pool_id!r} is short by {self.missing} code(s): {ranks} "
            f"got none; upload at least {self.missing} more code(s) and pay again"
        )


@dataclass(frozen=True)
class CouponAssignment:
    """Codes for coupon payouts: ``codes`` maps a payout ref to its code (kept or new);
    ``new`` lists ``(ref, code)`` the shell must still record, in rank order;
    ``retired`` lists ``(ref, code)`` recorded for replaced holders, never given again;
    ``shortages`` the pools that ran out."""

    codes: Mapping[str, str]
    new: tuple[tuple[str, str], ...] = ()
    retired: tuple[tuple[str, str], ...] = ()
    shortages: tuple[PoolShortage, ...] = field(default_factory=tuple)

    @property
    def complete(self) -> bool:
        """True when every coupon payout has a code."""
        return not self.shortages

    def require_complete(self) -> CouponAssignment:
        """``self``, or :class:`PoolShort` with every shortage's message."""
        if self.shortages:
            raise PoolShort("; ".join(s.message for s in self.shortages))
        return self


def assign_coupon_codes(
    plan: PayoutPlan,
    unused_codes: Mapping[str, Sequence[str]],
    given: Mapping[str, str] | None = None,
) -> CouponAssignment:
    """Assign codes to ``plan``'s coupon payouts (rules in the module docstring).

    ``unused_codes`` maps a pool id to its codes not given to anyone yet, in pool
    (upload) order; only the first few are read, so the shell may pass a page.
    ``given`` maps the refs of *this draw* (holders and replaced holders) to the code
    recorded for them. Raises :class:`CouponStateError` when ``given`` names a ref
    that is not a coupon payout of this draw or the same code twice.
    """
    given = dict(given or {})
    coupon_refs = {
        p.ref: p for p in (*plan.payouts, *plan.replaced) if isinstance(p.prize, CouponPrize)
    }
    owner: dict[str, str] = {}
    for ref, code in sorted(given.items()):
        if ref not in coupon_refs:
            raise CouponStateError(
                f"code {code!r} is recorded for {ref!r}, which is not a coupon prize of this draw"
            )
        if code in owner:
            raise CouponStateError(
                f"code {code!r} is recorded for both {owner[code]!r} and {ref!r}"
            )
        owner[code] = ref
    holders = [p for p in plan.payouts if isinstance(p.prize, CouponPrize)]
    codes: dict[str, str] = {p.ref: given[p.ref] for p in holders if p.ref in given}
    new: list[tuple[str, str]] = []
    cursor: dict[str, Iterator[str]] = {}
    waiting: dict[str, list[Payout]] = {}
    for payout in sorted(holders, key=lambda p: p.rank):
        if payout.ref in codes:
            continue
        assert isinstance(payout.prize, CouponPrize)
        pool_id = payout.prize.pool_id
        if pool_id not in cursor:
            # A code already recorded (for this draw) is never handed out again, even
            # if a stale page still lists it as unused.
            cursor[pool_id] = (c for c in unused_codes.get(pool_id, ()) if c not in owner)
        fresh = next(cursor[pool_id], None)
        if fresh is None:
            waiting.setdefault(pool_id, []).append(payout)
            continue
        owner[fresh] = payout.ref
        codes[payout.ref] = fresh
        new.append((payout.ref, fresh))
    retired = tuple(
        (p.ref, given[p.ref])
        for p in plan.replaced
        if p.ref in given and isinstance(p.prize, CouponPrize)
    )
    shortages = tuple(
        PoolShortage(pool_id, len(items), tuple(items)) for pool_id, items in waiting.items()
    )
    return CouponAssignment(codes, tuple(new), retired, shortages)


# -- entry costs and refunds -------------------------------------------------------------


def entry_cost_ref(draw_id: str, member_id: str) -> str:
    """The ref of ``member_id``'s entry cost: ``lottery:<draw_id>:entry:<member_id>``."""
    return f"lottery:{check_draw_id(draw_id)}:entry:{member_id}"


def refund_ref(draw_id: str, member_id: str) -> str:
    """The ref of ``member_id``'s refund: ``lottery:<draw_id>:refund:<member_id>``."""
    return f"lottery:{check_draw_id(draw_id)}:refund:{member_id}"


def _check_cost(cost_points: object, where: str) -> int:
    if (
        isinstance(cost_points, int)
        and not isinstance(cost_points, bool)
        and 0 <= cost_points <= MAX_POINTS
    ):
        return int(cost_points)
    raise PrizeError(f"{where}: cost must be an integer in 0..{MAX_POINTS}, got {cost_points!r}")


def entry_cost_posting(draw_id: str, member_id: str, cost_points: int) -> Posting | None:
    """The debit of an entry's cost (``None`` for a free entry: the ledger has no
    empty entries)."""
    cost = _check_cost(cost_points, f"entry of {member_id!r}")
    if cost == 0:
        return None
    return Posting(
        reason=ENTRY_COST_REASON,
        amount=-cost,
        ref=entry_cost_ref(draw_id, member_id),
        note=f"lottery {draw_id}: entry",
    )


@dataclass(frozen=True)
class Refund:
    """The credit returning ``member_id``'s entry cost."""

    member_id: str
    posting: Posting


def refund_postings(draw_id: str, entries: Iterable[tuple[str, int]]) -> Iterator[Refund]:
    """Refunds of a cancelled draw, streamed: one per entry that cost points.

    ``entries`` are ``(member_id, cost_points)`` strictly sorted by the member id's
    UTF-8 bytes (the entrant list's order, as a Query returns it), each member once:
    O(1) memory for any number of entries. A free entry (cost 0) is skipped; a
    repeated or unsorted member, or a cost outside ``0..MAX_POINTS``, raises
    :class:`PrizeError` naming it when the stream reaches it (refunds yielded before
    are safe to have written: their refs make running again after a fix a no-op).
    """
    check_draw_id(draw_id)
    previous: bytes | None = None
    for index, (member_id, cost_points) in enumerate(entries, start=1):
        where = f"entry #{index} ({member_id!r})"
        if not isinstance(member_id, str) or not member_id:
            raise PrizeError(f"{where}: member id must be a non-empty string")
        encoded = member_id.encode("utf-8", "surrogatepass")
        if previous is not None and encoded <= previous:
            relation = "repeats" if encoded == previous else "sorts before"
            raise PrizeError(
                f"{where}: member id {relation} the previous entry's; entries must be "
                "strictly sorted by member id, each member once"
            )
        previous = encoded
        cost = _check_cost(cost_points, where)
        if cost == 0:
            continue
        yield Refund(
            member_id,
            Posting(
                reason=REFUND_REASON,
                amount=cost,
                ref=refund_ref(draw_id, member_id),
                note=f"lottery {draw_id}: refund (draw cancelled)",
            ),
        )
