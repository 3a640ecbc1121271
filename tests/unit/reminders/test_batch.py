"""The reminder queue's message: a round trip, and hostile bodies refused clearly."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from autopilot.reminders.service import BadReminderMessage, Batch

BATCH = Batch(
    "sunrise",
    "nudge",
    "2026-11-27T20:00@2026-11-27T12:00:00Z",
    date(2026, 11, 27),
    datetime(2026, 11, 27, 12, 0, tzinfo=UTC),
    (("telegram:1", date(2026, 11, 27)), ("张三 with spaces", date(2026, 11, 26))),
    not_before=datetime(2026, 11, 27, 15, 0, tzinfo=UTC),
    lottery=(
        "weekly-20261123T0000",
        datetime(2026, 11, 27, 11, 55, tzinfo=UTC),
        datetime(2026, 11, 27, 12, 0, tzinfo=UTC),
    ),
)


def test_a_batch_survives_the_queue_unchanged() -> None:
    assert Batch.parse(json.dumps(BATCH.to_json())) == BATCH
    plain = Batch("c", "j", "o", date(2026, 1, 1), datetime(2026, 1, 1, tzinfo=UTC), ())
    assert Batch.parse(json.dumps(plain.to_json())) == plain


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{not json", "not JSON"),
        ("[" * 100_000 + "]" * 100_000, "not JSON"),
        ("[]", "not a version 1 reminder batch"),
        (json.dumps({**BATCH.to_json(), "v": 2}), "not a version 1"),
        (json.dumps({k: v for k, v in BATCH.to_json().items() if k != "job"}), "malformed"),
        (json.dumps({**BATCH.to_json(), "run_day": "9999-99-99"}), "malformed"),
        (json.dumps({**BATCH.to_json(), "recipients": [["m", "yesterday"]]}), "malformed"),
        (json.dumps({**BATCH.to_json(), "community": ""}), "malformed"),
        (json.dumps({**BATCH.to_json(), "lottery": ["only-one"]}), "malformed"),
    ],
)
def test_a_hostile_body_is_refused_with_what_is_wrong(body: str, message: str) -> None:
    with pytest.raises(BadReminderMessage, match=message):
        Batch.parse(body)
