"""PynamoDB errors whose cause got no DynamoDB answer (a read timeout) stay readable."""

from __future__ import annotations

import autopilot.dynamo  # noqa: F401 - installs the robust properties
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError
from pynamodb.exceptions import PutError, TransactWriteError, UpdateError


def test_a_read_timeout_has_no_response_code_instead_of_raising() -> None:
    error = PutError("Failed to put item", ReadTimeoutError(endpoint_url="https://dynamodb"))
    assert error.cause_response_code is None
    assert error.cause_response_message is None
    closed = UpdateError("Failed", ConnectionClosedError(endpoint_url="https://dynamodb"))
    assert closed.cause_response_code != "ConditionalCheckFailedException"


def test_a_dynamodb_answer_keeps_its_code_and_message() -> None:
    cause = ClientError(
        {"Error": {"Code": "ConditionalCheckFailedException", "Message": "nope"}}, "PutItem"
    )
    error = PutError("Failed to put item", cause)
    assert error.cause_response_code == "ConditionalCheckFailedException"
    assert error.cause_response_message == "nope"


def test_no_cause_at_all() -> None:
    assert TransactWriteError("Failed").cause_response_code is None
