"""Ledger cursors: whatever a client sends as a cursor is a page or a 400, never a crash."""

from __future__ import annotations

import base64
import json
from datetime import UTC, date
from typing import Any

import pytest
from autopilot.config.model import parse_config
from autopilot.errors import BadRequest
from autopilot.ledger.service import LedgerService
from hypothesis import given, settings
from hypothesis import strategies as st


class EmptyStore:
    """A ledger store with no entries (the cursor is all that is being tested)."""

    def member_entries(self, *args: Any, **kwargs: Any) -> list[Any]:
        return []

    def entries_of_day(self, *args: Any, **kwargs: Any) -> list[Any]:
        return []


def community(tz: str) -> Any:
    doc = {
        "version": 1,
        "communities": [
            {
                "id": "c",
                "name": "C",
                "timezone": tz,
                "channels": [{"id": "x", "type": "console"}],
                "jobs": [],
            }
        ],
    }
    return parse_config(doc).communities[0]


COMMUNITIES = [community("Asia/Shanghai"), community("America/New_York")]
SERVICE = LedgerService(EmptyStore())  # type: ignore[arg-type]


def encode(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


def page(cursor: str, member: str | None, index: int) -> dict[str, Any]:
    return SERVICE.entries(
        COMMUNITIES[index],
        since=date(2026, 11, 1),
        until=date(2026, 11, 30),
        member_id=member,
        cursor=cursor,
    )


positions = st.one_of(
    st.text(max_size=60),
    st.datetimes(timezones=st.just(UTC)).map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ") + "#e"),
    st.sampled_from(["9999-12-31T23:59:59Z#e", "0001-01-01T00:00:00Z#e", "2026-11-15T00:00:00Z#e"]),
)
cursors = st.one_of(
    st.text(max_size=80),
    positions.map(lambda p: encode({"after": p})),
    st.recursive(st.integers() | st.text(max_size=5), lambda c: st.lists(c, max_size=3)).map(
        encode
    ),
)


@settings(max_examples=300, deadline=None)
@given(cursor=cursors, member=st.none() | st.just("alice"), index=st.integers(0, 1))
def test_any_cursor_is_a_page_or_a_bad_request(cursor: str, member: str | None, index: int):
    try:
        answer = page(cursor, member, index)
    except BadRequest as refused:
        assert "cursor" in str(refused)
    else:
        assert answer.to_json() == {"entries": [], "next_cursor": None}


def test_deeply_nested_cursor_is_a_bad_request():
    nested = base64.urlsafe_b64encode(b"[" * 5000 + b"]" * 5000).decode()
    with pytest.raises(BadRequest, match="cursor"):
        page(nested, None, 0)


@pytest.mark.parametrize("after", ["9999-12-31T23:59:59Z#e", "0001-01-01T00:00:00Z#e"])
def test_cursors_at_the_ends_of_the_calendar_are_bad_requests(after: str):
    for index in (0, 1):
        with pytest.raises(BadRequest, match="cursor"):
            page(encode({"after": after}), None, index)
