"""template.yaml checked against the code, the sample events and our IAM rules.

The template is the single source of truth for resources; these tests keep
it honest: every function's handler exists and imports with the function's
own environment, every function has a sample event of the right shape, every
resource name a function is given points at a declared resource of the right
type, IAM stays least-privilege, and cfn-lint passes.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from autopilot_cli.local.cfn import find_references, load_template
from autopilot_cli.local.runtime import LocalRuntime, LocalRuntimeError

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = REPO_ROOT / "template.yaml"
TEMPLATE = load_template(TEMPLATE_PATH)  # Globals applied
RAW_TEMPLATE = load_template(TEMPLATE_PATH, apply_sam_globals=False)
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
FUNCTIONS = sorted(
    logical_id
    for logical_id, resource in RESOURCES.items()
    if resource["Type"] == "AWS::Serverless::Function"
)
LAYER_ID = "AutopilotLayer"

# Environment variable suffix -> resource types it may name.
ENV_SUFFIX_TYPES = {
    "_TABLE": {"AWS::DynamoDB::Table", "AWS::Serverless::SimpleTable"},
    "_BUCKET": {"AWS::S3::Bucket"},
    "_TOPIC_ARN": {"AWS::SNS::Topic"},
    "_QUEUE_URL": {"AWS::SQS::Queue"},
    "_QUEUE_ARN": {"AWS::SQS::Queue"},
}


def _properties(logical_id: str) -> dict[str, Any]:
    return RESOURCES[logical_id].get("Properties") or {}


def test_template_declares_functions() -> None:
    assert FUNCTIONS, "template.yaml declares no AWS::Serverless::Function"


@pytest.mark.parametrize("function_id", FUNCTIONS)
def test_handler_file_exists_and_imports_with_function_env(
    function_id: str, local_runtime: LocalRuntime
) -> None:
    spec = local_runtime.function(function_id)
    assert spec.handler_path.is_file(), f"{function_id}: {spec.handler_path} missing"
    handler = local_runtime.load_handler(function_id)
    assert callable(handler)


@pytest.mark.parametrize("function_id", FUNCTIONS)
def test_function_runs_python312_on_arm64_with_the_layer(function_id: str) -> None:
    properties = _properties(function_id)
    assert properties.get("Runtime") == "python3.12"
    assert properties.get("Architectures") == ["arm64"]
    assert {"Ref": LAYER_ID} in (properties.get("Layers") or [])


def test_layer_builds_the_domain_library() -> None:
    layer = RESOURCES[LAYER_ID]
    content_dir = REPO_ROOT / layer["Properties"]["ContentUri"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.12"]
    assert layer["Metadata"]["BuildMethod"] == "python3.12"
    assert (content_dir / "requirements.txt").is_file()
    assert (content_dir / "autopilot" / "__init__.py").is_file()


@pytest.mark.parametrize("function_id", FUNCTIONS)
def test_function_has_a_sample_event_of_its_trigger_shape(function_id: str) -> None:
    path = REPO_ROOT / "events" / f"{function_id}.json"
    assert path.is_file(), f"missing sample event {path.relative_to(REPO_ROOT)}"
    event = json.loads(path.read_text(encoding="utf-8"))
    trigger_types = {e["Type"] for e in (_properties(function_id).get("Events") or {}).values()}
    if "ScheduleV2" in trigger_types:
        # EventBridge Scheduler's default notification (no Input configured).
        assert event["source"] == "aws.scheduler"
        assert event["detail-type"] == "Scheduled Event"
        assert event["detail"] == "{}"
        assert event["resources"][0].startswith("arn:aws:scheduler:")
        assert event["time"].endswith("Z")
    elif "Schedule" in trigger_types:
        assert event["source"] == "aws.events"
        assert event["detail-type"] == "Scheduled Event"
    elif "SQS" in trigger_types:
        assert event["Records"] and all(r["eventSource"] == "aws:sqs" for r in event["Records"])
    elif "HttpApi" in trigger_types:
        assert event["version"] == "2.0" and "requestContext" in event


@pytest.mark.parametrize("function_id", FUNCTIONS)
def test_environment_references_declared_resources_of_the_right_type(function_id: str) -> None:
    variables = (_properties(function_id).get("Environment") or {}).get("Variables") or {}
    declared = set(RESOURCES) | set(TEMPLATE.get("Parameters") or {})
    for name, value in variables.items():
        referenced = find_references(value)
        assert referenced <= declared, f"{function_id}.{name} references undeclared {referenced}"
        for suffix, allowed_types in ENV_SUFFIX_TYPES.items():
            if name.endswith(suffix):
                resource_refs = [r for r in referenced if r in RESOURCES]
                assert resource_refs, f"{function_id}.{name} should reference a resource"
                types = {RESOURCES[r]["Type"] for r in resource_refs}
                assert types <= allowed_types, f"{function_id}.{name} names a {types}"


def test_function_env_resolves_to_the_created_resources(local_runtime: LocalRuntime) -> None:
    known: set[str] = set()
    for logical_id in local_runtime.resource_ids():
        with contextlib.suppress(LocalRuntimeError):
            known.add(local_runtime.physical_id(logical_id))
        with contextlib.suppress(LocalRuntimeError):
            known.add(local_runtime.arn(logical_id))
    for function_id in FUNCTIONS:
        for name, value in local_runtime.function_env(function_id).items():
            if any(name.endswith(suffix) for suffix in ENV_SUFFIX_TYPES):
                assert value in known, f"{function_id}.{name}={value!r} is no created resource"


# --------------------------------------------------------------------------- #
# IAM
# --------------------------------------------------------------------------- #


def _statements() -> list[tuple[str, dict[str, Any]]]:
    """Every IAM statement of the template, with where it comes from."""
    found: list[tuple[str, dict[str, Any]]] = []
    for logical_id, resource in RESOURCES.items():
        properties = resource.get("Properties") or {}
        if resource["Type"] == "AWS::Serverless::Function":
            for index, policy in enumerate(properties.get("Policies") or []):
                assert isinstance(policy, dict) and "Statement" in policy, (
                    f"{logical_id}.Policies[{index}]: use an inline policy document with "
                    "explicit statements (managed policies and SAM policy templates hide "
                    f"wildcards), got {policy!r}"
                )
                found += [(f"{logical_id}.Policies[{index}]", s) for s in policy["Statement"]]
        elif resource["Type"] in ("AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            # A function's own role is reported under the function's name.
            owner = next(
                (
                    f"{fid}.Policies[0]"
                    for fid, r in RESOURCES.items()
                    if r["Type"] == "AWS::Serverless::Function"
                    and (r.get("Properties") or {}).get("Role")
                    == {"Fn::GetAtt": [logical_id, "Arn"]}
                ),
                logical_id,
            )
            documents = [properties.get("PolicyDocument")] + [
                p.get("PolicyDocument") for p in properties.get("Policies") or []
            ]
            for document in filter(None, documents):
                found += [(owner, s) for s in document["Statement"]]
    return found


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _is_bucket_object_path(resource: Any) -> bool:
    """``!Sub "${Bucket.Arn}/*"`` (or ``/prefix/*``) for a bucket of this template."""
    if not (isinstance(resource, dict) and set(resource) == {"Fn::Sub"}):
        return False
    template = resource["Fn::Sub"]
    if not isinstance(template, str) or not template.startswith("${"):
        return False
    root, _, rest = template[2:].partition("}")
    logical_id, _, attribute = root.partition(".")
    return (
        RESOURCES.get(logical_id, {}).get("Type") == "AWS::S3::Bucket"
        and attribute == "Arn"
        and rest.startswith("/")
        and "*" not in rest[:-1]
    )


def test_policies_are_explicit_statements() -> None:
    statements = _statements()
    assert statements, "no IAM statements found"
    for where, statement in statements:
        assert "NotAction" not in statement, f"{where}: NotAction grants everything else"
        assert "NotResource" not in statement, f"{where}: NotResource grants everything else"
        assert statement.get("Effect") in ("Allow", "Deny"), where


def test_no_action_contains_a_wildcard() -> None:
    for where, statement in _statements():
        for action in _as_list(statement.get("Action")):
            assert isinstance(action, str) and "*" not in action, f"{where}: Action {action!r}"


# The one parameter path functions may read: each chat channel's SecureString
# <ChannelSecretsPrefix>/<community>/<channel> (docs/channels.md).
CHANNEL_SECRETS_ARN = {
    "Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}"
    ":parameter${ChannelSecretsPrefix}/*"
}


def test_no_wildcard_resources_except_config_object_paths() -> None:
    for where, statement in _statements():
        for resource in _as_list(statement.get("Resource")):
            if _is_bucket_object_path(resource) or resource in (
                CHANNEL_SECRETS_ARN,
                WEBHOOK_SECRETS_ARN,
            ):
                continue
            assert resource != "*", f"{where}: Resource '*'"
            assert "*" not in json.dumps(resource), f"{where}: wildcard in Resource {resource!r}"


def test_dispatcher_policy_is_least_privilege() -> None:
    """Grants per resource, pinned: a new permission is a deliberate change.

    (test_dispatcher_handler.py checks the same set against the calls the
    handler really makes.)
    """
    granted: dict[str, set[str]] = {}
    for where, statement in _statements():
        if not where.startswith("DispatcherFunction."):
            continue
        for resource in _as_list(statement["Resource"]):
            granted.setdefault(json.dumps(resource, sort_keys=True), set()).update(
                _as_list(statement["Action"])
            )

    def grants(resource: Any) -> set[str]:
        return granted.get(json.dumps(resource, sort_keys=True), set())

    # Ops alerts: incidents written once (deleted if their post failed), the worker's
    # alert outbox read by Query and emptied.
    assert grants({"Fn::GetAtt": ["SchedulerTable", "Arn"]}) == {
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:Query",
        "dynamodb:DeleteItem",
    }
    for queue in ("WorkDeadLetterQueue", "ReminderDeadLetterQueue"):
        assert grants({"Fn::GetAtt": [queue, "Arn"]}) == {"sqs:GetQueueAttributes"}
    # The daily snapshot reads the day's post log by Query.
    assert grants({"Fn::GetAtt": ["PostsTable", "Arn"]}) == {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:Query",
    }
    assert grants({"Fn::Sub": "${ConfigBucket.Arn}/*"}) == {"s3:GetObject", "s3:GetObjectVersion"}
    assert grants({"Fn::GetAtt": ["ConfigBucket", "Arn"]}) == {"s3:ListBucketVersions"}
    assert grants({"Ref": "PostsTopic"}) == {"sns:Publish"}
    assert grants(CHANNEL_SECRETS_ARN) == {"ssm:GetParameter"}
    # Live check-in counts, and lotteries: members' facts at the close (accounts and
    # check-in markers in batches, the member index), prizes through the ledger.
    # Finance jobs are enqueued for the worker.
    assert grants({"Fn::GetAtt": ["LedgerTable", "Arn"]}) == {
        "dynamodb:BatchGetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
    }
    assert grants({"Fn::Sub": "${LedgerTable.Arn}/index/gsi1"}) == {"dynamodb:Query"}
    assert grants({"Fn::GetAtt": ["WorkQueue", "Arn"]}) == {"sqs:SendMessage"}
    # Reminders: selection by Query on the sparse last-day index, batches enqueued,
    # the "selected" counter added once per occurrence.
    assert grants({"Fn::Sub": "${LedgerTable.Arn}/index/gsi2"}) == {"dynamodb:Query"}
    assert grants({"Fn::GetAtt": ["ReminderQueue", "Arn"]}) == {"sqs:SendMessage"}
    assert grants({"Fn::GetAtt": ["ReminderTable", "Arn"]}) == {
        "dynamodb:UpdateItem",
        "dynamodb:BatchGetItem",
    }
    # Daily metric snapshots: the previous day's read, the day's written once; the
    # weekly and monthly report posts Query a period of them.
    assert grants({"Fn::GetAtt": ["MetricsTable", "Arn"]}) == {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
    }
    assert grants({"Fn::GetAtt": ["LotteryTable", "Arn"]}) == {
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:Query",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
    }
    # Only the dispatcher holds the seeds (written at the opening, read at the draw).
    assert grants({"Fn::GetAtt": ["LotterySeedTable", "Arn"]}) == {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
    }
    assert grants({"Fn::Sub": "${ExportBucket.Arn}/lotteries/*"}) == {
        "s3:PutObject",
        "s3:GetObject",
    }
    # Its own role (not SAM's generated one with logs on every log group).
    assert grants({"Fn::GetAtt": ["DispatcherLogGroup", "Arn"]}) == {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }
    assert len(granted) == 19


def test_only_the_dispatcher_may_touch_the_lottery_seeds() -> None:
    for where, statement in _statements():
        if "LotterySeedTable" in json.dumps(statement["Resource"]):
            assert where.startswith("DispatcherFunction."), where


def test_channel_secrets_prefix_is_a_parameter_passed_to_every_function() -> None:
    parameter = TEMPLATE["Parameters"]["ChannelSecretsPrefix"]
    assert parameter["Default"] == "/community-autopilot/channels"
    for function_id in FUNCTIONS:
        variables = _properties(function_id)["Environment"]["Variables"]
        assert variables["CHANNEL_SECRETS_PREFIX"] == {"Ref": "ChannelSecretsPrefix"}


# Chat webhooks read only their signing secrets: <prefix>/<community>/webhooks/<platform>.
WEBHOOK_SECRETS_ARN = {
    "Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}"
    ":parameter${ChannelSecretsPrefix}/*/webhooks/*"
}
_CONFIG_READ = {
    json.dumps({"Fn::Sub": "${ConfigBucket.Arn}/*"}): {"s3:GetObject", "s3:GetObjectVersion"},
    json.dumps({"Fn::GetAtt": ["ConfigBucket", "Arn"]}): {"s3:ListBucketVersions"},
}


def _grants_of(function_id: str) -> dict[str, set[str]]:
    """Actions per resource (JSON of the resource expression) of one function's policies."""
    granted: dict[str, set[str]] = {}
    for where, statement in _statements():
        if where.startswith(f"{function_id}."):
            for resource in _as_list(statement["Resource"]):
                granted.setdefault(json.dumps(resource, sort_keys=True), set()).update(
                    _as_list(statement["Action"])
                )
    return granted


def test_api_policy_is_least_privilege() -> None:
    """Pinned; tests/integration/test_api_handler.py checks it against the real calls."""
    assert _grants_of("ApiFunction") == {
        json.dumps({"Fn::GetAtt": ["LedgerTable", "Arn"]}): {
            "dynamodb:GetItem",
            "dynamodb:BatchGetItem",
            "dynamodb:Query",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
        },
        json.dumps({"Fn::Sub": "${LedgerTable.Arn}/index/gsi1"}): {"dynamodb:Query"},
        json.dumps({"Fn::GetAtt": ["LotteryTable", "Arn"]}): {
            "dynamodb:GetItem",
            "dynamodb:BatchGetItem",
            "dynamodb:Query",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
        },
        json.dumps({"Fn::Sub": "${ExportBucket.Arn}/lotteries/*"}): {"s3:GetObject"},
        json.dumps({"Fn::GetAtt": ["MetricsTable", "Arn"]}): {"dynamodb:Query"},
        json.dumps({"Fn::GetAtt": ["ReminderTable", "Arn"]}): {
            "dynamodb:BatchGetItem",
            "dynamodb:UpdateItem",
        },
        **_CONFIG_READ,
        json.dumps({"Fn::GetAtt": ["ApiLogGroup", "Arn"]}): {
            "logs:CreateLogStream",
            "logs:PutLogEvents",
        },
    }


def test_chat_webhook_policy_is_least_privilege() -> None:
    """No Query, no index, and only the webhook secrets (not the channels' posting keys)."""
    assert _grants_of("ChatWebhookFunction") == {
        json.dumps({"Fn::GetAtt": ["LedgerTable", "Arn"]}): {
            "dynamodb:GetItem",
            "dynamodb:BatchGetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
        },
        json.dumps({"Fn::GetAtt": ["LotteryTable", "Arn"]}): {
            "dynamodb:GetItem",
            "dynamodb:BatchGetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
        },
        json.dumps(WEBHOOK_SECRETS_ARN, sort_keys=True): {"ssm:GetParameter"},
        json.dumps({"Fn::GetAtt": ["ReminderTable", "Arn"]}): {
            "dynamodb:BatchGetItem",
            "dynamodb:UpdateItem",
        },
        **_CONFIG_READ,
        json.dumps({"Fn::GetAtt": ["ChatWebhookLogGroup", "Arn"]}): {
            "logs:CreateLogStream",
            "logs:PutLogEvents",
        },
    }


def _http_events(function_id: str) -> dict[str, dict[str, Any]]:
    events = _properties(function_id).get("Events") or {}
    return {
        f"{e['Properties']['Method']} {e['Properties']['Path']}": e["Properties"]
        for e in events.values()
        if e["Type"] == "HttpApi"
    }


def test_http_api_verifies_jwts_of_the_configured_issuer_and_audience() -> None:
    api = _properties("HttpApi")
    assert RESOURCES["HttpApi"]["Type"] == "AWS::Serverless::HttpApi"
    auth = api["Auth"]
    assert auth["DefaultAuthorizer"] == "JwtAuthorizer"
    jwt = auth["Authorizers"]["JwtAuthorizer"]
    assert jwt["IdentitySource"] == "$request.header.Authorization"
    assert jwt["JwtConfiguration"] == {
        "issuer": {"Ref": "JwtIssuer"},
        "audience": [{"Ref": "JwtAudience"}],
    }
    assert {"JwtIssuer", "JwtAudience"} <= set(TEMPLATE["Parameters"])
    assert TEMPLATE["Outputs"]["ApiUrl"]["Value"]["Fn::Sub"].startswith("https://${HttpApi}.")


def test_every_api_route_requires_the_scope_of_its_role() -> None:
    """Scopes keep ID tokens out; the role of each route is pinned here and in docs/api.md."""
    scopes = {route: props["Auth"] for route, props in _http_events("ApiFunction").items()}
    member, finance, ops = ["autopilot/member"], ["autopilot/finance"], ["autopilot/ops"]
    assert {r: a["AuthorizationScopes"] for r, a in scopes.items()} == {
        "POST /checkins": member,
        "GET /me": member,
        "PUT /me/preferences": member,
        "POST /redemptions": member,
        "GET /ledger": finance,
        "GET /ledger/summary": finance,
        "GET /metrics": ["autopilot/ops", "autopilot/finance"],
        "PUT /members/{member_id}": ops,
        "DELETE /members/{member_id}": ops,
        "POST /ledger/adjustments": ops,
        "POST /lotteries/{lottery_id}/entries": member,
        "GET /lotteries/{lottery_id}": member,
        "GET /lotteries/{lottery_id}/record": member,
        "POST /lotteries/{lottery_id}/claim": member,
        "POST /lotteries/{lottery_id}/disqualify": ops,
        "PUT /lotteries/{lottery_id}/external-value": ops,
        "POST /lotteries/{lottery_id}/cancel": ops,
    }
    assert {a["Authorizer"] for a in scopes.values()} == {"JwtAuthorizer"}
    for function_id in ("ApiFunction", "ChatWebhookFunction"):
        for props in _http_events(function_id).values():
            assert props["ApiId"] == {"Ref": "HttpApi"}


def test_only_the_webhook_route_skips_the_jwt_authorizer() -> None:
    assert _http_events("ChatWebhookFunction") == {
        "POST /webhooks/{platform}": {
            "ApiId": {"Ref": "HttpApi"},
            "Method": "POST",
            "Path": "/webhooks/{platform}",
            "Auth": {"Authorizer": "NONE"},
        }
    }


# --------------------------------------------------------------------------- #
# Resources
# --------------------------------------------------------------------------- #


def test_tables_are_on_demand_encrypted_recoverable_with_ttl() -> None:
    tables = {i: r for i, r in RESOURCES.items() if r["Type"] == "AWS::DynamoDB::Table"}
    assert tables
    for logical_id, table in tables.items():
        properties = table["Properties"]
        assert properties["BillingMode"] == "PAY_PER_REQUEST"
        assert properties["SSESpecification"]["SSEEnabled"] is True
        assert properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
        if logical_id in ("LedgerTable", "LotteryTable", "LotterySeedTable", "MetricsTable"):
            # Ledger entries are immutable and kept; a lottery's entries, payouts and
            # seed are what its published record is checked against: no TTL, retained.
            assert "TimeToLiveSpecification" not in properties
            assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"
        else:
            assert properties["TimeToLiveSpecification"] == {
                "AttributeName": "expires_at",
                "Enabled": True,
            }


def test_config_bucket_is_private_versioned_and_retained() -> None:
    bucket = RESOURCES["ConfigBucket"]
    assert bucket["DeletionPolicy"] == bucket["UpdateReplacePolicy"] == "Retain"
    properties = bucket["Properties"]
    assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
    assert set(properties["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(properties["PublicAccessBlockConfiguration"]) == 4


@pytest.mark.parametrize("function_id", FUNCTIONS)
def test_function_log_group_has_retention(function_id: str) -> None:
    log_groups = [
        r["Properties"]
        for r in RESOURCES.values()
        if r["Type"] == "AWS::Logs::LogGroup"
        and r["Properties"].get("LogGroupName")
        == {
            "Fn::Sub": "/aws/lambda/"
            + RESOURCES[function_id]["Properties"]["FunctionName"]["Fn::Sub"]
        }
    ]
    assert len(log_groups) == 1, f"{function_id} needs one AWS::Logs::LogGroup with retention"
    assert log_groups[0]["RetentionInDays"] > 0


def test_dispatcher_tick_is_never_retried() -> None:
    """A missed tick is caught up by the next one; retries would only deliver stale ticks."""
    properties = _properties("DispatcherFunction")
    (tick,) = properties["Events"].values()
    assert tick["Type"] == "ScheduleV2"
    assert tick["Properties"]["ScheduleExpression"] == "rate(1 minute)"
    assert tick["Properties"]["State"] == {"Ref": "ScheduleState"}
    assert tick["Properties"]["RetryPolicy"]["MaximumRetryAttempts"] == 0
    assert properties["EventInvokeConfig"]["MaximumRetryAttempts"] == 0


def test_globals_are_declared_once() -> None:
    function_globals = RAW_TEMPLATE["Globals"]["Function"]
    assert function_globals["Runtime"] == "python3.12"
    assert function_globals["Layers"] == [{"Ref": LAYER_ID}]
    for function_id in FUNCTIONS:
        own = RAW_TEMPLATE["Resources"][function_id]["Properties"]
        assert "Runtime" not in own and "Layers" not in own, f"{function_id} overrides Globals"


def test_cfn_lint_passes() -> None:
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    command = [str(cfn_lint)] if cfn_lint.exists() else [sys.executable, "-m", "cfnlint"]
    result = subprocess.run(
        [*command, str(TEMPLATE_PATH)], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, f"cfn-lint:\n{result.stdout}\n{result.stderr}"


def test_worker_policy_is_least_privilege() -> None:
    """Pinned; tests/integration/test_worker.py checks it against the real calls."""
    assert _grants_of("WorkerFunction") == {
        json.dumps({"Fn::GetAtt": ["LedgerTable", "Arn"]}): {
            "dynamodb:GetItem",
            "dynamodb:BatchGetItem",
            "dynamodb:Query",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
        },
        json.dumps({"Fn::Sub": "${LedgerTable.Arn}/index/gsi1"}): {"dynamodb:Query"},
        json.dumps({"Fn::GetAtt": ["SchedulerTable", "Arn"]}): {"dynamodb:UpdateItem"},
        **_CONFIG_READ,
        json.dumps({"Fn::Sub": "${ExportBucket.Arn}/exports/*"}): {"s3:PutObject"},
        json.dumps({"Fn::GetAtt": ["WorkQueue", "Arn"]}): {
            "sqs:SendMessage",
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
        },
        json.dumps({"Fn::GetAtt": ["WorkerLogGroup", "Arn"]}): {
            "logs:CreateLogStream",
            "logs:PutLogEvents",
        },
    }


def test_worker_queue_outlives_the_worker_and_redrives_to_a_dead_letter_queue() -> None:
    worker = _properties("WorkerFunction")
    queue = _properties("WorkQueue")
    assert queue["VisibilityTimeout"] > worker["Timeout"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["WorkDeadLetterQueue", "Arn"]
    }
    assert 1 < queue["RedrivePolicy"]["maxReceiveCount"] <= 5
    (event,) = worker["Events"].values()
    assert event["Type"] == "SQS"
    assert event["Properties"]["Queue"] == {"Fn::GetAtt": ["WorkQueue", "Arn"]}
    assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert worker["MemorySize"] >= 512 and worker["Timeout"] > 60


def test_reminder_policy_is_least_privilege() -> None:
    """Pinned; tests/integration/test_reminders.py checks the real calls are granted."""
    assert _grants_of("ReminderFunction") == {
        json.dumps({"Fn::GetAtt": ["LedgerTable", "Arn"]}): {"dynamodb:BatchGetItem"},
        json.dumps({"Fn::GetAtt": ["LotteryTable", "Arn"]}): {"dynamodb:BatchGetItem"},
        json.dumps({"Fn::GetAtt": ["ReminderTable", "Arn"]}): {
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
        },
        json.dumps({"Fn::GetAtt": ["PostsTable", "Arn"]}): {"dynamodb:UpdateItem"},
        json.dumps({"Ref": "PostsTopic"}): {"sns:Publish"},
        json.dumps(CHANNEL_SECRETS_ARN, sort_keys=True): {"ssm:GetParameter"},
        json.dumps({"Fn::GetAtt": ["ReminderQueue", "Arn"]}): {
            "sqs:SendMessage",
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
        },
        **_CONFIG_READ,
        json.dumps({"Fn::GetAtt": ["ReminderLogGroup", "Arn"]}): {
            "logs:CreateLogStream",
            "logs:PutLogEvents",
        },
    }


def test_reminder_queue_has_a_dead_letter_queue_an_alarm_and_a_fitting_timeout() -> None:
    queue = RESOURCES["ReminderQueue"]["Properties"]
    function = RESOURCES["ReminderFunction"]["Properties"]
    # Lambda's guidance for SQS event sources: visibility >= 6 x the function timeout.
    assert queue["VisibilityTimeout"] >= 6 * function["Timeout"]
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["ReminderDeadLetterQueue", "Arn"]},
        "maxReceiveCount": 3,
    }
    (event,) = function["Events"].values()
    assert event["Type"] == "SQS"
    assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    alarm = RESOURCES["ReminderDeadLetterAlarm"]["Properties"]
    assert alarm["Namespace"] == "AWS/SQS"
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarm["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["ReminderDeadLetterQueue", "QueueName"]}}
    ]
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold" and alarm["Threshold"] == 0


def test_the_last_day_index_projects_what_selection_reads() -> None:
    from autopilot.ledger.store import LastDayIndex

    table = RESOURCES["LedgerTable"]["Properties"]
    (gsi2,) = [i for i in table["GlobalSecondaryIndexes"] if i["IndexName"] == "gsi2"]
    assert gsi2["Projection"]["ProjectionType"] == "INCLUDE"
    projected = set(gsi2["Projection"]["NonKeyAttributes"])
    assert projected == set(LastDayIndex.Meta.projection.non_key_attributes)
