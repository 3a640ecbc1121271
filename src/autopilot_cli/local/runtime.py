"""The local runtime: the SAM template's resources on moto, its functions in-process.

This module owns running the application locally without Docker or AWS:

* :class:`LocalRuntime` reads ``template.yaml`` (the single source of truth),
  creates on moto every resource the template declares that moto can host
  (DynamoDB tables, S3 buckets, SNS topics and subscriptions, SQS queues),
  gives every other resource a deterministic physical name and ARN so that
  ``!Ref``/``!GetAtt`` resolve, and invokes functions in-process the way
  Lambda does: the function's resolved environment, its layers on
  ``sys.path``, a Lambda-like context, one import per "container" until
  :meth:`LocalRuntime.reset_containers` forces a cold start;
* builders of the events AWS delivers to functions, with the exact shapes:
  :func:`scheduled_event` (EventBridge Scheduler / EventBridge rules),
  :func:`sqs_event`, :func:`http_api_event` (API Gateway HTTP API, payload
  format 2.0).

Nothing here is specific to one function: every ``AWS::Serverless::Function``
in the template is invocable, and adding a resource type means adding one
entry to ``_HOSTED`` (created on moto) or ``_MODELLED`` (named only).
"""

from __future__ import annotations

import base64
import contextlib
import decimal
import hashlib
import importlib.util
import json
import logging
import os
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any, Self
from urllib.parse import quote, urlencode

import boto3
from autopilot.clock import get_clock
from autopilot.clock import monotonic as clock_monotonic

from autopilot_cli.local import fast_dynamodb as _fast_dynamodb
from autopilot_cli.local import fast_items as _fast_items
from autopilot_cli.local import fast_queries as _fast_queries
from autopilot_cli.local import fast_serialize as _fast_serialize
from autopilot_cli.local import fast_transactions as _fast_transactions
from autopilot_cli.local.cfn import (
    ResolveContext,
    ResourceRef,
    TemplateError,
    UnresolvableError,
    evaluate_conditions,
    find_references,
    load_template,
    resolve,
)

# The moto fast paths, in install order (uninstalled in reverse).
_FAST_PATHS = (
    _fast_dynamodb,
    _fast_items,
    _fast_transactions,
    _fast_queries,
    _fast_serialize,
)

__all__ = [
    "DEFAULT_ACCOUNT_ID",
    "DEFAULT_STACK_NAME",
    "FunctionSpec",
    "InvocationRecord",
    "LambdaContext",
    "LocalRuntime",
    "LocalRuntimeError",
    "SqsEventSource",
    "http_api_event",
    "scheduled_event",
    "sqs_event",
]

logger = logging.getLogger(__name__)

DEFAULT_ACCOUNT_ID = "123456789012"
DEFAULT_STACK_NAME = "autopilot-local"

SERVERLESS_FUNCTION = "AWS::Serverless::Function"

# Credentials moto accepts; set so that nothing can ever pick up a real
# profile and talk to a real account from a test.
_DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
# Removed while the runtime is active: a profile or a custom endpoint would
# route requests around moto (it only intercepts *.amazonaws.com).
_UNSET_WHILE_ACTIVE = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL")


class LocalRuntimeError(RuntimeError):
    """The local runtime cannot do what was asked (unknown function, bad handler...)."""


# --------------------------------------------------------------------------- #
# Lambda context and invocation records
# --------------------------------------------------------------------------- #


@dataclass
class LambdaContext:
    """The context object Lambda's Python runtime passes to a handler.

    Has the attributes handlers and Powertools read; the remaining time
    counts down from the function's ``Timeout`` on the installed clock
    (``autopilot.clock.monotonic``: wall time normally, simulated time in
    ``autopilot simulate``, where a rate-limit wait uses up the invocation's time).
    """

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    timeout_s: float
    identity: Any = None
    client_context: Any = None
    _deadline_monotonic: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        if not self._deadline_monotonic:
            self._deadline_monotonic = clock_monotonic() + self.timeout_s

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before Lambda would time the invocation out."""
        return max(0, int((self._deadline_monotonic - clock_monotonic()) * 1000))


@dataclass(frozen=True)
class InvocationRecord:
    """What one local invocation cost: for cold-start and duration reports."""

    function_id: str
    request_id: str
    cold_start: bool
    init_duration_ms: float
    duration_ms: float
    error: str | None


@dataclass(frozen=True)
class FunctionSpec:
    """An ``AWS::Serverless::Function`` as the local runtime runs it (Globals applied)."""

    logical_id: str
    function_name: str
    arn: str
    code_dir: Path
    handler_module: str
    handler_function: str
    timeout_s: int
    memory_mb: int
    runtime: str
    layer_dirs: tuple[Path, ...]
    properties: Mapping[str, Any]

    @property
    def handler_path(self) -> Path:
        """The file Lambda would import the handler from."""
        return self.code_dir.joinpath(*self.handler_module.split(".")).with_suffix(".py")


@dataclass(frozen=True)
class SqsEventSource:
    """A function's ``Type: SQS`` event: Lambda polls ``queue_id`` for it."""

    function_id: str
    event_name: str
    queue_id: str
    batch_size: int


@dataclass
class _Container:
    """A warm "execution environment": the imported handler module."""

    module: ModuleType
    handler: Callable[[Any, Any], Any]
    init_duration_ms: float
    invocations: int = 0


# --------------------------------------------------------------------------- #
# Helpers for CloudFormation property values
# --------------------------------------------------------------------------- #


def _container_key(logical_id: str, slot: str) -> str:
    return f"{logical_id}@{slot}" if slot else logical_id


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def _attribute_string(value: Any) -> str:
    """SQS/SNS attribute values are strings; CloudFormation lets authors write JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _tags(properties: Mapping[str, Any]) -> list[dict[str, str]]:
    return [{"Key": str(t["Key"]), "Value": str(t["Value"])} for t in properties.get("Tags") or []]


def _env_value(value: Any) -> str:
    # Lambda environment values are strings; CloudFormation renders scalars.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        raise UnresolvableError(f"environment value is not a scalar: {value!r}")
    return str(value)


def _utc(time_utc: datetime) -> datetime:
    if time_utc.tzinfo is None:
        raise ValueError(f"time must be timezone-aware (UTC), got naive {time_utc!r}")
    return time_utc.astimezone(UTC)


def _decimal_default(value: Any) -> Any:
    # Lambda's Python runtime serialises Decimal (what boto3 returns for
    # DynamoDB numbers) as a number; anything else non-JSON is an error.
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# --------------------------------------------------------------------------- #
# Event builders
# --------------------------------------------------------------------------- #


def scheduled_event(
    time_utc: datetime,
    rule_arn: str | None = None,
    *,
    source: str = "aws.scheduler",
    region: str = "us-east-1",
    account_id: str = DEFAULT_ACCOUNT_ID,
    event_id: str | None = None,
) -> dict[str, Any]:
    """The event a schedule delivers to a Lambda function at ``time_utc``.

    ``source="aws.scheduler"`` (default) is EventBridge Scheduler's default
    notification, what a SAM ``ScheduleV2`` event without ``Input`` sends:
    ``resources`` holds the schedule ARN and ``detail`` is the *string*
    ``"{}"``. ``source="aws.events"`` is an EventBridge rule's scheduled
    event (SAM ``Schedule``), whose ``detail`` is an empty object. ``time``
    is the scheduled time, to the second, in UTC with a ``Z`` suffix.
    """
    when = _utc(time_utc)
    if source == "aws.scheduler":
        default_arn = f"arn:aws:scheduler:{region}:{account_id}:schedule/default/local-schedule"
        detail: Any = "{}"
    elif source == "aws.events":
        default_arn = f"arn:aws:events:{region}:{account_id}:rule/local-schedule"
        detail = {}
    else:
        raise ValueError(f"unknown schedule source {source!r} (aws.scheduler or aws.events)")
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": source,
        "account": account_id,
        "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [rule_arn or default_arn],
        "detail": detail,
    }


def sqs_event(
    records: Iterable[str | Mapping[str, Any]],
    *,
    queue_arn: str | None = None,
    region: str = "us-east-1",
    account_id: str = DEFAULT_ACCOUNT_ID,
    sent_time_utc: datetime | None = None,
) -> dict[str, Any]:
    """An SQS event source mapping's event for ``records``.

    A record is a message body (``str``) or a mapping with at least
    ``"body"`` and optionally any Lambda SQS record field to override
    (``messageId``, ``attributes``, ``messageAttributes``...). FIFO queues
    (ARN ending in ``.fifo``) get ``MessageGroupId``/``SequenceNumber``
    attributes as Lambda delivers them.
    """
    arn = queue_arn or f"arn:aws:sqs:{region}:{account_id}:local-queue"
    sent_ms = str(int(_utc(sent_time_utc or get_clock().now()).timestamp() * 1000))
    fifo = arn.endswith(".fifo")
    built: list[dict[str, Any]] = []
    for index, record in enumerate(records):
        fields: dict[str, Any] = {"body": record} if isinstance(record, str) else dict(record)
        if not isinstance(fields.get("body"), str):
            raise ValueError(f"SQS record {index} needs a string 'body', got {record!r}")
        body = fields["body"]
        attributes: dict[str, str] = {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": sent_ms,
            "SenderId": "AIDAIENQZJOLO23YVJ4VO",
            "ApproximateFirstReceiveTimestamp": sent_ms,
        }
        if fifo:
            attributes.update(
                {
                    "SequenceNumber": str(18849496460467696128 + index),
                    "MessageGroupId": "1",
                    "MessageDeduplicationId": hashlib.sha256(body.encode()).hexdigest(),
                }
            )
        attributes.update(fields.pop("attributes", {}) or {})
        message: dict[str, Any] = {
            "messageId": str(uuid.uuid4()),
            "receiptHandle": base64.b64encode(uuid.uuid4().bytes * 4).decode(),
            "body": body,
            "attributes": attributes,
            "messageAttributes": {},
            "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
            "eventSource": "aws:sqs",
            "eventSourceARN": arn,
            "awsRegion": region,
        }
        message.update(fields)
        built.append(message)
    return {"Records": built}


def _route_template(path: str, path_parameters: Mapping[str, str] | None) -> str:
    """``/members/42`` with ``{"member_id": "42"}`` -> ``/members/{member_id}``."""
    if not path_parameters:
        return path
    by_value = {str(v): k for k, v in path_parameters.items()}
    segments = []
    for segment in path.split("/"):
        name = by_value.get(segment)
        segments.append(f"{{{name}}}" if name else segment)
    return "/".join(segments)


def http_api_event(
    method: str,
    path: str,
    body: str | bytes | Mapping[str, Any] | Sequence[Any] | None = None,
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, str | Sequence[str]] | None = None,
    jwt_claims: Mapping[str, Any] | None = None,
    path_parameters: Mapping[str, str] | None = None,
    *,
    route_key: str | None = None,
    jwt_scopes: Sequence[str] | None = None,
    api_id: str = "localapi01",
    stage: str = "$default",
    region: str = "us-east-1",
    account_id: str = DEFAULT_ACCOUNT_ID,
    source_ip: str = "203.0.113.10",
    time_utc: datetime | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API request event, payload format version 2.0.

    ``body``: a ``str`` is sent as is, ``bytes`` base64-encoded
    (``isBase64Encoded``), a mapping/sequence as JSON (with a JSON
    content-type unless ``headers`` set one). Header names are lower-cased
    as API Gateway does; repeated query values are comma-joined in
    ``queryStringParameters``. ``route_key`` defaults to ``"METHOD /route"``
    with path parameter values replaced by ``{name}`` (what a SAM
    ``HttpApi`` event with ``Path``/``Method`` produces).
    """
    method = method.upper()
    when = _utc(time_utc or get_clock().now())
    all_headers = {
        "accept": "*/*",
        "host": f"{api_id}.execute-api.{region}.amazonaws.com",
        "user-agent": "autopilot-local/1.0",
        "x-amzn-trace-id": f"Root=1-{int(when.timestamp()):08x}-{uuid.uuid4().hex[:24]}",
        "x-forwarded-for": source_ip,
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
    }
    raw_body: str | None
    is_base64 = False
    if body is None:
        raw_body = None
    elif isinstance(body, bytes):
        raw_body, is_base64 = base64.b64encode(body).decode(), True
    elif isinstance(body, str):
        raw_body = body
    else:
        raw_body = json.dumps(body)
        all_headers["content-type"] = "application/json"
    if body is not None:
        length = len(body) if isinstance(body, bytes) else len((raw_body or "").encode())
        all_headers["content-length"] = str(length)
    all_headers.update({k.lower(): str(v) for k, v in (headers or {}).items()})

    route = route_key or f"{method} {_route_template(path, path_parameters)}"
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route,
        "rawPath": path,
        "rawQueryString": "",
        "headers": all_headers,
        "requestContext": {
            "accountId": account_id,
            "apiId": api_id,
            "domainName": f"{api_id}.execute-api.{region}.amazonaws.com",
            "domainPrefix": api_id,
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": all_headers["user-agent"],
            },
            "requestId": base64.b64encode(uuid.uuid4().bytes[:10]).decode(),
            "routeKey": route,
            "stage": stage,
            "time": when.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(when.timestamp() * 1000),
        },
        "isBase64Encoded": is_base64,
    }
    if "cookie" in all_headers:
        event["cookies"] = [c.strip() for c in all_headers.pop("cookie").split(";") if c.strip()]
    if query:
        pairs = [
            (k, v)
            for k, values in query.items()
            for v in ([values] if isinstance(values, str) else values)
        ]
        event["rawQueryString"] = urlencode(pairs, quote_via=quote)
        event["queryStringParameters"] = {
            k: (v if isinstance(v, str) else ",".join(v)) for k, v in query.items()
        }
    if jwt_claims is not None:
        event["requestContext"]["authorizer"] = {
            "jwt": {"claims": dict(jwt_claims), "scopes": list(jwt_scopes) if jwt_scopes else None}
        }
    if path_parameters:
        event["pathParameters"] = {k: str(v) for k, v in path_parameters.items()}
    if raw_body is not None:
        event["body"] = raw_body
    return event


# --------------------------------------------------------------------------- #
# Resource types
# --------------------------------------------------------------------------- #


@dataclass
class _Resource:
    """One template resource as the local runtime knows it."""

    logical_id: str
    resource_type: str
    physical_id: str | None
    arn: str | None
    attributes: dict[str, Any]
    hosted: bool
    unsupported: str | None = None

    def ref(self) -> ResourceRef:
        return ResourceRef(
            logical_id=self.logical_id,
            resource_type=self.resource_type,
            ref=self.physical_id,
            attributes=self.attributes,
            unsupported=self.unsupported,
        )


_Creator = Callable[["LocalRuntime", str, dict[str, Any]], _Resource]


class LocalRuntime:
    """The SAM template's resources on moto and its functions, in-process.

    >>> with LocalRuntime("template.yaml") as runtime:  # doctest: +SKIP
    ...     runtime.invoke("DispatcherFunction", runtime.scheduled_event(now_utc))

    On enter: starts ``moto.mock_aws()`` (unless ``already_mocked``, for
    callers such as pytest fixtures that run their own mock), sets dummy
    credentials and the region in ``os.environ``, installs
    :mod:`fast_transactions` (unless disabled) and creates the template's
    resources. On exit everything is undone.

    ``parameters`` override the template's parameter defaults; physical names
    are the resource's explicit name property if set, else
    ``<stack_name>-<LogicalId>`` (lower-cased for buckets).

    ``keep_invocations`` bounds :attr:`invocations` to the latest records, so
    that a long run (``autopilot simulate`` of a month) keeps constant memory;
    :attr:`invocation_count` counts every invocation.
    """

    def __init__(
        self,
        template_path: str | Path = "template.yaml",
        *,
        region: str = "us-east-1",
        parameters: Mapping[str, Any] | None = None,
        fast_transactions: bool = True,
        already_mocked: bool = False,
        stack_name: str = DEFAULT_STACK_NAME,
        account_id: str = DEFAULT_ACCOUNT_ID,
        keep_invocations: int = 1000,
    ) -> None:
        self.template_path = Path(template_path).resolve()
        # SAM resolves CodeUri/ContentUri relative to the template's directory.
        self.root = self.template_path.parent
        self.region = region
        self.stack_name = stack_name
        self.account_id = account_id
        self.template: dict[str, Any] = load_template(self.template_path)
        self.parameters: dict[str, Any] = self._parameter_values(dict(parameters or {}))
        self._use_fast_transactions = fast_transactions
        self._already_mocked = already_mocked

        self._context = ResolveContext(
            region=region,
            account_id=account_id,
            stack_name=stack_name,
            parameters=self.parameters,
            mappings=dict(self.template.get("Mappings") or {}),
        )
        self._context.conditions = evaluate_conditions(self.template, self._context)
        self._resources: dict[str, _Resource] = {}
        self._functions: dict[str, FunctionSpec] = {}
        self._containers: dict[str, _Container] = {}
        #: Wraps every handler call: ``around_invoke(logical_id, slot)`` returns a
        #: context manager entered after the container is ready and left when the
        #: handler returned or raised (fault injection: the invocation's clock,
        #: crashes after the handler returned). ``None``: nothing around.
        self.around_invoke: Callable[[str, str], contextlib.AbstractContextManager[Any]] | None = (
            None
        )
        # The latest records only: a month-long simulation makes ~10^5 invocations.
        self.invocations: deque[InvocationRecord] = deque(maxlen=keep_invocations)
        self.invocation_count = 0
        # One client per service: creating a botocore client costs milliseconds.
        self._clients: dict[str, Any] = {}

        self._mock: Any = None
        self._saved_environ: dict[str, str | None] = {}
        self._added_sys_paths: list[str] = []
        self._fast_transactions_installed = False
        self._active = False

    # ------------------------------------------------------------------ #
    # Lifecycle
    # ------------------------------------------------------------------ #

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> Self:
        """Start the mock and create the resources (what ``__enter__`` does)."""
        if self._active:
            raise LocalRuntimeError("LocalRuntime already started")
        self._active = True
        try:
            self._set_environ()
            if self._already_mocked:
                _require_active_moto()
            else:
                from moto import mock_aws

                self._mock = mock_aws()
                self._mock.start()
            if self._use_fast_transactions:
                # The moto fast paths (transactions, partition queries, response
                # serialisation, data-plane calls below HTTP, item construction)
                # are tested to answer exactly like stock moto.
                for fast_path in _FAST_PATHS:
                    fast_path.install()
                self._fast_transactions_installed = True
            self._build()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Drop containers, stop the mock, restore the environment and ``sys.path``."""
        if not self._active:
            return
        self._active = False
        self._clients.clear()
        self.reset_containers()
        if self._fast_transactions_installed:
            for fast_path in reversed(_FAST_PATHS):
                fast_path.uninstall()
            self._fast_transactions_installed = False
        if self._mock is not None:
            self._mock.stop()
            self._mock = None
        for path in self._added_sys_paths:
            if path in sys.path:
                sys.path.remove(path)
        self._added_sys_paths.clear()
        for key, value in self._saved_environ.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_environ.clear()

    def _set_environ(self) -> None:
        updates: dict[str, str | None] = {
            **_DUMMY_CREDENTIALS,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        }
        updates.update({key: None for key in _UNSET_WHILE_ACTIVE})
        updates.update({key: None for key in os.environ if key.startswith("AWS_ENDPOINT_URL_")})
        for key, value in updates.items():
            self._saved_environ.setdefault(key, os.environ.get(key))
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    # ------------------------------------------------------------------ #
    # Parameters and resources
    # ------------------------------------------------------------------ #

    def _parameter_values(self, overrides: dict[str, Any]) -> dict[str, Any]:
        declared: dict[str, Any] = dict(self.template.get("Parameters") or {})
        unknown = set(overrides) - set(declared)
        if unknown:
            raise TemplateError(
                f"unknown parameters {sorted(unknown)}; declared: {sorted(declared)}"
            )
        values: dict[str, Any] = {}
        for name, spec in declared.items():
            if name in overrides:
                value = overrides[name]
            elif "Default" in spec:
                value = spec["Default"]
            else:
                raise TemplateError(
                    f"parameter {name} has no Default: pass parameters={{{name!r}: ...}}"
                )
            allowed = spec.get("AllowedValues")
            if allowed is not None and str(value) not in {str(a) for a in allowed}:
                raise TemplateError(f"parameter {name}={value!r} is not one of {allowed}")
            param_type = str(spec.get("Type", "String"))
            if isinstance(value, str) and (
                param_type == "CommaDelimitedList" or param_type.startswith("List<")
            ):
                value = [item.strip() for item in value.split(",")] if value else []
            values[name] = value
        return values

    def _build(self) -> None:
        resources: dict[str, Any] = self.template["Resources"]
        for logical_id in self._creation_order(resources):
            definition = resources[logical_id]
            condition = definition.get("Condition")
            if condition is not None and not self._context.conditions.get(condition, False):
                logger.debug("skipping %s: condition %s is false", logical_id, condition)
                continue
            resource_type = definition.get("Type", "")
            creator = _HOSTED.get(resource_type) or _MODELLED.get(resource_type)
            if creator is None:
                logger.info("not emulated locally: %s (%s)", logical_id, resource_type)
                resource = _Resource(
                    logical_id,
                    resource_type,
                    None,
                    None,
                    {},
                    hosted=False,
                    unsupported=(
                        f"resource type {resource_type} is not emulated by "
                        "autopilot_cli.local.runtime (add it to _HOSTED or _MODELLED there)"
                    ),
                )
            else:
                properties = definition.get("Properties") or {}
                if resource_type in _HOSTED:
                    properties = resolve(properties, self._context)
                resource = creator(self, logical_id, properties)
            self._resources[logical_id] = resource
            self._context.resources[logical_id] = resource.ref()

        for logical_id, definition in resources.items():
            if definition.get("Type") == SERVERLESS_FUNCTION and logical_id in self._resources:
                self._functions[logical_id] = self._function_spec(logical_id, definition)
        # Fail fast, with the reference spelled out, if a function's
        # environment or events need a resource this runtime cannot provide.
        for logical_id in self._functions:
            try:
                self.function_env(logical_id)
                resolve(self._functions[logical_id].properties.get("Events") or {}, self._context)
            except UnresolvableError as exc:
                raise LocalRuntimeError(f"function {logical_id}: {exc}") from exc

    def _creation_order(self, resources: Mapping[str, Any]) -> list[str]:
        """Logical ids in dependency order (Kahn's algorithm, template order on ties)."""
        dependencies: dict[str, set[str]] = {}
        for logical_id, definition in resources.items():
            resource_type = definition.get("Type", "")
            properties = definition.get("Properties") or {}
            if resource_type in _HOSTED:
                # Hosted resources resolve all their properties at creation.
                referenced = find_references(properties)
            else:
                # Others only need their name; depending on everything they
                # reference would create cycles SAM's transform resolves
                # (a function's HttpApi event and the API's definition).
                referenced = find_references(
                    {k: v for k, v in properties.items() if k in _NAME_PROPERTIES}
                )
            depends_on = definition.get("DependsOn") or []
            if isinstance(depends_on, str):
                depends_on = [depends_on]
            referenced |= set(depends_on)
            dependencies[logical_id] = {r for r in referenced if r in resources and r != logical_id}

        order: list[str] = []
        remaining = dict(dependencies)
        while remaining:
            ready = [r for r, deps in remaining.items() if not deps - set(order)]
            if not ready:
                raise TemplateError(f"circular references between resources {sorted(remaining)}")
            for logical_id in ready:
                order.append(logical_id)
                del remaining[logical_id]
        return order

    def _name(self, logical_id: str, properties: Mapping[str, Any], name_property: str) -> str:
        explicit = properties.get(name_property)
        if explicit is not None:
            return str(resolve(explicit, self._context))
        return f"{self.stack_name}-{logical_id}"

    def _client(self, service: str) -> Any:
        # Typed loosely on purpose: the boto3 stubs only accept literal service names.
        if service not in self._clients:
            factory: Callable[..., Any] = boto3.client
            self._clients[service] = factory(service, region_name=self.region)
        return self._clients[service]

    def _function_spec(self, logical_id: str, definition: Mapping[str, Any]) -> FunctionSpec:
        properties: dict[str, Any] = dict(definition.get("Properties") or {})
        handler = str(properties.get("Handler") or "")
        module, _, function = handler.rpartition(".")
        if not module or not function:
            raise LocalRuntimeError(f"{logical_id}: Handler {handler!r} is not 'module.function'")
        code_uri = properties.get("CodeUri")
        if not isinstance(code_uri, str):
            raise LocalRuntimeError(f"{logical_id}: CodeUri must be a local directory path")
        layer_dirs: list[Path] = []
        for layer in properties.get("Layers") or []:
            layer_id = layer.get("Ref") if isinstance(layer, dict) else None
            layer_definition = self.template["Resources"].get(layer_id or "", {})
            content_uri = (layer_definition.get("Properties") or {}).get("ContentUri")
            if isinstance(content_uri, str):
                layer_dirs.append((self.root / content_uri).resolve())
            else:
                logger.info(
                    "%s: layer %r has no local ContentUri, not on sys.path", logical_id, layer
                )
        resource = self._resources[logical_id]
        return FunctionSpec(
            logical_id=logical_id,
            function_name=str(resource.physical_id),
            arn=str(resource.arn),
            code_dir=(self.root / code_uri).resolve(),
            handler_module=module,
            handler_function=function,
            timeout_s=int(resolve(properties.get("Timeout", 3), self._context)),
            memory_mb=int(resolve(properties.get("MemorySize", 128), self._context)),
            runtime=str(resolve(properties.get("Runtime", ""), self._context)),
            layer_dirs=tuple(layer_dirs),
            properties=properties,
        )

    # ------------------------------------------------------------------ #
    # Lookups
    # ------------------------------------------------------------------ #

    def _resource(self, logical_id: str) -> _Resource:
        self._require_active()
        try:
            return self._resources[logical_id]
        except KeyError:
            raise LocalRuntimeError(
                f"no resource {logical_id!r} in {self.template_path.name} "
                "(or its Condition is false)"
            ) from None

    def resource_ids(self, resource_type: str | None = None) -> list[str]:
        """Logical ids of the created/modelled resources, optionally of one type."""
        self._require_active()
        return [
            r.logical_id
            for r in self._resources.values()
            if resource_type is None or r.resource_type == resource_type
        ]

    def physical_id(self, logical_id: str) -> str:
        """What ``!Ref logical_id`` returns: table/bucket name, topic ARN, queue URL..."""
        resource = self._resource(logical_id)
        if resource.physical_id is None:
            raise LocalRuntimeError(
                f"{logical_id} ({resource.resource_type}) has no local physical id"
            )
        return resource.physical_id

    def arn(self, logical_id: str) -> str:
        """The resource's ARN."""
        resource = self._resource(logical_id)
        if resource.arn is None:
            raise LocalRuntimeError(f"{logical_id} ({resource.resource_type}) has no local ARN")
        return resource.arn

    def attribute(self, logical_id: str, name: str) -> Any:
        """What ``!GetAtt logical_id.name`` returns."""
        self._resource(logical_id)
        return self._context.lookup_attribute(logical_id, name)

    def resolve(self, value: Any) -> Any:
        """Evaluate intrinsic functions in ``value`` against this runtime's stack."""
        self._require_active()
        return resolve(value, self._context)

    def client(self, service: str) -> Any:
        """A boto3 client of ``service`` in the runtime's region (served by moto)."""
        self._require_active()
        return self._client(service)

    def function_ids(self) -> list[str]:
        """Logical ids of the template's ``AWS::Serverless::Function`` resources."""
        self._require_active()
        return list(self._functions)

    def function(self, logical_id: str) -> FunctionSpec:
        """The function's spec (Globals applied)."""
        self._require_active()
        try:
            return self._functions[logical_id]
        except KeyError:
            raise LocalRuntimeError(
                f"no function {logical_id!r}; functions: {sorted(self._functions)}"
            ) from None

    def function_env(self, logical_id: str) -> dict[str, str]:
        """The function's ``Environment.Variables`` (Globals merged), resolved to strings."""
        spec = self.function(logical_id)
        variables = (spec.properties.get("Environment") or {}).get("Variables") or {}
        resolved = resolve(variables, self._context)
        return {str(k): _env_value(v) for k, v in resolved.items()}

    def lambda_environment(self, logical_id: str) -> dict[str, str]:
        """Everything Lambda puts in the function's ``os.environ``: reserved variables + its own."""
        spec = self.function(logical_id)
        reserved = {
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_LAMBDA_FUNCTION_NAME": spec.function_name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.function_name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "local",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}" if spec.runtime else "AWS_Lambda",
            "LAMBDA_TASK_ROOT": str(spec.code_dir),
            # What `sam local invoke` sets; Powertools Tracer turns itself off.
            "AWS_SAM_LOCAL": "true",
        }
        return {**reserved, **self.function_env(logical_id)}

    def lambda_context(self, logical_id: str) -> LambdaContext:
        """A fresh context for one invocation of the function."""
        spec = self.function(logical_id)
        return LambdaContext(
            function_name=spec.function_name,
            function_version="$LATEST",
            invoked_function_arn=spec.arn,
            memory_limit_in_mb=spec.memory_mb,
            aws_request_id=str(uuid.uuid4()),
            log_group_name=f"/aws/lambda/{spec.function_name}",
            log_stream_name=f"{get_clock().now():%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}",
            timeout_s=spec.timeout_s,
        )

    def _require_active(self) -> None:
        if not self._active:
            raise LocalRuntimeError("LocalRuntime is not started (use it as a context manager)")

    # ------------------------------------------------------------------ #
    # Invocation
    # ------------------------------------------------------------------ #

    @contextmanager
    def _function_process_state(self, spec: FunctionSpec) -> Iterator[None]:
        """Apply the function's environment and code path; restore both afterwards."""
        for layer_dir in spec.layer_dirs:
            # Layers live in /opt/python for the whole container's life.
            if str(layer_dir) not in sys.path:
                sys.path.insert(0, str(layer_dir))
                self._added_sys_paths.append(str(layer_dir))
        environment = self.lambda_environment(spec.logical_id)
        saved = {key: os.environ.get(key) for key in environment}
        os.environ.update(environment)
        # The code directory is the task root, importable for sibling modules.
        sys.path.insert(0, str(spec.code_dir))
        try:
            yield
        finally:
            with contextlib.suppress(ValueError):  # the handler may have removed it
                sys.path.remove(str(spec.code_dir))
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def _load_container(self, spec: FunctionSpec, slot: str = "") -> _Container:
        path = spec.handler_path
        if not path.is_file():
            raise LocalRuntimeError(f"{spec.logical_id}: handler file {path} does not exist")
        # Unique per runtime, function and slot: every function has an app.py.
        suffix = f"_{slot}" if slot else ""
        module_name = f"_autopilot_local_{spec.logical_id}{suffix}_{id(self):x}"
        before = set(sys.modules)
        started = time.perf_counter()
        module_spec = importlib.util.spec_from_file_location(module_name, path)
        if module_spec is None or module_spec.loader is None:  # pragma: no cover
            raise LocalRuntimeError(f"{spec.logical_id}: cannot import {path}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module
        try:
            module_spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(module_name, None)
            raise
        finally:
            # Sibling modules of the handler (helpers.py...) must not be
            # shared with another function's same-named modules: forget
            # them; the handler module keeps its own references.
            code_dir = str(spec.code_dir)
            for name in set(sys.modules) - before - {module_name}:
                module_file = getattr(sys.modules[name], "__file__", None) or ""
                if module_file.startswith(code_dir + os.sep):
                    del sys.modules[name]
        init_ms = (time.perf_counter() - started) * 1000
        handler = getattr(module, spec.handler_function, None)
        if not callable(handler):
            sys.modules.pop(module_name, None)
            raise LocalRuntimeError(
                f"{spec.logical_id}: {path.name} has no callable {spec.handler_function!r}"
            )
        return _Container(module=module, handler=handler, init_duration_ms=init_ms)

    def load_handler(self, logical_id: str) -> Callable[[Any, Any], Any]:
        """Import the function's handler (a cold start if not warm) and return it.

        The import runs with the function's environment applied, as Lambda's
        init phase does; the returned callable is the raw handler.
        """
        spec = self.function(logical_id)
        with self._function_process_state(spec):
            if logical_id not in self._containers:
                self._containers[logical_id] = self._load_container(spec)
        return self._containers[logical_id].handler

    def invoke(
        self,
        logical_id: str,
        event: Any,
        context: LambdaContext | None = None,
        *,
        serialize: bool = True,
        slot: str = "",
    ) -> Any:
        """Invoke the function with ``event`` as Lambda would, and return its result.

        The handler module is imported on the first invocation (a cold start)
        and reused until :meth:`reset_containers`. The function's environment
        is in ``os.environ`` during import and call only. With ``serialize``
        (default) the event and the result go through JSON as they do in
        Lambda (a result that Lambda could not serialise raises here too;
        ``Decimal`` becomes a number, as Lambda's runtime does). Exceptions
        raised by the handler propagate.

        ``slot`` names another execution environment of the same function (its
        own imported handler module): what Lambda gives a second invocation that
        arrives while the first is still running (overlapping deliveries).
        """
        spec = self.function(logical_id)
        payload = json.loads(json.dumps(event)) if serialize else event
        key = _container_key(logical_id, slot)
        with self._function_process_state(spec):
            if key not in self._containers:
                self._containers[key] = self._load_container(spec, slot)
            container = self._containers[key]
            around = (
                self.around_invoke(logical_id, slot)
                if self.around_invoke is not None
                else contextlib.nullcontext()
            )
            # The first invocation of a container pays its init (cold start).
            cold = container.invocations == 0
            container.invocations += 1
            started = time.perf_counter()
            error: str | None = None
            try:
                with around:
                    # The context is made inside: its remaining time counts on the
                    # invocation's clock.
                    context = context or self.lambda_context(logical_id)
                    result = container.handler(payload, context)
            except BaseException as exc:
                error = type(exc).__name__
                raise
            finally:
                duration_ms = (time.perf_counter() - started) * 1000
                self.invocation_count += 1
                self.invocations.append(
                    InvocationRecord(
                        function_id=logical_id,
                        request_id=context.aws_request_id if context is not None else "",
                        cold_start=cold,
                        init_duration_ms=container.init_duration_ms if cold else 0.0,
                        duration_ms=duration_ms,
                        error=error,
                    )
                )
                if duration_ms > spec.timeout_s * 1000:
                    logger.warning(
                        "%s took %.0f ms, over its %d s Timeout: Lambda would have killed it",
                        logical_id,
                        duration_ms,
                        spec.timeout_s,
                    )
        if serialize:
            return json.loads(json.dumps(result, default=_decimal_default))
        return result

    def reset_containers(self, *, include_layers: bool = False) -> None:
        """Force a cold start of every function on its next invocation.

        Handler modules are imported afresh. With ``include_layers`` the layer
        packages (``autopilot``...) are re-imported too, which resets their
        module-level caches as a real cold start does; objects from the old
        modules (models, classes) held by the caller then differ from the new
        ones, hence off by default.
        """
        for container in self._containers.values():
            sys.modules.pop(container.module.__name__, None)
        self._containers.clear()
        if include_layers:
            layer_roots = {str(d) for spec in self._functions.values() for d in spec.layer_dirs}
            for name, module in list(sys.modules.items()):
                module_file = getattr(module, "__file__", None) or ""
                if any(module_file.startswith(root + os.sep) for root in layer_roots):
                    del sys.modules[name]

    def discard_container(self, logical_id: str, slot: str = "") -> None:
        """Forget one execution environment (its process died): the next
        invocation in that slot is a cold start."""
        container = self._containers.pop(_container_key(logical_id, slot), None)
        if container is not None:
            sys.modules.pop(container.module.__name__, None)

    def warm_functions(self) -> list[str]:
        """Logical ids of the functions with a warm container."""
        return list(self._containers)

    # ------------------------------------------------------------------ #
    # Events shaped for this stack
    # ------------------------------------------------------------------ #

    def _schedule_events(self, function_id: str) -> list[tuple[str, str, dict[str, Any]]]:
        spec = self.function(function_id)
        found = []
        for name, event in (spec.properties.get("Events") or {}).items():
            event_type = event.get("Type")
            if event_type in ("ScheduleV2", "Schedule"):
                found.append(
                    (name, event_type, resolve(event.get("Properties") or {}, self._context))
                )
        return found

    def scheduled_event(
        self, time_utc: datetime, *, function_id: str | None = None, event_name: str | None = None
    ) -> dict[str, Any]:
        """The event the function's ``ScheduleV2``/``Schedule`` event delivers at ``time_utc``.

        ``function_id`` may be omitted when exactly one function has a
        schedule. The schedule ARN and the event source follow the template:
        a ``ScheduleV2`` event (EventBridge Scheduler) sends
        ``source: aws.scheduler``, a ``Schedule`` event (EventBridge rule)
        ``aws.events``.
        """
        if function_id is None:
            scheduled = [f for f in self.function_ids() if self._schedule_events(f)]
            if len(scheduled) != 1:
                raise LocalRuntimeError(f"pass function_id: scheduled functions are {scheduled}")
            function_id = scheduled[0]
        events = self._schedule_events(function_id)
        if event_name is not None:
            events = [e for e in events if e[0] == event_name]
        if len(events) != 1:
            raise LocalRuntimeError(
                f"{function_id}: expected one schedule event, found {[e[0] for e in events]}"
            )
        name, event_type, properties = events[0]
        if event_type == "ScheduleV2":
            if "Name" in properties:
                schedule_name = str(properties["Name"])
            elif _as_bool(properties.get("OmitName", False)):
                schedule_name = f"{self.stack_name}-{function_id}{name}"
            else:
                schedule_name = f"{function_id}{name}"
            group = properties.get("GroupName", "default")
            arn = (
                f"arn:aws:scheduler:{self.region}:{self.account_id}:"
                f"schedule/{group}/{schedule_name}"
            )
            source = "aws.scheduler"
        else:
            rule_name = properties.get("Name") or f"{self.stack_name}-{function_id}{name}"
            arn = f"arn:aws:events:{self.region}:{self.account_id}:rule/{rule_name}"
            source = "aws.events"
        return scheduled_event(
            time_utc, arn, source=source, region=self.region, account_id=self.account_id
        )

    def sqs_event(
        self, records: Iterable[str | Mapping[str, Any]], *, queue_id: str | None = None
    ) -> dict[str, Any]:
        """:func:`sqs_event` for this stack (``queue_id``: the queue's logical id)."""
        queue_arn = self.arn(queue_id) if queue_id else None
        return sqs_event(
            records, queue_arn=queue_arn, region=self.region, account_id=self.account_id
        )

    def http_api_event(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """:func:`http_api_event` with this stack's region and account."""
        kwargs.setdefault("region", self.region)
        kwargs.setdefault("account_id", self.account_id)
        return http_api_event(method, path, **kwargs)

    def receive_sqs_event(self, queue_id: str, *, max_messages: int = 10) -> dict[str, Any]:
        """Receive up to ``max_messages`` from the queue and shape them as Lambda's SQS event.

        The messages are really received (in flight, with receipt handles),
        as Lambda's event source mapping does; see :meth:`deliver_sqs`.
        """
        queue_url = self.physical_id(queue_id)
        response = self._client("sqs").receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=max(1, min(max_messages, 10)),
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        records = []
        for message in response.get("Messages", []):
            record: dict[str, Any] = {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": {
                    name: {
                        "stringValue": value.get("StringValue"),
                        "binaryValue": (
                            base64.b64encode(value["BinaryValue"]).decode()
                            if "BinaryValue" in value
                            else None
                        ),
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": value["DataType"],
                    }
                    for name, value in message.get("MessageAttributes", {}).items()
                },
                "md5OfBody": message["MD5OfBody"],
            }
            if "MD5OfMessageAttributes" in message:
                record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
            records.append(record)
        return self.sqs_event(records, queue_id=queue_id)

    def deliver_sqs(self, function_id: str, queue_id: str, *, batch_size: int = 10) -> Any:
        """Do one poll of Lambda's SQS event source mapping: receive, invoke, delete.

        Returns the function's result, or ``None`` if the queue was empty.
        Messages are deleted as Lambda does: all of them when the function
        succeeds, except those it reports in ``batchItemFailures`` when its
        SQS event has ``FunctionResponseTypes: [ReportBatchItemFailures]``
        (a malformed report fails the whole batch). If the function raises,
        nothing is deleted and the exception propagates; the messages become
        visible again after the queue's visibility timeout.
        """
        event = self.receive_sqs_event(queue_id, max_messages=batch_size)
        if not event["Records"]:
            return None
        result = self.invoke(function_id, event)
        handles = {r["messageId"]: r["receiptHandle"] for r in event["Records"]}
        failed = self.failed_message_ids(function_id, queue_id, handles, result)
        to_delete = [(mid, h) for mid, h in handles.items() if mid not in failed]
        sqs = self._client("sqs")
        for start in range(0, len(to_delete), 10):
            sqs.delete_message_batch(
                QueueUrl=self.physical_id(queue_id),
                Entries=[
                    {"Id": str(n), "ReceiptHandle": handle}
                    for n, (_, handle) in enumerate(to_delete[start : start + 10])
                ],
            )
        return result

    def sqs_event_sources(self) -> list[SqsEventSource]:
        """Every ``Type: SQS`` event of the template's functions, in template order.

        The queue is matched by ARN (``Queue: !GetAtt Q.Arn``) to a queue of
        this stack; an event whose queue is not one of them is skipped.
        """
        self._require_active()
        by_arn = {
            r.arn: r.logical_id
            for r in self._resources.values()
            if r.resource_type == "AWS::SQS::Queue" and r.arn
        }
        sources = []
        for function_id, spec in self._functions.items():
            for name, event in (spec.properties.get("Events") or {}).items():
                if event.get("Type") != "SQS":
                    continue
                properties = resolve(event.get("Properties") or {}, self._context)
                queue_id = by_arn.get(str(properties.get("Queue")))
                if queue_id is None:
                    logger.info("%s.%s: queue %r is not in the stack", function_id, name, queue_id)
                    continue
                if not _as_bool(properties.get("Enabled", True)):
                    continue
                batch = int(properties.get("BatchSize", 10))
                sources.append(SqsEventSource(function_id, name, queue_id, max(1, min(batch, 10))))
        return sources

    def deliver_pending_sqs(
        self,
        *,
        max_batches: int = 1000,
        on_error: Callable[[SqsEventSource, BaseException], None] | None = None,
    ) -> int:
        """Run every SQS event source mapping until its queue has nothing visible.

        What Lambda's pollers do between two events of a simulation: each
        function with an SQS event receives the messages of its queue in
        batches of its ``BatchSize`` (:meth:`deliver_sqs`), and messages a
        function enqueues for another (or for itself: a continuation) are
        delivered in the same call. Returns the number of batches delivered.

        A function that raises leaves its batch in flight (visible again after
        the queue's visibility timeout, as in AWS); with ``on_error`` the error
        is reported there and delivery goes on with the other sources,
        without it the exception propagates. ``max_batches`` stops a function
        that re-enqueues forever.
        """
        sources = self.sqs_event_sources()
        delivered = 0
        progressing = True
        while progressing:
            progressing = False
            for source in sources:
                if delivered >= max_batches:
                    raise LocalRuntimeError(
                        f"SQS delivery did not settle after {max_batches} batches "
                        f"(last: {source.function_id} <- {source.queue_id})"
                    )
                if not self._has_visible_messages(source.queue_id):
                    continue
                try:
                    self.deliver_sqs(
                        source.function_id, source.queue_id, batch_size=source.batch_size
                    )
                except Exception as exc:
                    if on_error is None:
                        raise
                    on_error(source, exc)
                    delivered += 1
                    continue
                delivered += 1
                # A delivery may enqueue for a source swept earlier: sweep again.
                progressing = True
        return delivered

    def failed_message_ids(
        self, function_id: str, queue_id: str, message_ids: Iterable[str], result: Any
    ) -> set[str]:
        """The messages of a batch the function succeeded on that Lambda keeps:
        those it reported in ``batchItemFailures`` (with ``ReportBatchItemFailures``
        on its SQS event); a report naming a message not in the batch fails all."""
        batch = set(message_ids)
        if not self._reports_batch_item_failures(function_id, queue_id):
            return set()
        if not isinstance(result, dict):
            return set()
        reported = result.get("batchItemFailures") or []
        identifiers = [f.get("itemIdentifier") if isinstance(f, dict) else None for f in reported]
        if any(i not in batch for i in identifiers):
            return batch
        return {str(i) for i in identifiers}

    def has_visible_messages(self, queue_id: str) -> bool:
        """Whether the queue has messages a poll would receive now."""
        return self._has_visible_messages(queue_id)

    def _has_visible_messages(self, queue_id: str) -> bool:
        # One cheap GetQueueAttributes instead of a ReceiveMessage on an empty queue.
        attributes = self._client("sqs").get_queue_attributes(
            QueueUrl=self.physical_id(queue_id),
            AttributeNames=["ApproximateNumberOfMessages"],
        )["Attributes"]
        return int(attributes.get("ApproximateNumberOfMessages", "0")) > 0

    def _reports_batch_item_failures(self, function_id: str, queue_id: str) -> bool:
        queue_arn = self.arn(queue_id)
        for event in (self.function(function_id).properties.get("Events") or {}).values():
            if event.get("Type") != "SQS":
                continue
            properties = resolve(event.get("Properties") or {}, self._context)
            if properties.get("Queue") == queue_arn:
                return "ReportBatchItemFailures" in (properties.get("FunctionResponseTypes") or [])
        return False


def _require_active_moto() -> None:
    """Refuse to create resources when no moto mock is running (they would be real)."""
    from moto.core.models import MockAWS

    if getattr(MockAWS, "_nested_count", 0) <= 0:
        raise LocalRuntimeError(
            "already_mocked=True but no moto mock is active: refusing to create real AWS resources"
        )


# --------------------------------------------------------------------------- #
# Creators: hosted on moto
# --------------------------------------------------------------------------- #


def _create_dynamodb_table(
    runtime: LocalRuntime, logical_id: str, props: dict[str, Any]
) -> _Resource:
    name = runtime._name(logical_id, props, "TableName")
    billing_mode = props.get("BillingMode", "PROVISIONED")
    request: dict[str, Any] = {
        "TableName": name,
        "KeySchema": props["KeySchema"],
        "AttributeDefinitions": props["AttributeDefinitions"],
        "BillingMode": billing_mode,
    }
    if billing_mode == "PROVISIONED":
        request["ProvisionedThroughput"] = props.get(
            "ProvisionedThroughput", {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
        )
    gsis = []
    for index in props.get("GlobalSecondaryIndexes") or []:
        gsi = {k: index[k] for k in ("IndexName", "KeySchema", "Projection") if k in index}
        if billing_mode == "PROVISIONED" and "ProvisionedThroughput" in index:
            gsi["ProvisionedThroughput"] = index["ProvisionedThroughput"]
        gsis.append(gsi)
    if gsis:
        request["GlobalSecondaryIndexes"] = gsis
    lsis = [
        {k: index[k] for k in ("IndexName", "KeySchema", "Projection") if k in index}
        for index in props.get("LocalSecondaryIndexes") or []
    ]
    if lsis:
        request["LocalSecondaryIndexes"] = lsis
    stream = props.get("StreamSpecification")
    if stream and stream.get("StreamViewType"):
        request["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": stream["StreamViewType"],
        }
    sse = props.get("SSESpecification")
    if sse:
        request["SSESpecification"] = {
            key: value
            for key, value in {
                "Enabled": _as_bool(sse.get("SSEEnabled", False)),
                "SSEType": sse.get("SSEType"),
                "KMSMasterKeyId": sse.get("KMSMasterKeyId"),
            }.items()
            if value is not None
        }
    if "TableClass" in props:
        request["TableClass"] = props["TableClass"]
    if "DeletionProtectionEnabled" in props:
        request["DeletionProtectionEnabled"] = _as_bool(props["DeletionProtectionEnabled"])
    if props.get("Tags"):
        request["Tags"] = _tags(props)

    dynamodb = runtime._client("dynamodb")
    description = dynamodb.create_table(**request)["TableDescription"]
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("AttributeName"):
        dynamodb.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={
                "Enabled": _as_bool(ttl.get("Enabled", False)),
                "AttributeName": ttl["AttributeName"],
            },
        )
    pitr = props.get("PointInTimeRecoverySpecification")
    if pitr and _as_bool(pitr.get("PointInTimeRecoveryEnabled", False)):
        dynamodb.update_continuous_backups(
            TableName=name,
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
        )
    attributes: dict[str, Any] = {"Arn": description["TableArn"]}
    if "LatestStreamArn" in description:
        attributes["StreamArn"] = description["LatestStreamArn"]
    return _Resource(
        logical_id, "AWS::DynamoDB::Table", name, description["TableArn"], attributes, True
    )


def _create_simple_table(
    runtime: LocalRuntime, logical_id: str, props: dict[str, Any]
) -> _Resource:
    key = props.get("PrimaryKey") or {"Name": "id", "Type": "String"}
    key_type = {"String": "S", "Number": "N", "Binary": "B"}.get(key.get("Type", "String"), "S")
    table_props: dict[str, Any] = {
        "KeySchema": [{"AttributeName": key["Name"], "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": key["Name"], "AttributeType": key_type}],
        "BillingMode": "PROVISIONED" if props.get("ProvisionedThroughput") else "PAY_PER_REQUEST",
    }
    for passthrough in ("TableName", "ProvisionedThroughput", "SSESpecification", "Tags"):
        if passthrough in props:
            table_props[passthrough] = props[passthrough]
    if isinstance(table_props.get("Tags"), dict):
        table_props["Tags"] = [{"Key": k, "Value": v} for k, v in table_props["Tags"].items()]
    resource = _create_dynamodb_table(runtime, logical_id, table_props)
    resource.resource_type = "AWS::Serverless::SimpleTable"
    return resource


def _create_s3_bucket(runtime: LocalRuntime, logical_id: str, props: dict[str, Any]) -> _Resource:
    # CloudFormation-generated bucket names are lower case; keep them valid.
    name = runtime._name(logical_id, props, "BucketName")
    if "BucketName" not in props:
        name = name.lower()[:63].rstrip("-")
    s3 = runtime._client("s3")
    create: dict[str, Any] = {"Bucket": name}
    if runtime.region != "us-east-1":
        create["CreateBucketConfiguration"] = {"LocationConstraint": runtime.region}
    s3.create_bucket(**create)
    versioning = props.get("VersioningConfiguration")
    if versioning and versioning.get("Status"):
        s3.put_bucket_versioning(
            Bucket=name, VersioningConfiguration={"Status": versioning["Status"]}
        )
    encryption = props.get("BucketEncryption")
    if encryption and encryption.get("ServerSideEncryptionConfiguration"):
        # CloudFormation's rule shape differs from the API's in one key name.
        rules = [
            {
                (
                    "ApplyServerSideEncryptionByDefault"
                    if k == "ServerSideEncryptionByDefault"
                    else k
                ): v
                for k, v in rule.items()
            }
            for rule in encryption["ServerSideEncryptionConfiguration"]
        ]
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
    public_access = props.get("PublicAccessBlockConfiguration")
    if public_access:
        s3.put_public_access_block(
            Bucket=name,
            PublicAccessBlockConfiguration={k: _as_bool(v) for k, v in public_access.items()},
        )
    if props.get("Tags"):
        s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": _tags(props)})
    arn = f"arn:aws:s3:::{name}"
    attributes = {
        "Arn": arn,
        "DomainName": f"{name}.s3.amazonaws.com",
        "DualStackDomainName": f"{name}.s3.dualstack.{runtime.region}.amazonaws.com",
        "RegionalDomainName": f"{name}.s3.{runtime.region}.amazonaws.com",
        "WebsiteURL": f"http://{name}.s3-website-{runtime.region}.amazonaws.com",
    }
    return _Resource(logical_id, "AWS::S3::Bucket", name, arn, attributes, True)


def _create_sns_topic(runtime: LocalRuntime, logical_id: str, props: dict[str, Any]) -> _Resource:
    fifo = _as_bool(props.get("FifoTopic", False))
    name = runtime._name(logical_id, props, "TopicName")
    if fifo and not name.endswith(".fifo"):
        name += ".fifo"
    attributes = {
        key: _attribute_string(props[key])
        for key in (
            "DisplayName",
            "KmsMasterKeyId",
            "FifoTopic",
            "ContentBasedDeduplication",
            "SignatureVersion",
            "TracingConfig",
        )
        if key in props
    }
    sns = runtime._client("sns")
    request: dict[str, Any] = {"Name": name, "Attributes": attributes}
    if props.get("Tags"):
        request["Tags"] = _tags(props)
    topic_arn = sns.create_topic(**request)["TopicArn"]
    for subscription in props.get("Subscription") or []:
        sns.subscribe(
            TopicArn=topic_arn, Protocol=subscription["Protocol"], Endpoint=subscription["Endpoint"]
        )
    return _Resource(
        logical_id,
        "AWS::SNS::Topic",
        topic_arn,
        topic_arn,
        {"TopicArn": topic_arn, "TopicName": name},
        True,
    )


def _create_sns_subscription(
    runtime: LocalRuntime, logical_id: str, props: dict[str, Any]
) -> _Resource:
    attributes = {
        key: _attribute_string(props[key])
        for key in (
            "RawMessageDelivery",
            "FilterPolicy",
            "FilterPolicyScope",
            "RedrivePolicy",
            "DeliveryPolicy",
        )
        if key in props
    }
    response = runtime._client("sns").subscribe(
        TopicArn=props["TopicArn"],
        Protocol=props["Protocol"],
        Endpoint=props.get("Endpoint", ""),
        Attributes=attributes,
        ReturnSubscriptionArn=True,
    )
    arn = response["SubscriptionArn"]
    return _Resource(logical_id, "AWS::SNS::Subscription", arn, arn, {"Arn": arn}, True)


# CloudFormation AWS::SQS::Queue properties that are SQS queue attributes.
_SQS_ATTRIBUTES = (
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "DelaySeconds",
    "FifoQueue",
    "FifoThroughputLimit",
    "KmsDataKeyReusePeriodSeconds",
    "KmsMasterKeyId",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "RedriveAllowPolicy",
    "RedrivePolicy",
    "SqsManagedSseEnabled",
    "VisibilityTimeout",
)


def _create_sqs_queue(runtime: LocalRuntime, logical_id: str, props: dict[str, Any]) -> _Resource:
    fifo = _as_bool(props.get("FifoQueue", False))
    name = runtime._name(logical_id, props, "QueueName")
    if "QueueName" not in props:
        name = name[: 80 - (5 if fifo else 0)]
        if fifo:
            name += ".fifo"
    attributes = {key: _attribute_string(props[key]) for key in _SQS_ATTRIBUTES if key in props}
    if not fifo:
        attributes.pop("FifoQueue", None)  # SQS rejects FifoQueue=false
    request: dict[str, Any] = {"QueueName": name, "Attributes": attributes}
    if props.get("Tags"):
        request["tags"] = {t["Key"]: t["Value"] for t in _tags(props)}
    sqs = runtime._client("sqs")
    queue_url = sqs.create_queue(**request)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    attributes_out = {"Arn": arn, "QueueName": name, "QueueUrl": queue_url}
    return _Resource(logical_id, "AWS::SQS::Queue", queue_url, arn, attributes_out, True)


# --------------------------------------------------------------------------- #
# Creators: modelled (named, nothing to create on moto)
# --------------------------------------------------------------------------- #


def _model_function(runtime: LocalRuntime, logical_id: str, props: dict[str, Any]) -> _Resource:
    name = runtime._name(logical_id, props, "FunctionName")
    arn = f"arn:aws:lambda:{runtime.region}:{runtime.account_id}:function:{name}"
    return _Resource(logical_id, SERVERLESS_FUNCTION, name, arn, {"Arn": arn}, hosted=False)


def _model_lambda_function(
    runtime: LocalRuntime, logical_id: str, props: dict[str, Any]
) -> _Resource:
    resource = _model_function(runtime, logical_id, props)
    resource.resource_type = "AWS::Lambda::Function"
    return resource


def _model_layer(resource_type: str) -> _Creator:
    def model(runtime: LocalRuntime, logical_id: str, props: dict[str, Any]) -> _Resource:
        name = runtime._name(logical_id, props, "LayerName")
        arn = f"arn:aws:lambda:{runtime.region}:{runtime.account_id}:layer:{name}:1"
        return _Resource(logical_id, resource_type, arn, arn, {}, hosted=False)

    return model


def _model_log_group(runtime: LocalRuntime, logical_id: str, props: dict[str, Any]) -> _Resource:
    name = runtime._name(logical_id, props, "LogGroupName")
    arn = f"arn:aws:logs:{runtime.region}:{runtime.account_id}:log-group:{name}:*"
    return _Resource(logical_id, "AWS::Logs::LogGroup", name, arn, {"Arn": arn}, hosted=False)


def _model_http_api(runtime: LocalRuntime, logical_id: str, props: dict[str, Any]) -> _Resource:
    api_id = hashlib.sha256(f"{runtime.stack_name}/{logical_id}".encode()).hexdigest()[:10]
    endpoint = f"https://{api_id}.execute-api.{runtime.region}.amazonaws.com"
    return _Resource(
        logical_id,
        "AWS::Serverless::HttpApi",
        api_id,
        None,
        {"ApiEndpoint": endpoint},
        hosted=False,
    )


def _model_iam_role(runtime: LocalRuntime, logical_id: str, props: dict[str, Any]) -> _Resource:
    name = runtime._name(logical_id, props, "RoleName")
    arn = f"arn:aws:iam::{runtime.account_id}:role/{name}"
    return _Resource(
        logical_id,
        "AWS::IAM::Role",
        name,
        arn,
        {"Arn": arn, "RoleId": f"AROA{logical_id.upper()}"},
        False,
    )


def _model_policy_only(resource_type: str) -> _Creator:
    # Resource policies are not enforced locally; a Ref returns the logical id.
    def model(runtime: LocalRuntime, logical_id: str, props: dict[str, Any]) -> _Resource:
        return _Resource(logical_id, resource_type, logical_id, None, {}, hosted=False)

    return model


_HOSTED: dict[str, _Creator] = {
    "AWS::DynamoDB::Table": _create_dynamodb_table,
    "AWS::Serverless::SimpleTable": _create_simple_table,
    "AWS::S3::Bucket": _create_s3_bucket,
    "AWS::SNS::Topic": _create_sns_topic,
    "AWS::SNS::Subscription": _create_sns_subscription,
    "AWS::SQS::Queue": _create_sqs_queue,
}

_MODELLED: dict[str, _Creator] = {
    SERVERLESS_FUNCTION: _model_function,
    "AWS::Lambda::Function": _model_lambda_function,
    "AWS::Serverless::LayerVersion": _model_layer("AWS::Serverless::LayerVersion"),
    "AWS::Lambda::LayerVersion": _model_layer("AWS::Lambda::LayerVersion"),
    "AWS::Logs::LogGroup": _model_log_group,
    "AWS::Serverless::HttpApi": _model_http_api,
    "AWS::IAM::Role": _model_iam_role,
    "AWS::SQS::QueuePolicy": _model_policy_only("AWS::SQS::QueuePolicy"),
    "AWS::SNS::TopicPolicy": _model_policy_only("AWS::SNS::TopicPolicy"),
    "AWS::S3::BucketPolicy": _model_policy_only("AWS::S3::BucketPolicy"),
    "AWS::Lambda::Permission": _model_policy_only("AWS::Lambda::Permission"),
}

# Properties that name a modelled resource (the only ones resolved for it).
_NAME_PROPERTIES = frozenset(
    {"FunctionName", "LayerName", "LogGroupName", "RoleName", "Name", "StageName"}
)
