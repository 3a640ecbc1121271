"""Small shared plumbing for the PynamoDB stores."""

from __future__ import annotations

from pynamodb.models import Model
from pynamodb.transactions import TransactWrite


def bind_table(table_name: str, *models: type[Model], region: str | None = None) -> None:
    """Point models at the table (and region) the template gave this function."""
    for model in models:
        model.Meta.table_name = table_name
        if region:
            model.Meta.region = region


def transaction(model: type[Model]) -> TransactWrite:
    """A write transaction on ``model``'s own connection.

    Reusing the model's connection keeps one botocore client per container
    instead of creating a second one (and a second session) just for transactions.
    """
    return TransactWrite(connection=model._get_connection().connection)
