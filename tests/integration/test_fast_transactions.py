"""fast_transactions behaves exactly like moto's own transact_write_items.

Every case runs twice, each time on a fresh moto with the same tables and
seed items: once with stock moto, once with ``fast_transactions`` installed.
The responses (or error code, message and CancellationReasons), the table
contents, the GSI contents and the stream records
must be identical. A property-based test does the same for random
transactions. Timings are not asserted here (see benchmarks/).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table

from autopilot_cli.local import fast_transactions

REGION = "us-east-1"
RANGE_TABLE = "ledger"  # pk/sk, a GSI, a stream
HASH_TABLE = "members"  # pk only


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


SEED: dict[str, list[dict[str, Any]]] = {
    RANGE_TABLE: [
        {"pk": _s("m#1"), "sk": _s("balance"), "points": _n(10), "gsi_pk": _s("day#1")},
        {"pk": _s("m#1"), "sk": _s("entry#1"), "points": _n(10), "reason": _s("checkin")},
        {"pk": _s("m#1"), "sk": _s("entry#2"), "points": _n(5), "gsi_pk": _s("day#1")},
        {"pk": _s("m#2"), "sk": _s("balance"), "points": _n(3), "name": _s("text")},
        {
            "pk": _s("m#2"),
            "sk": _s("profile"),
            "profile": {"M": {"level": _s("bronze"), "tags": {"L": [_s("a")]}}},
        },
    ],
    HASH_TABLE: [
        {"pk": _s("alice"), "streak": _n(3)},
        {"pk": _s("bob"), "streak": _n(0), "label": _s("new")},
        {"pk": _s("carol"), "streak": _n(7)},
    ],
}


def _create_tables(client: Any) -> None:
    client.create_table(
        TableName=RANGE_TABLE,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "gsi_pk", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by_day",
                "KeySchema": [
                    {"AttributeName": "gsi_pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        BillingMode="PAY_PER_REQUEST",
    )
    client.create_table(
        TableName=HASH_TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for table, items in SEED.items():
        for item in items:
            client.put_item(TableName=table, Item=item)


@contextmanager
def _fresh_stack(patched: bool) -> Iterator[Any]:
    """A fresh moto with the seeded tables; ``patched`` installs fast_transactions."""
    with mock_aws():
        if patched:
            fast_transactions.install()
        try:
            client = boto3.client(
                "dynamodb",
                region_name=REGION,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
            _create_tables(client)
            yield client
        finally:
            if patched:
                fast_transactions.uninstall()


def _outcome(call: Callable[[], Any]) -> tuple[Any, ...]:
    try:
        response = call()
    except ClientError as error:
        return (
            "error",
            error.response["Error"]["Code"],
            error.response["Error"].get("Message"),
            error.response.get("CancellationReasons"),
        )
    response = dict(response)
    response.pop("ResponseMetadata", None)
    return ("ok", response)


def _stream_records(client: Any) -> list[Any]:
    streams = boto3.client(
        "dynamodbstreams",
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    arn = client.describe_table(TableName=RANGE_TABLE)["Table"]["LatestStreamArn"]
    shard_id = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = streams.get_records(ShardIterator=iterator, Limit=1000)["Records"]
    return [
        (
            r["eventName"],
            r["dynamodb"]["Keys"],
            r["dynamodb"].get("OldImage"),
            r["dynamodb"].get("NewImage"),
        )
        for r in records
    ]


def _state(client: Any) -> dict[str, Any]:
    """Everything observable: items, GSI contents, counts, stream records."""
    state: dict[str, Any] = {}
    for table in (RANGE_TABLE, HASH_TABLE):
        state[table] = client.scan(TableName=table)["Items"]
        state[f"{table}.count"] = client.describe_table(TableName=table)["Table"]["ItemCount"]
    state["gsi"] = client.scan(TableName=RANGE_TABLE, IndexName="by_day")["Items"]
    state["partition m#9"] = client.query(
        TableName=RANGE_TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": _s("m#9")},
    )["Items"]
    state["stream"] = _stream_records(client)
    return state


def _run(patched: bool, transactions: list[list[dict[str, Any]]]) -> list[Any]:
    observed: list[Any] = []
    with _fresh_stack(patched) as client:
        for items in transactions:
            outcome = _outcome(
                lambda items=items: client.transact_write_items(TransactItems=copy.deepcopy(items))
            )
            observed.append((outcome, _state(client)))
    return observed


def _assert_same_as_stock(transactions: list[list[dict[str, Any]]]) -> list[Any]:
    stock = _run(False, transactions)
    fast = _run(True, transactions)
    for index, (expected, actual) in enumerate(zip(stock, fast, strict=True)):
        assert actual[0] == expected[0], f"transaction {index}: response differs"
        assert actual[1] == expected[1], f"transaction {index}: table state differs"
    return stock


# --------------------------------------------------------------------------- #
# The corpus
# --------------------------------------------------------------------------- #


def _put(table: str, item: dict[str, Any], condition: str | None = None, **extra: Any) -> dict:
    op: dict[str, Any] = {"TableName": table, "Item": item, **extra}
    if condition:
        op["ConditionExpression"] = condition
    return {"Put": op}


def _update(table: str, key: dict[str, Any], expression: str, **extra: Any) -> dict:
    return {"Update": {"TableName": table, "Key": key, "UpdateExpression": expression, **extra}}


def _delete(table: str, key: dict[str, Any], **extra: Any) -> dict:
    return {"Delete": {"TableName": table, "Key": key, **extra}}


def _check(table: str, key: dict[str, Any], condition: str, **extra: Any) -> dict:
    return {
        "ConditionCheck": {
            "TableName": table,
            "Key": key,
            "ConditionExpression": condition,
            **extra,
        }
    }


BALANCE_1 = {"pk": _s("m#1"), "sk": _s("balance")}
BALANCE_2 = {"pk": _s("m#2"), "sk": _s("balance")}
ENTRY_NEW = {"pk": _s("m#1"), "sk": _s("entry#3")}
NEW_PARTITION = {"pk": _s("m#9"), "sk": _s("balance")}
ADD_10 = {":v": _n(10)}
ALL_OLD = {"ReturnValuesOnConditionCheckFailure": "ALL_OLD"}

CORPUS: dict[str, list[list[dict[str, Any]]]] = {
    "success: put, update, delete, condition check": [
        [
            _put(RANGE_TABLE, {**ENTRY_NEW, "points": _n(10), "gsi_pk": _s("day#2")}),
            _update(
                RANGE_TABLE, BALANCE_1, "SET points = points + :v", ExpressionAttributeValues=ADD_10
            ),
            _delete(HASH_TABLE, {"pk": _s("bob")}),
            _check(HASH_TABLE, {"pk": _s("alice")}, "attribute_exists(pk)"),
        ]
    ],
    "condition failure in 2nd item rolls back the 1st": [
        [
            _put(RANGE_TABLE, {**ENTRY_NEW, "points": _n(10)}, "attribute_not_exists(pk)"),
            _update(
                RANGE_TABLE,
                BALANCE_1,
                "SET points = points + :v",
                ConditionExpression="points > :big",
                ExpressionAttributeValues={**ADD_10, ":big": _n(1000)},
            ),
        ]
    ],
    "condition failure in 3rd item with ALL_OLD rolls back an update and a put": [
        [
            _update(
                RANGE_TABLE, BALANCE_1, "SET points = points + :v", ExpressionAttributeValues=ADD_10
            ),
            _put(HASH_TABLE, {"pk": _s("dave"), "streak": _n(1)}),
            _check(
                HASH_TABLE,
                {"pk": _s("carol")},
                "streak < :s",
                **ALL_OLD,
                ExpressionAttributeValues={":s": _n(5)},
            ),
        ]
    ],
    "put over an existing item with ALL_OLD": [
        [
            _delete(RANGE_TABLE, {"pk": _s("m#1"), "sk": _s("entry#1")}),
            _put(
                RANGE_TABLE, {**BALANCE_2, "points": _n(0)}, "attribute_not_exists(pk)", **ALL_OLD
            ),
        ]
    ],
    "several failures, items after a failure are still evaluated": [
        [
            _check(HASH_TABLE, {"pk": _s("alice")}, "attribute_not_exists(pk)", **ALL_OLD),
            _update(
                HASH_TABLE,
                {"pk": _s("carol")},
                "SET streak = :z",
                ExpressionAttributeValues={":z": _n(0)},
            ),
            _delete(
                HASH_TABLE,
                {"pk": _s("bob")},
                ConditionExpression="streak > :z",
                ExpressionAttributeValues={":z": _n(0)},
                **ALL_OLD,
            ),
            _put(RANGE_TABLE, {**NEW_PARTITION, "points": _n(1)}),
        ]
    ],
    "deletes of existing items rolled back": [
        [
            _delete(HASH_TABLE, {"pk": _s("alice")}),
            _delete(RANGE_TABLE, {"pk": _s("m#1"), "sk": _s("entry#1")}),
            _check(
                HASH_TABLE,
                {"pk": _s("bob")},
                "streak > :z",
                ExpressionAttributeValues={":z": _n(0)},
            ),
        ]
    ],
    "upsert of a new item in a new partition rolled back": [
        [
            _update(
                RANGE_TABLE, NEW_PARTITION, "SET points = :v", ExpressionAttributeValues=ADD_10
            ),
            _check(RANGE_TABLE, {"pk": _s("m#8"), "sk": _s("x")}, "attribute_exists(pk)"),
        ]
    ],
    "condition check on a missing item of a new partition succeeds": [
        [
            _check(RANGE_TABLE, {"pk": _s("m#7"), "sk": _s("x")}, "attribute_not_exists(pk)"),
            _put(HASH_TABLE, {"pk": _s("erin"), "streak": _n(1)}),
        ]
    ],
    "update expression type error raises ValidationException and rolls back": [
        [
            _put(HASH_TABLE, {"pk": _s("frank"), "streak": _n(1)}),
            _update(
                RANGE_TABLE,
                BALANCE_2,
                "SET #n = #n + :v",
                ExpressionAttributeNames={"#n": "name"},
                ExpressionAttributeValues=ADD_10,
            ),
        ]
    ],
    "update expression on a nested path rolled back restores the nested value": [
        [
            _update(
                RANGE_TABLE,
                {"pk": _s("m#2"), "sk": _s("profile")},
                "SET profile.#l = :gold, profile.tags[1] = :b",
                ExpressionAttributeNames={"#l": "level"},
                ExpressionAttributeValues={":gold": _s("gold"), ":b": _s("b")},
            ),
            _check(HASH_TABLE, {"pk": _s("zed")}, "attribute_exists(pk)"),
        ]
    ],
    "update removing a GSI key rolled back restores the GSI": [
        [
            _update(RANGE_TABLE, {"pk": _s("m#1"), "sk": _s("entry#2")}, "REMOVE gsi_pk"),
            _update(
                RANGE_TABLE,
                BALANCE_1,
                "SET gsi_pk = :d",
                ExpressionAttributeValues={":d": _s("day#9")},
            ),
            _check(
                HASH_TABLE,
                {"pk": _s("carol")},
                "streak = :z",
                ExpressionAttributeValues={":z": _n(0)},
            ),
        ]
    ],
    "duplicate item in one transaction is a ValidationException": [
        [
            _put(HASH_TABLE, {"pk": _s("gina"), "streak": _n(1)}),
            _update(RANGE_TABLE, BALANCE_1, "SET points = :v", ExpressionAttributeValues=ADD_10),
            _check(RANGE_TABLE, BALANCE_1, "attribute_exists(pk)"),
        ]
    ],
    "key type mismatch is a ValidationException": [
        [
            _put(HASH_TABLE, {"pk": _s("hank"), "streak": _n(1)}),
            _put(RANGE_TABLE, {"pk": _n(1), "sk": _s("x")}),
        ]
    ],
    "delete in a missing table is a cancellation reason": [
        [
            _put(HASH_TABLE, {"pk": _s("ivan"), "streak": _n(1)}),
            _delete("no-such-table", {"pk": _s("x")}),
        ]
    ],
    "put in a missing table is rejected up front": [
        [
            _put("no-such-table", {"pk": _s("x")}),
        ]
    ],
    "missing range key in a key is a ValidationException": [
        [
            _put(HASH_TABLE, {"pk": _s("judy"), "streak": _n(1)}),
            _delete(RANGE_TABLE, {"pk": _s("m#1")}),
        ]
    ],
    "a sequence: success, failure, success": [
        [
            _update(
                HASH_TABLE,
                {"pk": _s("alice")},
                "ADD streak :one",
                ExpressionAttributeValues={":one": _n(1)},
            ),
            _put(RANGE_TABLE, {**ENTRY_NEW, "points": _n(1), "gsi_pk": _s("day#1")}),
        ],
        [
            _update(
                HASH_TABLE,
                {"pk": _s("alice")},
                "ADD streak :one",
                ExpressionAttributeValues={":one": _n(1)},
            ),
            _put(RANGE_TABLE, {**ENTRY_NEW, "points": _n(1)}, "attribute_not_exists(pk)"),
        ],
        [
            _delete(RANGE_TABLE, ENTRY_NEW),
            _update(HASH_TABLE, {"pk": _s("alice")}, "REMOVE streak"),
        ],
    ],
}


@pytest.mark.parametrize("name", list(CORPUS))
def test_same_responses_and_tables_as_stock_moto(name: str) -> None:
    _assert_same_as_stock(CORPUS[name])


def test_corpus_exercises_success_cancellation_and_validation() -> None:
    """Guard against a corpus that silently stopped failing (or succeeding)."""
    codes = set()
    for transactions in CORPUS.values():
        for outcome, _ in _run(True, transactions):
            codes.add(outcome[1] if outcome[0] == "error" else "ok")
    assert {
        "ok",
        "TransactionCanceledException",
        "ValidationException",
        "ResourceNotFoundException",
    } <= codes


# --------------------------------------------------------------------------- #
# Random transactions
# --------------------------------------------------------------------------- #

_range_keys = st.builds(
    lambda pk, sk: {"pk": _s(pk), "sk": _s(sk)},
    st.sampled_from(["m#1", "m#2", "m#9"]),
    st.sampled_from(["balance", "entry#1", "entry#3"]),
)
_hash_keys = st.builds(lambda pk: {"pk": _s(pk)}, st.sampled_from(["alice", "bob", "zed"]))
_conditions = st.sampled_from(
    [None, "attribute_exists(pk)", "attribute_not_exists(pk)", "points > :z"]
)
_updates = st.sampled_from(
    [
        ("SET points = if_not_exists(points, :z) + :one", {}),
        ("ADD points :one", {}),
        ("SET points = :txt", {}),  # makes later arithmetic fail
        ("SET points = points + :one", {}),  # fails on items without points
        ("REMOVE gsi_pk", {}),
        ("SET gsi_pk = :day", {}),
    ]
)


@st.composite
def _operation(draw: st.DrawFn) -> dict[str, Any]:
    table = draw(st.sampled_from([RANGE_TABLE, HASH_TABLE]))
    key = draw(_range_keys if table == RANGE_TABLE else _hash_keys)
    kind = draw(st.sampled_from(["Put", "Update", "Delete", "ConditionCheck"]))
    condition = draw(_conditions)
    if kind == "ConditionCheck" and condition is None:
        condition = "attribute_exists(pk)"
    values = {":z": _n(0), ":one": _n(1), ":txt": _s("x"), ":day": _s("day#1")}
    op: dict[str, Any] = {"TableName": table}
    if kind == "Put":
        op["Item"] = {**key, "points": _n(draw(st.integers(0, 3)))}
    else:
        op["Key"] = key
    if kind == "Update":
        op["UpdateExpression"], _ = draw(_updates)
    used = " ".join(filter(None, [condition, op.get("UpdateExpression")]))
    used_values = {k: v for k, v in values.items() if k in used}
    if condition:
        op["ConditionExpression"] = condition
    if used_values:
        op["ExpressionAttributeValues"] = used_values
    if draw(st.booleans()):
        op["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    return {kind: op}


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(st.lists(_operation(), min_size=1, max_size=4), min_size=1, max_size=3))
def test_random_transactions_match_stock_moto(transactions: list[list[dict[str, Any]]]) -> None:
    _assert_same_as_stock(transactions)


# --------------------------------------------------------------------------- #
# Rollback specifics and installation
# --------------------------------------------------------------------------- #


def _cancelled(client: Any, items: list[dict[str, Any]]) -> ClientError:
    with pytest.raises(ClientError) as caught:
        client.transact_write_items(TransactItems=items)
    assert caught.value.response["Error"]["Code"] == "TransactionCanceledException"
    return caught.value


FAILING_CHECK = _check(HASH_TABLE, {"pk": _s("alice")}, "attribute_not_exists(pk)")


def test_rollback_removes_an_item_that_did_not_exist() -> None:
    with _fresh_stack(patched=True) as client:
        _cancelled(client, [_put(RANGE_TABLE, {**NEW_PARTITION, "points": _n(1)}), FAILING_CHECK])
        assert "Item" not in client.get_item(TableName=RANGE_TABLE, Key=NEW_PARTITION)
        assert (
            client.query(
                TableName=RANGE_TABLE,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": _s("m#9")},
            )["Items"]
            == []
        )


def test_rollback_restores_an_existing_item_value() -> None:
    with _fresh_stack(patched=True) as client:
        before = client.get_item(TableName=RANGE_TABLE, Key=BALANCE_1)["Item"]
        _cancelled(
            client,
            [
                _update(
                    RANGE_TABLE,
                    BALANCE_1,
                    "SET points = points + :v, extra = :v",
                    ExpressionAttributeValues=ADD_10,
                ),
                FAILING_CHECK,
            ],
        )
        assert client.get_item(TableName=RANGE_TABLE, Key=BALANCE_1)["Item"] == before


def test_rollback_of_a_table_addressed_by_arn() -> None:
    """Stock moto leaves such a table half-written; DynamoDB (and we) roll it back."""
    with _fresh_stack(patched=True) as client:
        arn = client.describe_table(TableName=HASH_TABLE)["Table"]["TableArn"]
        _cancelled(client, [_put(arn, {"pk": _s("kate"), "streak": _n(1)}), FAILING_CHECK])
        assert "Item" not in client.get_item(TableName=HASH_TABLE, Key={"pk": _s("kate")})


def test_a_transaction_never_copies_a_table(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: Table, memo: dict[int, Any]) -> Table:
        raise AssertionError("a whole table was deep-copied")

    with _fresh_stack(patched=True) as client:
        monkeypatch.setattr(Table, "__deepcopy__", refuse, raising=False)
        client.transact_write_items(
            TransactItems=[_put(HASH_TABLE, {"pk": _s("liam"), "streak": _n(1)})]
        )
        _cancelled(client, [_put(HASH_TABLE, {"pk": _s("mia"), "streak": _n(1)}), FAILING_CHECK])


def test_install_is_reference_counted_and_reversible() -> None:
    stock = DynamoDBBackend.transact_write_items
    assert not fast_transactions.is_installed()
    fast_transactions.install()
    fast_transactions.install()
    assert DynamoDBBackend.transact_write_items is not stock
    fast_transactions.uninstall()
    assert fast_transactions.is_installed()
    fast_transactions.uninstall()
    assert DynamoDBBackend.transact_write_items is stock
    assert not fast_transactions.is_installed()
    with pytest.raises(RuntimeError):
        fast_transactions.uninstall()
    with fast_transactions.fast_transactions():
        assert fast_transactions.is_installed()
    assert DynamoDBBackend.transact_write_items is stock
