"""The container's one botocore session and its lazily created, bounded AWS clients.

One botocore session per container serves every client: the boto3 clients
(S3, SNS, SSM, SQS) and PynamoDB's DynamoDB connection (``autopilot.dynamo``).
A session loads endpoint and service data from disk, so a second session
would pay that again on a cold start. Clients are created on first use, only
for the services a request actually calls: a check-in never creates an S3,
SNS or SSM client.

Every client has bounded timeouts and retries (botocore's ``standard`` mode),
so a stuck connection fails the request well inside the Lambda timeout
instead of hanging until Lambda kills it. Defaults (override per function
with environment variables, e.g. for the long-running worker):

- ``AUTOPILOT_AWS_CONNECT_TIMEOUT_S`` (default 1 s)
- ``AUTOPILOT_AWS_READ_TIMEOUT_S`` (default 2 s)
- ``AUTOPILOT_AWS_MAX_ATTEMPTS`` (default 2: the first try and one retry)

Worst case per AWS call: attempts x (connect + read) + the retry's back-off
(at most 1 s for one retry) = 2 x 3 s + 1 s = 7 s, inside the API's 10 s.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

# Re-entrant: creating a client creates the session under the same lock.
_lock = threading.RLock()


@dataclass(frozen=True)
class ClientLimits:
    """Timeouts and retry budget applied to every AWS client of the container."""

    connect_timeout_s: float = 1.0
    read_timeout_s: float = 2.0
    max_attempts: int = 2

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ClientLimits:
        """Read the limits from ``env`` (default ``os.environ``); unset names keep the defaults."""
        env = os.environ if env is None else env
        default = cls()

        def number(name: str, fallback: float) -> float:
            raw = env.get(name)
            if not raw:
                return fallback
            try:
                value = float(raw)
            except ValueError:
                raise RuntimeError(f"environment variable {name}={raw!r} is not a number") from None
            if value <= 0:
                raise RuntimeError(f"environment variable {name}={raw!r} must be positive")
            return value

        return cls(
            connect_timeout_s=number("AUTOPILOT_AWS_CONNECT_TIMEOUT_S", default.connect_timeout_s),
            read_timeout_s=number("AUTOPILOT_AWS_READ_TIMEOUT_S", default.read_timeout_s),
            max_attempts=int(number("AUTOPILOT_AWS_MAX_ATTEMPTS", default.max_attempts)),
        )

    def worst_case_s(self) -> float:
        """Longest one AWS call can take: every attempt times out, plus back-off between them.

        botocore's standard mode waits at most ``2 ** (n - 1)`` seconds (capped at 20)
        before retry ``n``.
        """
        backoff = sum(min(2 ** (n - 1), 20) for n in range(1, self.max_attempts))
        return self.max_attempts * (self.connect_timeout_s + self.read_timeout_s) + backoff


@cache
def limits() -> ClientLimits:
    """The container's client limits (read from the environment once)."""
    return ClientLimits.from_env()


def client_config() -> Any:
    """The ``botocore.config.Config`` every client of the container is created with."""
    from botocore.config import Config

    current = limits()
    return Config(
        connect_timeout=current.connect_timeout_s,
        read_timeout=current.read_timeout_s,
        # total_max_attempts counts the first try (botocore's max_attempts counts retries).
        retries={"mode": "standard", "total_max_attempts": current.max_attempts},
    )


@cache
def session() -> Any:
    """The container's one ``botocore.session.Session`` (created on first use)."""
    import botocore.session  # imported here: keeps botocore's data off the import path

    with _lock:
        return botocore.session.get_session()


@cache
def _boto3_session() -> Any:
    import boto3  # imported here: boto3 costs most of a cold start

    # boto3 wraps the shared botocore session instead of building its own.
    return boto3.session.Session(botocore_session=session())


def region_or_default(region: str | None) -> str:
    """``region``, or the container's region (``AWS_REGION``) when none is given."""
    return region or session().get_config_variable("region") or "us-east-1"


def client(service: str, region: str | None = None) -> Any:
    """The container's cached client for ``service`` in ``region`` (thread-safe creation).

    boto3 clients (so S3 keeps ``upload_fileobj``), all on the shared session,
    all with :func:`client_config`. PynamoDB's connection gets its DynamoDB
    client here too, so one DynamoDB client serves the models and the rate limiter.
    """
    return _client(service, region_or_default(region))


@cache
def _client(service: str, region: str) -> Any:
    with _lock:  # botocore client creation is not thread-safe
        return _boto3_session().client(service, region_name=region, config=client_config())


def reset_clients() -> None:
    """Forget the session, clients and limits (a new mock, region or environment in tests)."""
    _client.cache_clear()
    _boto3_session.cache_clear()
    session.cache_clear()
    limits.cache_clear()


# -- transient errors ---------------------------------------------------------------

#: Error codes of a request AWS refused for now (throttled, busy or failing inside)
#: but may accept on a later try: botocore's own throttling list plus the 5xx codes.
TRANSIENT_ERROR_CODES = frozenset(
    {
        # throttling (botocore.retries.standard.ThrottlingErrorDetector)
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "EC2ThrottledException",
        # the service failed or was busy (5xx), or a request timed out on its side
        "InternalServerError",
        "InternalFailure",
        "InternalError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        # a single-item write that collided with a transaction on the same item
        "TransactionConflictException",
    }
)
#: Why a DynamoDB transaction may be cancelled for now (``CancellationReasons``).
TRANSIENT_CANCELLATION_CODES = frozenset(
    {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}
)
_TRANSIENT_STATUS = frozenset({500, 502, 503, 504})
_MAX_CHAIN = 8


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is an AWS failure that a later try may not meet (pure).

    True for throttling and service errors whose SDK retries ran out (a botocore
    ``ClientError`` with a code in :data:`TRANSIENT_ERROR_CODES` or an HTTP 5xx), a
    DynamoDB transaction cancelled only for conflicts or throttling, and for the
    network failures botocore raises (``ReadTimeoutError``, ``ConnectTimeoutError``,
    ``EndpointConnectionError``, ``ConnectionClosedError``…) — also when PynamoDB
    wraps one of them (``PutError``, ``UpdateError``, ``GetError``, ``QueryError``,
    ``TransactWriteError``… keep it in ``.cause``) or when it is the explicit
    ``__cause__`` of another exception (``raise … from exc``).

    Everything else is not: a failed condition, a validation error, a missing
    table, a bug. The dispatcher retries an occurrence whose action raised a
    transient error on a later tick instead of recording it failed; a permanent
    one must not be retried (it would fail the same way).
    """
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

    seen: set[int] = set()
    current: BaseException | None = exc
    for _ in range(_MAX_CHAIN):
        if current is None or id(current) in seen:
            return False
        seen.add(id(current))
        if isinstance(current, ConnectionError | HTTPClientError):
            return True
        if isinstance(current, ClientError):
            return _transient_client_error(current)
        wrapped = getattr(current, "cause", None)  # PynamoDB's PynamoDBException.cause
        current = wrapped if isinstance(wrapped, BaseException) else current.__cause__
    return False


def _transient_client_error(exc: Any) -> bool:
    """Whether a service's error answer (a botocore ``ClientError``) is transient."""
    response: Mapping[str, Any] = getattr(exc, "response", None) or {}
    code = str((response.get("Error") or {}).get("Code") or "")
    if code == "TransactionCanceledException":
        # PynamoDB's VerboseClientError keeps the reasons as objects (None: not a
        # reason); botocore's ClientError keeps the raw list ({"Code": "None"}).
        if hasattr(exc, "cancellation_reasons"):
            reasons = [r.code for r in exc.cancellation_reasons if r is not None]
        else:
            raw = response.get("CancellationReasons") or []
            reasons = [str((r or {}).get("Code") or "None") for r in raw]
        real = [r for r in reasons if r != "None"]
        return bool(real) and all(r in TRANSIENT_CANCELLATION_CODES for r in real)
    if code in TRANSIENT_ERROR_CODES:
        return True
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    return isinstance(status, int) and status in _TRANSIENT_STATUS
