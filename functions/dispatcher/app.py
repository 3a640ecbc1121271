"""Dispatcher: runs every minute (EventBridge Scheduler) and runs each due occurrence once.

Safe to run twice for the same tick, or concurrently: claims in the scheduler
table decide which invocation runs an occurrence (see autopilot.scheduler).

With several shards, each schedule delivers ``{"shard": i, "shards": N}`` as its
input and the invocation ticks only the communities of shard ``i`` (a stable hash
of the community id modulo ``N``, see docs/scheduler.md). Without those fields it
ticks every community.
"""

from __future__ import annotations

from typing import Any

from autopilot.app import App
from autopilot.scheduler.index import Shard
from autopilot.settings import Settings
from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
# The layer logs through the standard library; give it the same JSON format.
copy_config_to_registered_loggers(source_logger=logger, include={"autopilot"})
app = App(Settings.from_env())


def shard_of_event(event: dict[str, Any]) -> Shard:
    """The shard an event asks for; ValueError naming the field if it is malformed.

    A malformed schedule input fails the invocation loudly (Lambda's Errors
    metric) instead of silently ticking the wrong communities.
    """
    if "shard" not in event and "shards" not in event:
        return Shard()
    index, count = event.get("shard"), event.get("shards")
    for name, value in (("shards", count), ("shard", index)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"dispatcher event: {name!r} must be an integer, got {value!r}")
    assert isinstance(index, int) and isinstance(count, int)
    return Shard(index, count)


@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Run one tick; the event's own time is only logged (the clock decides what is due)."""
    shard = shard_of_event(event)
    logger.append_keys(tick_event_time=event.get("time"), shard=f"{shard.index}/{shard.count}")
    report = app.tick(remaining_ms=context.get_remaining_time_in_millis, shard=shard)
    summary = report.summary()
    if not report.idle:
        logger.info("tick done", extra={"counts": summary["counts"]})
    return summary
