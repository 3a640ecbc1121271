"""Typed results, enums and error codes of the check-in, ledger and member services.

Services return frozen dataclasses (their ``to_json`` is the HTTP answer and
what idempotency markers store); states and reasons are ``StrEnum``s whose
values are the strings already stored in DynamoDB and sent by the API; errors
are chosen by codes, never by an error message's wording.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime

import pytest
from autopilot.api.responses import entries_csv
from autopilot.checkins.rules import MakeupNotAllowed, MakeupRefusal
from autopilot.checkins.service import (
    MAKEUP_ERRORS,
    AwardResult,
    CheckinResult,
    CheckinSource,
)
from autopilot.errors import BadRequest, InsufficientPoints
from autopilot.ledger.rules import (
    CSV_COLUMNS,
    MISMATCH_KINDS,
    REASONS,
    MismatchKind,
    Period,
    Posting,
    Reason,
    build_entries,
)
from autopilot.ledger.service import MovementResult
from autopilot.members.service import validate_profile

AT = datetime(2026, 11, 26, 1, 2, 3, tzinfo=UTC)


def test_enum_values_are_the_stored_and_answered_strings() -> None:
    # Entries, aggregates (r_<reason>), markers (REF#<reason>#) and API answers hold
    # these strings: renaming a value would orphan stored data.
    assert [r.value for r in Reason] == [
        "checkin",
        "streak_bonus",
        "makeup",
        "redemption",
        "adjustment",
        "lottery_prize",
        "referral",
        "expiry",
        "lottery_entry",
        "lottery_refund",
    ]
    assert tuple(r.value for r in Reason) == REASONS
    assert [k.value for k in MismatchKind] == ["balance", "duplicate_id", "chain", "aggregate"]
    assert tuple(k.value for k in MismatchKind) == MISMATCH_KINDS
    assert [m.value for m in MakeupRefusal] == [
        "disabled",
        "nothing_to_make_up",
        "already_checked_in_today",
        "insufficient_balance",
    ]
    assert [s.value for s in CheckinSource] == ["api", "chat"]
    assert [p.value for p in Period] == ["day", "month"]


def test_every_makeup_refusal_has_its_error_chosen_by_code_not_wording() -> None:
    assert set(MAKEUP_ERRORS) == set(MakeupRefusal)
    # The same refusal worded differently (a translation, a reworded message) maps
    # to the same error: nothing reads the text.
    reworded = MakeupNotAllowed("积分不足，无法补签", code=MakeupRefusal.INSUFFICIENT_BALANCE)
    assert MAKEUP_ERRORS[reworded.code] is InsufficientPoints
    assert MAKEUP_ERRORS[MakeupRefusal.DISABLED] is BadRequest
    with pytest.raises(TypeError):
        MakeupNotAllowed("a refusal without a code cannot be classified")  # type: ignore[call-arg]


def _result(**changes: object) -> CheckinResult:
    base = CheckinResult(
        community="sunrise",
        member="alice",
        day=date(2026, 11, 26),
        makeup=False,
        repeat=False,
        streak=7,
        longest_streak=7,
        freezes=1,
        freezes_used=0,
        freeze_earned=True,
        awards=(
            AwardResult(Reason.CHECKIN, 10, "check-in 2026-11-26", "a" * 32),
            AwardResult(Reason.STREAK_BONUS, 20, "7-day milestone", "b" * 32),
        ),
        points_awarded=30,
        balance=80,
        lifetime_points=80,
        tier="silver",
        tier_change=("bronze", "silver"),
        at_utc=AT,
        source=CheckinSource.API,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_checkin_result_json_is_the_documented_answer_and_round_trips() -> None:
    result = _result()
    document = result.to_json()
    assert list(document) == [
        "community",
        "member",
        "day",
        "makeup",
        "repeat",
        "streak",
        "longest_streak",
        "freezes",
        "freezes_used",
        "freeze_earned",
        "awards",
        "points_awarded",
        "balance",
        "lifetime_points",
        "tier",
        "tier_change",
        "at_utc",
        "source",
    ]
    assert document["day"] == "2026-11-26" and document["at_utc"] == "2026-11-26T01:02:03Z"
    assert document["tier_change"] == ["bronze", "silver"]
    assert document["awards"][1] == {
        "reason": "streak_bonus",
        "amount": 20,
        "detail": "7-day milestone",
        "entry_id": "b" * 32,
    }
    assert all(type(a["reason"]) is str for a in document["awards"])
    again = CheckinResult.from_json(document, repeat=True)
    assert again == dataclasses.replace(result, repeat=True)
    assert again.to_json() == {**document, "repeat": True}
    assert (
        CheckinResult.from_json(_result(tier_change=None).to_json(), repeat=False).tier_change
        is None
    )


def test_movement_result_json_has_reward_fields_for_redemptions_only() -> None:
    adjustment = MovementResult(
        "sunrise", "alice", Reason.ADJUSTMENT, 30, "adjustment:w-1", "c" * 32, 40, AT
    )
    assert list(adjustment.to_json()) == [
        "community",
        "member",
        "reason",
        "amount",
        "ref",
        "entry_id",
        "balance",
        "at_utc",
        "repeat",
    ]
    redemption = dataclasses.replace(
        adjustment, reason=Reason.REDEMPTION, amount=-15, reward="mug", reward_name="Mug"
    )
    document = redemption.to_json()
    assert (document["reason"], document["reward"], document["reward_name"]) == (
        "redemption",
        "mug",
        "Mug",
    )
    assert MovementResult.from_json(document, repeat=True) == dataclasses.replace(
        redemption, repeat=True
    )


def test_ledger_csv_is_rendered_from_entries_not_from_answer_dicts() -> None:
    entries = build_entries(
        "sunrise",
        "alice",
        [Posting(Reason.ADJUSTMENT, 5, "adjustment:x", "=cmd")],
        balance_before=0,
        at_utc=AT,
        actor="ops:olga",
    )
    lines = entries_csv(entries).splitlines()
    assert lines[0] == ",".join(CSV_COLUMNS)
    assert lines[1].endswith(",adjustment,5,5,adjustment:x,ops:olga,'=cmd")


def test_build_entries_takes_postings_and_keyword_only_context() -> None:
    with pytest.raises(TypeError):
        build_entries("c", "m", [], 0, AT, "x")  # type: ignore[misc]
    (entry,) = build_entries(
        "c", "m", [Posting(Reason.CHECKIN, 10, "checkin:d")], balance_before=0, at_utc=AT, actor="x"
    )
    assert entry.reason is Reason.CHECKIN and entry.note == ""


@pytest.mark.parametrize("referrer", ["bob#2", "bob smith", "bob\u200b", "x" * 129])
def test_referred_by_follows_the_member_id_rule(referrer: str) -> None:
    with pytest.raises(BadRequest, match="referred_by"):
        validate_profile({"referred_by": referrer})


def test_a_valid_referrer_is_kept() -> None:
    assert validate_profile({"referred_by": "slack:U123"}) == {"referred_by": "slack:U123"}
    assert validate_profile({"referred_by": None}) == {"referred_by": None}
