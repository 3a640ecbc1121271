"""Small shared plumbing for the PynamoDB stores.

Every bound model talks to DynamoDB through :class:`SharedConnection`: the
container's one botocore session and one DynamoDB client (``autopilot.aws``),
with the same timeouts and retries as every other client. Stock PynamoDB
would give each model class its own ``Connection``, each with its own
botocore session and client, created on the first request.
"""

from __future__ import annotations

from typing import Any

from pynamodb.connection.base import Connection
from pynamodb.exceptions import PynamoDBException
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from autopilot import aws


def _response_error(exc: PynamoDBException) -> dict[str, Any]:
    response = getattr(exc.cause, "response", None)
    error = response.get("Error") if isinstance(response, dict) else None
    return error if isinstance(error, dict) else {}


def _cause_response_code(self: PynamoDBException) -> str | None:
    """The DynamoDB error code of the cause, or None when DynamoDB never answered."""
    code = _response_error(self).get("Code")
    return None if code is None else str(code)


def _cause_response_message(self: PynamoDBException) -> str | None:
    message = _response_error(self).get("Message")
    return None if message is None else str(message)


# PynamoDB reads ``cause.response["Error"]``, but botocore's HTTP client errors
# (``ReadTimeoutError``, ``ConnectionClosedError``: the request may have been
# applied, its answer never came) carry ``response = None``, so every
# ``exc.cause_response_code == "ConditionalCheckFailedException"`` check raised
# AttributeError instead of answering "not that". Here the properties answer None
# when DynamoDB did not answer, and the caller's own handling runs (a read timeout
# is then re-raised as the transient error it is).
PynamoDBException.cause_response_code = property(_cause_response_code)  # type: ignore[method-assign,assignment]
PynamoDBException.cause_response_message = property(_cause_response_message)  # type: ignore[method-assign,assignment]


class SharedConnection(Connection):
    """A PynamoDB connection on the container's shared session and DynamoDB client.

    Each model keeps its own connection object (it holds that model's table
    schema), but none of them creates a session or a client of its own.
    """

    @property
    def session(self) -> Any:
        """The container's botocore session (not a new one per connection)."""
        return aws.session()

    @property
    def client(self) -> Any:
        """The container's DynamoDB client, created on first use."""
        return aws.client("dynamodb", self.region)


def bind_table(table_name: str, *models: type[Model], region: str | None = None) -> None:
    """Point models at the table (and region) the template gave this function.

    Also puts each model on a :class:`SharedConnection` and states the
    container's client limits in its ``Meta`` (PynamoDB's own settings), so
    they agree with the client actually used.
    """
    current = aws.limits()
    for model in models:
        model.Meta.table_name = table_name
        if region:
            model.Meta.region = region
        model.Meta.connect_timeout_seconds = current.connect_timeout_s  # type: ignore[assignment]
        model.Meta.read_timeout_seconds = current.read_timeout_s  # type: ignore[assignment]
        # PynamoDB counts retries, botocore counts attempts.
        model.Meta.max_retry_attempts = current.max_attempts - 1
        model._connection = None  # rebuild for the (possibly new) table and region
        table = model._get_connection()
        shared = SharedConnection(
            region=model.Meta.region,
            connect_timeout_seconds=current.connect_timeout_s,
            read_timeout_seconds=current.read_timeout_s,
            max_retry_attempts=current.max_attempts - 1,
        )
        shared.add_meta_table(table.connection.get_meta_table(table_name))
        table.connection = shared


def transaction(model: type[Model]) -> TransactWrite:
    """A write transaction on ``model``'s own connection (the shared DynamoDB client)."""
    return TransactWrite(connection=model._get_connection().connection)
