"""Reminder function: sends the reminder batches the dispatcher enqueues.

Triggered by the reminder queue (SQS, ReportBatchItemFailures). Each message is
one batch of members of one job occurrence; Powertools' batch processor runs
them one by one and reports the messages that raised, so only those come back.
Safe to receive a message any number of times, also twice at once: each member's
marker is claimed before anything is sent and each message's send intent is
written conditionally just before it goes out, so a redelivery after a crash sends
only what was never started and records the rest ``uncertain``
(autopilot.reminders.service).
"""

from __future__ import annotations

from typing import Any

from autopilot.app import App
from autopilot.settings import Settings
from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
copy_config_to_registered_loggers(source_logger=logger, include={"autopilot"})
app = App(Settings.from_env())
processor = BatchProcessor(event_type=EventType.SQS)


@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Process each message of the batch; failed messages are reported for redelivery."""

    def record_handler(record: SQSRecord) -> None:
        app.reminders.process(record.body, context.get_remaining_time_in_millis)

    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
