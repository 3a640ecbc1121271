"""An occurrence's final status from its action's result, and what ops are told."""

from __future__ import annotations

from datetime import UTC, datetime

from autopilot.config.model import parse_config
from autopilot.metrics.alerts import occurrence_alert
from autopilot.scheduler.service import (
    ActionResult,
    OccurrenceReport,
    outcome_status,
    uncertain_channels,
)
from autopilot.scheduler.store import FINAL_STATUSES, Pending

UNCERTAIN = {"status": "uncertain", "message_id": None, "error": "no answer"}
PUBLISHED = {"status": "published", "message_id": "1", "error": None}
FAILED = {"status": "failed", "message_id": None, "error": "HTTP 400"}


def test_uncertain_is_a_final_status():
    assert "uncertain" in FINAL_STATUSES and "claimed" not in FINAL_STATUSES


def test_outcome_status():
    assert outcome_status(ActionResult(ok=True)) == "fired"
    assert outcome_status(ActionResult(ok=True), "deferred") == "deferred"
    assert outcome_status(ActionResult(ok=False, error="x")) == "failed"
    assert outcome_status(ActionResult(ok=False, uncertain=True)) == "uncertain"
    # An uncertain delivery wins over a failed one: ops must check before re-posting.
    mixed = {"deliveries": {"a": FAILED, "b": UNCERTAIN}}
    assert outcome_status(ActionResult(ok=False, detail=mixed)) == "uncertain"
    assert outcome_status(ActionResult(ok=False, detail={"deliveries": {"a": FAILED}})) == "failed"


def test_uncertain_channels_are_found_where_actions_nest_a_post():
    post = {"deliveries": {"b": UNCERTAIN, "a": UNCERTAIN, "c": PUBLISHED}}
    assert uncertain_channels(post) == ["a", "b"]
    assert uncertain_channels({"draw_id": "d1", "post": post}) == ["a", "b"]  # a lottery's
    assert uncertain_channels({"deliveries": {"c": PUBLISHED}}) == []
    assert uncertain_channels({"deliveries": "not a map", "x": [1, 2]}) == []


def test_a_retry_pending_survives_the_watermark_json():
    p = Pending(datetime(2026, 11, 27, 7, 30), datetime(2026, 11, 26, 23, 30, tzinfo=UTC))
    assert "r" not in p.as_json() and Pending.from_json(p.as_json()) == p
    retry = Pending(p.nominal_local, p.scheduled_utc, "gap", retry=True)
    assert retry.as_json()["r"] == 1 and Pending.from_json(retry.as_json()) == retry
    assert retry.id == p.id  # the identity does not change


def _community():
    config = parse_config(
        {
            "version": 1,
            "communities": [
                {
                    "id": "c",
                    "name": "晨读社",
                    "timezone": "UTC",
                    "channels": [{"id": "group", "type": "console"}],
                    "jobs": [],
                }
            ],
        }
    )
    return config.communities[0]


def test_the_alert_of_an_uncertain_occurrence_says_what_to_do():
    occ = OccurrenceReport(
        "c",
        "morning-post",
        "2026-11-27T07:30",
        "2026-11-26T23:30:00Z",
        "2026-11-26T23:30:00Z",
        "uncertain",
        "group: attempt 1 crashed mid-send (uncertain: may or may not have been posted)",
        {"deliveries": {"group": UNCERTAIN, "announce": PUBLISHED}},
    )
    text = occurrence_alert(_community(), occ)
    assert text.startswith("⚠️ 晨读社: morning-post (2026-11-27T07:30): the post to group ")
    assert "may or may not have reached the group" in text
    assert "deliberately not sent again" in text and "check the group" in text
    assert "crashed mid-send" in text


def test_the_alert_of_a_failed_occurrence_is_unchanged():
    occ = OccurrenceReport("c", "j", "k", "s", "d", "failed", "webhook gone")
    assert occurrence_alert(_community(), occ) == "⚠️ 晨读社: j (k) failed: webhook gone"
