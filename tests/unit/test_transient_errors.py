"""autopilot.aws.is_transient over the exceptions botocore and PynamoDB really raise."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import botocore.session
import pytest
from autopilot.aws import is_transient
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)
from botocore.stub import Stubber
from pynamodb.connection import Connection
from pynamodb.exceptions import (
    GetError,
    PutError,
    QueryError,
    TransactWriteError,
    UpdateError,
)

URL = "https://dynamodb.us-east-1.amazonaws.com/"


def client_error(code: str, status: int = 400, **extra: Any) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}
        | extra,
        "UpdateItem",
    )


@pytest.fixture
def stubbed(aws_env) -> Iterator[tuple[Connection, Stubber]]:
    """A PynamoDB connection whose botocore client answers from a Stubber (no network)."""
    connection = Connection(region="us-east-1")
    session = botocore.session.get_session()
    connection._client = session.create_client("dynamodb", region_name="us-east-1")
    with Stubber(connection._client) as stubber:
        yield connection, stubber


@pytest.mark.parametrize(
    "code",
    [
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionInProgressException",
        "Throttling",  # SNS
        "RequestThrottled",  # SQS
        "SlowDown",  # S3
    ],
)
def test_throttling_and_service_errors_are_transient(code):
    assert is_transient(client_error(code))


@pytest.mark.parametrize(
    "code",
    [
        "ConditionalCheckFailedException",
        "ValidationException",
        "ResourceNotFoundException",
        "AccessDeniedException",
        "ItemCollectionSizeLimitExceededException",
    ],
)
def test_permanent_errors_are_not(code):
    assert not is_transient(client_error(code))


def test_an_unknown_code_with_a_5xx_status_is_transient():
    assert is_transient(client_error("SomethingBroke", 503))
    assert not is_transient(client_error("SomethingBroke", 400))


@pytest.mark.parametrize(
    "exc",
    [
        ReadTimeoutError(endpoint_url=URL),
        ConnectTimeoutError(endpoint_url=URL),
        EndpointConnectionError(endpoint_url=URL),
        ConnectionClosedError(endpoint_url=URL),
    ],
)
def test_network_failures_are_transient(exc):
    assert is_transient(exc)
    assert is_transient(UpdateError("Failed to update item", exc))  # as PynamoDB wraps them


@pytest.mark.parametrize(
    "exc",
    [
        NoCredentialsError(),
        ParamValidationError(report="bad"),
        ValueError("x"),
        RuntimeError("rotation kept changing"),
        KeyboardInterrupt(),
    ],
)
def test_other_errors_are_not(exc):
    assert not is_transient(exc)


def test_pynamodb_wraps_the_sdk_error_of_a_real_call_in_its_cause(stubbed):
    """A stubbed call through PynamoDB's connection raises its VerboseClientError (a
    ClientError); its operations wrap that in ``PutError``/``GetError``/… ``.cause``."""
    connection, stubber = stubbed
    key = {"pk": {"S": "a"}}
    stubber.add_client_error("put_item", "ProvisionedThroughputExceededException", "", 400)
    stubber.add_client_error("get_item", "InternalServerError", "", 500)
    stubber.add_client_error("query", "ValidationException", "", 400)
    stubber.add_client_error("update_item", "ConditionalCheckFailedException", "", 400)
    calls = [
        ("PutItem", {"TableName": "T", "Item": key}, PutError),
        ("GetItem", {"TableName": "T", "Key": key}, GetError),
        (
            "Query",
            {
                "TableName": "T",
                "KeyConditionExpression": "pk = :p",
                "ExpressionAttributeValues": {":p": {"S": "a"}},
            },
            QueryError,
        ),
        ("UpdateItem", {"TableName": "T", "Key": key}, UpdateError),
    ]
    errors = []
    for operation, params, wrapper in calls:
        with pytest.raises(ClientError) as raised:
            connection._make_api_call(operation, params)
        errors.append(wrapper(f"Failed: {raised.value}", raised.value))  # as PynamoDB does
    put, get, query, update = errors
    assert put.cause_response_code == "ProvisionedThroughputExceededException"
    assert is_transient(put) and is_transient(get)
    assert not is_transient(query) and not is_transient(update)


def _cancelled(stubber: Stubber, *codes: str) -> None:
    stubber.add_client_error(
        "transact_write_items",
        "TransactionCanceledException",
        "cancelled",
        400,
        modeled_fields={"CancellationReasons": [{"Code": c} for c in codes]},
    )


@pytest.mark.parametrize(
    ("codes", "transient"),
    [
        (("None", "ThrottlingError"), True),
        (("TransactionConflict", "None"), True),
        (("ProvisionedThroughputExceeded",), True),
        (("ConditionalCheckFailed", "None"), False),
        (("ConditionalCheckFailed", "ThrottlingError"), False),
        (("ValidationError",), False),
    ],
)
def test_a_cancelled_transaction_is_transient_only_for_conflicts_and_throttling(
    stubbed, codes, transient
):
    connection, stubber = stubbed
    _cancelled(stubber, *codes)
    check = {
        "TableName": "T",
        "Key": {"pk": {"S": "a"}},
        "ConditionExpression": "attribute_exists(pk)",
    }
    with pytest.raises(TransactWriteError) as raised:  # PynamoDB's own wrapping
        connection.transact_write_items(
            condition_check_items=[check], delete_items=[], put_items=[], update_items=[]
        )
    assert is_transient(raised.value) is transient
    # A boto3 client's ClientError (no PynamoDB) keeps the reasons as raw dicts.
    raw = client_error(
        "TransactionCanceledException", CancellationReasons=[{"Code": c} for c in codes]
    )
    assert is_transient(raw) is transient


def test_an_explicit_cause_chain_is_followed_but_not_an_implicit_context():
    try:
        try:
            raise client_error("ThrottlingException")
        except ClientError as exc:
            raise RuntimeError("could not read the pool") from exc
    except RuntimeError as wrapped:
        assert is_transient(wrapped)
    try:
        try:
            raise client_error("ThrottlingException")
        except ClientError:
            raise RuntimeError("a bug while handling it") from None
    except RuntimeError as unrelated:
        assert not is_transient(unrelated)
