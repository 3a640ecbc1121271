"""Incremental nightly reconciliation and the resumable full audit, on moto.

Nightly cost is counted in AWS requests (the unit AWS bills by): it must follow
the members touched since the last run, not the size of the ledger.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from autopilot.ledger.reconcile import Reconciler
from autopilot.ledger.store import AccountItem, AggItem, EntryItem, ReconItem, member_pk

from autopilot_cli.metering import RequestCounter

from .test_checkins import adjust, community

DAY0 = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
AUDIT_AT = datetime(2026, 11, 10, 3, 0, tzinfo=UTC)
TOUCH_AT = datetime(2026, 11, 10, 10, 0, tzinfo=UTC)
NIGHT = datetime(2026, 11, 11, 3, 0, tzinfo=UTC)


@pytest.fixture
def app(stack):
    return stack.app()


def seed(app, c, members: int, days: int) -> list[str]:
    """``members`` members, each with an adjustment on each of ``days`` days."""
    ids = [f"m{n:03d}" for n in range(members)]
    for member in ids:
        app.members.upsert(c, member, {}, DAY0)
    for day in range(days):
        for member in ids:
            at = DAY0 + timedelta(days=day, seconds=1)
            adjust(app, c, member, 5, "seed", f"{member}-{day}", "ops:t", at)
    return ids


def touch(app, c, members: list[str], at: datetime = TOUCH_AT) -> None:
    for member in members:
        adjust(app, c, member, 7, "today", f"t-{member}-{at:%j%H%M}", "ops:t", at)


def entries_read(counter: RequestCounter) -> int:
    return counter.count("dynamodb", "Query")


def test_nightly_cost_follows_the_members_touched_not_the_ledger_size(app):
    big, small = replace(community(), id="big"), replace(community(), id="small")
    big_members = seed(app, big, members=40, days=6)
    small_members = seed(app, small, members=5, days=1)
    reconciler = Reconciler(app.ledger_store)
    for c in (big, small):
        assert reconciler.audit(c.id, AUDIT_AT).ok
    touch(app, big, big_members[:5])
    touch(app, small, small_members)
    costs = {}
    for c in (big, small):
        with RequestCounter() as counter:
            report = reconciler.nightly(c.id, NIGHT)
        assert report.ok, report.mismatches
        assert report.members == 5
        costs[c.id] = counter.by_operation()
    assert costs["big"] == costs["small"]
    # No Scan, ever; and the request count is a small constant plus a few per member.
    assert all(operation != "Scan" for _, operation in costs["big"])
    assert sum(costs["big"].values()) <= 30


def test_nightly_verifies_only_entries_after_the_verified_point(app):
    c = community()
    (member,) = seed(app, c, members=1, days=8)
    reconciler = Reconciler(app.ledger_store)
    reconciler.audit(c.id, AUDIT_AT)
    touch(app, c, [member])
    read: list[int] = []
    original = app.ledger_store.member_entries

    def spy(*args, **kwargs):
        found = list(original(*args, **kwargs))
        read.append(len(found))
        return iter(found)

    app.ledger_store.member_entries = spy
    assert reconciler.nightly(c.id, NIGHT).ok
    # Today's entry and the last verified one (read again: the query starts
    # COMMIT_LAG before it), not the 8 days of history before them.
    assert read == [2]
    recon = ReconItem.get(member_pk(c.id, member), "RECON")
    account = AccountItem.get(member_pk(c.id, member), "ACCOUNT")
    assert (recon.seq, recon.balance) == (account.version, account.balance) == (10, 47)


def test_a_tampered_entry_is_caught_and_reported_every_night_until_fixed(app):
    c = community()
    members = seed(app, c, members=3, days=2)
    reconciler = Reconciler(app.ledger_store)
    reconciler.audit(c.id, AUDIT_AT)
    touch(app, c, members[:2])
    # Someone edits today's entry of m000 behind the ledger's back.
    (entry,) = [
        e
        for e in EntryItem.query(member_pk(c.id, "m000"), EntryItem.sk.startswith("E#"))
        if e.reason == "adjustment" and e.note == "today"
    ]
    entry.update(actions=[EntryItem.balance_after.set(80)])
    report = reconciler.nightly(c.id, NIGHT)
    assert not report.ok
    assert {(m["member"], m["kind"]) for m in report.mismatches} >= {("m000", "chain")}
    assert "m001" not in {m["member"] for m in report.mismatches}
    # m000 is not touched again, yet the next night still reports it.
    again = reconciler.nightly(c.id, NIGHT + timedelta(days=1))
    assert "m000" in {m["member"] for m in again.mismatches}
    # The full audit agrees.
    assert "m000" in {m["member"] for m in reconciler.audit(c.id, NIGHT).mismatches}


def test_a_balance_changed_without_an_entry_is_caught(app):
    c = community()
    members = seed(app, c, members=2, days=1)
    reconciler = Reconciler(app.ledger_store)
    reconciler.audit(c.id, AUDIT_AT)
    touch(app, c, members)
    assert reconciler.nightly(c.id, NIGHT).ok
    # The balance is bumped with the version left alone (no movement).
    AccountItem(member_pk(c.id, "m001"), "ACCOUNT").update(actions=[AccountItem.balance.add(100)])
    report = reconciler.nightly(c.id, NIGHT + timedelta(days=1), deadline=lambda: False)
    # Untouched, the member is not read at night (the aggregate and the verified total
    # both follow movements, so they agree); the audit reads it and names it ...
    assert report.ok
    audit = reconciler.audit(c.id, NIGHT + timedelta(days=1))
    assert [(m["member"], m["kind"]) for m in audit.mismatches] == [("m001", "balance")]
    # ... and so does the nightly run as soon as the member moves again.
    touch(app, c, ["m001"], at=NIGHT + timedelta(days=1, hours=5))
    later = reconciler.nightly(c.id, NIGHT + timedelta(days=2))
    assert ("m001", "balance") in {(m["member"], m["kind"]) for m in later.mismatches}


def test_an_aggregate_that_drifts_from_the_verified_total_is_caught(app):
    c = community()
    members = seed(app, c, members=2, days=1)
    reconciler = Reconciler(app.ledger_store)
    reconciler.audit(c.id, AUDIT_AT)
    touch(app, c, members)
    AggItem(f"AGG#{c.id}#ALL#0", "TOTALS").update(actions=[AggItem.net.add(3)])
    report = reconciler.nightly(c.id, NIGHT)
    assert [m["kind"] for m in report.mismatches] == ["aggregate"]
    assert report.aggregate_outstanding == report.verified_total + 3


def test_running_twice_gives_the_same_outcome_and_counts_nothing_twice(app):
    c = community()
    members = seed(app, c, members=4, days=1)
    reconciler = Reconciler(app.ledger_store)
    reconciler.audit(c.id, AUDIT_AT)
    touch(app, c, members)
    first = reconciler.nightly(c.id, NIGHT)
    second = reconciler.nightly(c.id, NIGHT)
    assert first.ok and second.ok
    assert first.verified_total == second.verified_total == first.aggregate_outstanding == 4 * 12
    assert first.through_day == second.through_day == "2026-11-10"


def test_a_member_touched_while_the_run_goes_is_not_lost(app):
    c = community()
    members = seed(app, c, members=3, days=1)
    reconciler = Reconciler(app.ledger_store)
    reconciler.audit(c.id, AUDIT_AT)
    touch(app, c, members[:1])
    moved: list[str] = []

    def deadline() -> bool:
        # Called between partitions: a movement commits mid-run, stamped just
        # before midnight and committed after it (its touch day is yesterday).
        if not moved:
            touch(app, c, ["m002"], at=NIGHT - timedelta(hours=3, seconds=1))
            moved.append("m002")
        return False

    first = reconciler.nightly(c.id, NIGHT, deadline=deadline)
    assert first.complete
    second = reconciler.nightly(c.id, NIGHT + timedelta(days=1))
    assert second.ok, second.mismatches
    recon = ReconItem.get(member_pk(c.id, "m002"), "RECON")
    account = AccountItem.get(member_pk(c.id, "m002"), "ACCOUNT")
    assert recon.seq == account.version and recon.balance == account.balance == 12


def test_a_nightly_run_out_of_time_saves_its_cursor_and_resumes(app):
    c = community()
    members = seed(app, c, members=3, days=1)
    reconciler = Reconciler(app.ledger_store)
    reconciler.audit(c.id, AUDIT_AT)
    touch(app, c, members)
    stopped = reconciler.nightly(c.id, NIGHT, deadline=lambda: True)
    assert not stopped.complete and stopped.cursor is not None
    resumed = reconciler.nightly(c.id, NIGHT)
    assert resumed.ok and resumed.through_day == "2026-11-10"


def test_the_audit_pages_and_resumes_from_its_cursor(app):
    c = community()
    seed(app, c, members=7, days=2)
    reconciler = Reconciler(app.ledger_store)
    cursor, pages, checked = None, 0, 0
    while True:
        report = reconciler.audit(c.id, AUDIT_AT, cursor=cursor, deadline=lambda: True, page=2)
        pages += 1
        checked += report.members
        if report.complete:
            break
        cursor = report.cursor
    assert report.ok, report.mismatches
    assert checked == 7 and pages > 3
    assert report.verified_total == report.aggregate_outstanding == 7 * 10
    # A first audit establishes the watermark the nightly run starts from.
    assert report.through_day == "2026-11-09"


def test_nightly_without_an_established_checkpoint_asks_for_the_audit(app):
    c = community()
    seed(app, c, members=1, days=1)
    report = Reconciler(app.ledger_store).nightly(c.id, NIGHT)
    assert not report.complete and report.cursor == {"audit": True}


def test_a_verified_legacy_entry_just_before_a_new_one_is_not_a_mismatch(app):
    c = community()
    (member,) = seed(app, c, members=1, days=1)
    # An entry written before entries carried seq.
    (legacy,) = EntryItem.query(member_pk(c.id, member), EntryItem.sk.startswith("E#"))
    legacy.update(actions=[EntryItem.seq.remove()])
    reconciler = Reconciler(app.ledger_store)
    assert reconciler.audit(c.id, DAY0 + timedelta(minutes=10)).ok
    # The next movement comes within COMMIT_LAG of it: the nightly query reads the
    # legacy entry again, and must know it is already verified.
    touch(app, c, [member], at=DAY0 + timedelta(minutes=20))
    report = reconciler.nightly(c.id, DAY0 + timedelta(days=1))
    assert report.ok, report.mismatches
