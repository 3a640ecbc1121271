"""Dispatcher: runs every minute (EventBridge Scheduler) and runs each due occurrence once.

Safe to run twice for the same tick, or concurrently: claims in the scheduler
table decide which invocation runs an occurrence (see autopilot.scheduler).
"""

from __future__ import annotations

from typing import Any

from autopilot.app import App
from autopilot.settings import Settings
from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
# The layer logs through the standard library; give it the same JSON format.
copy_config_to_registered_loggers(source_logger=logger, include={"autopilot"})
app = App(Settings.from_env())


@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Run one tick; the event's own time is only logged (the clock decides what is due)."""
    logger.append_keys(tick_event_time=event.get("time"))
    report = app.tick(remaining_ms=context.get_remaining_time_in_millis)
    summary = report.summary()
    if not report.idle:
        logger.info("tick done", extra={"counts": summary["counts"]})
    return summary
