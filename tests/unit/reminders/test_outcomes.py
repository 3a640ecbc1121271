"""What each reminder outcome counts, and the statuses a marker goes through."""

from __future__ import annotations

from autopilot.reminders.rules import OUTCOME_COUNTERS
from autopilot.reminders.store import (
    CLAIMED,
    FAILED,
    SENDING,
    SENT,
    SKIPPED,
    UNCERTAIN,
    Outcome,
)


def test_each_outcome_counts_under_its_day_counter():
    assert Outcome("k", SENT).counter == "sent"
    assert Outcome("k", FAILED).counter == "failed"
    assert Outcome("k", UNCERTAIN).counter == "uncertain"
    skipped = Outcome("k", SKIPPED, expect=CLAIMED, reason="already_checked_in")
    assert skipped.counter == "skipped_already_checked_in"
    for outcome in (Outcome("k", SENT), Outcome("k", UNCERTAIN), skipped):
        assert outcome.counter in OUTCOME_COUNTERS


def test_an_answer_replaces_a_send_intent_and_a_skip_replaces_a_claim():
    # The condition of each outcome's write: an answer only settles a marker whose
    # intent was written; a member whose send never started is settled from claimed.
    assert Outcome("k", SENT).expect == SENDING
    assert Outcome("k", UNCERTAIN).expect == SENDING
    assert Outcome("k", SKIPPED, expect=CLAIMED, reason="left").expect == CLAIMED
