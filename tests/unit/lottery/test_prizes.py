"""Prize rules: plan validation, payouts and their refs, coupon codes, refunds."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from autopilot.ledger.rules import MAX_POINTS, Reason, build_entries, entry_id
from autopilot.lottery.draw import (
    MAX_WINNERS,
    DrawRecord,
    InvalidRecord,
    PrizeTier,
    draw,
    entrants_hash,
    reroll,
)
from autopilot.lottery.prizes import (
    PRIZE_REASON,
    REFUND_REASON,
    CouponPrize,
    CouponStateError,
    PlanMismatch,
    PointsPrize,
    PoolShort,
    PrizeError,
    PrizeKind,
    PrizePlan,
    PrizePlanError,
    PrizeTierSpec,
    RewardPrize,
    assign_coupon_codes,
    check_draw_id,
    check_plan,
    coupon_pool_problems,
    entry_cost_posting,
    parse_plan,
    payout_plan,
    payout_ref,
    plan_problems,
    refund_postings,
    reward_stock_problems,
)
from hypothesis import given, settings
from hypothesis import strategies as st

SEED = bytes(range(32))
DRAW_ID = "weekly-2026-12-04"
_AT = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)  # a fixed instant: no clock is read


def entrants_of(count: int, weight_mod: int = 3) -> list[tuple[str, int]]:
    return [(f"m{i:04d}", i % weight_mod + 1) for i in range(count)]


def make_record(entrants: list[tuple[str, int]], plan: PrizePlan) -> DrawRecord:
    digest = entrants_hash(entrants)
    return draw(
        entrants,
        seed=SEED,
        entrants_hash=digest.entrants_hash,
        prizes=plan.draw_prizes(),
        external_value="beacon 7",
    )


def tier(tier_id: str, count: int, prize, title: str | None = None) -> PrizeTierSpec:
    return PrizeTierSpec(tier_id, title if title is not None else tier_id.title(), count, prize)


PLAN = PrizePlan(
    (
        tier("first", 1, PointsPrize(1000)),
        tier("second", 2, RewardPrize("mug")),
        tier("third", 3, CouponPrize("spring")),
        tier("fourth", 4, PointsPrize(10)),
    )
)
ENTRANTS = entrants_of(40)


# -- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tiers", "path", "fragment"),
    [
        ((), (), "at least one prize tier"),
        (
            (tier("first", 0, PointsPrize(5)),),
            (0, "count"),
            "'first'): count must be an integer >= 1",
        ),
        ((tier("first", True, PointsPrize(5)),), (0, "count"), "count must be an integer"),
        (
            (tier("first", 1, PointsPrize(0)),),
            (0, "points"),
            f"points must be an integer in 1..{MAX_POINTS}, got 0",
        ),
        ((tier("first", 1, PointsPrize(-5)),), (0, "points"), "got -5"),
        ((tier("first", 1, PointsPrize(MAX_POINTS + 1)),), (0, "points"), f"got {MAX_POINTS + 1}"),
        ((tier("first", 1, PointsPrize(2.5)),), (0, "points"), "got 2.5"),  # type: ignore[arg-type]
        (
            (tier("first", 1, RewardPrize("Mug!")),),
            (0, "reward"),
            "reward id 'Mug!' is not a valid id",
        ),
        (
            (tier("first", 1, CouponPrize("")),),
            (0, "coupon_pool"),
            "coupon pool id '' is not a valid id",
        ),
        (
            (tier("First Prize", 1, PointsPrize(5)),),
            (0, "id"),
            "tier id 'First Prize' is not a valid id",
        ),
        (
            (tier("first", 1, PointsPrize(5)), tier("first", 2, PointsPrize(1))),
            (1, "id"),
            "prize tier #2 ('first'): tier id 'first' is already used by prize tier #1",
        ),
        ((tier("first", 1, PointsPrize(5), title="  "),), (0, "title"), "title must be non-empty"),
        ((tier("first", 1, PointsPrize(5), title="a\nb"),), (0, "title"), "control characters"),
        ((tier("first", 1, PointsPrize(5), title="x" * 81),), (0, "title"), "at most 80"),
        ((tier("first", 1, "gold"),), (0, "prize"), "prize must be points, a reward or a coupon"),  # type: ignore[arg-type]
        (
            (tier("first", MAX_WINNERS, PointsPrize(1)), tier("second", 1, PointsPrize(1))),
            (),
            f"{MAX_WINNERS + 1} prizes in all, at most {MAX_WINNERS} per draw",
        ),
    ],
)
def test_plan_problems_name_the_tier_and_field(tiers, path, fragment):
    problems = plan_problems(PrizePlan(tuple(tiers)))
    assert [p.path for p in problems] == [path], problems
    assert fragment in problems[0].message
    with pytest.raises(PrizePlanError) as caught:
        check_plan(PrizePlan(tuple(tiers)))
    assert caught.value.problems == tuple(problems)


def test_plan_problems_lists_every_problem_at_once():
    plan = PrizePlan((tier("a", 0, PointsPrize(0)), tier("B", 1, CouponPrize("-x"))))
    problems = plan_problems(plan)
    assert [p.path for p in problems] == [
        (0, "count"),
        (0, "points"),
        (1, "id"),
        (1, "coupon_pool"),
    ]
    assert problems[2].message.startswith("prize tier #2 ('B'):")


def test_a_valid_plan_has_no_problems_and_becomes_draw_tiers():
    assert plan_problems(PLAN) == []
    assert check_plan(PLAN) is PLAN
    assert PLAN.draw_prizes() == (
        PrizeTier("first", 1),
        PrizeTier("second", 2),
        PrizeTier("third", 3),
        PrizeTier("fourth", 4),
    )
    assert PLAN.total_prizes == 10
    assert PLAN.tier("third").prize == CouponPrize("spring")
    assert PLAN.tier("second").prize.kind is PrizeKind.REWARD


def test_plan_at_the_limits_is_valid():
    plan = PrizePlan((tier("all", MAX_WINNERS, PointsPrize(MAX_POINTS)),))
    assert plan_problems(plan) == []


def test_fingerprint_changes_with_any_prize_detail():
    assert PLAN.fingerprint() == PrizePlan(PLAN.tiers).fingerprint()
    changed = PrizePlan((tier("first", 1, PointsPrize(1001)), *PLAN.tiers[1:]))
    assert changed.fingerprint() != PLAN.fingerprint()
    retitled = PrizePlan((tier("first", 1, PointsPrize(1000), title="Gold"), *PLAN.tiers[1:]))
    assert retitled.fingerprint() != PLAN.fingerprint()


def test_reward_stock_problems_sum_tiers_and_report_unknown_rewards():
    plan = PrizePlan(
        (
            tier("a", 2, RewardPrize("mug")),
            tier("b", 3, RewardPrize("mug")),
            tier("c", 1, RewardPrize("hat")),
            tier("d", 1, RewardPrize("ghost")),
            tier("e", 9, RewardPrize("pen")),
        )
    )
    problems = reward_stock_problems(plan, {"mug": 4, "hat": 1, "pen": None})
    assert [p.path for p in problems] == [(3, "reward"), (0, "count")]
    assert "unknown reward 'ghost'" in problems[0].message
    assert problems[1].message == (
        "prize tier #1 ('a'): prize count beyond stock: reward 'mug' is needed 5 times "
        "(tiers 'a' (2), 'b' (3)), its stock is 4"
    )
    (pen,) = reward_stock_problems(plan, {"mug": 5, "hat": 1, "pen": 0, "ghost": 1})
    assert pen.path == (4, "count")
    assert "reward 'pen' is needed 9 times (tiers 'e' (9)), its stock is 0" in pen.message
    assert reward_stock_problems(plan, {"mug": 5, "hat": 1, "pen": None, "ghost": 1}) == []


def test_coupon_pool_problems():
    plan = PrizePlan((tier("a", 2, CouponPrize("p")), tier("b", 2, CouponPrize("p"))))
    assert coupon_pool_problems(plan, {"p": 4}) == []
    (short,) = coupon_pool_problems(plan, {"p": 3})
    assert short.path == (0, "count")
    assert "coupon pool 'p' has 3 unused code(s), tiers 'a' (2), 'b' (2) need 4" in short.message
    unknown = coupon_pool_problems(plan, {})
    assert [p.path for p in unknown] == [(0, "coupon_pool"), (1, "coupon_pool")]
    assert unknown[1].message == "prize tier #2 ('b'): unknown coupon pool 'p'"


@pytest.mark.parametrize("bad", ["", "a#b", "a b", "tab\t", "x" * 97, 7])
def test_bad_draw_ids_are_refused(bad):
    with pytest.raises(PrizeError, match="draw id"):
        check_draw_id(bad)


def test_plan_round_trips_through_its_dict_form():
    data = PLAN.to_dict()
    assert data["tiers"][0] == {"id": "first", "title": "First", "count": 1, "points": 1000}
    assert data["tiers"][2] == {
        "id": "third",
        "title": "Third",
        "count": 3,
        "coupon_pool": "spring",
    }
    assert PrizePlan.from_dict(data) == PLAN
    assert PrizePlan.from_dict(data).fingerprint() == PLAN.fingerprint()
    with pytest.raises(PrizePlanError, match="expected"):
        PrizePlan.from_dict({"tiers": [], "extra": 1})


def test_parse_plan_reports_shape_and_rule_problems_at_document_positions():
    items = [
        {"id": "first", "title": "First", "count": 1, "points": 10, "reward": "mug"},
        {"id": "second", "title": "Second", "count": 0, "points": 5},
        {"id": "third", "count": 2, "coupon_pool": "p", "colour": "red"},
        {"id": "second", "title": "Again", "count": 1, "reward": "mug"},
        "nonsense",
    ]
    plan, problems = parse_plan(items)
    assert plan is None
    assert [(p.path, p.message) for p in problems] == [
        (
            (0,),
            "prize tier #1 ('first'): give exactly one of 'points', 'reward' or "
            "'coupon_pool' (got 'points', 'reward')",
        ),
        ((1, "count"), "prize tier #2 ('second'): count must be an integer >= 1, got 0"),
        ((2, "colour"), "prize tier #3 ('third'): unknown key 'colour'"),
        ((2, "title"), "prize tier #3 ('third'): required key 'title' is missing"),
        (
            (3, "id"),
            "prize tier #4 ('second'): tier id 'second' is already used by prize tier #2",
        ),
        ((4,), "prize tier #5: expected an object"),
    ]
    assert parse_plan("tiers")[1][0].message == "prizes: expected a list of prize tiers"
    good, none = parse_plan(PLAN.to_dict()["tiers"])
    assert (good, none) == (PLAN, [])


# -- payouts -------------------------------------------------------------------------------


def test_payouts_one_per_winner_with_documented_refs_and_postings():
    record = make_record(ENTRANTS, PLAN)
    result = payout_plan(DRAW_ID, record, PLAN)
    assert [p.member_id for p in result.payouts] == [w.member_id for w in record.winners]
    assert [p.tier_id for p in result.payouts] == ["first"] + ["second"] * 2 + ["third"] * 3 + [
        "fourth"
    ] * 4
    first = result.payouts[0]
    assert first.ref == f"lottery:{DRAW_ID}:rank:1:{first.member_id}"
    assert first.slot == first.rank == 1
    assert first.posting is not None
    assert (first.posting.reason, first.posting.amount, first.posting.ref) == (
        Reason.LOTTERY_PRIZE,
        1000,
        first.ref,
    )
    assert PRIZE_REASON is Reason.LOTTERY_PRIZE
    # Rewards and coupons are not ledger movements.
    assert all(p.posting is None for p in result.payouts[1:6])
    assert result.total_points == 1000 + 4 * 10
    assert result.replaced == () and result.unawarded == ()
    # The posting is one the ledger accepts as is.
    (entry,) = build_entries(
        "c1", first.member_id, [first.posting], balance_before=0, at_utc=_AT, actor="lottery"
    )
    assert entry.entry_id == entry_id("c1", first.member_id, "lottery_prize", first.ref)


def test_payouts_are_deterministic():
    first = payout_plan(DRAW_ID, make_record(ENTRANTS, PLAN), PLAN)
    again = payout_plan(DRAW_ID, make_record(list(ENTRANTS), PLAN), PLAN)
    assert first == again
    refs = [p.ref for p in first.payouts]
    assert len(set(refs)) == len(refs)


def test_refs_differ_between_draws():
    record = make_record(ENTRANTS, PLAN)
    one = {p.ref for p in payout_plan("weekly-1", record, PLAN).payouts}
    two = {p.ref for p in payout_plan("weekly-2", record, PLAN).payouts}
    assert not one & two


def test_fewer_entrants_than_prizes_leave_prizes_unawarded():
    record = make_record(entrants_of(4), PLAN)
    result = payout_plan(DRAW_ID, record, PLAN)
    assert [p.tier_id for p in result.payouts] == ["first", "second", "second", "third"]
    assert result.unawarded == (("third", 2), ("fourth", 4))


def test_a_draw_without_entrants_pays_nothing():
    result = payout_plan(DRAW_ID, make_record([], PLAN), PLAN)
    assert result.payouts == () and result.total_points == 0
    assert result.unawarded == (("first", 1), ("second", 2), ("third", 3), ("fourth", 4))
    assert assign_coupon_codes(result, {"spring": ["S1"]}).codes == {}


def test_a_plan_that_changed_since_the_draw_is_refused():
    record = make_record(ENTRANTS, PLAN)
    grown = PrizePlan((*PLAN.tiers[:3], tier("fourth", 5, PointsPrize(10))))
    with pytest.raises(PlanMismatch, match="not the plan's tiers"):
        payout_plan(DRAW_ID, record, grown)
    with pytest.raises(PrizePlanError):
        payout_plan(DRAW_ID, record, PrizePlan((tier("first", 0, PointsPrize(1)),)))
    with pytest.raises(PrizeError, match="draw id"):
        payout_plan("bad id", record, PLAN)


def test_reroll_pays_the_new_holder_once_and_the_replaced_one_never_again():
    record = make_record(ENTRANTS, PLAN)
    before = payout_plan(DRAW_ID, record, PLAN)
    loser = before.payouts[0]
    record = reroll(record, ENTRANTS, replaces_rank=1, reason="unclaimed")
    after = payout_plan(DRAW_ID, record, PLAN)
    newcomer = after.payouts[0]
    assert newcomer.slot == 1 and newcomer.rank == 11 and newcomer.tier_id == "first"
    assert newcomer.member_id != loser.member_id
    assert newcomer.ref == f"lottery:{DRAW_ID}:rank:11:{newcomer.member_id}"
    assert after.replaced == (loser,)
    assert loser.ref not in {p.ref for p in after.payouts}
    # The other slots are untouched: a resumed payout repeats exactly their refs.
    assert after.payouts[1:] == before.payouts[1:]

    # Simulate the ledger: apply the plan before and after the reroll, and again.
    credited: dict[str, int] = {}
    for plan in (before, after, after):
        for payout in plan.payouts:
            if payout.posting is not None:
                key = entry_id("c1", payout.member_id, payout.posting.reason, payout.posting.ref)
                credited.setdefault(key, payout.posting.amount)
    # The replaced winner was paid once (before the reroll), the new holder once.
    assert len(credited) == 1 + 4 + 1


def test_rerolling_a_reroll_tracks_the_slot():
    record = make_record(ENTRANTS, PLAN)
    record = reroll(record, ENTRANTS, replaces_rank=3, reason="unclaimed")  # rank 11 holds slot 3
    record = reroll(record, ENTRANTS, replaces_rank=11, reason="disqualified")  # rank 12
    record = reroll(record, ENTRANTS, replaces_rank=5, reason="unclaimed")  # rank 13
    result = payout_plan(DRAW_ID, record, PLAN)
    by_slot = {p.slot: p for p in result.payouts}
    assert (by_slot[3].rank, by_slot[3].tier_id) == (12, "second")
    assert (by_slot[5].rank, by_slot[5].tier_id) == (13, "third")
    assert [(p.slot, p.rank) for p in result.replaced] == [(3, 3), (3, 11), (5, 5)]
    members = [p.member_id for p in result.payouts]
    assert len(set(members)) == len(members) == PLAN.total_prizes
    assert not {p.member_id for p in result.replaced} & set(members)


def test_an_inconsistent_reroll_chain_is_refused():
    record = make_record(ENTRANTS, PLAN)
    record = reroll(record, ENTRANTS, replaces_rank=1, reason="unclaimed")
    broken = DrawRecord(**{**record.__dict__, "rerolls": record.rerolls * 2})
    with pytest.raises(InvalidRecord, match="holds no prize"):
        payout_plan(DRAW_ID, broken, PLAN)


# -- coupon codes --------------------------------------------------------------------------

COUPON_PLAN = PrizePlan(
    (
        tier("first", 1, PointsPrize(100)),
        tier("second", 2, CouponPrize("gold")),
        tier("third", 3, CouponPrize("silver")),
    )
)


class FakePool:
    """The shell's view of one draw's codes: unused codes per pool, in upload order,
    and what was recorded (ref -> code); records like a conditional write."""

    def __init__(self, pools: dict[str, list[str]]) -> None:
        self.codes = pools
        self.given: dict[str, str] = {}
        self.by_code: dict[str, str] = {}

    def unused(self) -> dict[str, list[str]]:
        return {
            pid: [c for c in codes if c not in self.by_code] for pid, codes in self.codes.items()
        }

    def record(self, ref: str, code: str) -> None:
        assert code not in self.by_code, f"{code} given twice"
        assert ref not in self.given, f"{ref} got two codes"
        self.given[ref] = code
        self.by_code[code] = ref


def test_coupon_codes_follow_rank_order_and_pool_order():
    record = make_record(ENTRANTS, COUPON_PLAN)
    result = payout_plan(DRAW_ID, record, COUPON_PLAN)
    pools = {"gold": ["G1", "G2", "G3"], "silver": ["S1", "S2", "S3", "S4"]}
    assignment = assign_coupon_codes(result, pools)
    coupon_payouts = [p for p in result.payouts if p.kind is PrizeKind.COUPON]
    assert [assignment.codes[p.ref] for p in coupon_payouts] == ["G1", "G2", "S1", "S2", "S3"]
    assert assignment.new == tuple((p.ref, assignment.codes[p.ref]) for p in coupon_payouts)
    assert assignment.complete and assignment.retired == ()
    assert assignment.require_complete() is assignment
    assert assign_coupon_codes(result, pools) == assignment  # same inputs, same answer


def test_recomputation_after_a_crash_gives_the_same_codes():
    record = make_record(ENTRANTS, COUPON_PLAN)
    result = payout_plan(DRAW_ID, record, COUPON_PLAN)
    store = FakePool({"gold": ["G1", "G2", "G3"], "silver": ["S1", "S2", "S3", "S4"]})
    planned = assign_coupon_codes(result, store.unused(), store.given)
    # Crash after recording some codes, in any order (writes are concurrent).
    for ref, code in [planned.new[3], planned.new[0]]:
        store.record(ref, code)
    resumed = assign_coupon_codes(result, store.unused(), store.given)
    assert resumed.codes == planned.codes
    assert set(resumed.new) == set(planned.new) - {planned.new[3], planned.new[0]}
    for ref, code in resumed.new:
        store.record(ref, code)
    finished = assign_coupon_codes(result, store.unused(), store.given)
    assert finished.codes == planned.codes and finished.new == ()


def test_a_rerolled_coupon_winner_keeps_nothing_and_the_replacement_gets_a_fresh_code():
    record = make_record(ENTRANTS, COUPON_PLAN)
    store = FakePool({"gold": ["G1", "G2", "G3"], "silver": ["S1", "S2", "S3", "S4"]})
    result = payout_plan(DRAW_ID, record, COUPON_PLAN)
    for ref, code in assign_coupon_codes(result, store.unused(), store.given).new:
        store.record(ref, code)
    unclaimed = result.payouts[1]  # rank 2, code G1, never claimed
    assert store.given[unclaimed.ref] == "G1"
    record = reroll(record, ENTRANTS, replaces_rank=2, reason="unclaimed")
    after = payout_plan(DRAW_ID, record, COUPON_PLAN)
    assignment = assign_coupon_codes(after, store.unused(), store.given)
    newcomer = after.payouts[1]
    assert assignment.codes[newcomer.ref] == "G3"  # G1 retired, G2 held by rank 3
    assert assignment.retired == ((unclaimed.ref, "G1"),)
    assert assignment.new == ((newcomer.ref, "G3"),)
    assert "G1" not in assignment.codes.values()
    for ref, code in assignment.new:
        store.record(ref, code)
    # Recomputed again (a duplicate tick): nothing new, nothing moved.
    again = assign_coupon_codes(after, store.unused(), store.given)
    assert again.new == () and again.codes == assignment.codes


def test_reroll_before_any_code_was_recorded_needs_no_retired_code():
    record = make_record(ENTRANTS, COUPON_PLAN)
    record = reroll(record, ENTRANTS, replaces_rank=2, reason="disqualified")
    result = payout_plan(DRAW_ID, record, COUPON_PLAN)
    assignment = assign_coupon_codes(result, {"gold": ["G1", "G2"], "silver": ["S1", "S2", "S3"]})
    # Rank order: rank 3 (slot 3) first, then the reroll's rank 7 (slot 2).
    assert [assignment.codes[p.ref] for p in result.payouts[1:3]] == ["G2", "G1"]
    assert assignment.complete and assignment.retired == ()


def test_a_short_pool_says_which_ranks_wait_and_never_gives_a_code_twice():
    record = make_record(ENTRANTS, COUPON_PLAN)
    result = payout_plan(DRAW_ID, record, COUPON_PLAN)
    assignment = assign_coupon_codes(result, {"gold": ["G1", "G2"], "silver": ["S1"]})
    assert not assignment.complete
    (shortage,) = assignment.shortages
    assert (shortage.pool_id, shortage.missing) == ("silver", 2)
    waiting = result.payouts[4:6]
    assert shortage.waiting == tuple(waiting)
    assert shortage.message == (
        "coupon pool 'silver' is short by 2 code(s): "
        f"rank 5 ({waiting[0].member_id}, tier 'third'), "
        f"rank 6 ({waiting[1].member_id}, tier 'third') got none; "
        "upload at least 2 more code(s) and pay again"
    )
    assert sorted(assignment.codes.values()) == ["G1", "G2", "S1"]
    with pytest.raises(PoolShort, match="coupon pool 'silver' is short by 2"):
        assignment.require_complete()
    # An unknown (empty) pool is short by all its prizes.
    (empty,) = assign_coupon_codes(result, {"gold": ["G1", "G2"]}).shortages
    assert (empty.pool_id, empty.missing) == ("silver", 3)


def test_codes_already_recorded_are_skipped_even_if_listed_unused():
    record = make_record(ENTRANTS, COUPON_PLAN)
    result = payout_plan(DRAW_ID, record, COUPON_PLAN)
    gold = [p for p in result.payouts if p.tier_id == "second"]
    stale = {"gold": ["G1", "G2", "G3"], "silver": ["S1", "S2", "S3"]}
    assignment = assign_coupon_codes(result, stale, {gold[1].ref: "G1"})
    assert assignment.codes[gold[0].ref] == "G2"
    assert assignment.codes[gold[1].ref] == "G1"
    # A page listing the same code twice does not give it twice either.
    doubled = assign_coupon_codes(result, {"gold": ["G1", "G1", "G2"], "silver": ["S1"] * 3})
    assert [doubled.codes[p.ref] for p in gold] == ["G1", "G2"]
    assert doubled.shortages[0].missing == 2


def test_inconsistent_recorded_codes_are_refused():
    record = make_record(ENTRANTS, COUPON_PLAN)
    result = payout_plan(DRAW_ID, record, COUPON_PLAN)
    gold = [p for p in result.payouts if p.tier_id == "second"]
    with pytest.raises(CouponStateError, match="recorded for both"):
        assign_coupon_codes(result, {}, {gold[0].ref: "G1", gold[1].ref: "G1"})
    with pytest.raises(CouponStateError, match="not a coupon prize of this draw"):
        assign_coupon_codes(result, {}, {result.payouts[0].ref: "G1"})  # a points prize
    with pytest.raises(CouponStateError, match="not a coupon prize of this draw"):
        assign_coupon_codes(result, {}, {"lottery:other:rank:1:m0001": "G1"})


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(1, 3), min_size=1, max_size=4),
    st.lists(st.integers(0, 10), max_size=6),
    st.lists(st.booleans(), max_size=12),
    st.integers(0, 12),
)
def test_coupon_codes_are_never_given_twice_across_rerolls_crashes_and_retries(
    counts, reroll_picks, crash_pattern, pool_size
):
    plan = PrizePlan(
        tuple(tier(f"t{i}", count, CouponPrize("pool")) for i, count in enumerate(counts))
    )
    entrants = entrants_of(30)
    record = make_record(entrants, plan)
    store = FakePool({"pool": [f"C{i:02d}" for i in range(pool_size)]})
    crashes = iter(crash_pattern)

    def pay(record: DrawRecord) -> None:
        result = payout_plan(DRAW_ID, record, plan)
        assignment = assign_coupon_codes(result, store.unused(), store.given)
        for ref, code in assignment.new:
            if next(crashes, False):
                return  # crashed: the rest is paid by the next run
            store.record(ref, code)  # asserts: no code twice, no ref twice

    pay(record)
    for pick in reroll_picks:
        holders = record.holders()
        if record.entrants_count <= len(record.winners) + len(record.rerolls):
            break
        record = reroll(
            record, entrants, replaces_rank=holders[pick % len(holders)].rank, reason="unclaimed"
        )
        pay(record)
    crashes = iter(())  # the retries run to the end:
    pay(record)  # any crashed run is completed by a retry
    pay(record)  # and a duplicate retry gives nothing more
    final = payout_plan(DRAW_ID, record, plan)
    done = assign_coupon_codes(final, store.unused(), store.given)
    assert done.new == ()
    holder_refs = {p.ref for p in final.payouts}
    given_to_holders = {ref for ref in store.given if ref in holder_refs}
    assert len(given_to_holders) == min(len(holder_refs), pool_size - len(done.retired))
    assert set(done.retired) == {
        (p.ref, store.given[p.ref]) for p in final.replaced if p.ref in store.given
    }


# -- refunds -------------------------------------------------------------------------------


def test_refunds_credit_what_each_paid_with_deterministic_refs():
    entries = [("alice", 5), ("bob", 0), ("carol", 20), ("dave:x", 1)]
    refunds = list(refund_postings(DRAW_ID, entries))
    assert [r.member_id for r in refunds] == ["alice", "carol", "dave:x"]  # bob paid nothing
    assert [(r.posting.amount, r.posting.ref) for r in refunds] == [
        (5, f"lottery:{DRAW_ID}:refund:alice"),
        (20, f"lottery:{DRAW_ID}:refund:carol"),
        (1, f"lottery:{DRAW_ID}:refund:dave:x"),
    ]
    assert all(r.posting.reason is REFUND_REASON for r in refunds)
    assert list(refund_postings(DRAW_ID, entries)) == refunds
    # Each refund undoes the entry's debit in the ledger.
    debit = entry_cost_posting(DRAW_ID, "alice", 5)
    assert debit is not None and debit.amount == -5
    assert debit.ref == f"lottery:{DRAW_ID}:entry:alice" != refunds[0].posting.ref
    entries_written = build_entries(
        "c1", "alice", [debit, refunds[0].posting], balance_before=5, at_utc=_AT, actor="lottery"
    )
    assert entries_written[-1].balance_after == 5
    assert entry_cost_posting(DRAW_ID, "bob", 0) is None


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([("bob", 1), ("alice", 1)], r"entry #2 \('alice'\): member id sorts before"),
        ([("alice", 1), ("alice", 2)], r"entry #2 \('alice'\): member id repeats"),
        ([("alice", -1)], r"entry #1 \('alice'\): cost must be an integer in 0\.\."),
        ([("alice", True)], "cost must be an integer"),
        ([("alice", MAX_POINTS + 1)], "cost must be an integer"),
        ([("", 1)], "member id must be a non-empty string"),
    ],
)
def test_bad_refund_entries_are_refused(entries, message):
    with pytest.raises(PrizeError, match=message):
        list(refund_postings(DRAW_ID, entries))


def test_refunds_stream_without_holding_the_entries():
    def many():
        for i in range(100_000):
            yield f"m{i:06d}", i % 2

    total = sum(r.posting.amount for r in refund_postings(DRAW_ID, many()))
    assert total == 50_000


# -- the payout property -------------------------------------------------------------------

prize_strategy = st.one_of(
    st.integers(1, 5000).map(PointsPrize),
    st.sampled_from(["mug", "hat"]).map(RewardPrize),
    st.sampled_from(["gold", "silver"]).map(CouponPrize),
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 4), prize_strategy), min_size=1, max_size=4),
    st.integers(1, 25),
    st.lists(st.integers(0, 20), max_size=5),
    st.integers(0, 2**32),
)
def test_every_holder_is_paid_exactly_once(tiers, entrant_count, reroll_picks, salt):
    plan = PrizePlan(tuple(tier(f"t{i}", count, prize) for i, (count, prize) in enumerate(tiers)))
    entrants = [(f"u{salt}-{i:03d}", (i * 7 + salt) % 5 + 1) for i in range(entrant_count)]
    entrants.sort(key=lambda e: e[0].encode())
    record = make_record(entrants, plan)
    for pick in reroll_picks:
        if record.entrants_count <= len(record.winners) + len(record.rerolls):
            break
        holders = record.holders()
        record = reroll(
            record, entrants, replaces_rank=holders[pick % len(holders)].rank, reason="unclaimed"
        )
    result = payout_plan(DRAW_ID, record, plan)
    refs = [p.ref for p in result.payouts]
    all_refs = refs + [p.ref for p in result.replaced]
    assert len(set(all_refs)) == len(all_refs)
    assert [(p.member_id, p.rank) for p in result.payouts] == [
        (h.member_id, h.rank) for h in record.holders()
    ]
    assert len(result.payouts) == min(plan.total_prizes, entrant_count)
    amounts = {spec.tier_id: spec.prize for spec in plan.tiers}
    holders_of = {spec.tier_id: 0 for spec in plan.tiers}
    for payout in result.payouts:
        holders_of[payout.tier_id] += 1
        assert payout.ref == payout_ref(DRAW_ID, payout.rank, payout.member_id)
    expected_points = sum(
        prize.amount_points * holders_of[tid]
        for tid, prize in amounts.items()
        if isinstance(prize, PointsPrize)
    )
    assert result.total_points == expected_points
    assert sum(p.posting.amount for p in result.payouts if p.posting) == expected_points
    assert sum(count for _, count in result.unawarded) == plan.total_prizes - len(result.payouts)
    assert payout_plan(DRAW_ID, record, plan) == result
