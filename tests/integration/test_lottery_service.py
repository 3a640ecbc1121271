"""The lottery service on moto from the template: a weekly cycle, exactly once, payouts."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

import pytest
from autopilot.aws import client
from autopilot.errors import (
    BadRequest,
    InsufficientPoints,
    LotteryConflict,
    LotteryNotOpen,
    NotAMember,
    NotEligible,
    UnknownLottery,
)
from autopilot.lottery import draw as drawlib
from autopilot.lottery.store import EntryRow, FrozenChunk, draw_pk

from .lottery_support import (
    CLOSES,
    DRAW_ID,
    DRAWS,
    OPENS,
    check_in_days,
    community_with,
    ctx,
    make_lottery,
    push_config,
)

MEMBERS = [f"m{i:02d}" for i in range(12)]


@pytest.fixture
def app(stack):
    push_config(stack)
    stack.clock.set(OPENS - timedelta(days=3))
    return stack.app()


def _ledger(app, community, member):
    account = app.ledger_store.account(community.id, member)
    return account.state.balance if account else None


def _enter_all(app, community, lottery, members, at):
    for member in members:
        app.lotteries.enter(community, lottery.id, member, request_id=f"r-{member}", at_utc=at)


def _s3_text(stack, key):
    body = client("s3").get_object(Bucket=stack.env["EXPORT_BUCKET"], Key=key)["Body"].read()
    return body.decode()


def _prize_entries(app, community, members):
    found = []
    for member in members:
        for entry in app.ledger_store.member_entries(community.id, member):
            if entry.reason == "lottery_prize":
                found.append((member, entry.amount, entry.ref))
    return sorted(found)


def _week(stack, app, lottery, members=MEMBERS):
    """Open, members check in and enter, close, draw: returns the community."""
    community = community_with(app, lottery)
    stack.clock.set(OPENS)
    assert app.lotteries.open(ctx(community, lottery, "open", OPENS)).ok
    for member in members:
        check_in_days(app, community, member, 2, OPENS + timedelta(hours=1))
    _enter_all(app, community, lottery, members, OPENS + timedelta(days=2))
    stack.clock.set(CLOSES)
    assert app.lotteries.close(ctx(community, lottery, "close", CLOSES)).ok
    stack.clock.set(DRAWS)
    return community


def test_a_weekly_cycle_opens_closes_draws_pays_and_publishes_a_verified_record(stack, app):
    lottery = make_lottery()
    community = _week(stack, app, lottery)
    result = app.lotteries.draw(ctx(community, lottery, "draw", DRAWS))
    assert result.ok, result.error
    assert result.detail["state"] == "paid"
    status = app.lotteries.status(community, "weekly", "m00")
    assert status["state"] == "paid" and status["entrants"] == len(MEMBERS)
    assert status["my_entry"]["weight"] == 1 and status["my_entry"]["reasons"] == []
    record = app.lotteries.record(community, "weekly")
    verdict = drawlib.verify_json(
        record["text"],
        drawlib.parse_entrants(
            _s3_text(stack, record["entrants_key"]).encode().splitlines(keepends=True)
        ),
    )
    assert verdict.verified, verdict.summary()
    assert record["record"]["commitment"] == status["commitment"]
    winners = [w["member_id"] for w in record["record"]["winners"]]
    paid = _prize_entries(app, community, MEMBERS)
    assert sorted((m, a) for m, a, _ in paid) == sorted(
        [(winners[0], 200)] + [(w, 50) for w in winners[1:]]
    )
    posts = [line["text"] for line in stack.lines()]
    assert len(posts) == 3  # announce, closed, winners
    assert status["commitment"] in posts[0]
    assert status["entrants_hash"] in posts[1] and "12 人" in posts[1]
    assert all(w in posts[2] for w in winners)


def test_the_close_freezes_the_list_in_chunks_the_draw_reads_back_exactly(stack, app, monkeypatch):
    """The draw and rerolls read the frozen chunks, not the entry rows: they must hold
    the eligible rows, in order, across chunk boundaries (small chunks here)."""
    import autopilot.lottery.service as service_module

    monkeypatch.setattr(service_module, "FROZEN_CHUNK_BYTES", 20)
    lottery = make_lottery()
    community = _week(stack, app, lottery)
    rows = list(app.lottery_store.weighted_entrants(community.id, DRAW_ID))
    frozen = list(app.lottery_store.frozen_entrants(community.id, DRAW_ID))
    assert frozen == rows and len(rows) == len(MEMBERS)
    chunks = list(
        FrozenChunk.query(
            draw_pk(community.id, DRAW_ID), FrozenChunk.sk.startswith("F#"), consistent_read=True
        )
    )
    assert len(chunks) > 3 and sum(int(c.entrants) for c in chunks) == len(rows)
    assert all(len(c.data) <= 20 for c in chunks)
    assert app.lotteries.draw(ctx(community, lottery, "draw", DRAWS)).ok
    record = app.lotteries.record(community, "weekly")
    assert drawlib.verify_json(record["text"], iter(frozen)).verified


def test_duplicate_and_concurrent_draw_occurrences_pay_once(stack, app):
    lottery = make_lottery()
    community = _week(stack, app, lottery)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            app.lotteries.draw(ctx(community, lottery, "draw", DRAWS))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    # (Two runs of one occurrence at the same instant are kept apart by the dispatcher's
    # claim, which fences sends; here they race on purpose: the money must still move once.)
    posts = len(stack.lines())
    again = app.lotteries.draw(ctx(community, lottery, "draw", DRAWS))  # a duplicate tick
    assert again.ok
    paid = _prize_entries(app, community, MEMBERS)
    assert len(paid) == 4 and len({ref for _, _, ref in paid}) == 4
    assert len(stack.lines()) == posts  # the duplicate posted nothing again


def test_a_duplicate_draw_occurrence_posts_the_winners_once(stack, app):
    lottery = make_lottery()
    community = _week(stack, app, lottery)
    for _ in range(2):
        assert app.lotteries.draw(ctx(community, lottery, "draw", DRAWS)).ok
    assert [line["job"] for line in stack.lines()] == [
        "lottery.weekly.open",
        "lottery.weekly.close",
        "lottery.weekly.draw",
    ]


def test_a_crash_between_draw_and_payout_resumes_and_pays_the_same_winners_once(
    stack, app, monkeypatch
):
    lottery = make_lottery()
    community = _week(stack, app, lottery)
    original = app.ledger.post
    calls = {"n": 0}

    def crash_after_first(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("Lambda timed out")
        return original(*args, **kwargs)

    monkeypatch.setattr(app.ledger, "post", crash_after_first)
    with pytest.raises(RuntimeError):
        app.lotteries.draw(ctx(community, lottery, "draw", DRAWS))
    first = app.lotteries.record(community, "weekly")["text"]
    assert len(_prize_entries(app, community, MEMBERS)) == 1
    monkeypatch.setattr(app.ledger, "post", original)
    fresh = stack.app()  # a new container resumes
    assert fresh.lotteries.draw(ctx(community, lottery, "draw", DRAWS)).ok
    assert fresh.lotteries.record(community, "weekly")["text"] == first
    winners = [w["member_id"] for w in json.loads(first)["winners"]]
    paid = _prize_entries(app, community, MEMBERS)
    assert sorted(m for m, _, _ in paid) == sorted(winners)


def test_nothing_enters_after_close_and_the_list_is_frozen(stack, app):
    lottery = make_lottery()
    community = _week(stack, app, lottery, MEMBERS[:3])
    check_in_days(app, community, "late", 1, OPENS + timedelta(hours=1))
    with pytest.raises(LotteryNotOpen):
        app.lotteries.enter(community, "weekly", "late", request_id="x", at_utc=CLOSES)
    meta = app.lottery_store.meta(community.id, DRAW_ID)
    assert meta.state == "closed" and int(meta.entrants_count) == 3
    # A second close occurrence changes nothing.
    assert app.lotteries.close(ctx(community, lottery, "close", CLOSES)).ok
    assert app.lottery_store.meta(community.id, DRAW_ID).entrants_hash == meta.entrants_hash


def test_an_entrant_not_eligible_at_close_is_excluded_and_refunded(stack, app):
    lottery = make_lottery(rules=make_lottery().rules.of(min_checkins=3, not_left=True))
    lottery = make_lottery(
        rules=lottery.rules, cost_points=5, entry="enter", plan=make_lottery().plan
    )
    community = community_with(app, lottery)
    stack.clock.set(OPENS)
    app.lotteries.open(ctx(community, lottery, "open", OPENS))
    check_in_days(app, community, "keen", 3, OPENS + timedelta(hours=1))
    check_in_days(app, community, "lazy", 1, OPENS + timedelta(hours=1))
    at = OPENS + timedelta(days=1)
    entry = app.lotteries.enter(community, "weekly", "lazy", request_id="a", at_utc=at)
    assert entry.pending and entry.cost_points == 5
    app.lotteries.enter(community, "weekly", "keen", request_id="b", at_utc=at)
    before = _ledger(app, community, "lazy")
    stack.clock.set(CLOSES)
    app.lotteries.close(ctx(community, lottery, "close", CLOSES))
    status = app.lotteries.status(community, "weekly", "lazy")
    assert status["my_entry"]["excluded"] and status["entrants"] == 1
    assert "check-in" in " ".join(status["my_entry"]["reasons"])
    assert _ledger(app, community, "lazy") == before + 5


def test_entry_cost_is_debited_with_the_entry_and_refunded_on_cancel(stack, app):
    lottery = make_lottery(cost_points=15)
    community = community_with(app, lottery)
    stack.clock.set(OPENS)
    app.lotteries.open(ctx(community, lottery, "open", OPENS))
    check_in_days(app, community, "ann", 3, OPENS + timedelta(hours=1))
    balance = _ledger(app, community, "ann")
    at = OPENS + timedelta(days=3)
    first = app.lotteries.enter(community, "weekly", "ann", request_id="k1", at_utc=at)
    assert first.balance == balance - 15 and not first.repeat
    again = app.lotteries.enter(community, "weekly", "ann", request_id="k1", at_utc=at)
    assert again.repeat and _ledger(app, community, "ann") == balance - 15
    # Not enough points: nothing written (no entry row, no debit).
    check_in_days(app, community, "poor", 1, OPENS + timedelta(hours=1))
    poor_balance = _ledger(app, community, "poor")
    assert poor_balance < 15
    with pytest.raises(InsufficientPoints):
        app.lotteries.enter(community, "weekly", "poor", request_id="k2", at_utc=at)
    assert app.lotteries.status(community, "weekly", "poor")["my_entry"] is None
    assert _ledger(app, community, "poor") == poor_balance
    done = app.lotteries.cancel(community, "weekly", reason="typo", actor="ops:olga", at_utc=at)
    assert done == {"draw_id": DRAW_ID, "state": "cancelled", "refunds": 1}
    app.lotteries.cancel(community, "weekly", reason="typo", actor="ops:olga", at_utc=at)
    assert _ledger(app, community, "ann") == balance  # refunded exactly once
    with pytest.raises(LotteryNotOpen):
        app.lotteries.enter(community, "weekly", "poor", request_id="k3", at_utc=at)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"tickets": 2}, BadRequest),
        ({"tickets": "1"}, BadRequest),
        ({"tickets": True}, BadRequest),
        ({"request_id": ""}, BadRequest),
        ({"request_id": "a#b"}, BadRequest),
        ({"lottery_id": "nope"}, UnknownLottery),
        ({"member_id": "ghost"}, NotAMember),
        ({"member_id": "bad\nid"}, BadRequest),
    ],
)
def test_bad_input_to_enter_writes_nothing(stack, app, kwargs, error):
    lottery = make_lottery(cost_points=1)
    community = community_with(app, lottery)
    stack.clock.set(OPENS)
    app.lotteries.open(ctx(community, lottery, "open", OPENS))
    check_in_days(app, community, "ann", 1, OPENS + timedelta(hours=1))
    balance = _ledger(app, community, "ann")
    args: dict[str, Any] = {
        "lottery_id": "weekly",
        "member_id": "ann",
        "request_id": "r1",
        "tickets": 1,
        **kwargs,
    }
    with pytest.raises(error):
        app.lotteries.enter(
            community,
            args["lottery_id"],
            args["member_id"],
            tickets=args["tickets"],
            request_id=args["request_id"],
            at_utc=OPENS + timedelta(days=1),
        )
    rows = list(EntryRow.query(draw_pk(community.id, DRAW_ID), EntryRow.sk.startswith("E#")))
    assert rows == []
    assert _ledger(app, community, "ann") == balance
    assert int(app.lottery_store.meta(community.id, DRAW_ID).entries) == 0


def test_a_member_who_left_or_joined_late_is_refused_with_the_reason(stack, app):
    from autopilot.lottery.eligibility import EligibilityRules

    lottery = make_lottery(rules=EligibilityRules.of(joined_before_open=True, not_left=True))
    community = community_with(app, lottery)
    stack.clock.set(OPENS)
    app.lotteries.open(ctx(community, lottery, "open", OPENS))
    check_in_days(app, community, "newbie", 1, OPENS + timedelta(hours=1))
    with pytest.raises(NotEligible) as caught:
        app.lotteries.enter(
            community, "weekly", "newbie", request_id="r", at_utc=OPENS + timedelta(days=1)
        )
    assert caught.value.reasons and "joined" in caught.value.reasons[0]


def test_record_before_the_draw_is_a_conflict(stack, app):
    lottery = make_lottery()
    community = community_with(app, lottery)
    stack.clock.set(OPENS)
    app.lotteries.open(ctx(community, lottery, "open", OPENS))
    with pytest.raises(LotteryConflict):
        app.lotteries.record(community, "weekly")
    with pytest.raises(UnknownLottery):
        app.lotteries.record(community, "weekly", draw_id="weekly-20990101T0000")


def test_the_dispatcher_runs_a_configured_weekly_lottery_from_its_derived_jobs(
    stack, app, monkeypatch
):
    """The config's lottery, its derived jobs, ticks of the dispatcher function."""
    from autopilot_cli.local.runtime import scheduled_event

    monkeypatch.setenv("AUTOPILOT_OUTPUT_DIR", str(stack.output_dir))
    lottery_doc = {
        "id": "weekly",
        "title": "周五抽奖",
        "schedule": {"opens": "0 0 * * 1", "closes": "55 19 * * 5", "draws": "0 20 * * 5"},
        "entry": {"mode": "enter", "keywords": ["抽奖"]},
        "eligibility": {"min_checkins": 1},
        "prizes": [{"id": "first", "title": "一等奖", "count": 2, "points": 30}],
        "posts": {"channels": ["group"]},
    }
    push_config(stack, lotteries=[lottery_doc], published_at="2026-11-29T00:00:00Z")

    def tick(when):
        stack.clock.set(when)
        return stack.runtime.invoke("DispatcherFunction", scheduled_event(when))

    tick(OPENS + timedelta(seconds=5))
    fresh = stack.app()
    community = fresh.config().communities[0]
    for member in MEMBERS[:4]:
        check_in_days(fresh, community, member, 1, OPENS + timedelta(hours=1))
        fresh.lotteries.enter(
            community, "weekly", member, request_id=member, at_utc=OPENS + timedelta(days=1)
        )
    tick(CLOSES + timedelta(seconds=5))
    tick(DRAWS + timedelta(seconds=5))
    tick(DRAWS + timedelta(minutes=1, seconds=5))  # a later tick runs nothing again
    status = fresh.lotteries.status(community, "weekly", MEMBERS[0])
    assert status["state"] == "paid" and status["entrants"] == 4
    assert len(status["winners"]) == 2
    assert len(_prize_entries(fresh, community, MEMBERS[:4])) == 2
    assert [line["job"] for line in stack.lines()] == [
        "lottery.weekly.open",
        "lottery.weekly.close",
        "lottery.weekly.draw",
    ]
    record = fresh.lotteries.record(community, "weekly")
    assert drawlib.verify_json(record["text"]).verified


def test_a_failed_extra_item_cancels_the_whole_ledger_movement(stack, app):
    """The entry's debit and the entry row commit together or not at all."""
    from autopilot.ledger.rules import Posting, Reason
    from autopilot.ledger.store import ExtraConditionFailed, ExtraItem
    from autopilot.lottery.store import MetaItem

    lottery = make_lottery(cost_points=5)
    community = community_with(app, lottery)
    stack.clock.set(OPENS)
    app.lotteries.open(ctx(community, lottery, "open", OPENS))
    check_in_days(app, community, "ann", 1, OPENS + timedelta(hours=1))
    balance = _ledger(app, community, "ann")
    app.lotteries.cancel(community, "weekly", reason="r", actor="ops:olga", at_utc=OPENS)
    row = app.lottery_store.entry_row(
        community.id, DRAW_ID, "ann", tickets=1, cost_paid=5, entered_at="x"
    )
    with pytest.raises(ExtraConditionFailed) as caught:
        app.ledger.post(
            community,
            "ann",
            Posting(Reason.LOTTERY_ENTRY, -5, f"lottery:{DRAW_ID}:entry:ann"),
            OPENS + timedelta(days=1),
            actor="member:ann",
            extra_items=(
                ExtraItem("entry", row, condition=EntryRow.pk.does_not_exist()),
                ExtraItem(
                    "draw",
                    MetaItem(draw_pk(community.id, DRAW_ID), "META"),
                    condition=MetaItem.state == "open",
                    actions=(MetaItem.entries.add(1),),
                ),
            ),
        )
    assert caught.value.label == "draw"
    assert _ledger(app, community, "ann") == balance
    assert (
        app.ledger_store.marker(
            community.id, "ann", f"REF#lottery_entry#lottery:{DRAW_ID}:entry:ann"
        )
        is None
    )
    assert app.lotteries.status(community, "weekly", "ann")["my_entry"] is None


def test_a_close_or_draw_without_this_weeks_opening_repeats_nothing_of_last_week(stack, app):
    lottery = make_lottery()
    community = _week(stack, app, lottery, MEMBERS[:3])
    assert app.lotteries.draw(ctx(community, lottery, "draw", DRAWS)).ok
    posts = len(stack.lines())
    # Next week's open did not run (say the lottery was disabled over the weekend).
    close, draw = CLOSES + timedelta(weeks=1), DRAWS + timedelta(weeks=1)
    stack.clock.set(close)
    closed = app.lotteries.close(ctx(community, lottery, "close", close))
    stack.clock.set(draw)
    drawn = app.lotteries.draw(ctx(community, lottery, "draw", draw))
    assert closed.ok and closed.detail["draw_id"] is None
    assert drawn.ok and drawn.detail["draw_id"] is None
    assert len(stack.lines()) == posts


def test_draw_seeds_are_fresh_unless_a_simulation_sets_their_source(stack, app):
    import hashlib

    from autopilot.lottery.service import set_seed_source

    lottery = make_lottery()
    community = community_with(app, lottery)
    previous = set_seed_source(
        lambda community_id, draw_id: hashlib.sha256(draw_id.encode()).digest()
    )
    try:
        stack.clock.set(OPENS)
        app.lotteries.open(ctx(community, lottery, "open", OPENS))
    finally:
        set_seed_source(previous)
    expected = hashlib.sha256(hashlib.sha256(DRAW_ID.encode()).digest()).hexdigest()
    assert app.lotteries.status(community, "weekly", "x")["commitment"] == expected
    # The default: 32 fresh bytes from secrets for the next week's draw.
    later = OPENS + timedelta(weeks=1)
    stack.clock.set(later)
    app.lotteries.open(ctx(community, lottery, "open", later))
    seed = app.lottery_store.seed(community.id, "weekly-20261207T0000")
    assert (
        len(bytes.fromhex(seed)) == 32
        and seed != hashlib.sha256(b"weekly-20261207T0000").hexdigest()
    )
