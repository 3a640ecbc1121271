"""Bare moto tables for the local runtime's fast-path tests (not the template's)."""

from __future__ import annotations

from typing import Any


def key_schema(hash_key: str, range_key: str) -> list[dict[str, str]]:
    """A hash + range key schema."""
    return [
        {"AttributeName": hash_key, "KeyType": "HASH"},
        {"AttributeName": range_key, "KeyType": "RANGE"},
    ]


def index(name: str, hash_key: str, range_key: str, projection: str = "ALL") -> dict[str, Any]:
    """A secondary index definition."""
    return {
        "IndexName": name,
        "KeySchema": key_schema(hash_key, range_key),
        "Projection": {"ProjectionType": projection},
    }


def create_table(
    client: Any, name: str = "t", *, attributes: dict[str, str] | None = None, **properties: Any
) -> None:
    """An on-demand table keyed by string ``pk`` + ``sk``; ``attributes`` adds the
    index key attributes (name → type), ``properties`` the indexes and the rest."""
    types = {"pk": "S", "sk": "S", **(attributes or {})}
    client.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=key_schema("pk", "sk"),
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": t} for a, t in types.items()],
        **properties,
    )
