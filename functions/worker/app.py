"""Worker: runs the long jobs the dispatcher enqueues (ledger exports, reconciliation, audits).

Triggered by the work queue (SQS, batch size 1, ReportBatchItemFailures). Safe to
receive a message twice: the job record makes each job run once, and a job out of
time saves its cursor and enqueues its own continuation (see autopilot.ledger.jobs).
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
    """Run each job of the batch; failed messages are reported for redelivery."""
    return app.worker.handle(event, remaining_ms=context.get_remaining_time_in_millis)
