"""DynamoDB calls answered below HTTP (local fast path) behave exactly like stock moto.

The same workload — every data-plane operation, pagination, indexes, every
attribute type, and the errors callers branch on (conditional check failures
with the old item, cancelled transactions with their reasons, validation
errors, missing tables) — runs once through moto's HTTP stub and once through
:mod:`autopilot_cli.local.fast_dynamodb`. The parsed responses, the raised
exception classes with their error documents, the final tables and the
counted AWS requests must be identical.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError, ParamValidationError
from moto import mock_aws

from autopilot_cli import metering
from autopilot_cli.local import fast_dynamodb
from autopilot_cli.simulate import run_simulation

from .ddb_tables import create_table, index

_ANSWER = fast_dynamodb._answer


def _item(n: int) -> dict[str, Any]:
    return {
        "pk": {"S": f"p{n % 3}"},
        "sk": {"S": f"s{n:03d}"},
        "g": {"S": f"g{n % 2}"},
        "n": {"N": str(n * 7)},
        "big": {"N": "12345678901234567890123456789012345678"},
        "frac": {"N": "-0.000001"},
        "b": {"B": base64.b64decode(base64.b64encode(bytes([n, 0, 255])))},
        "ss": {"SS": ["a", f"x{n}"]},
        "ns": {"NS": ["1", str(n + 2)]},
        "bs": {"BS": [b"\x00\x01", bytes([n])]},
        "m": {"M": {"nested": {"L": [{"S": "中文\u2028"}, {"NULL": True}, {"BOOL": n % 2 == 0}]}}},
        "l": {"L": [{"N": "1.5"}, {"M": {}}, {"L": []}]},
        "empty": {"S": ""},
    }


def _strip(response: dict[str, Any]) -> dict[str, Any]:
    """A response without what differs per request (request id, date, crc32)."""
    result = dict(response)
    meta = result.pop("ResponseMetadata", None)
    if meta is not None:
        result["_status"] = meta.get("HTTPStatusCode")
        result["_retries"] = meta.get("RetryAttempts")
    return result


def _workload(ddb: Any) -> list[tuple[Any, ...]]:
    """Run every operation; record each outcome as comparable data."""
    outcomes: list[tuple[Any, ...]] = []

    def call(name: str, **kwargs: Any) -> None:
        try:
            response = getattr(ddb, name)(**kwargs)
        except ClientError as error:
            outcomes.append((name, "error", type(error).__name__, _strip(error.response)))
        except ParamValidationError as error:
            outcomes.append((name, "invalid", str(error)))
        except Exception as error:  # moto's own bugs surface as the same exception
            outcomes.append((name, "raised", type(error).__name__, str(error)))
        else:
            outcomes.append((name, "ok", _strip(response)))

    create_table(
        ddb,
        attributes={"g": "S", "n": "N"},
        GlobalSecondaryIndexes=[index("by_g", "g", "sk")],
        LocalSecondaryIndexes=[index("by_n", "pk", "n", projection="KEYS_ONLY")],
    )
    for n in range(14):
        call("put_item", TableName="t", Item=_item(n), ReturnConsumedCapacity="TOTAL")
    call("put_item", TableName="t", Item=_item(3), ReturnValues="ALL_OLD")
    call("get_item", TableName="t", Key={"pk": {"S": "p1"}, "sk": {"S": "s004"}})
    call(
        "get_item",
        TableName="t",
        Key={"pk": {"S": "p1"}, "sk": {"S": "s004"}},
        ProjectionExpression="#m.nested[0], b, ss",
        ExpressionAttributeNames={"#m": "m"},
        ConsistentRead=True,
        ReturnConsumedCapacity="INDEXES",
    )
    call("get_item", TableName="t", Key={"pk": {"S": "p1"}, "sk": {"S": "nope"}})
    call("get_item", TableName="missing", Key={"pk": {"S": "p1"}, "sk": {"S": "s"}})
    call("get_item", TableName="t", Key={"pk": {"S": "p1"}})
    # Query: pagination both ways, filters, indexes, counts.
    start: dict[str, Any] | None = None
    for _ in range(4):
        kwargs: dict[str, Any] = {
            "TableName": "t",
            "KeyConditionExpression": "pk = :p AND begins_with(sk, :s)",
            "ExpressionAttributeValues": {":p": {"S": "p2"}, ":s": {"S": "s0"}},
            "Limit": 2,
            "ScanIndexForward": False,
            "ReturnConsumedCapacity": "TOTAL",
        }
        if start:
            kwargs["ExclusiveStartKey"] = start
        call("query", **kwargs)
        start = outcomes[-1][2].get("LastEvaluatedKey")
        if not start:
            break
    call(
        "query",
        TableName="t",
        IndexName="by_g",
        KeyConditionExpression="g = :g",
        FilterExpression="n > :min AND contains(ss, :a)",
        ExpressionAttributeValues={":g": {"S": "g1"}, ":min": {"N": "20"}, ":a": {"S": "a"}},
    )
    call(
        "query",
        TableName="t",
        IndexName="by_n",
        KeyConditionExpression="pk = :p AND n BETWEEN :lo AND :hi",
        ExpressionAttributeValues={":p": {"S": "p0"}, ":lo": {"N": "0"}, ":hi": {"N": "50"}},
        Select="COUNT",
    )
    call(
        "query",
        TableName="t",
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": "p0"}, ":unused": {"S": "x"}},
    )
    call("query", TableName="t", KeyConditionExpression="pk = :undefined")
    # Scan with pagination and projection.
    start = None
    for _ in range(10):
        kwargs = {"TableName": "t", "Limit": 5, "ProjectionExpression": "pk, sk, l"}
        if start:
            kwargs["ExclusiveStartKey"] = start
        call("scan", **kwargs)
        start = outcomes[-1][2].get("LastEvaluatedKey")
        if not start:
            break
    call(
        "batch_get_item",
        RequestItems={
            "t": {
                "Keys": [{"pk": {"S": f"p{n % 3}"}, "sk": {"S": f"s{n:03d}"}} for n in (1, 5, 99)],
                "ProjectionExpression": "pk, sk, n",
            }
        },
        ReturnConsumedCapacity="TOTAL",
    )
    call("batch_get_item", RequestItems={"missing": {"Keys": [{"pk": {"S": "x"}}]}})
    call(
        "update_item",
        TableName="t",
        Key={"pk": {"S": "p0"}, "sk": {"S": "s003"}},
        UpdateExpression="SET n = n + :one, extra = :e ADD ns :ns REMOVE empty",
        ExpressionAttributeValues={
            ":one": {"N": "1"},
            ":e": {"M": {"k": {"S": "v"}}},
            ":ns": {"NS": ["99"]},
        },
        ReturnValues="ALL_NEW",
    )
    for returned in ("UPDATED_OLD", "UPDATED_NEW", "ALL_OLD", "NONE"):
        call(
            "update_item",
            TableName="t",
            Key={"pk": {"S": "p0"}, "sk": {"S": "s006"}},
            UpdateExpression="SET n = if_not_exists(n, :z) + :one",
            ExpressionAttributeValues={":one": {"N": "1"}, ":z": {"N": "0"}},
            ReturnValues=returned,
        )
    call(
        "update_item",
        TableName="t",
        Key={"pk": {"S": "p0"}, "sk": {"S": "s006"}},
        UpdateExpression="SET n = :v",
        ConditionExpression="n = :never",
        ExpressionAttributeValues={":v": {"N": "1"}, ":never": {"N": "-1"}},
        ReturnValuesOnConditionCheckFailure="ALL_OLD",
    )
    call(
        "update_item",
        TableName="t",
        Key={"pk": {"S": "p0"}, "sk": {"S": "s006"}},
        UpdateExpression="SET n = :v",
        ExpressionAttributeValues={":v": {"N": "1" * 39}},
    )
    call(
        "update_item",
        TableName="t",
        Key={"pk": {"S": "p0"}, "sk": {"S": "s006"}},
        UpdateExpression="SET #missing = :v",
        ExpressionAttributeValues={":v": {"N": "1"}},
    )
    # Structural validation: the same expression text is valid with one set of
    # names and a key update with another; every refusal is repeated.
    for names in ({"#k": "n"}, {"#k": "pk"}, {"#k": "n"}, {"#k": "sk"}):
        call(
            "update_item",
            TableName="t",
            Key={"pk": {"S": "p1"}, "sk": {"S": "s004"}},
            UpdateExpression="SET #k = :v",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={":v": {"N": "3"}},
        )
    for expression in ("SET a = :v, a = :v", "SET a = :v SET b = :v", "ADD pk :v", "SET a = :v"):
        for _ in range(2):
            call(
                "update_item",
                TableName="t",
                Key={"pk": {"S": "p1"}, "sk": {"S": "s004"}},
                UpdateExpression=expression,
                ExpressionAttributeValues={":v": {"N": "3"}},
            )
    call(
        "put_item",
        TableName="t",
        Item=_item(1),
        ConditionExpression="attribute_not_exists(pk)",
        ReturnValuesOnConditionCheckFailure="ALL_OLD",
    )
    call("put_item", TableName="t", Item={**_item(50), "blob": {"S": "x" * 410_000}})
    call("put_item", TableName="t", Item={"pk": {"S": "p9"}})
    call(
        "transact_write_items",
        TransactItems=[
            {"Put": {"TableName": "t", "Item": _item(40)}},
            {
                "Update": {
                    "TableName": "t",
                    "Key": {"pk": {"S": "p1"}, "sk": {"S": "s001"}},
                    "UpdateExpression": "SET n = n - :d",
                    "ConditionExpression": "n >= :d",
                    "ExpressionAttributeValues": {":d": {"N": "7"}},
                }
            },
            {
                "ConditionCheck": {
                    "TableName": "t",
                    "Key": {"pk": {"S": "p2"}, "sk": {"S": "s002"}},
                    "ConditionExpression": "attribute_exists(pk)",
                }
            },
        ],
        ClientRequestToken="token-1",
        ReturnConsumedCapacity="TOTAL",
        ReturnItemCollectionMetrics="SIZE",
    )
    call(
        "transact_write_items",
        TransactItems=[
            {"Put": {"TableName": "t", "Item": _item(41)}},
            {
                "Update": {
                    "TableName": "t",
                    "Key": {"pk": {"S": "p1"}, "sk": {"S": "s001"}},
                    "UpdateExpression": "SET n = n - :d",
                    "ConditionExpression": "n >= :d",
                    "ExpressionAttributeValues": {":d": {"N": "1000"}},
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            },
        ],
    )
    call(
        "transact_write_items",
        TransactItems=[
            {"Put": {"TableName": "t", "Item": _item(42)}},
            {"Delete": {"TableName": "t", "Key": {"pk": {"S": "p0"}, "sk": {"S": "s042"}}}},
        ],
    )
    # One request, the same expressions with different values: a memoised parse
    # must never answer for other values (the second update's condition fails).
    for limit in ("5", "500"):
        call(
            "transact_write_items",
            TransactItems=[
                {
                    "Update": {
                        "TableName": "t",
                        "Key": {"pk": {"S": f"p{n % 3}"}, "sk": {"S": f"s{n:03d}"}},
                        "UpdateExpression": "SET n = n - :d",
                        "ConditionExpression": "n >= :d",
                        "ExpressionAttributeValues": {":d": {"N": d}},
                    }
                }
                for n, d in ((7, "5"), (8, limit))
            ],
        )
    call(
        "transact_get_items",
        TransactItems=[
            {"Get": {"TableName": "t", "Key": {"pk": {"S": "p1"}, "sk": {"S": "s040"}}}},
            {"Get": {"TableName": "t", "Key": {"pk": {"S": "p1"}, "sk": {"S": "none"}}}},
        ],
        ReturnConsumedCapacity="TOTAL",
    )
    call(
        "batch_write_item",
        RequestItems={
            "t": [
                {"DeleteRequest": {"Key": {"pk": {"S": "p2"}, "sk": {"S": "s002"}}}},
                {"PutRequest": {"Item": _item(60)}},
            ]
        },
        ReturnItemCollectionMetrics="SIZE",
    )
    call(
        "batch_write_item",
        RequestItems={
            "t": [{"PutRequest": {"Item": _item(61)}}, {"PutRequest": {"Item": _item(61)}}]
        },
    )
    call(
        "delete_item",
        TableName="t",
        Key={"pk": {"S": "p0"}, "sk": {"S": "s000"}},
        ReturnValues="ALL_OLD",
    )
    call(
        "delete_item",
        TableName="t",
        Key={"pk": {"S": "p0"}, "sk": {"S": "s009"}},
        ConditionExpression="attribute_not_exists(pk)",
        ReturnValuesOnConditionCheckFailure="ALL_OLD",
    )
    call("delete_item", TableName="t", Key={"pk": {"S": 5}})
    call("describe_table", TableName="t")  # control plane: the stock path either way
    return outcomes


def _final_table(ddb: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": "t"}
    while True:
        page = ddb.scan(**kwargs)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            return sorted(items, key=lambda i: (i["pk"]["S"], i["sk"]["S"]))
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _run(fast: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, ...]:
    answered: list[str] = []
    original = _ANSWER

    def spy(operation: str, *args: Any) -> Any:
        answered.append(operation)
        return original(operation, *args)

    monkeypatch.setattr(fast_dynamodb, "_answer", spy)
    with mock_aws(), metering.RequestCounter() as requests:
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        if fast:
            fast_dynamodb.install()
        try:
            outcomes = _workload(ddb)
        finally:
            if fast:
                fast_dynamodb.uninstall()
        table = _final_table(ddb)
    return outcomes, table, dict(requests.by_operation()), answered


def _describe_time_free(outcomes: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    # DescribeTable carries creation times; it takes the stock path both ways.
    return [o for o in outcomes if o[0] != "describe_table"]


def test_fast_path_answers_like_stock_moto(aws_env, monkeypatch):
    stock, stock_table, stock_requests, stock_answered = _run(False, monkeypatch)
    fast, fast_table, fast_requests, fast_answered = _run(True, monkeypatch)

    assert stock_answered == []
    assert set(fast_answered) == fast_dynamodb.FAST_OPERATIONS
    assert len(fast) == len(stock)
    for stock_outcome, fast_outcome in zip(
        _describe_time_free(stock), _describe_time_free(fast), strict=True
    ):
        assert fast_outcome == stock_outcome
    kinds = {(o[0], o[1], o[2] if o[1] == "error" else "") for o in stock}
    assert ("transact_write_items", "error", "TransactionCanceledException") in kinds
    assert ("put_item", "error", "ConditionalCheckFailedException") in kinds
    assert ("get_item", "error", "ResourceNotFoundException") in kinds
    assert ("update_item", "error", "ClientError") in kinds  # ValidationException
    cancelled = next(o for o in fast if o[2] == "TransactionCanceledException")
    assert cancelled[3]["CancellationReasons"][1]["Code"] == "ConditionalCheckFailed"
    assert cancelled[3]["CancellationReasons"][1]["Item"]["pk"] == {"S": "p1"}
    assert any(o[0] == "query" and o[1] == "ok" and "LastEvaluatedKey" in o[2] for o in fast)
    assert fast_table == stock_table
    assert fast_requests == stock_requests


def test_fast_path_is_inactive_unless_installed_and_moto_is_running(aws_env, monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(fast_dynamodb, "_answer", lambda op, *a: calls.append(op))
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        with pytest.raises(ClientError):
            ddb.get_item(TableName="none", Key={"pk": {"S": "x"}})
    assert calls == []
    fast_dynamodb.install()
    try:
        hook = fast_dynamodb._on_before_call
        assert hook(model=None, params={}, request_signer=object()) is None  # moto stopped
    finally:
        fast_dynamodb.uninstall()
    assert not fast_dynamodb.is_installed()


def _without_message_ids(value: Any) -> Any:
    """Drop moto's random message ids (they differ between any two runs)."""
    if isinstance(value, dict):
        return {k: _without_message_ids(v) for k, v in value.items() if k != "message_id"}
    if isinstance(value, list):
        return [_without_message_ids(v) for v in value]
    return value


def test_a_simulated_day_is_the_same_with_and_without_the_fast_path(aws_env, tmp_path, monkeypatch):
    def day(fast: bool) -> dict[str, Any]:
        out = tmp_path / ("fast" if fast else "stock")
        if not fast:
            monkeypatch.setattr(fast_dynamodb, "install", lambda: None)
            monkeypatch.setattr(fast_dynamodb, "uninstall", lambda: None)
        result = run_simulation(
            "config/communities.yaml",
            start=datetime(2027, 3, 8, tzinfo=UTC),
            days=1,
            members=15,
            seed=3,
            out_dir=str(out),
        )
        return {
            "summary": _without_message_ids(result.summary),
            "ledger": (out / "ledger.csv").read_text(),
        }

    assert day(fast=True) == day(fast=False)


def test_a_client_pointed_at_another_endpoint_is_not_answered_from_moto(aws_env, monkeypatch):
    from botocore.exceptions import EndpointConnectionError

    calls: list[str] = []

    def spy(operation: str, *args: Any) -> Any:
        calls.append(operation)
        return _ANSWER(operation, *args)

    monkeypatch.setattr(fast_dynamodb, "_answer", spy)
    with mock_aws(), fast_dynamodb.fast_dynamodb():
        # moto passes unknown endpoints through to the network; so must the fast path.
        local = boto3.client(
            "dynamodb",
            region_name="us-east-1",
            endpoint_url="http://127.0.0.1:9",
            config=botocore.config.Config(retries={"max_attempts": 1}, connect_timeout=1),
        )
        with pytest.raises(EndpointConnectionError):
            local.get_item(TableName="t", Key={"pk": {"S": "x"}})
        with pytest.raises(ClientError):  # the mocked endpoint is still answered
            boto3.client("dynamodb", region_name="us-east-1").get_item(
                TableName="t", Key={"pk": {"S": "x"}}
            )
    assert calls == ["GetItem"]
