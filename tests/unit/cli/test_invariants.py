"""The invariant checks on two runs' facts: each catches what it exists for, and
names the faults injected near a violation (so the seed's run can be read)."""

from __future__ import annotations

import copy
from typing import Any

from autopilot_cli.invariants import INVARIANTS, check


def entry(entry_id: str, member: str, reason: str, amount: int, balance: int, **kw: Any) -> dict:
    return {
        "entry_id": entry_id,
        "at_utc": kw.get("at", "2027-03-09T01:00:00Z"),
        "community": "c",
        "member": member,
        "reason": reason,
        "amount": amount,
        "balance_after": balance,
        "ref": kw.get("ref", f"{reason}:2027-03-09"),
    }


def facts() -> dict[str, Any]:
    return {
        "ledger": [
            entry("e1", "m1", "checkin", 10, 10),
            entry("e2", "m2", "checkin", 10, 10),
            entry("e3", "m1", "redemption", -10, 0, ref="redemption:r1"),
        ],
        "reconciled": True,
        "acknowledged": [
            {"community": "c", "member": "m1", "day": "2027-03-09"},
            {"community": "c", "member": "m2", "day": "2027-03-09"},
        ],
        "occurrences": [
            {"community": "c", "job": "morning", "key": "2027-03-09T08:00", "status": "fired"},
        ],
        "posts": [
            {
                "community": "c",
                "job": "morning",
                "key": "2027-03-09T08:00",
                "channel": "wecom",
                "status": "published",
                "text": "早安",
            }
        ],
        "sinks": [
            {
                "sink": "platform:c.wecom",
                "text": "早安",
                "mentions": [],
                "at_utc": "2027-03-09T00:00:05Z",
            },
            {
                "sink": "platform:c.wecom",
                "text": "还没打卡 @m2",
                "mentions": ["m2"],
                "at_utc": "2027-03-09T12:00:05Z",
            },
        ],
        "alerts": [],
        "stock": [{"community": "c", "reward": "r1", "stock": 5, "redeemed": 1}],
        "coupons": [{"pool": "POOL#c#p", "code": "AAAA-1", "given_to": "prize:d1:m1"}],
        "lotteries": [
            {
                "community": "c",
                "draw_id": "d1",
                "state": "paid",
                "verified": True,
                "entrants_hash": "h",
                "winners": [{"member": "m1", "prize": "First"}],
            }
        ],
        "snapshots": [{"community": "c", "day": "2027-03-09", "checkins": {"count": 2}}],
    }


FAULTS = [
    {
        "kind": "crash",
        "at_utc": "2027-03-09T00:59:00Z",
        "function": "ApiFunction",
        "where": "after dynamodb.TransactWriteItems was applied",
    },
    {"kind": "duplicate", "at_utc": "2027-03-10T09:00:00Z", "function": None, "where": "tick"},
]


def verdicts(baseline: dict[str, Any], faulted: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in check(baseline, faulted, FAULTS)}


def test_identical_runs_hold_everything() -> None:
    rows = verdicts(facts(), facts())
    assert set(rows) == set(INVARIANTS)
    assert all(row["held"] for row in rows.values())


def test_a_missing_entry_breaks_the_ledger_and_names_the_fault_near_it() -> None:
    faulted = facts()
    faulted["ledger"] = faulted["ledger"][1:]
    rows = verdicts(facts(), faulted)
    ledger = rows["ledger_matches_fault_free"]
    assert not ledger["held"]
    assert "missing checkin +10 of m1" in ledger["examples"][0]
    assert ledger["suspects"][0]["kind"] == "crash"  # a minute before the entry's time
    assert not rows["acknowledged_checkins_once"]["held"]  # m1 was told it succeeded


def test_a_different_balance_or_a_credit_twice() -> None:
    faulted = facts()
    faulted["ledger"][2] = entry("e3", "m1", "redemption", -10, 10, ref="redemption:r1")
    faulted["ledger"].append(entry("e4", "m2", "checkin", 10, 20))
    rows = verdicts(facts(), faulted)
    examples = " ".join(rows["ledger_matches_fault_free"]["examples"])
    assert "e3 differs" in examples and "extra checkin +10 of m2" in examples
    assert not rows["acknowledged_checkins_once"]["held"]  # m2's day twice


def test_negative_balance_stock_and_coupons() -> None:
    faulted = facts()
    faulted["ledger"][2]["balance_after"] = -5
    faulted["stock"][0]["redeemed"] = 6
    faulted["coupons"].append({"pool": "POOL#c#p", "code": "AAAA-1", "given_to": "prize:d1:m2"})
    faulted["coupons"].append({"pool": "POOL#c#p", "code": "BBBB-2", "given_to": "prize:d1:m1"})
    rows = verdicts(facts(), faulted)
    assert not rows["no_negative_balance"]["held"]
    assert not rows["stock_never_negative"]["held"]
    assert rows["coupon_codes_once"]["violations"] == 2


def test_a_post_twice_a_failed_post_that_landed_and_an_unreported_uncertain_one() -> None:
    faulted = facts()
    faulted["sinks"].append(dict(faulted["sinks"][0]))
    faulted["posts"][0]["status"] = "failed"
    faulted["occurrences"][0]["status"] = "uncertain"
    rows = verdicts(facts(), faulted)
    assert not rows["occurrences_at_most_once"]["held"]
    uncertain = rows["lost_answers_uncertain"]
    assert any("recorded failed" in e for e in uncertain["examples"])
    assert any("not reported to ops" in e for e in uncertain["examples"])
    faulted["alerts"] = ["occ#c#morning#2027-03-09T08:00@2027-03-09T00:00:00Z"]
    assert all(
        "not reported" not in e
        for e in verdicts(facts(), faulted)["lost_answers_uncertain"].get("examples", [])
    )


def test_a_member_reminded_twice() -> None:
    faulted = facts()
    faulted["sinks"].append(dict(faulted["sinks"][1]))
    rows = verdicts(facts(), faulted)
    assert not rows["reminders_at_most_once"]["held"]
    assert "m2 mentioned 2 times" in rows["reminders_at_most_once"]["examples"][0]


def test_other_winners_or_an_unverified_draw_or_other_figures() -> None:
    faulted = facts()
    faulted["lotteries"][0]["winners"] = [{"member": "m2", "prize": "First"}]
    faulted["lotteries"][0]["verified"] = False
    faulted["snapshots"][0]["checkins"] = {"count": 1}
    rows = verdicts(facts(), faulted)
    assert rows["lotteries_draw_once"]["violations"] == 2
    assert "differs in checkins" in rows["snapshots_match_fault_free"]["examples"][0]


def test_delivery_counts_in_snapshots_may_differ() -> None:
    baseline, faulted = facts(), copy.deepcopy(facts())
    baseline["snapshots"][0]["posts"] = {"published": 3, "failed": 0}
    faulted["snapshots"][0]["posts"] = {"published": 2, "failed": 1}
    assert verdicts(baseline, faulted)["snapshots_match_fault_free"]["held"]
