"""The local runtime: template parsing, resources on moto, invocation, events, metering.

Two stacks are used: the real ``template.yaml`` (through the ``local_runtime``
fixture) for what the product deploys, and a small synthetic template with
the resource kinds later issues will add (queues with a dead-letter queue, a
FIFO queue, a topic subscription, a GSI and a stream, conditions, two
functions that both have an ``app.py``), so that the runtime is tested
generically rather than for the one function that exists today.
"""

from __future__ import annotations

import base64
import json
import os
import textwrap
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from autopilot_cli.local import fast_transactions
from autopilot_cli.local.cfn import (
    ResolveContext,
    ResourceRef,
    TemplateError,
    UnresolvableError,
    apply_globals,
    evaluate_conditions,
    load_template,
    load_yaml,
    resolve,
)
from autopilot_cli.local.runtime import (
    LambdaContext,
    LocalRuntime,
    LocalRuntimeError,
    http_api_event,
    scheduled_event,
    sqs_event,
)
from autopilot_cli.metering import RequestCounter, instrument

TICK = datetime(2026, 11, 26, 23, 30, tzinfo=UTC)

# --------------------------------------------------------------------------- #
# cfn: the YAML loader and the resolver
# --------------------------------------------------------------------------- #


def test_short_form_tags_become_long_form() -> None:
    parsed = load_yaml(
        textwrap.dedent(
            """
            ref: !Ref Table
            getatt_dotted: !GetAtt Db.Endpoint.Address
            getatt_list: !GetAtt [Queue, Arn]
            sub: !Sub "${AWS::StackName}-x"
            sub_list: !Sub ["${A}-${B}", {A: !Ref P}]
            join: !Join [",", [a, !Ref P]]
            select: !Select [0, !GetAZs ""]
            split: !Split [",", "a,b"]
            if: !If [IsProd, 1, !Ref AWS::NoValue]
            cond: !And [!Equals [!Ref P, x], !Not [!Condition IsProd], !Or [true, false]]
            find: !FindInMap [Sizes, !Ref P, memory]
            b64: !Base64 hello
            imp: !ImportValue shared-vpc
            cidr: !Cidr [10.0.0.0/16, 2, 8]
            version: 2012-10-17
            """
        )
    )
    assert parsed["ref"] == {"Ref": "Table"}
    assert parsed["getatt_dotted"] == {"Fn::GetAtt": ["Db", "Endpoint.Address"]}
    assert parsed["getatt_list"] == {"Fn::GetAtt": ["Queue", "Arn"]}
    assert parsed["sub"] == {"Fn::Sub": "${AWS::StackName}-x"}
    assert parsed["sub_list"] == {"Fn::Sub": ["${A}-${B}", {"A": {"Ref": "P"}}]}
    assert parsed["join"] == {"Fn::Join": [",", ["a", {"Ref": "P"}]]}
    assert parsed["select"] == {"Fn::Select": [0, {"Fn::GetAZs": ""}]}
    assert parsed["split"] == {"Fn::Split": [",", "a,b"]}
    assert parsed["if"] == {"Fn::If": ["IsProd", 1, {"Ref": "AWS::NoValue"}]}
    assert parsed["cond"] == {
        "Fn::And": [
            {"Fn::Equals": [{"Ref": "P"}, "x"]},
            {"Fn::Not": [{"Condition": "IsProd"}]},
            {"Fn::Or": [True, False]},
        ]
    }
    assert parsed["find"] == {"Fn::FindInMap": ["Sizes", {"Ref": "P"}, "memory"]}
    assert parsed["b64"] == {"Fn::Base64": "hello"}
    assert parsed["imp"] == {"Fn::ImportValue": "shared-vpc"}
    assert parsed["cidr"] == {"Fn::Cidr": ["10.0.0.0/16", 2, 8]}
    assert parsed["version"] == "2012-10-17"  # a string, as CloudFormation reads it


def test_duplicate_keys_are_an_error() -> None:
    with pytest.raises(TemplateError, match="duplicate key 'a'"):
        load_yaml("a: 1\na: 2\n")


def test_resolver_evaluates_intrinsics_against_a_context() -> None:
    context = ResolveContext(
        region="eu-west-1",
        stack_name="s",
        parameters={"Env": "prod", "Names": ["x", "y"]},
        resources={
            "Table": ResourceRef("Table", "AWS::DynamoDB::Table", "s-Table", {"Arn": "arn:t"}),
            "Vpc": ResourceRef("Vpc", "AWS::EC2::VPC", unsupported="not emulated"),
        },
        mappings={"Sizes": {"prod": {"memory": 512}}},
    )
    context.conditions = evaluate_conditions(
        {
            "Conditions": {
                "IsProd": {"Fn::Equals": [{"Ref": "Env"}, "prod"]},
                "NotProd": {"Fn::Not": [{"Condition": "IsProd"}]},
            }
        },
        context,
    )
    assert context.conditions == {"IsProd": True, "NotProd": False}
    value = {
        "name": {"Fn::Sub": "${AWS::StackName}-${Table}-${Table.Arn}-${!Literal}"},
        "sub_vars": {"Fn::Sub": ["${A}/${AWS::Region}", {"A": {"Ref": "Env"}}]},
        "join": {"Fn::Join": ["-", [{"Ref": "Env"}, {"Ref": "AWS::AccountId"}]]},
        "select": {"Fn::Select": [1, {"Ref": "Names"}]},
        "split": {"Fn::Split": ["/", "a/b"]},
        "if": {"Fn::If": ["IsProd", "big", "small"]},
        "gone": {"Fn::If": ["NotProd", "x", {"Ref": "AWS::NoValue"}]},
        "list": ["a", {"Ref": "AWS::NoValue"}],
        "memory": {"Fn::FindInMap": ["Sizes", {"Ref": "Env"}, "memory"]},
        "b64": {"Fn::Base64": "hi"},
        "partition": {"Fn::Sub": "${AWS::Partition}.${AWS::URLSuffix}"},
    }
    assert resolve(value, context) == {
        "name": "s-s-Table-arn:t-${Literal}",
        "sub_vars": "prod/eu-west-1",
        "join": "prod-123456789012",
        "select": "y",
        "split": ["a", "b"],
        "if": "big",
        "list": ["a"],
        "memory": 512,
        "b64": base64.b64encode(b"hi").decode(),
        "partition": "aws.amazonaws.com",
    }
    with pytest.raises(UnresolvableError, match="cannot host it: not emulated"):
        resolve({"Ref": "Vpc"}, context)
    with pytest.raises(UnresolvableError, match="Missing"):
        resolve({"Ref": "Missing"}, context)
    with pytest.raises(UnresolvableError, match="ImportValue"):
        resolve({"Fn::ImportValue": "x"}, context)


def test_globals_merge_into_functions() -> None:
    template = apply_globals(
        {
            "Globals": {
                "Function": {
                    "Timeout": 60,
                    "Layers": [{"Ref": "L1"}],
                    "Environment": {"Variables": {"A": "global", "B": "global"}},
                }
            },
            "Resources": {
                "F": {
                    "Type": "AWS::Serverless::Function",
                    "Properties": {
                        "Timeout": 5,
                        "Layers": [{"Ref": "L2"}],
                        "Environment": {"Variables": {"B": "own", "C": "own"}},
                    },
                },
                "T": {"Type": "AWS::DynamoDB::Table", "Properties": {}},
            },
        }
    )
    assert "Globals" not in template
    function = template["Resources"]["F"]["Properties"]
    assert function["Timeout"] == 5
    assert function["Layers"] == [{"Ref": "L1"}, {"Ref": "L2"}]
    assert function["Environment"]["Variables"] == {"A": "global", "B": "own", "C": "own"}
    assert template["Resources"]["T"]["Properties"] == {}


def test_load_template_applies_globals(repo_root: Path) -> None:
    template = load_template(repo_root / "template.yaml")
    dispatcher = template["Resources"]["DispatcherFunction"]["Properties"]
    assert dispatcher["Runtime"] == "python3.12"
    assert dispatcher["Environment"]["Variables"]["SCHEDULER_TABLE"] == {"Ref": "SchedulerTable"}


# --------------------------------------------------------------------------- #
# The product's template on moto
# --------------------------------------------------------------------------- #


def _template_ids(repo_root: Path, resource_type: str) -> list[str]:
    resources = load_template(repo_root / "template.yaml")["Resources"]
    return [i for i, r in resources.items() if r["Type"] == resource_type]


def test_tables_are_created_with_the_template_keys_ttl_and_backups(
    local_runtime: LocalRuntime, repo_root: Path
) -> None:
    resources = local_runtime.template["Resources"]
    dynamodb = local_runtime.client("dynamodb")
    table_ids = _template_ids(repo_root, "AWS::DynamoDB::Table")
    assert {"SchedulerTable", "PostsTable"} <= set(table_ids)
    for logical_id in table_ids:
        properties = resources[logical_id]["Properties"]
        name = local_runtime.physical_id(logical_id)
        assert name == f"autopilot-local-{logical_id}"
        table = dynamodb.describe_table(TableName=name)["Table"]
        assert table["KeySchema"] == properties["KeySchema"]
        assert sorted(table["AttributeDefinitions"], key=str) == sorted(
            properties["AttributeDefinitions"], key=str
        )
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        assert local_runtime.arn(logical_id) == table["TableArn"]
        ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if "TimeToLiveSpecification" in properties:
            assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}
        else:  # the ledger: entries never expire
            assert ttl == {"TimeToLiveStatus": "DISABLED"}
        backups = dynamodb.describe_continuous_backups(TableName=name)
        pitr = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
        assert pitr["PointInTimeRecoveryStatus"] == "ENABLED"


def test_bucket_is_versioned_encrypted_and_private(local_runtime: LocalRuntime) -> None:
    s3 = local_runtime.client("s3")
    bucket = local_runtime.physical_id("ConfigBucket")
    assert bucket == "autopilot-local-configbucket"
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values()) and len(block) == 4
    first = s3.put_object(Bucket=bucket, Key="communities.json", Body=b"1")["VersionId"]
    second = s3.put_object(Bucket=bucket, Key="communities.json", Body=b"2")["VersionId"]
    assert first != second


def test_topic_is_created_encrypted(local_runtime: LocalRuntime) -> None:
    topic_arn = local_runtime.physical_id("PostsTopic")  # Ref of a topic is its ARN
    assert topic_arn == "arn:aws:sns:us-east-1:123456789012:autopilot-local-PostsTopic"
    attributes = local_runtime.client("sns").get_topic_attributes(TopicArn=topic_arn)["Attributes"]
    assert attributes["KmsMasterKeyId"] == "alias/aws/sns"


def test_function_env_is_resolved_from_globals(local_runtime: LocalRuntime) -> None:
    env = local_runtime.function_env("DispatcherFunction")
    assert (
        env.items()
        >= {
            "POWERTOOLS_SERVICE_NAME": "community-autopilot",
            "POWERTOOLS_LOG_LEVEL": "INFO",
            "CONFIG_BUCKET": local_runtime.physical_id("ConfigBucket"),
            "CONFIG_KEY": "communities.json",
            "SCHEDULER_TABLE": local_runtime.physical_id("SchedulerTable"),
            "POSTS_TABLE": local_runtime.physical_id("PostsTable"),
            "POSTS_TOPIC_ARN": local_runtime.physical_id("PostsTopic"),
            "LEDGER_TABLE": local_runtime.physical_id("LedgerTable"),
        }.items()
    )
    assert "DispatcherFunction" in local_runtime.function_ids()


def test_non_hostable_resources_are_named_not_created(local_runtime: LocalRuntime) -> None:
    # FunctionName is explicit (${AWS::StackName}-dispatcher) so that its log group
    # and its role's log grant need not reference the function.
    assert local_runtime.physical_id("DispatcherFunction") == "autopilot-local-dispatcher"
    assert local_runtime.arn("DispatcherFunction").endswith(":function:autopilot-local-dispatcher")
    assert (
        local_runtime.physical_id("DispatcherLogGroup") == "/aws/lambda/autopilot-local-dispatcher"
    )
    assert local_runtime.physical_id("AutopilotLayer").startswith("arn:aws:lambda:us-east-1:")


def test_parameters_override_defaults_and_are_validated(repo_root: Path, aws_env: Any) -> None:
    template = repo_root / "template.yaml"
    with LocalRuntime(template, parameters={"LogLevel": "DEBUG", "ConfigKey": "x.json"}) as rt:
        env = rt.function_env("DispatcherFunction")
        assert (env["POWERTOOLS_LOG_LEVEL"], env["CONFIG_KEY"]) == ("DEBUG", "x.json")
    with pytest.raises(TemplateError, match="not one of"):
        LocalRuntime(template, parameters={"LogLevel": "LOUD"})
    with pytest.raises(TemplateError, match="unknown parameters"):
        LocalRuntime(template, parameters={"Nope": "1"})


def test_runtime_sets_and_restores_process_state(repo_root: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("AWS_PROFILE", "someone-real")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAREALKEY")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    monkeypatch.delenv("AWS_REGION", raising=False)
    assert not fast_transactions.is_installed()
    with LocalRuntime(repo_root / "template.yaml", region="ap-southeast-1") as runtime:
        assert "AWS_PROFILE" not in os.environ  # nothing may reach a real account
        assert os.environ["AWS_DEFAULT_REGION"] == os.environ["AWS_REGION"] == "ap-southeast-1"
        assert os.environ["AWS_ACCESS_KEY_ID"] != "AKIAREALKEY"  # a dummy one
        assert fast_transactions.is_installed()
        assert runtime.arn("SchedulerTable").startswith("arn:aws:dynamodb:ap-southeast-1:")
        runtime.client("s3").head_bucket(Bucket=runtime.physical_id("ConfigBucket"))
    assert os.environ["AWS_PROFILE"] == "someone-real"
    assert os.environ["AWS_ACCESS_KEY_ID"] == "AKIAREALKEY"
    assert os.environ["AWS_DEFAULT_REGION"] == "eu-central-1"
    assert "AWS_REGION" not in os.environ
    assert not fast_transactions.is_installed()
    with pytest.raises(LocalRuntimeError, match="not started"):
        runtime.function_ids()


def test_runtime_inside_an_existing_mock(repo_root: Path, aws_env: Any) -> None:
    with mock_aws():
        with LocalRuntime(repo_root / "template.yaml", already_mocked=True) as runtime:
            table = runtime.physical_id("SchedulerTable")
        # The caller's mock, and the resources in it, outlive the runtime.
        names = boto3.client("dynamodb", region_name="us-east-1").list_tables()["TableNames"]
        assert table in names


def test_already_mocked_refuses_to_run_without_a_mock(repo_root: Path, aws_env: Any) -> None:
    with pytest.raises(LocalRuntimeError, match="refusing to create real AWS resources"):
        LocalRuntime(repo_root / "template.yaml", already_mocked=True).start()


def test_scheduled_event_follows_the_template(local_runtime: LocalRuntime) -> None:
    event = local_runtime.scheduled_event(TICK)
    assert set(event) == {
        "version",
        "id",
        "detail-type",
        "source",
        "account",
        "time",
        "region",
        "resources",
        "detail",
    }
    assert event["source"] == "aws.scheduler"
    assert event["detail-type"] == "Scheduled Event"
    assert event["detail"] == "{}"
    assert event["time"] == "2026-11-26T23:30:00Z"
    assert event["resources"] == [
        "arn:aws:scheduler:us-east-1:123456789012:schedule/default/"
        "autopilot-local-DispatcherFunctionTick"
    ]


def test_sample_event_has_the_builder_shape(repo_root: Path) -> None:
    sample = json.loads((repo_root / "events" / "DispatcherFunction.json").read_text())
    built = scheduled_event(TICK)
    assert set(sample) == set(built)
    assert {k: v for k, v in sample.items() if k not in ("id", "time", "resources")} == {
        k: v for k, v in built.items() if k not in ("id", "time", "resources")
    }


# --------------------------------------------------------------------------- #
# A synthetic stack: generic resources and functions
# --------------------------------------------------------------------------- #

SYNTHETIC_TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage:
    Type: String
    Default: dev
    AllowedValues: [dev, prod]
Conditions:
  IsProd: !Equals [!Ref Stage, prod]
Globals:
  Function:
    Runtime: python3.12
    Timeout: 30
    MemorySize: 512
    Layers: [!Ref SharedLayer]
    Environment:
      Variables:
        STAGE: !Ref Stage
        LEDGER_TABLE: !Ref LedgerTable
Resources:
  SharedLayer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: layer/
  LedgerTable:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Sub "${AWS::StackName}-ledger"
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions:
        - {AttributeName: pk, AttributeType: S}
        - {AttributeName: sk, AttributeType: S}
        - {AttributeName: gsi1pk, AttributeType: S}
      KeySchema:
        - {AttributeName: pk, KeyType: HASH}
        - {AttributeName: sk, KeyType: RANGE}
      GlobalSecondaryIndexes:
        - IndexName: gsi1
          KeySchema:
            - {AttributeName: gsi1pk, KeyType: HASH}
            - {AttributeName: sk, KeyType: RANGE}
          Projection: {ProjectionType: KEYS_ONLY}
      StreamSpecification:
        StreamViewType: NEW_IMAGE
      TimeToLiveSpecification:
        AttributeName: expires_at
        Enabled: true
  ProdOnlyTable:
    Type: AWS::DynamoDB::Table
    Condition: IsProd
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions: [{AttributeName: id, AttributeType: S}]
      KeySchema: [{AttributeName: id, KeyType: HASH}]
  RemindersQueue:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 120
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt RemindersDLQ.Arn
        maxReceiveCount: 3
  RemindersDLQ:
    Type: AWS::SQS::Queue
    Properties:
      MessageRetentionPeriod: 1209600
  OrderedQueue:
    Type: AWS::SQS::Queue
    Properties:
      FifoQueue: true
      ContentBasedDeduplication: true
  EventsTopic:
    Type: AWS::SNS::Topic
    Properties:
      TopicName: !Sub "${AWS::StackName}-events"
  EventsToReminders:
    Type: AWS::SNS::Subscription
    Properties:
      TopicArn: !Ref EventsTopic
      Protocol: sqs
      Endpoint: !GetAtt RemindersQueue.Arn
      RawMessageDelivery: true
  Network:
    Type: AWS::EC2::VPC
    Properties:
      CidrBlock: 10.0.0.0/16
  ProbeFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/probe/
      Handler: app.handler
      Environment:
        Variables:
          QUEUE_URL: !Ref RemindersQueue
          TOPIC_ARN: !Ref EventsTopic
          SIZE: !If [IsProd, large, small]
  WorkerFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: !Sub "${AWS::StackName}-worker"
      CodeUri: functions/worker/
      Handler: app.handler
      Events:
        Reminders:
          Type: SQS
          Properties:
            Queue: !GetAtt RemindersQueue.Arn
            BatchSize: 10
            FunctionResponseTypes: [ReportBatchItemFailures]
"""

PROBE_APP = '''
"""Reports what it sees; CONTAINER_ID changes only on a cold start."""
import decimal
import os
import uuid

import helpers
import sharedlib

CONTAINER_ID = str(uuid.uuid4())
STAGE_AT_IMPORT = os.environ.get("STAGE")


def handler(event, context):
    if event.get("raise"):
        raise ValueError("boom")
    if event.get("return_object"):
        return object()
    return {
        "container": CONTAINER_ID,
        "stage_at_import": STAGE_AT_IMPORT,
        "env": {k: os.environ.get(k) for k in event.get("env", [])},
        "helper": helpers.NAME,
        "layer": sharedlib.NAME,
        "event": event,
        "decimal": decimal.Decimal("2.5"),
        "context": {
            "function_name": context.function_name,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "invoked_function_arn": context.invoked_function_arn,
            "aws_request_id": context.aws_request_id,
            "remaining_ms": context.get_remaining_time_in_millis(),
        },
    }
'''

WORKER_APP = '''
"""Reports every message whose body is "fail" as a batch item failure."""
import helpers


def handler(event, context):
    failures = [
        {"itemIdentifier": r["messageId"]} for r in event["Records"] if r["body"] == "fail"
    ]
    return {"helper": helpers.NAME, "batchItemFailures": failures}
'''


@pytest.fixture
def synthetic_root(tmp_path: Path) -> Path:
    (tmp_path / "template.yaml").write_text(SYNTHETIC_TEMPLATE)
    (tmp_path / "layer").mkdir()
    (tmp_path / "layer" / "sharedlib.py").write_text('NAME = "shared-layer"\n')
    for name, app in (("probe", PROBE_APP), ("worker", WORKER_APP)):
        code_dir = tmp_path / "functions" / name
        code_dir.mkdir(parents=True)
        (code_dir / "app.py").write_text(app)
        # Same module name in both functions: each must get its own.
        (code_dir / "helpers.py").write_text(f'NAME = "{name}-helpers"\n')
    return tmp_path


@pytest.fixture
def synthetic(synthetic_root: Path, aws_env: Any) -> Any:
    with LocalRuntime(synthetic_root / "template.yaml", stack_name="synth") as runtime:
        yield runtime


def test_every_hostable_resource_is_created(synthetic: LocalRuntime) -> None:
    assert set(synthetic.function_ids()) == {"ProbeFunction", "WorkerFunction"}
    dynamodb = synthetic.client("dynamodb")
    table = dynamodb.describe_table(TableName="synth-ledger")["Table"]
    assert synthetic.physical_id("LedgerTable") == "synth-ledger"
    assert table["GlobalSecondaryIndexes"][0]["IndexName"] == "gsi1"
    assert table["StreamSpecification"]["StreamViewType"] == "NEW_IMAGE"
    assert synthetic.attribute("LedgerTable", "StreamArn") == table["LatestStreamArn"]
    ttl = dynamodb.describe_time_to_live(TableName="synth-ledger")["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expires_at"
    assert "ProdOnlyTable" not in synthetic.resource_ids()  # its condition is false
    assert dynamodb.list_tables()["TableNames"] == ["synth-ledger"]

    sqs = synthetic.client("sqs")
    queue_url = synthetic.physical_id("RemindersQueue")
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == "120"
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == synthetic.arn("RemindersDLQ")
    assert int(redrive["maxReceiveCount"]) == 3
    assert synthetic.attribute("RemindersQueue", "QueueName") == "synth-RemindersQueue"
    fifo_url = synthetic.physical_id("OrderedQueue")
    assert fifo_url.endswith("/synth-OrderedQueue.fifo")
    fifo = sqs.get_queue_attributes(QueueUrl=fifo_url, AttributeNames=["All"])["Attributes"]
    assert fifo["FifoQueue"] == "true"

    # The subscription delivers the topic's messages to the queue, raw.
    synthetic.client("sns").publish(TopicArn=synthetic.physical_id("EventsTopic"), Message="hi")
    messages = sqs.receive_message(QueueUrl=queue_url)["Messages"]
    assert [m["Body"] for m in messages] == ["hi"]


def test_unreferenced_unknown_resource_types_are_ignored(synthetic: LocalRuntime) -> None:
    assert "Network" in synthetic.resource_ids()
    with pytest.raises(UnresolvableError, match="AWS::EC2::VPC is not emulated"):
        synthetic.resolve({"Ref": "Network"})


def test_a_function_referencing_an_unknown_type_fails_clearly(
    synthetic_root: Path, aws_env: Any
) -> None:
    template = synthetic_root / "template.yaml"
    worker_env = (
        "      Handler: app.handler\n"
        "      Environment:\n"
        "        Variables:\n"
        "          VPC_ID: !Ref Network\n"
        "      Events:"
    )
    template.write_text(
        SYNTHETIC_TEMPLATE.replace("      Handler: app.handler\n      Events:", worker_env)
    )
    with pytest.raises(
        LocalRuntimeError, match=r"function WorkerFunction: .*Network.*AWS::EC2::VPC"
    ):
        LocalRuntime(template).start()


def test_invoke_applies_the_function_env_only_during_the_call(synthetic: LocalRuntime) -> None:
    assert "LEDGER_TABLE" not in os.environ
    result = synthetic.invoke(
        "ProbeFunction",
        {
            "env": [
                "STAGE",
                "LEDGER_TABLE",
                "QUEUE_URL",
                "SIZE",
                "AWS_REGION",
                "AWS_LAMBDA_FUNCTION_NAME",
            ]
        },
    )
    assert result["env"] == {
        "STAGE": "dev",
        "LEDGER_TABLE": "synth-ledger",
        "QUEUE_URL": synthetic.physical_id("RemindersQueue"),
        "SIZE": "small",
        "AWS_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": "synth-ProbeFunction",
    }
    assert result["stage_at_import"] == "dev"  # the env is there during the import too
    assert "LEDGER_TABLE" not in os.environ and "STAGE" not in os.environ
    assert synthetic.function_env("WorkerFunction") == {
        "STAGE": "dev",
        "LEDGER_TABLE": "synth-ledger",
    }


def test_invoke_passes_a_lambda_context(synthetic: LocalRuntime) -> None:
    context = synthetic.invoke("ProbeFunction", {})["context"]
    assert context["function_name"] == "synth-ProbeFunction"
    assert context["memory_limit_in_mb"] == 512
    assert context["invoked_function_arn"] == (
        "arn:aws:lambda:us-east-1:123456789012:function:synth-ProbeFunction"
    )
    uuid.UUID(context["aws_request_id"])
    assert 0 < context["remaining_ms"] <= 30_000


def test_lambda_context_counts_down_from_the_timeout() -> None:
    context = LambdaContext("f", "$LATEST", "arn", 128, "id", "g", "s", timeout_s=0.05)
    assert 0 < context.get_remaining_time_in_millis() <= 50
    context._deadline_monotonic -= 1
    assert context.get_remaining_time_in_millis() == 0


def test_handler_module_is_imported_once_per_container(synthetic: LocalRuntime) -> None:
    first = synthetic.invoke("ProbeFunction", {})["container"]
    assert synthetic.invoke("ProbeFunction", {})["container"] == first
    assert synthetic.warm_functions() == ["ProbeFunction"]
    synthetic.reset_containers()
    assert synthetic.warm_functions() == []
    third = synthetic.invoke("ProbeFunction", {})["container"]
    assert third != first
    assert [r.cold_start for r in synthetic.invocations] == [True, False, True]
    assert all(r.init_duration_ms > 0 for r in synthetic.invocations if r.cold_start)


def test_functions_with_same_named_modules_do_not_collide(synthetic: LocalRuntime) -> None:
    probe = synthetic.invoke("ProbeFunction", {})
    worker = synthetic.invoke("WorkerFunction", {"Records": []})
    assert probe["helper"] == "probe-helpers"
    assert worker["helper"] == "worker-helpers"
    assert probe["layer"] == "shared-layer"  # the layer's ContentUri is on sys.path


def test_invoke_round_trips_json_like_lambda(synthetic: LocalRuntime) -> None:
    result = synthetic.invoke("ProbeFunction", {"when": "2026-11-26T23:30:00Z"})
    assert result["decimal"] == 2.5  # Decimal serialised as Lambda's runtime does
    assert result["event"] == {"when": "2026-11-26T23:30:00Z"}
    with pytest.raises(TypeError, match="not JSON serializable"):
        synthetic.invoke("ProbeFunction", {"return_object": True})
    with pytest.raises(TypeError):
        synthetic.invoke("ProbeFunction", {"when": TICK})  # Lambda events are JSON


def test_handler_exceptions_propagate_and_restore_env(synthetic: LocalRuntime) -> None:
    with pytest.raises(ValueError, match="boom"):
        synthetic.invoke("ProbeFunction", {"raise": True})
    assert "STAGE" not in os.environ
    assert synthetic.invocations[-1].error == "ValueError"


def test_unknown_function_is_a_clear_error(synthetic: LocalRuntime) -> None:
    with pytest.raises(LocalRuntimeError, match="no function 'Nope'"):
        synthetic.invoke("Nope", {})


def test_deliver_sqs_deletes_all_but_reported_failures(synthetic: LocalRuntime) -> None:
    sqs = synthetic.client("sqs")
    queue_url = synthetic.physical_id("RemindersQueue")
    for body in ("ok-1", "fail", "ok-2"):
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    result = synthetic.deliver_sqs("WorkerFunction", "RemindersQueue")
    assert len(result["batchItemFailures"]) == 1
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"  # the failed one
    assert synthetic.deliver_sqs("WorkerFunction", "RemindersQueue") is None


def test_receive_sqs_event_has_lambda_record_shape(synthetic: LocalRuntime) -> None:
    sqs = synthetic.client("sqs")
    sqs.send_message(
        QueueUrl=synthetic.physical_id("RemindersQueue"),
        MessageBody="hello",
        MessageAttributes={"kind": {"DataType": "String", "StringValue": "nudge"}},
    )
    (record,) = synthetic.receive_sqs_event("RemindersQueue")["Records"]
    assert record["body"] == "hello"
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == synthetic.arn("RemindersQueue")
    assert record["messageAttributes"]["kind"]["stringValue"] == "nudge"
    assert record["messageAttributes"]["kind"]["dataType"] == "String"
    assert record["attributes"]["ApproximateReceiveCount"] == "1"


# --------------------------------------------------------------------------- #
# Event builders
# --------------------------------------------------------------------------- #


def test_scheduled_event_shapes() -> None:
    scheduler = scheduled_event(TICK.astimezone(timezone(timedelta(hours=8))))
    assert scheduler["time"] == "2026-11-26T23:30:00Z"  # converted to UTC
    assert scheduler["source"] == "aws.scheduler" and scheduler["detail"] == "{}"
    assert scheduler["resources"][0].startswith("arn:aws:scheduler:us-east-1:123456789012:")
    rule = scheduled_event(TICK, "arn:aws:events:us-east-1:1:rule/r", source="aws.events")
    assert rule["detail"] == {} and rule["resources"] == ["arn:aws:events:us-east-1:1:rule/r"]
    with pytest.raises(ValueError, match="timezone-aware"):
        scheduled_event(datetime(2026, 11, 26, 23, 30))


def test_sqs_event_shape() -> None:
    event = sqs_event(
        ["a", {"body": "b", "messageId": "m-2"}],
        queue_arn="arn:aws:sqs:us-east-1:123456789012:q",
        sent_time_utc=TICK,
    )
    first, second = event["Records"]
    assert set(first) == {
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfBody",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    }
    assert first["body"] == "a" and first["md5OfBody"] == "0cc175b9c0f1b6a831c399e269772661"
    assert first["attributes"]["SentTimestamp"] == str(int(TICK.timestamp() * 1000))
    assert second["messageId"] == "m-2"
    fifo = sqs_event(["x"], queue_arn="arn:aws:sqs:us-east-1:1:q.fifo")["Records"][0]
    assert {"MessageGroupId", "SequenceNumber"} <= set(fifo["attributes"])
    with pytest.raises(ValueError, match="string 'body'"):
        sqs_event([{"payload": 1}])


def test_http_api_event_shape() -> None:
    event = http_api_event(
        "post",
        "/communities/sunrise/members/42/checkins",
        body={"source": "app"},
        headers={"Authorization": "Bearer t", "Cookie": "a=1; b=2"},
        query={"lang": "zh", "tag": ["x", "y"]},
        jwt_claims={"sub": "member-42"},
        path_parameters={"community": "sunrise", "member_id": "42"},
        time_utc=TICK,
    )
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /communities/{community}/members/{member_id}/checkins"
    assert event["rawPath"] == "/communities/sunrise/members/42/checkins"
    assert event["rawQueryString"] == "lang=zh&tag=x&tag=y"
    assert event["queryStringParameters"] == {"lang": "zh", "tag": "x,y"}
    assert event["headers"]["authorization"] == "Bearer t"
    assert event["headers"]["content-type"] == "application/json"
    assert event["cookies"] == ["a=1", "b=2"] and "cookie" not in event["headers"]
    assert json.loads(event["body"]) == {"source": "app"}
    assert event["isBase64Encoded"] is False
    assert event["pathParameters"] == {"community": "sunrise", "member_id": "42"}
    context = event["requestContext"]
    assert context["http"]["method"] == "POST"
    assert context["http"]["path"] == event["rawPath"]
    assert context["authorizer"]["jwt"]["claims"] == {"sub": "member-42"}
    assert context["stage"] == "$default"
    assert context["time"] == "26/Nov/2026:23:30:00 +0000"
    assert context["timeEpoch"] == int(TICK.timestamp() * 1000)

    binary = http_api_event("PUT", "/blob", body=b"\x00\x01")
    assert binary["isBase64Encoded"] is True
    assert base64.b64decode(binary["body"]) == b"\x00\x01"
    plain = http_api_event("GET", "/health")
    assert "body" not in plain and "queryStringParameters" not in plain
    assert plain["routeKey"] == "GET /health"


# --------------------------------------------------------------------------- #
# Metering
# --------------------------------------------------------------------------- #


def test_request_counter_counts_boto3_and_pynamodb_requests(local_runtime: LocalRuntime) -> None:
    from pynamodb.attributes import UnicodeAttribute
    from pynamodb.models import Model

    table_name = local_runtime.physical_id("SchedulerTable")

    class Claim(Model):
        class Meta:
            table_name = local_runtime.physical_id("SchedulerTable")
            region = "us-east-1"

        pk = UnicodeAttribute(hash_key=True)
        sk = UnicodeAttribute(range_key=True)

    dynamodb = local_runtime.client("dynamodb")
    key = {"pk": {"S": "job#1"}, "sk": {"S": "occ#1"}}
    with RequestCounter() as requests:
        dynamodb.put_item(TableName=table_name, Item=key)
        dynamodb.get_item(TableName=table_name, Key=key)
        Claim("job#2", "occ#1").save()  # PynamoDB's own botocore session
        assert Claim.get("job#2", "occ#1").pk == "job#2"
    assert requests.total == 4
    assert requests.by_operation() == {("dynamodb", "PutItem"): 2, ("dynamodb", "GetItem"): 2}
    assert requests.count("dynamodb") == 4
    assert requests.count(operation="GetItem") == 2
    assert requests.count("s3") == 0
    dynamodb.get_item(TableName=table_name, Key=key)
    assert requests.total == 4  # stopped counting on exit


def test_request_counter_fixture_and_nesting(
    local_runtime: LocalRuntime, request_counter: RequestCounter
) -> None:
    s3 = local_runtime.client("s3")
    bucket = local_runtime.physical_id("ConfigBucket")
    with RequestCounter() as inner:
        s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    s3.get_object(Bucket=bucket, Key="k")
    assert inner.by_operation() == {("s3", "PutObject"): 1}
    assert request_counter.count("s3", "PutObject") == 1
    assert request_counter.count("s3", "GetObject") == 1
    assert request_counter.summary() == {"s3.GetObject": 1, "s3.PutObject": 1}


def test_instrument_covers_clients_created_before_registration(local_runtime: LocalRuntime) -> None:
    import botocore.session

    session = botocore.session.Session()
    client = session.create_client("sqs", region_name="us-east-1")
    # Simulate a client whose emitter predates the hook: drop our handler.
    from autopilot_cli import metering

    client.meta.events.unregister("before-send", metering._on_before_send)
    with RequestCounter() as requests:
        client.list_queues()
    assert requests.total == 0
    instrument(client)
    instrument(client)  # idempotent
    with RequestCounter() as requests:
        client.list_queues()
    assert requests.by_operation() == {("sqs", "ListQueues"): 1}


# --------------------------------------------------------------------------- #
# SQS event sources delivered until settled; bounded invocation records
# --------------------------------------------------------------------------- #

PIPELINE_TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Runtime: python3.12
    Timeout: 30
Resources:
  Inbox:
    Type: AWS::SQS::Queue
  Outbox:
    Type: AWS::SQS::Queue
  NotAnEventSource:
    Type: AWS::SQS::Queue
  Results:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions: [{AttributeName: id, AttributeType: S}]
      KeySchema: [{AttributeName: id, KeyType: HASH}]
  SinkFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/sink/
      Handler: app.handler
      Environment: {Variables: {TABLE: !Ref Results}}
      Events:
        Out:
          Type: SQS
          Properties: {Queue: !GetAtt Outbox.Arn, BatchSize: 4}
  RelayFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/relay/
      Handler: app.handler
      Environment: {Variables: {OUTBOX: !Ref Outbox}}
      Events:
        In:
          Type: SQS
          Properties: {Queue: !GetAtt Inbox.Arn, BatchSize: 10}
"""

RELAY_APP = """
import os
import boto3

def handler(event, context):
    sqs = boto3.client("sqs")
    for record in event["Records"]:
        if record["body"] == "boom":
            raise RuntimeError("relay failed")
        sqs.send_message(QueueUrl=os.environ["OUTBOX"], MessageBody=record["body"] + "-relayed")
"""

SINK_APP = """
import os
import boto3

def handler(event, context):
    table = boto3.resource("dynamodb").Table(os.environ["TABLE"])
    for record in event["Records"]:
        table.put_item(Item={"id": record["body"]})
"""


@pytest.fixture
def pipeline(tmp_path: Path, aws_env: Any) -> Any:
    (tmp_path / "template.yaml").write_text(PIPELINE_TEMPLATE)
    for name, app in (("relay", RELAY_APP), ("sink", SINK_APP)):
        (tmp_path / "functions" / name).mkdir(parents=True)
        (tmp_path / "functions" / name / "app.py").write_text(app)
    with LocalRuntime(tmp_path / "template.yaml", stack_name="pipe", keep_invocations=3) as rt:
        yield rt


def test_sqs_event_sources_come_from_the_template(pipeline: LocalRuntime) -> None:
    sources = {(s.function_id, s.queue_id, s.batch_size) for s in pipeline.sqs_event_sources()}
    assert sources == {("SinkFunction", "Outbox", 4), ("RelayFunction", "Inbox", 10)}


def test_pending_sqs_is_delivered_until_every_queue_settles(pipeline: LocalRuntime) -> None:
    sqs = pipeline.client("sqs")
    for n in range(12):
        sqs.send_message(QueueUrl=pipeline.physical_id("Inbox"), MessageBody=f"m{n}")
    sqs.send_message(QueueUrl=pipeline.physical_id("NotAnEventSource"), MessageBody="stays")
    # The sink comes first in the template but is fed by the relay: one call settles both.
    batches = pipeline.deliver_pending_sqs()
    assert batches == 2 + 3  # relay: 10 + 2 messages; sink: 4 + 4 + 4
    items = pipeline.client("dynamodb").scan(TableName=pipeline.physical_id("Results"))["Items"]
    assert sorted(i["id"]["S"] for i in items) == sorted(f"m{n}-relayed" for n in range(12))
    for queue in ("Inbox", "Outbox"):
        attributes = sqs.get_queue_attributes(
            QueueUrl=pipeline.physical_id(queue), AttributeNames=["All"]
        )["Attributes"]
        assert attributes["ApproximateNumberOfMessages"] == "0"
        assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"  # all deleted
    assert pipeline.deliver_pending_sqs() == 0
    not_a_source = sqs.get_queue_attributes(
        QueueUrl=pipeline.physical_id("NotAnEventSource"),
        AttributeNames=["ApproximateNumberOfMessages"],
    )["Attributes"]
    assert not_a_source["ApproximateNumberOfMessages"] == "1"


def test_a_failing_delivery_is_reported_and_the_others_go_on(pipeline: LocalRuntime) -> None:
    sqs = pipeline.client("sqs")
    sqs.send_message(QueueUrl=pipeline.physical_id("Inbox"), MessageBody="boom")
    sqs.send_message(QueueUrl=pipeline.physical_id("Outbox"), MessageBody="direct")
    errors: list[tuple[str, str]] = []
    pipeline.deliver_pending_sqs(on_error=lambda s, exc: errors.append((s.function_id, str(exc))))
    assert errors == [("RelayFunction", "relay failed")]
    items = pipeline.client("dynamodb").scan(TableName=pipeline.physical_id("Results"))["Items"]
    assert [i["id"]["S"] for i in items] == ["direct"]
    # The failed batch stays in flight (visible again after the visibility timeout).
    attributes = sqs.get_queue_attributes(
        QueueUrl=pipeline.physical_id("Inbox"), AttributeNames=["All"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"
    sqs.send_message(QueueUrl=pipeline.physical_id("Inbox"), MessageBody="boom")
    with pytest.raises(RuntimeError, match="relay failed"):
        pipeline.deliver_pending_sqs()


def test_invocation_records_are_bounded(pipeline: LocalRuntime) -> None:
    sqs = pipeline.client("sqs")
    for n in range(10):
        sqs.send_message(QueueUrl=pipeline.physical_id("Outbox"), MessageBody=f"x{n}")
        pipeline.deliver_pending_sqs()
    assert pipeline.invocation_count == 10
    assert len(pipeline.invocations) == 3  # keep_invocations: a long run's memory stays flat
