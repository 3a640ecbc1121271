"""The local runtime's memoised moto serialisation answers byte for byte like stock moto.

Every response moto serialises in these tests is serialised twice from the same
result object — once by stock moto, once with the fast path — and the two
(status, headers, body) must be identical.
"""

from __future__ import annotations

import base64
import copy
from datetime import UTC, datetime

import boto3
import pytest
from moto import mock_aws
from moto.core import responses as moto_responses

from autopilot_cli.local import fast_dynamodb, fast_serialize
from autopilot_cli.simulate import run_simulation

from .ddb_tables import create_table


@pytest.fixture
def compared(monkeypatch):
    """Serialise every moto response both ways; collect (operation, stock, fast)."""
    seen: list[tuple[str, object, object]] = []
    original = moto_responses.ActionResult.execute_result

    def both(self, context):
        installed = fast_serialize.is_installed()
        while fast_serialize.is_installed():
            fast_serialize.uninstall()
        stock = original(self, context)
        fast_serialize.install()
        try:
            fast = original(self, context)
        finally:
            fast_serialize.uninstall()
        if installed:
            fast_serialize.install()
        # moto adds headers to the returned dict later: compare as answered now.
        seen.append((context.operation_model.name, copy.deepcopy(stock), fast))
        return stock

    monkeypatch.setattr(moto_responses.ActionResult, "execute_result", both)
    return seen


def _item(n: int) -> dict:
    return {
        "pk": {"S": f"p{n % 3}"},
        "sk": {"S": f"s{n:03d}"},
        "n": {"N": str(n * 7)},
        "b": {"B": base64.b64decode(base64.b64encode(bytes([n, 0, 255])))},
        "ss": {"SS": ["a", f"x{n}"]},
        "ns": {"NS": ["1", str(n + 2)]},
        "bs": {"BS": [b"\x00\x01", bytes([n])]},
        "m": {"M": {"nested": {"L": [{"S": "中文"}, {"NULL": True}, {"BOOL": n % 2 == 0}]}}},
        "l": {"L": [{"N": "1.5"}, {"M": {}}]},
    }


def test_dynamodb_sqs_sns_responses_are_identical(aws_env, compared):
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        create_table(ddb)
        ddb.describe_table(TableName="t")
        ddb.list_tables()
        for n in range(12):
            ddb.put_item(TableName="t", Item=_item(n))
        ddb.get_item(TableName="t", Key={"pk": {"S": "p1"}, "sk": {"S": "s004"}})
        ddb.get_item(TableName="t", Key={"pk": {"S": "p1"}, "sk": {"S": "nope"}})
        ddb.query(
            TableName="t",
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": "p2"}},
            Limit=2,
            ReturnConsumedCapacity="TOTAL",
        )
        ddb.scan(TableName="t", ProjectionExpression="pk, sk, m")
        ddb.batch_get_item(
            RequestItems={
                "t": {
                    "Keys": [{"pk": {"S": f"p{n % 3}"}, "sk": {"S": f"s{n:03d}"}} for n in (1, 5)]
                }
            }
        )
        ddb.update_item(
            TableName="t",
            Key={"pk": {"S": "p0"}, "sk": {"S": "s003"}},
            UpdateExpression="SET n = n + :one, extra = :e",
            ExpressionAttributeValues={":one": {"N": "1"}, ":e": {"M": {"k": {"S": "v"}}}},
            ReturnValues="ALL_NEW",
        )
        ddb.transact_write_items(TransactItems=[{"Put": {"TableName": "t", "Item": _item(40)}}])
        ddb.transact_get_items(
            TransactItems=[
                {"Get": {"TableName": "t", "Key": {"pk": {"S": "p1"}, "sk": {"S": "s040"}}}}
            ]
        )
        ddb.batch_write_item(
            RequestItems={
                "t": [{"DeleteRequest": {"Key": {"pk": {"S": "p2"}, "sk": {"S": "s002"}}}}]
            }
        )
        ddb.delete_item(
            TableName="t", Key={"pk": {"S": "p0"}, "sk": {"S": "s000"}}, ReturnValues="ALL_OLD"
        )
        with pytest.raises(ddb.exceptions.ConditionalCheckFailedException):
            ddb.put_item(
                TableName="t", Item=_item(1), ConditionExpression="attribute_not_exists(pk)"
            )

        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="q")["QueueUrl"]
        sqs.send_message(
            QueueUrl=url,
            MessageBody="hello",
            MessageAttributes={"a": {"DataType": "String", "StringValue": "x"}},
        )
        sqs.send_message_batch(
            QueueUrl=url,
            Entries=[{"Id": "1", "MessageBody": "b1"}, {"Id": "2", "MessageBody": "b2"}],
        )
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                for i, m in enumerate(got["Messages"])
            ],
        )
        sns = boto3.client("sns", region_name="us-east-1")
        arn = sns.create_topic(Name="t")["TopicArn"]
        sns.publish(TopicArn=arn, Message="m", Subject="s")
        sns.list_topics()

    operations = {name for name, _, _ in compared}
    assert {
        "Query",
        "BatchGetItem",
        "GetItem",
        "Scan",
        "UpdateItem",
        "TransactGetItems",
        "DescribeTable",
        "ReceiveMessage",
        "Publish",
    } <= operations
    for name, stock, fast in compared:
        assert fast == stock, name
    assert not fast_serialize.is_installed()


def test_a_simulated_day_serialises_identically(aws_env, compared, tmp_path, monkeypatch):
    # DynamoDB data-plane answers skip moto's serialiser under fast_dynamodb
    # (tests/integration/test_fast_dynamodb.py); here every answer goes through it.
    monkeypatch.setattr(fast_dynamodb, "install", lambda: None)
    monkeypatch.setattr(fast_dynamodb, "uninstall", lambda: None)
    run_simulation(
        "config/communities.yaml",
        start=datetime(2027, 3, 8, tzinfo=UTC),
        days=1,
        members=15,
        seed=3,
        out_dir=str(tmp_path),
    )
    assert len(compared) > 100
    mismatched = [name for name, stock, fast in compared if fast != stock]
    assert mismatched == []


def test_install_is_reference_counted():
    fast_serialize.install()
    fast_serialize.install()
    fast_serialize.uninstall()
    assert fast_serialize.is_installed()
    fast_serialize.uninstall()
    assert not fast_serialize.is_installed()
