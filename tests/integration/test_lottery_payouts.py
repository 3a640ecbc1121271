"""Lottery prizes on moto: coupon codes, reward stock, claims, rerolls, external values."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from autopilot.config.model import Reward
from autopilot.errors import LotteryConflict, NothingToClaim
from autopilot.ledger.store import StockItem
from autopilot.lottery import draw as drawlib
from autopilot.lottery.codes import CouponPools, parse_codes
from autopilot.lottery.store import CodeItem, pool_pk

from .lottery_support import (
    CLOSES,
    DRAWS,
    OPENS,
    check_in_days,
    community_with,
    ctx,
    make_lottery,
    prize_plan,
    push_config,
)

MEMBERS = [f"m{i:02d}" for i in range(8)]


@pytest.fixture
def app(stack):
    push_config(stack)
    stack.clock.set(OPENS - timedelta(days=3))
    return stack.app()


def _closed_week(stack, app, lottery, members=MEMBERS, **community_fields):
    community = community_with(app, lottery, **community_fields)
    stack.clock.set(OPENS)
    assert app.lotteries.open(ctx(community, lottery, "open", OPENS)).ok
    for member in members:
        check_in_days(app, community, member, 1, OPENS + timedelta(hours=1))
        app.lotteries.enter(
            community, lottery.id, member, request_id=f"r-{member}", at_utc=OPENS + timedelta(1)
        )
    stack.clock.set(CLOSES)
    assert app.lotteries.close(ctx(community, lottery, "close", CLOSES)).ok
    stack.clock.set(DRAWS)
    return community


def _draw_concurrently(app, community, lottery, runs=3):
    errors = []

    def run():
        try:
            app.lotteries.draw(ctx(community, lottery, "draw", DRAWS))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


def _upload(stack, community, pool, codes):
    pools = CouponPools(stack.env["LOTTERY_TABLE"], "us-east-1")
    data = "".join(f"{c}\n" for c in codes).encode()
    pools.upload(community.id, pool, parse_codes(data), now=stack.clock.now())


def _given(community, pool):
    return {
        item.code: item.given_to
        for item in CodeItem.query(pool_pk(community.id, pool), CodeItem.sk.startswith("CODE#"))
    }


def test_coupon_codes_are_never_given_twice_across_concurrent_draws_and_shortage(stack, app):
    plan = prize_plan([{"id": "coffee", "title": "咖啡券", "count": 3, "coupon_pool": "coffee"}])
    lottery = make_lottery(plan=plan)
    community = _closed_week(stack, app, lottery)
    _upload(stack, community, "coffee", ["C1", "C2"])  # one code short
    _draw_concurrently(app, community, lottery)
    slots = app.lottery_store.pay_items(community.id, "weekly-20261130T0000")
    codes = [s.code for s in slots if s.code]
    assert sorted(codes) == ["C1", "C2"]
    assert [s.status for s in slots].count("short") == 1
    given = _given(community, "coffee")
    assert sorted(given.values()) == sorted(s.ref for s in slots if s.code)
    # Ops upload more codes; running the draw step again pays the short slot only.
    _upload(stack, community, "coffee", ["C1", "C3", "C4"])
    result = app.lotteries.draw(ctx(community, lottery, "draw", DRAWS))
    assert result.ok, result.error
    slots = app.lottery_store.pay_items(community.id, "weekly-20261130T0000")
    assert sorted(s.code for s in slots) == ["C1", "C2", "C3"]
    assert {s.status for s in slots} == {"paid"}
    given = _given(community, "coffee")
    assert given["C4"] is None and len({v for v in given.values() if v}) == 3


def test_reward_stock_never_goes_below_zero(stack, app):
    plan = prize_plan([{"id": "mug", "title": "马克杯", "count": 3, "reward": "mug"}])
    lottery = make_lottery(plan=plan)
    community = _closed_week(stack, app, lottery, rewards=(Reward("mug", "马克杯", 100, stock=2),))
    _draw_concurrently(app, community, lottery)
    app.lotteries.draw(ctx(community, lottery, "draw", DRAWS))
    stock = StockItem.get(f"REWARD#{community.id}#mug", "STOCK", consistent_read=True)
    assert int(stock.redeemed) == 2
    statuses = sorted(
        s.status for s in app.lottery_store.pay_items(community.id, "weekly-20261130T0000")
    )
    assert statuses == ["paid", "paid", "short"]


def test_rerolls_on_claim_expiry_never_repeat_a_winner_and_the_record_verifies(stack, app):
    lottery = make_lottery(claim_window=timedelta(days=1))
    community = _closed_week(stack, app, lottery)
    result = app.lotteries.draw(ctx(community, lottery, "draw", DRAWS))
    assert result.ok, result.error
    slots = app.lottery_store.pay_items(community.id, "weekly-20261130T0000")
    assert {s.status for s in slots} == {"awaiting_claim"}
    first_holder = slots[0].member_id
    claimed = app.lotteries.claim(
        community, "weekly", first_holder, at_utc=DRAWS + timedelta(hours=1)
    )
    assert claimed["status"] == "paid"
    again = app.lotteries.claim(
        community, "weekly", first_holder, at_utc=DRAWS + timedelta(hours=2)
    )
    assert again["status"] == "paid"  # a repeat: paid once
    assert app.ledger_store.account(community.id, first_holder).state.balance == 10 + 200
    # Everyone else lets the window pass; each expire step rerolls to the next rank.
    holders_seen = {s.member_id for s in slots}
    when = DRAWS + timedelta(days=1, minutes=15)
    for _ in range(4):
        stack.clock.set(when)
        assert app.lotteries.expire(ctx(community, lottery, "expire", when)).ok
        for slot in app.lottery_store.pay_items(community.id, "weekly-20261130T0000"):
            holders_seen.add(slot.member_id)
        when += timedelta(days=1, minutes=15)
    record = app.lotteries.record(community, "weekly")
    data = record["record"]
    everyone = [w["member_id"] for w in data["winners"]] + [r["member_id"] for r in data["rerolls"]]
    assert len(everyone) == len(set(everyone)) == len(MEMBERS)  # all ranks used, none twice
    assert all(r["reason"] == "unclaimed" for r in data["rerolls"])
    entrants = app.lotteries.entrant_list(community, "weekly")
    assert drawlib.verify_json(record["text"], entrants).verified
    with pytest.raises(NothingToClaim):
        app.lotteries.claim(community, "weekly", everyone[1], at_utc=when)
    # The claimed prize was paid once, never rerolled.
    assert app.ledger_store.account(community.id, first_holder).state.balance == 10 + 200


def test_a_disqualified_holder_is_rerolled_with_the_reason(stack, app):
    lottery = make_lottery(claim_window=timedelta(days=2))
    community = _closed_week(stack, app, lottery)
    app.lotteries.draw(ctx(community, lottery, "draw", DRAWS))
    slot = app.lottery_store.pay_items(community.id, "weekly-20261130T0000")[1]
    answer = app.lotteries.disqualify(
        community, "weekly", slot.member_id, reason="bot account", actor="ops:olga", at_utc=DRAWS
    )
    assert answer["status"] == "disqualified"
    later = DRAWS + timedelta(minutes=15)
    stack.clock.set(later)
    assert app.lotteries.expire(ctx(community, lottery, "expire", later)).detail["rerolled"] == 1
    data = app.lotteries.record(community, "weekly")["record"]
    assert [(r["replaces_rank"], r["reason"]) for r in data["rerolls"]] == [
        (slot.rank, "disqualified")
    ]
    new = app.lottery_store.pay_items(community.id, "weekly-20261130T0000")[1]
    assert new.member_id != slot.member_id and new.status == "awaiting_claim"
    assert app.lotteries.claim(community, "weekly", new.member_id, at_utc=later)["status"] == "paid"
    with pytest.raises(LotteryConflict):  # a paid prize is not taken back
        app.lotteries.disqualify(
            community, "weekly", new.member_id, reason="x", actor="ops:olga", at_utc=later
        )
    with pytest.raises(NothingToClaim):  # the disqualified member holds nothing now
        app.lotteries.claim(community, "weekly", slot.member_id, at_utc=later)


def test_the_external_value_is_mixed_in_before_the_draw_and_refused_after(stack, app):
    lottery = make_lottery()
    community = _closed_week(stack, app, lottery)
    beacon = "drand round 123456: 9f8e7d"
    answer = app.lotteries.set_external_value(
        community, "weekly", beacon, actor="ops:olga", at_utc=DRAWS - timedelta(minutes=2)
    )
    assert answer["external_value"] == beacon
    app.lotteries.draw(ctx(community, lottery, "draw", DRAWS))
    record = app.lotteries.record(community, "weekly")
    assert record["record"]["external_value"] == beacon
    assert drawlib.verify_json(record["text"]).verified
    with pytest.raises(LotteryConflict):
        app.lotteries.set_external_value(
            community, "weekly", "late", actor="ops:olga", at_utc=DRAWS + timedelta(minutes=1)
        )


def test_a_claim_and_a_reroll_racing_for_one_prize_pay_it_once(stack, app, monkeypatch):
    """The expire step marks a lapsed prize before rerolling it; a claim moves it out of
    awaiting_claim first. Whichever moves first wins; the prize is never paid twice."""
    lottery = make_lottery(claim_window=timedelta(days=1))
    community = _closed_week(stack, app, lottery)
    app.lotteries.draw(ctx(community, lottery, "draw", DRAWS))
    slot = app.lottery_store.pay_items(community.id, "weekly-20261130T0000")[0]
    late = DRAWS + timedelta(days=1, minutes=15)
    store = app.lottery_store
    original = store.update_slot

    raced = []

    def claim_lands_first(community_id, draw_id, slot_no, actions, *, ref, statuses):
        if statuses == ["awaiting_claim"] and ref == slot.ref and not raced:
            raced.append(True)  # the expire step's mark: the claim commits just before it
            app.lotteries.claim(community, "weekly", slot.member_id, at_utc=slot_deadline)
        return original(community_id, draw_id, slot_no, actions, ref=ref, statuses=statuses)

    from autopilot.timeutil import parse_iso

    slot_deadline = parse_iso(slot.claim_by)
    monkeypatch.setattr(store, "update_slot", claim_lands_first)
    stack.clock.set(late)
    app.lotteries.expire(ctx(community, lottery, "expire", late))
    monkeypatch.setattr(store, "update_slot", original)
    assert raced
    after = app.lottery_store.pay_items(community.id, "weekly-20261130T0000")[0]
    assert after.member_id == slot.member_id and after.status == "paid"
    data = app.lotteries.record(community, "weekly")["record"]
    assert slot.rank not in [r["replaces_rank"] for r in data["rerolls"]]
    assert app.ledger_store.account(community.id, slot.member_id).state.balance == 10 + 200


def test_a_claimed_coupon_gets_its_code_at_the_next_expire_step(stack, app):
    plan = prize_plan([{"id": "coffee", "title": "咖啡券", "count": 1, "coupon_pool": "coffee"}])
    lottery = make_lottery(plan=plan, claim_window=timedelta(days=1))
    community = _closed_week(stack, app, lottery)
    _upload(stack, community, "coffee", ["ONLY"])
    app.lotteries.draw(ctx(community, lottery, "draw", DRAWS))
    (slot,) = app.lottery_store.pay_items(community.id, "weekly-20261130T0000")
    answer = app.lotteries.claim(community, "weekly", slot.member_id, at_utc=DRAWS)
    assert answer["status"] == "pending" and answer["code"] is None
    later = DRAWS + timedelta(minutes=15)
    stack.clock.set(later)
    assert app.lotteries.expire(ctx(community, lottery, "expire", later)).ok
    status = app.lotteries.status(community, "weekly", slot.member_id)
    assert status["my_prize"]["code"] == "ONLY" and status["my_prize"]["status"] == "paid"
    assert _given(community, "coffee") == {"ONLY": slot.ref}


def test_winners_are_told_privately_once_and_a_rerolled_holder_too(stack, app):
    lottery = make_lottery(claim_window=timedelta(days=1))
    community = community_with(app, lottery)
    stack.clock.set(OPENS)
    app.lotteries.open(ctx(community, lottery, "open", OPENS))
    for member in MEMBERS:
        app.members.upsert(community, member, {"dm_address": f"dm-{member}"}, OPENS)
        check_in_days(app, community, member, 1, OPENS + timedelta(hours=1))
        app.lotteries.enter(community, "weekly", member, request_id=member, at_utc=OPENS)
    stack.clock.set(CLOSES)
    app.lotteries.close(ctx(community, lottery, "close", CLOSES))
    stack.clock.set(DRAWS)
    for _ in range(2):  # a duplicate occurrence tells nobody twice
        assert app.lotteries.draw(ctx(community, lottery, "draw", DRAWS)).ok
    slots = app.lottery_store.pay_items(community.id, "weekly-20261130T0000")
    dms = [line for line in stack.lines() if line.get("to")]
    assert sorted(d["to"] for d in dms) == sorted(f"dm-{s.member_id}" for s in slots)
    assert all("领奖" in d["text"] and "前回复" in d["text"] for d in dms)
    later = DRAWS + timedelta(days=1, minutes=15)
    stack.clock.set(later)
    app.lotteries.expire(ctx(community, lottery, "expire", later))
    new_holders = {
        s.member_id for s in app.lottery_store.pay_items(community.id, "weekly-20261130T0000")
    }
    dms = [line["to"] for line in stack.lines() if line.get("to")]
    assert len(dms) == len(set(dms)) == 8  # 4 winners, then the 4 who replaced them
    assert {f"dm-{m}" for m in new_holders} <= set(dms)


def test_a_member_who_left_cannot_enter(stack, app):
    from autopilot.errors import MemberLeft

    lottery = make_lottery()
    community = community_with(app, lottery)
    stack.clock.set(OPENS)
    app.lotteries.open(ctx(community, lottery, "open", OPENS))
    check_in_days(app, community, "gone", 1, OPENS + timedelta(hours=1))
    app.members.leave(community, "gone", OPENS + timedelta(hours=5))
    with pytest.raises(MemberLeft):
        app.lotteries.enter(
            community, "weekly", "gone", request_id="r", at_utc=OPENS + timedelta(days=1)
        )
