"""Ledger rules: deterministic ids, chained entries, CSV safety, reconciliation, totals."""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from autopilot.ledger.rules import (
    CSV_COLUMNS,
    MAX_POINTS,
    REASONS,
    Entry,
    Mismatch,
    Posting,
    build_entries,
    csv_row,
    entry_id,
    outstanding_mismatch,
    reconcile,
    summarize,
)
from autopilot.timeutil import zone
from hypothesis import given, settings
from hypothesis import strategies as st

AT = datetime(2026, 11, 26, 1, 2, 3, tzinfo=UTC)


def build(
    community_id: str,
    member_id: str,
    movements: list[tuple[str, int, str, str]],
    balance_before: int,
    at_utc: datetime,
    actor: str,
    seq: int | None = None,
) -> list[Entry]:
    """``build_entries`` with movements written as ``(reason, amount, ref, note)``."""
    return build_entries(
        community_id,
        member_id,
        [Posting(r, amount, ref, note) for r, amount, ref, note in movements],  # type: ignore[arg-type]
        balance_before=balance_before,
        at_utc=at_utc,
        actor=actor,
        seq=seq,
    )


def entries_for(
    member: str,
    movements: list[tuple[str, int, str, str]],
    at: datetime = AT,
    balance_before: int = 0,
) -> list[Entry]:
    return build("c1", member, movements, balance_before, at, "system")


# --- ids ---------------------------------------------------------------------------------


def test_entry_id_is_deterministic_and_documented() -> None:
    expected = hashlib.sha256(b"c1\x1fm1\x1fcheckin\x1f2026-11-26").hexdigest()[:32]
    assert entry_id("c1", "m1", "checkin", "2026-11-26") == expected
    assert entry_id("c1", "m1", "checkin", "2026-11-26") == expected
    assert len(expected) == 32


def test_entry_id_differs_in_every_field_and_resists_concatenation() -> None:
    ids = {
        entry_id("c1", "m1", "checkin", "d1"),
        entry_id("c2", "m1", "checkin", "d1"),
        entry_id("c1", "m2", "checkin", "d1"),
        entry_id("c1", "m1", "streak_bonus", "d1"),
        entry_id("c1", "m1", "checkin", "d2"),
        # Same concatenation, different split: the separator keeps them apart.
        entry_id("c1", "m1c", "heckin", "d1"),
    }
    assert len(ids) == 6


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(st.text(), st.text(), st.sampled_from(REASONS), st.text()),
        unique=True,
        max_size=30,
    )
)
def test_distinct_keys_give_distinct_ids(keys: list[tuple[str, str, str, str]]) -> None:
    # Text without the separator never collides (at 128 bits, collisions are not a concern).
    keys = [k for k in keys if not any("\x1f" in part for part in k)]
    assert len({entry_id(*k) for k in keys}) == len(keys)


# --- build_entries -----------------------------------------------------------------------


def test_build_entries_chains_balances_in_order() -> None:
    at = datetime(2026, 11, 26, 9, 2, 3, tzinfo=zone("Asia/Shanghai"))
    entries = build(
        "c1",
        "m1",
        [
            ("makeup", -5, "makeup:2026-11-25", ""),
            ("checkin", 10, "2026-11-25", ""),
            ("streak_bonus", 50, "2026-11-25", "7-day milestone"),
        ],
        20,
        at,
        "member:m1",
    )
    assert [e.balance_after for e in entries] == [15, 25, 75]
    assert [e.amount for e in entries] == [-5, 10, 50]
    assert entries[2].note == "7-day milestone"
    assert all(e.at_utc == at and e.at_utc.tzinfo == UTC for e in entries)
    assert all(e.actor == "member:m1" and e.community_id == "c1" for e in entries)
    assert entries[1].entry_id == entry_id("c1", "m1", "checkin", "2026-11-25")


def test_build_entries_no_movements() -> None:
    assert entries_for("m1", []) == []


@pytest.mark.parametrize(
    ("movements", "balance_before", "message"),
    [
        ([("bogus", 5, "r", "")], 0, "unknown ledger reason"),
        ([("checkin", 1.5, "r", "")], 0, "must be an int"),
        ([("checkin", True, "r", "")], 0, "must be an int"),
        ([("checkin", 0, "r", "")], 0, "zero amount"),
        ([("redemption", -11, "r", "")], 10, "balance"),
        # Order matters: the balance may not dip below zero even if it recovers.
        ([("redemption", -11, "r", ""), ("adjustment", 5, "a", "")], 10, "balance"),
        ([("checkin", 5, "r", ""), ("checkin", 5, "r", "")], 0, "duplicate"),
        ([], -1, "balance_before"),
    ],
)
def test_build_entries_refusals(
    movements: list[tuple[str, int, str, str]], balance_before: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build("c1", "m1", movements, balance_before, AT, "system")


def test_build_entries_refuses_naive_time() -> None:
    with pytest.raises(ValueError, match="naive"):
        build("c1", "m1", [("checkin", 1, "r", "")], 0, datetime(2026, 1, 1), "x")


# --- CSV -----------------------------------------------------------------------------------


def test_csv_row_format() -> None:
    (entry,) = entries_for(
        "m1",
        [("checkin", 10, "2026-11-26", "hi")],
        at=datetime(2026, 11, 26, 9, 2, 3, 456, tzinfo=timezone(timedelta(hours=8))),
    )
    row = csv_row(entry)
    assert len(row) == len(CSV_COLUMNS)
    assert dict(zip(CSV_COLUMNS, row, strict=True)) == {
        "entry_id": entry.entry_id,
        "at_utc": "2026-11-26T01:02:03Z",
        "community_id": "c1",
        "member_id": "m1",
        "reason": "checkin",
        "amount": "10",
        "balance_after": "10",
        "ref": "2026-11-26",
        "actor": "system",
        "note": "hi",
    }


def test_negative_amount_stays_a_number() -> None:
    (_, entry) = entries_for("m1", [("checkin", 10, "d", ""), ("redemption", -7, "mug", "")])
    row = dict(zip(CSV_COLUMNS, csv_row(entry), strict=True))
    assert row["amount"] == "-7"
    assert row["balance_after"] == "3"


@pytest.mark.parametrize("prefix", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_row_guards_formula_injection(prefix: str) -> None:
    payload = prefix + 'HYPERLINK("http://x")'
    (entry,) = entries_for("m1", [("adjustment", 5, "ticket", "x")])
    entry = replace(entry, member_id=payload, ref=payload, actor=payload, note=payload)
    row = dict(zip(CSV_COLUMNS, csv_row(entry), strict=True))
    for column in ("member_id", "ref", "actor", "note"):
        assert row[column] == "'" + payload
    assert row["reason"] == "adjustment"


def test_csv_row_leaves_ordinary_text_alone_and_round_trips() -> None:
    (entry,) = entries_for("m1", [("adjustment", 5, "ticket 42", 'says "hi", ok\n打卡')])
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    writer.writerow(csv_row(entry))
    rows = list(csv.reader(io.StringIO(buffer.getvalue())))
    assert rows[1][CSV_COLUMNS.index("note")] == 'says "hi", ok\n打卡'


# --- reconcile -----------------------------------------------------------------------------


def clean_ledger() -> tuple[list[Entry], dict[str, int]]:
    day1 = entries_for("m1", [("checkin", 10, "d1", ""), ("streak_bonus", 50, "d1", "")])
    day2 = entries_for(
        "m1", [("redemption", -40, "mug", "")], at=AT + timedelta(days=1), balance_before=60
    )
    other = entries_for("m2", [("checkin", 10, "d1", "")])
    return [*day2, *other, *day1], {"m1": 20, "m2": 10, "m3": 0}


def test_reconcile_clean_data() -> None:
    entries, balances = clean_ledger()
    assert reconcile(entries, balances) == []
    assert reconcile([], {}) == []


def test_reconcile_accepts_any_chaining_order_within_one_instant() -> None:
    # Four movements written together: whatever order their hash ids sort in,
    # one order chains from the previous balance, so the ledger reconciles.
    movements = [
        ("checkin", 10, "d", ""),
        ("streak_bonus", 7, "d", ""),
        ("makeup", -3, "m", ""),
        ("adjustment", 1, "a", ""),
    ]
    entries = entries_for("m1", movements, balance_before=0)
    assert reconcile(entries, {"m1": 15}) == []
    assert reconcile(list(reversed(entries)), {"m1": 15}) == []


def test_reconcile_balance_mismatch() -> None:
    entries, balances = clean_ledger()
    found = reconcile(entries, {**balances, "m2": 11})
    assert [(m.member_id, m.kind) for m in found] == [("m2", "balance")]
    assert "sum to 10" in found[0].detail


def test_reconcile_balance_without_entries_and_entries_without_balance() -> None:
    entries, _ = clean_ledger()
    found = reconcile(entries, {"m1": 20, "m3": 5})
    assert [(m.member_id, m.kind) for m in found] == [("m2", "balance"), ("m3", "balance")]
    assert "no balance record" in found[0].detail
    assert "no entries" in found[1].detail


def test_reconcile_duplicate_id() -> None:
    entries, balances = clean_ledger()
    duplicate = replace(
        entries[0],
        amount=0,
        balance_after=entries[0].balance_after,
        at_utc=entries[0].at_utc + timedelta(seconds=1),
    )
    found = reconcile([*entries, duplicate], balances)
    assert Mismatch("m1", "duplicate_id", f"entry {duplicate.entry_id} appears 2 times") in found
    assert {m.kind for m in found} == {"duplicate_id"}  # zero amount: sum and chain still hold


def test_reconcile_broken_chain() -> None:
    entries, balances = clean_ledger()
    # The redemption claims 25 left instead of 20: sums still match, the chain does not.
    broken = [replace(e, balance_after=25) if e.reason == "redemption" else e for e in entries]
    found = reconcile(broken, balances)
    assert [(m.member_id, m.kind) for m in found] == [("m1", "chain")]
    assert "25 != 60 + -40" in found[0].detail


def test_reconcile_chain_must_start_at_zero() -> None:
    entries = entries_for("m1", [("adjustment", 5, "a", "")], balance_before=100)
    found = reconcile(entries, {"m1": 5})
    assert [m.kind for m in found] == ["chain"]


def test_reconcile_reports_one_break_once() -> None:
    first = entries_for("m1", [("checkin", 10, "d1", "")])
    # A missing entry (+50) between them: every later entry is consistent with its
    # predecessor, so only the first one after the hole is reported.
    later = [
        *entries_for(
            "m1", [("checkin", 10, "d2", "")], at=AT + timedelta(days=1), balance_before=60
        ),
        *entries_for(
            "m1", [("checkin", 10, "d3", "")], at=AT + timedelta(days=2), balance_before=70
        ),
    ]
    found = reconcile([*first, *later], {"m1": 30})  # the sum agrees with the balance
    assert [m.kind for m in found] == ["chain"]
    assert "70 != 10 + 10" in found[0].detail


# --- summarize -----------------------------------------------------------------------------


def test_reconcile_follows_commit_order_not_timestamps() -> None:
    # The check-in took its time (AT) first, lost a version race to an adjustment
    # stamped a second later, and committed after it: seq says so, time does not.
    (adjustment,) = build(
        "c1",
        "alice",
        [("adjustment", 30, "adjustment:t-1", "gift")],
        0,
        AT + timedelta(seconds=1),
        "ops:olga",
        seq=1,
    )
    check_in = build(
        "c1",
        "alice",
        [("checkin", 10, "checkin:d", ""), ("streak_bonus", 5, "streak_bonus:d", "")],
        30,
        AT,
        "api:alice",
        seq=2,
    )
    assert reconcile([*check_in, adjustment], {"alice": 45}) == []
    # Without seq (entries written before it existed) time is all there is.
    legacy = [replace(e, seq=None) for e in (*check_in, adjustment)]
    assert [m.kind for m in reconcile(legacy, {"alice": 45})] == ["chain", "chain", "chain"]


def test_reconcile_puts_legacy_entries_before_sequenced_ones() -> None:
    (old,) = entries_for("alice", [("checkin", 10, "checkin:a", "")], at=AT + timedelta(days=1))
    (new,) = build("c1", "alice", [("checkin", 10, "checkin:b", "")], 10, AT, "api:alice", seq=7)
    assert old.seq is None
    assert reconcile([new, old], {"alice": 20}) == []


def test_outstanding_aggregate_must_equal_the_sum_of_balances() -> None:
    assert outstanding_mismatch(30, [10, 20]) is None
    found = outstanding_mismatch(37, [10, 20])
    assert found is not None and found.kind == "aggregate" and "37" in found.detail


@pytest.mark.parametrize("amount", [MAX_POINTS + 1, -(MAX_POINTS + 1), 2**64, -(10**60)])
def test_build_entries_refuses_amounts_beyond_the_bound(amount: int) -> None:
    with pytest.raises(ValueError, match="beyond"):
        entries_for("alice", [("adjustment", amount, "adjustment:x", "")], balance_before=10**70)


def test_summarize_by_local_day_and_month() -> None:
    sh = zone("Asia/Shanghai")
    # 2026-11-30 17:00Z is already 01:00 on Dec 1 in Shanghai.
    e1 = entries_for(
        "m1",
        [("checkin", 10, "a", ""), ("streak_bonus", 5, "a", "")],
        at=datetime(2026, 11, 30, 15, 0, tzinfo=UTC),
    )
    e2 = entries_for(
        "m1",
        [("redemption", -12, "mug", ""), ("adjustment", -1, "fix", "")],
        at=datetime(2026, 11, 30, 17, 0, tzinfo=UTC),
        balance_before=15,
    )
    entries = [*e1, *e2]
    by_day = summarize(entries, sh)
    assert by_day == {
        "by_reason": {"adjustment": -1, "checkin": 10, "redemption": -12, "streak_bonus": 5},
        "by_period": {
            "2026-11-30": {"checkin": 10, "streak_bonus": 5},
            "2026-12-01": {"adjustment": -1, "redemption": -12},
        },
        "awarded": 15,
        "redeemed": 12,
        "net": 2,
    }
    by_month = summarize(entries, sh, by="month")
    assert by_month["by_period"] == {
        "2026-11": {"checkin": 10, "streak_bonus": 5},
        "2026-12": {"adjustment": -1, "redemption": -12},
    }
    # In UTC both instants fall on Nov 30.
    assert list(summarize(entries, zone("UTC"))["by_period"]) == ["2026-11-30"]


def test_summarize_empty_and_bad_period() -> None:
    assert summarize([], zone("UTC")) == {
        "by_reason": {},
        "by_period": {},
        "awarded": 0,
        "redeemed": 0,
        "net": 0,
    }
    with pytest.raises(ValueError, match="day' or 'month"):
        summarize([], zone("UTC"), by="week")


def test_build_entries_accepts_the_bound_and_a_balance_reaching_zero() -> None:
    (top,) = entries_for("alice", [("adjustment", MAX_POINTS, "adjustment:max", "")])
    assert top.balance_after == MAX_POINTS
    (low,) = entries_for(
        "alice", [("adjustment", -MAX_POINTS, "adjustment:min", "")], balance_before=MAX_POINTS
    )
    assert low.balance_after == 0
    (spent,) = entries_for("alice", [("redemption", -10, "redemption:r", "")], balance_before=10)
    assert spent.balance_after == 0


def test_reconcile_reports_only_the_broken_entry_of_a_step() -> None:
    check_in, bonus = build(
        "c1",
        "m1",
        [("checkin", 10, "checkin:d", ""), ("streak_bonus", 20, "streak_bonus:d", "")],
        0,
        AT,
        "api:m1",
        seq=1,
    )
    broken = replace(bonus, balance_after=31)  # 10 + 20 is 30
    found = reconcile([check_in, broken], {"m1": 30})
    assert [(m.kind, broken.entry_id in m.detail) for m in found] == [("chain", True)]
