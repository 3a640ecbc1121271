"""Delivery.as_dict: a send with no answer is recorded as uncertain, not failed."""

from __future__ import annotations

from autopilot.channels.base import Delivery

AT = "2026-03-02T04:00:00Z"


def test_published_delivery_has_no_unknown_flag() -> None:
    out = Delivery("ch", True, AT, message_id="m1").as_dict()
    assert out["status"] == "published"
    assert "unknown" not in out


def test_failed_delivery_is_failed() -> None:
    out = Delivery("ch", False, AT, error="HTTP 400").as_dict()
    assert out["status"] == "failed"
    assert "unknown" not in out


def test_unanswered_delivery_is_uncertain() -> None:
    delivery = Delivery("ch", False, AT, error="read timeout", unknown=True)
    out = delivery.as_dict()
    assert delivery.status == "uncertain"
    assert out["status"] == "uncertain"
    assert out["unknown"] is True
    assert out["error"] == "read timeout"


def test_unknown_is_ignored_once_the_platform_answered_ok() -> None:
    out = Delivery("ch", True, AT, unknown=True).as_dict()
    assert out["status"] == "published"
    assert "unknown" not in out
