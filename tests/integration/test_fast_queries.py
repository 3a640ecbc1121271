"""The local runtime's fast moto queries answer exactly like stock moto."""

from __future__ import annotations

import random

import boto3
import pytest
from moto import mock_aws

from autopilot_cli.local import fast_queries

from .ddb_tables import create_table, index


def _table(ddb) -> None:
    create_table(
        ddb,
        attributes={"g": "S", "gs": "S"},
        GlobalSecondaryIndexes=[index("gsi", "g", "gs")],
    )
    rng = random.Random(7)
    for n in range(300):
        item = {
            "pk": {"S": f"p{n % 9}"},
            "sk": {"S": f"{'AE'[n % 2]}#{rng.randrange(10**6):07d}"},
            "n": {"N": str(n)},
        }
        if n % 3:
            item |= {"g": {"S": f"g{n % 4}"}, "gs": {"S": f"{rng.randrange(1000):04d}"}}
        ddb.put_item(TableName="t", Item=item)


QUERIES = [
    {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "p3"}}},
    {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "nope"}}},
    {
        "KeyConditionExpression": "pk = :p AND begins_with(sk, :e)",
        "ExpressionAttributeValues": {":p": {"S": "p1"}, ":e": {"S": "E#"}},
    },
    {
        "KeyConditionExpression": "pk = :p AND sk > :s",
        "ScanIndexForward": False,
        "Limit": 7,
        "ExpressionAttributeValues": {":p": {"S": "p2"}, ":s": {"S": "A#0500000"}},
    },
    {
        "KeyConditionExpression": "pk = :p",
        "FilterExpression": "n > :n",
        "Limit": 5,
        "ExpressionAttributeValues": {":p": {"S": "p4"}, ":n": {"N": "100"}},
    },
    {
        "IndexName": "gsi",
        "KeyConditionExpression": "g = :g",
        "ExpressionAttributeValues": {":g": {"S": "g1"}},
    },
    {
        "IndexName": "gsi",
        "KeyConditionExpression": "g = :g AND gs > :s",
        "Limit": 6,
        "ExpressionAttributeValues": {":g": {"S": "g2"}, ":s": {"S": "0400"}},
    },
    {
        "IndexName": "gsi",
        "KeyConditionExpression": "g = :g",
        "ScanIndexForward": False,
        "ExpressionAttributeValues": {":g": {"S": "g3"}},
    },
]


def _run_all(ddb) -> list:
    answers = []
    for query in QUERIES:
        pages, start = [], None
        while True:
            kwargs = dict(query, TableName="t")
            if start:
                kwargs["ExclusiveStartKey"] = start
            page = ddb.query(**kwargs)
            pages.append((page["Items"], page["Count"], page["ScannedCount"]))
            start = page.get("LastEvaluatedKey")
            if not start:
                break
        answers.append(pages)
    return answers


@pytest.fixture
def ddb(aws_env):
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        _table(client)
        yield client


def test_queries_answer_exactly_like_stock_moto(ddb):
    stock = _run_all(ddb)
    with fast_queries.fast_queries():
        assert fast_queries.is_installed()
        fast = _run_all(ddb)
    assert not fast_queries.is_installed()
    assert fast == stock
    assert any(len(pages) > 1 for pages in stock)  # pagination was exercised


def test_install_is_reference_counted(aws_env):
    fast_queries.install()
    fast_queries.install()
    fast_queries.uninstall()
    assert fast_queries.is_installed()
    fast_queries.uninstall()
    assert not fast_queries.is_installed()


def _churn(ddb, seed: int) -> list:
    """Writes that move items in and out of index partitions, with index queries between."""
    from botocore.exceptions import ClientError

    rng = random.Random(seed)
    answers: list = []
    for step in range(120):
        n = rng.randrange(400)
        key = {"pk": {"S": f"p{n % 9}"}, "sk": {"S": f"A#{n:07d}"}}
        action = rng.randrange(7)
        try:
            if action == 0:
                ddb.put_item(
                    TableName="t",
                    Item=key | {"g": {"S": f"g{rng.randrange(4)}"}, "gs": {"S": f"{n:04d}"}},
                )
            elif action == 1:  # move the item to another index partition
                ddb.update_item(
                    TableName="t",
                    Key=key,
                    UpdateExpression="SET g = :g, gs = if_not_exists(gs, :s)",
                    ExpressionAttributeValues={
                        ":g": {"S": f"g{rng.randrange(4)}"},
                        ":s": {"S": f"{n:04d}"},
                    },
                )
            elif action == 2:  # out of the index
                ddb.update_item(TableName="t", Key=key, UpdateExpression="REMOVE g")
            elif action == 3:
                ddb.delete_item(TableName="t", Key=key)
            elif action == 4:  # a cancelled transaction that moved an item first
                ddb.transact_write_items(
                    TransactItems=[
                        {
                            "Update": {
                                "TableName": "t",
                                "Key": key,
                                "UpdateExpression": "SET g = :g, gs = :s",
                                "ExpressionAttributeValues": {
                                    ":g": {"S": "g1"},
                                    ":s": {"S": "0001"},
                                },
                            }
                        },
                        {
                            "ConditionCheck": {
                                "TableName": "t",
                                "Key": {"pk": {"S": "none"}, "sk": {"S": "none"}},
                                "ConditionExpression": "attribute_exists(pk)",
                            }
                        },
                    ]
                )
            elif action == 5:
                ddb.batch_write_item(
                    RequestItems={
                        "t": [
                            {"PutRequest": {"Item": key | {"g": {"S": "g2"}, "gs": {"S": "0002"}}}}
                        ]
                    }
                )
            else:
                ddb.transact_write_items(
                    TransactItems=[
                        {
                            "Put": {
                                "TableName": "t",
                                "Item": key | {"g": {"S": "g3"}, "gs": {"S": "9"}},
                            }
                        }
                    ]
                )
        except ClientError as error:
            answers.append(("error", step, error.response["Error"]["Code"]))
        if step % 10 == 0:
            answers.append(("queries", step, _run_all(ddb)))
    return answers


@pytest.mark.parametrize("seed", [1, 2])
def test_index_queries_follow_every_write_like_stock_moto(aws_env, seed):
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        _table(client)
        stock = _churn(client, seed)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        _table(client)
        with fast_queries.fast_queries():
            fast = _churn(client, seed)
    assert fast == stock
    assert any(a[0] == "error" for a in stock)  # cancelled transactions were exercised


def test_a_reinstalled_fast_path_does_not_trust_a_map_built_before(ddb):
    query = {
        "TableName": "t",
        "IndexName": "gsi",
        "KeyConditionExpression": "g = :g",
        "ExpressionAttributeValues": {":g": {"S": "fresh"}},
    }
    with fast_queries.fast_queries():
        assert ddb.query(**query)["Items"] == []  # builds the map
    # Written while the fast path is not installed: no hook sees it.
    ddb.put_item(
        TableName="t",
        Item={"pk": {"S": "x"}, "sk": {"S": "y"}, "g": {"S": "fresh"}, "gs": {"S": "1"}},
    )
    with fast_queries.fast_queries():
        assert [i["pk"]["S"] for i in ddb.query(**query)["Items"]] == ["x"]


def test_index_queries_see_every_write_made_from_other_threads(ddb):
    import threading

    query = {
        "TableName": "t",
        "IndexName": "gsi",
        "KeyConditionExpression": "g = :g",
        "ExpressionAttributeValues": {":g": {"S": "threaded"}},
    }
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(60):
                ddb.put_item(
                    TableName="t",
                    Item={
                        "pk": {"S": f"w{n}"},
                        "sk": {"S": f"{i:03d}"},
                        "g": {"S": "threaded"},
                        "gs": {"S": f"{n}-{i:03d}"},
                    },
                )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    with fast_queries.fast_queries():
        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads):
            ddb.query(**query)  # builds and reads the map while writes land
        for thread in threads:
            thread.join()
        found: list = []
        start = None
        while True:
            page = ddb.query(**query, **({"ExclusiveStartKey": start} if start else {}))
            found.extend(page["Items"])
            start = page.get("LastEvaluatedKey")
            if not start:
                break
    assert errors == []
    assert len(found) == 240
