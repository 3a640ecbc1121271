"""The rate limiter never waits, nor calls DynamoDB, past the time the send has left."""

from __future__ import annotations

from typing import Any

import pytest
from autopilot.channels.ratelimit import Rate, RateLimited, RateLimiter
from botocore.exceptions import ClientError

NOW_S = 1_800_000_000.0


class SlowContendedTable:
    """DynamoDB under contention: every request takes 1 s, another container always won.

    Each failed condition returns the bucket's new ``tat``: the next slot 3 s away.
    """

    def __init__(self, countdown: list[float]) -> None:
        self.countdown = countdown
        self.requests = 0

    def update_item(self, **_: Any) -> dict[str, Any]:
        self.requests += 1
        self.countdown[0] -= 1.0  # the invocation's time runs while we wait for DynamoDB
        tat_ms = round((NOW_S + 3.0) * 1000)
        raise ClientError(
            {
                "Error": {"Code": "ConditionalCheckFailedException", "Message": ""},
                "Item": {"tat": {"N": str(tat_ms)}},
            },
            "UpdateItem",
        )


def test_time_spent_on_dynamodb_counts_against_the_wait_budget():
    countdown = [5.0]  # seconds the send may still take
    table = SlowContendedTable(countdown)
    slept: list[float] = []
    limiter = RateLimiter("t", "us-east-1", client=table, now=lambda: NOW_S, sleep=slept.append)
    with pytest.raises(RateLimited, match=r"next slot in 3\.0s"):
        limiter.acquire("RATE#c#ch", Rate(3.0, 1), budget_s=lambda: countdown[0])
    # 5 s: the first request (5 s left, slot 3 s away), the second (4 s left), the
    # third (3 s left); then 2 s are left for a 3 s wait: refused, no more requests.
    assert table.requests == 3 and slept == []


def test_no_time_left_means_no_request_at_all():
    table = SlowContendedTable([0.0])
    limiter = RateLimiter("t", "us-east-1", client=table, now=lambda: NOW_S)
    with pytest.raises(RateLimited, match="no time left"):
        limiter.acquire("RATE#c#ch", Rate(3.0, 1), budget_s=lambda: 0.0)
    assert table.requests == 0
