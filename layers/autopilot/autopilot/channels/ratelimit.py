"""A client-side rate limit per channel, shared by every container: GCRA in DynamoDB.

Each bucket is one item of the posts table, ``pk = RATE#<community>#<channel>``
(``…#dm`` for direct messages), ``sk = BUCKET``, holding ``tat``: the bucket's
*theoretical arrival time* in epoch milliseconds (the generic cell rate
algorithm, a token bucket stored as one number). With an emission interval
``T`` and a burst ``B``, a send at ``now`` is allowed at
``max(now, tat - (B - 1)·T)`` and moves ``tat`` to ``max(tat, allowed) + T``.
In any window of ``W`` seconds at most ``B + floor(W / T)`` sends pass, which is
how each platform's rate below is chosen to stay under its documented limit.

One send costs **one** conditional ``UpdateItem``: the write is conditioned on
the ``tat`` this container last saw — or, when it knows nothing newer, on the
bucket being idle (``tat <= now``: every idle state is equivalent). If another
container moved the bucket meanwhile, the failed condition returns the item
(``ReturnValuesOnConditionCheckFailure``) and the second attempt is exact: two
requests. A send that must wait reserves its slot first, then sleeps, so
concurrent senders queue instead of racing.

Both the notion of now and the wait go through ``autopilot.clock``: real time in
Lambda; in ``autopilot simulate`` the wait moves the simulated clock, so the next
send of a burst is counted from the moved clock (waits of 4 s, then 4 s more…)
and a burst takes as long in simulated time as it would in production.

If DynamoDB itself fails, the limiter lets the send through (and logs a warning):
the platform's own 429 handling is the second line of defence, and losing a
post to a throttled bookkeeping table would be worse.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from autopilot.clock import get_clock
from autopilot.clock import sleep as clock_sleep

logger = logging.getLogger(__name__)

# A bucket item disappears (TTL) this long after its last use.
BUCKET_TTL_S = 3600
MAX_CONFLICTS = 6


@dataclass(frozen=True)
class Rate:
    """One token every ``interval_s`` seconds, at most ``burst`` at once."""

    interval_s: float
    burst: int = 1

    def max_in(self, window_s: float) -> int:
        """The most sends this rate lets through in any window of ``window_s`` seconds."""
        return self.burst + math.floor(window_s / self.interval_s + 1e-9)


class RateLimited(Exception):
    """The next slot is further away than the time the send may still take."""

    def __init__(self, wait_s: float):
        if wait_s > 0:
            text = f"client-side rate limit: next slot in {wait_s:.1f}s, after the deadline"
        else:
            text = "client-side rate limit: no time left in the invocation to take a slot"
        super().__init__(text)
        self.wait_s = wait_s


class RateLimiter:
    """Token buckets in the posts table; ``now``/``sleep`` are injectable for tests."""

    def __init__(
        self,
        table_name: str,
        region: str,
        *,
        client: Any = None,
        now: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
    ):
        self._table = table_name
        self._region = region
        self._client = client
        # Epoch seconds (a bucket's tat is shared by every container, so wall time,
        # not a monotonic scale). By default the clock installed at call time: real
        # time in Lambda, the simulated time in `autopilot simulate`.
        self._now = now or (lambda: get_clock().now().timestamp())
        # The wait: a real sleep in Lambda; on a simulated clock it moves the clock
        # forward, so the next acquire of a burst sees the moved "now".
        self._sleep = clock_sleep if sleep is None else sleep
        self._seen: dict[str, int] = {}  # bucket -> last tat this container saw (ms)
        self._lock = threading.Lock()

    def _ddb(self) -> Any:
        if self._client is None:
            from autopilot.aws import client

            self._client = client("dynamodb", self._region)
        return self._client

    @staticmethod
    def bucket(community_id: str, channel_id: str, *, direct: bool = False) -> str:
        """The partition key of a channel's bucket."""
        return f"RATE#{community_id}#{channel_id}" + ("#dm" if direct else "")

    def acquire(
        self, bucket: str, rate: Rate, *, budget_s: float | Callable[[], float] = math.inf
    ) -> float:
        """Take one token, sleeping until its slot if needed; return the seconds waited.

        Raises :class:`RateLimited` (taking nothing) if the slot is further away
        than the time the send may still take: ``budget_s``, a number or — so the
        time spent on DynamoDB round trips counts too — a function answering what
        is left *now* (it is asked again before every request and before the wait).
        """
        left = budget_s if callable(budget_s) else (lambda: budget_s)
        interval_ms = max(1, round(rate.interval_s * 1000))
        tolerance_ms = interval_ms * (rate.burst - 1)
        from botocore.exceptions import BotoCoreError, ClientError

        with self._lock:
            known = self._seen.get(bucket)
        for _ in range(MAX_CONFLICTS):
            now_ms = round(self._now() * 1000)
            tat = known if known is not None and known > now_ms else None
            allowed_ms = now_ms if tat is None else max(now_ms, tat - tolerance_ms)
            wait_s = (allowed_ms - now_ms) / 1000
            if wait_s > left() or left() <= 0:
                raise RateLimited(wait_s)
            new_tat = max(tat or now_ms, allowed_ms) + interval_ms
            if tat is None:
                condition = "attribute_not_exists(tat) OR tat <= :now"
                values = {":now": {"N": str(now_ms)}}
            else:
                condition = "tat = :seen"
                values = {":seen": {"N": str(tat)}}
            values[":tat"] = {"N": str(new_tat)}
            values[":exp"] = {"N": str(new_tat // 1000 + BUCKET_TTL_S)}
            try:
                self._ddb().update_item(
                    TableName=self._table,
                    Key={"pk": {"S": bucket}, "sk": {"S": "BUCKET"}},
                    UpdateExpression="SET tat = :tat, expires_at = :exp",
                    ConditionExpression=condition,
                    ExpressionAttributeValues=values,
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    logger.warning(
                        "rate limit bucket %s unavailable, sending anyway: %s", bucket, exc
                    )
                    return 0.0
                response: Any = exc.response
                item = response.get("Item") or {}
                known = int(item["tat"]["N"]) if "tat" in item else None
                continue  # another container moved the bucket: retry with its value
            except BotoCoreError as exc:
                logger.warning("rate limit bucket %s unavailable, sending anyway: %s", bucket, exc)
                return 0.0
            with self._lock:
                self._seen[bucket] = new_tat
            if wait_s > 0:
                self._sleep(wait_s)
            return wait_s
        logger.warning("rate limit bucket %s: too much contention, sending anyway", bucket)
        return 0.0
