"""Deterministic fault injection for local runs (``autopilot simulate --faults``).

Moto answers every request perfectly; AWS does not. While a :class:`FaultInjector`
is active, every AWS request a *function* makes (never the harness's own reads)
and every chat-platform HTTP attempt passes through it, and it decides — from one
random stream seeded by the simulation's seed, so the same seed and spec inject
the same faults in the same places — what goes wrong:

``throttle`` / ``service_error``
    One SDK *attempt* is answered ``ProvisionedThroughputExceededException``
    (``ThrottlingException`` outside DynamoDB) or ``InternalServerError``
    before anything is applied. The SDK retries it as the client is configured
    (botocore's ``retries``: PynamoDB's standard mode with 4 attempts, legacy
    DynamoDB clients 10, others 5), with its backoff slept on the invocation's
    clock; when every attempt failed, the caller gets the error.
``timeout_after_commit``
    DynamoDB applied the attempt, its answer was lost (a read timeout). The SDK
    sends the same request again, as botocore does after a read timeout — a
    conditional write then meets its own earlier success — and when it was the
    last attempt the caller sees ``ReadTimeoutError`` although the write happened.
``crash``
    The function's process dies somewhere in the invocation: before one of its
    first requests, after DynamoDB applied one (between or after the handler's
    writes), or after the handler returned (its answer lost). Raised as
    :class:`SimulatedCrash`, a ``BaseException`` no handler catches; once dead,
    any request the dying invocation still makes (``finally`` blocks) fails the
    same way, and the container is discarded. The harness then retries the way
    the function's trigger would.
``duplicate``
    A dispatcher tick or an SQS batch is delivered twice: after the first
    delivery, or overlapping it (in a second container, started while the
    first is between two requests). Decided by the harness with :meth:`roll`.
``channel_5xx`` / ``channel_429`` / ``channel_hang`` / ``channel_lost``
    One HTTP attempt to a chat platform is answered 503, or 429 with a
    ``Retry-After``, or hangs past the attempt's timeout (the invocation's clock
    moves on by it; nothing reached the platform), or reaches the platform and
    its answer is lost (the platform posted it; the sender cannot know).
``skew``
    A new container's clock is off by up to ±30 s (uniform), for its life.
``freeze``
    The container is paused for 1–5 minutes between two requests (a frozen
    Lambda): its clock jumps on, and the world goes on meanwhile
    (:attr:`FaultInjector.on_freeze`: the harness delivers what would have
    arrived meanwhile, such as the next tick or the member's retry).

Rates are probabilities per opportunity: per SDK attempt (throttle,
service_error, timeout_after_commit), per invocation (crash, freeze), per delivery
(duplicate), per HTTP attempt (channel_*) and per new container (skew). Every
injected fault is counted (:attr:`counts`) and logged (:attr:`log`: kind,
function, where, simulated time).
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import botocore.handlers
from autopilot.clock import Clock, ManualClock, set_clock
from autopilot.timeutil import iso_utc
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.endpoint import convert_to_response_dict
from botocore.exceptions import ReadTimeoutError
from botocore.parsers import create_parser
from moto.core.botocore_stubber import MockRawResponse

from autopilot_cli.local import fast_dynamodb
from autopilot_cli.local.patching import ClassPatches

__all__ = [
    "FAULT_KINDS",
    "FaultInjector",
    "FaultSpec",
    "InvocationClock",
    "SimulatedCrash",
]

#: Every fault kind, with what it stands for in AWS (``--faults`` accepts these).
FAULT_KINDS: dict[str, str] = {
    "throttle": "an SDK attempt throttled (ProvisionedThroughputExceeded / Throttling), "
    "retried by the SDK; the caller sees it when every attempt was",
    "service_error": "an SDK attempt answered 500 InternalServerError, retried likewise",
    "timeout_after_commit": "DynamoDB applied the attempt and its answer was lost; the SDK "
    "re-sends it, or the caller sees a read timeout on the last attempt",
    "crash": "an invocation's process dies before a request, after one was applied, or "
    "after the handler returned; the trigger retries",
    "duplicate": "a tick or SQS batch delivered twice, after or overlapping the first",
    "channel_5xx": "a chat platform answers one HTTP attempt 503",
    "channel_429": "a chat platform answers one HTTP attempt 429 with Retry-After",
    "channel_hang": "a chat platform hangs past the attempt's timeout (nothing posted)",
    "channel_lost": "a chat platform posts the message and the answer is lost",
    "skew": "a new container's clock is off by up to ±30 s",
    "freeze": "an invocation's container is paused for 1-5 minutes between two requests",
}

#: ``--faults standard``: every kind at a rate that shows each several times a week.
PRESETS: dict[str, str] = {
    "standard": (
        "throttle=0.05,service_error=0.01,timeout_after_commit=0.02,crash=0.02,"
        "duplicate=0.1,channel_5xx=0.05,channel_429=0.03,channel_hang=0.02,"
        "channel_lost=0.02,skew=0.5,freeze=0.01"
    ),
}

MAX_SKEW_S = 30.0
CRASH_POINTS = 8  # a crash strikes at one of an invocation's first requests
FREEZE_MINUTES = (1, 5)
# botocore's defaults when a client sets no ``retries``: legacy mode.
_LEGACY_ATTEMPTS = {"dynamodb": 10}
_DEFAULT_LEGACY_ATTEMPTS = 5
_THROTTLE_CODES = {"dynamodb": "ProvisionedThroughputExceededException"}
_SERVICE_ERROR_CODES = {"dynamodb": "InternalServerError", "s3": "InternalError"}


class SimulatedCrash(BaseException):
    """The function's process died (an injected fault). Not an ``Exception``:
    no handler's ``except Exception`` can swallow it, as none survives a real one."""

    def __init__(self, where: str):
        super().__init__(f"injected crash {where}")
        self.where = where


@dataclass(frozen=True)
class FaultSpec:
    """The rate of each fault kind (``throttle=0.05,crash=0.01``; kinds not named: 0)."""

    rates: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> FaultSpec:
        """Parse ``kind=rate,…`` or a preset name (``standard``); errors say what and where."""
        text = (text or "").strip()
        if text in PRESETS:
            text = PRESETS[text]
        if not text:
            raise ValueError(
                "empty fault spec: give kind=rate pairs such as throttle=0.05,crash=0.01"
            )
        rates: dict[str, float] = {}
        for position, part in enumerate(text.split(","), start=1):
            kind, sep, value = part.strip().partition("=")
            kind = kind.strip()
            where = f"fault spec item {position} ({part.strip()!r})"
            if not sep:
                raise ValueError(f"{where}: expected kind=rate")
            if kind not in FAULT_KINDS:
                known = ", ".join(sorted(FAULT_KINDS))
                raise ValueError(f"{where}: unknown fault kind {kind!r}; known kinds: {known}")
            if kind in rates:
                raise ValueError(f"{where}: {kind} is given twice")
            try:
                rate = float(value.strip())
            except ValueError:
                raise ValueError(f"{where}: rate {value.strip()!r} is not a number") from None
            if not 0.0 <= rate <= 1.0:  # also rejects nan
                raise ValueError(f"{where}: rate {value.strip()} must be between 0 and 1")
            rates[kind] = rate
        return cls(rates)

    def rate(self, kind: str) -> float:
        return float(self.rates.get(kind, 0.0))

    def text(self) -> str:
        """The canonical ``kind=rate,…`` form (kinds in documented order)."""
        return ",".join(f"{k}={self.rates[k]:g}" for k in FAULT_KINDS if k in self.rates)

    def __bool__(self) -> bool:
        return any(rate > 0 for rate in self.rates.values())


class InvocationClock:
    """One invocation's view of time: the world's clock when it started, plus its
    container's skew, moved on by its own waits (backoff, rate limits, hangs) and
    freezes. Never goes back; the world's clock is not moved by it."""

    def __init__(self, start: datetime):
        self._inner = ManualClock(start)

    def now(self) -> datetime:
        return self._inner.now()

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)

    def monotonic(self) -> float:
        return self._inner.monotonic()


@dataclass
class _Container:
    skew_s: float = 0.0


@dataclass
class _Invocation:
    function_id: str
    slot: str
    clock: InvocationClock
    freeze_at: int | None = None  # the request before which the container freezes
    crash_at: int | None = None  # the request at which the process dies
    crash_after: bool = False  # … after it was applied (else before it was sent)
    requests: int = 0
    dead: str | None = None  # where it crashed
    # Another delivery that arrives while this one runs: (before request n, deliver it).
    interrupt: tuple[int, Callable[[], Any]] | None = None


_ACTIVE: list[FaultInjector] = []  # at most one: the simulation's
_lock = threading.RLock()


class FaultInjector:
    """Injects :class:`FaultSpec`'s faults into function invocations (see module doc).

    Use as a context manager around the simulation; install
    :meth:`around_invoke` as the runtime's ``around_invoke``.
    """

    def __init__(self, spec: FaultSpec, seed: int, world: Clock):
        self.spec = spec
        self.seed = seed
        self.world = world
        self.rng = random.Random(f"{seed}/faults/{spec.text()}")
        self.counts: Counter[str] = Counter()
        self.absorbed: Counter[str] = Counter()  # injected, then retried away by the SDK
        self.log: list[dict[str, Any]] = []
        self._containers: dict[tuple[str, str], _Container] = {}
        self._stack: list[_Invocation] = []
        #: Called with (function_id, slot, minutes) while a container is frozen.
        self.on_freeze: Callable[[str, str, int], None] | None = None
        #: Off: invocations get a clean clock and no faults (the harness's own reads).
        self.enabled = True
        self._interrupts: dict[str, Callable[[], Any]] = {}

    # ------------------------------------------------------------------ #
    def __enter__(self) -> FaultInjector:
        with _lock:
            if _ACTIVE:
                raise RuntimeError("another FaultInjector is active")
            _ACTIVE.append(self)
            _patches.install()
        return self

    def __exit__(self, *exc: object) -> None:
        with _lock:
            _patches.uninstall()
            _ACTIVE.remove(self)

    def roll(self, kind: str) -> bool:
        """Whether a ``kind`` fault happens at this opportunity (draws from the stream)."""
        rate = self.spec.rate(kind)
        return rate > 0 and self.rng.random() < rate

    def record(self, kind: str, where: str, **detail: Any) -> None:
        """Count and log one injected fault."""
        self.counts[kind] += 1
        current = self.current()
        entry: dict[str, Any] = {
            "kind": kind,
            "at_utc": iso_utc(self.world.now()),
            "function": current.function_id if current else None,
            "where": where,
        }
        entry.update(detail)
        self.log.append(entry)

    def interrupt_next(self, function_id: str, deliver: Callable[[], Any]) -> None:
        """Run ``deliver`` in the middle of the next invocation of ``function_id``
        (between two of its requests, chosen from the stream): an overlapping delivery."""
        self._interrupts[function_id] = deliver

    def _fire_interrupt(self, invocation: _Invocation) -> None:
        if invocation.interrupt is not None:
            _, deliver = invocation.interrupt
            invocation.interrupt = None
            deliver()

    def current(self) -> _Invocation | None:
        return self._stack[-1] if self._stack else None

    def container_died(self, function_id: str, slot: str) -> None:
        """A crashed container is gone: the next one gets a fresh skew."""
        self._containers.pop((function_id, slot), None)

    # ------------------------------------------------------------------ #
    @contextlib.contextmanager
    def around_invoke(self, function_id: str, slot: str) -> Iterator[_Invocation]:
        """The invocation's clock and fault state; a crash after the handler returned."""
        container = self._containers.get((function_id, slot))
        if container is None:
            container = _Container()
            if self.roll("skew"):
                container.skew_s = round(self.rng.uniform(-MAX_SKEW_S, MAX_SKEW_S), 3)
                self.record("skew", "new container", skew_s=container.skew_s, slot=slot)
            self._containers[(function_id, slot)] = container
        start = self.world.now() + timedelta(seconds=container.skew_s)
        invocation = _Invocation(function_id, slot, InvocationClock(start))
        if self.roll("freeze"):
            invocation.freeze_at = self.rng.randint(1, 6)
        if self.roll("crash"):
            # A point among the first requests (a handler that makes fewer dies
            # after it returned): before a request, or after DynamoDB applied it.
            invocation.crash_at = self.rng.randint(1, CRASH_POINTS)
            invocation.crash_after = self.rng.random() < 0.5
        deliver = self._interrupts.pop(function_id, None) if not slot else None
        if deliver is not None:
            invocation.interrupt = (self.rng.randint(1, 6), deliver)
        self._stack.append(invocation)
        previous = set_clock(invocation.clock)
        try:
            yield invocation
            # An overlapping delivery due after this one's last request still arrives.
            self._fire_interrupt(invocation)
            if invocation.dead is None and invocation.crash_at is not None:
                invocation.dead = "after the handler returned"
                self.record("crash", invocation.dead)
                raise SimulatedCrash(invocation.dead)
        finally:
            pending, invocation.interrupt = invocation.interrupt, None
            set_clock(previous)
            self._stack.pop()
            if pending is not None:
                pending[1]()  # the other delivery arrives whatever became of this one

    # ------------------------------------------------------------------ #
    def _enter_request(self, invocation: _Invocation, where: str) -> None:
        """Per request: a dead process sends nothing; maybe a freeze; maybe a crash."""
        if invocation.dead is not None:
            raise SimulatedCrash(f"{invocation.dead} (the process is gone)")
        invocation.requests += 1
        if invocation.interrupt is not None and invocation.requests >= invocation.interrupt[0]:
            self._fire_interrupt(invocation)
        if invocation.freeze_at is not None and invocation.requests >= invocation.freeze_at:
            invocation.freeze_at = None
            minutes = self.rng.randint(*FREEZE_MINUTES)
            self.record("freeze", f"before {where}", minutes=minutes)
            invocation.clock.sleep(minutes * 60)
            if self.on_freeze is not None:
                self.on_freeze(invocation.function_id, invocation.slot, minutes)
        if invocation.crash_at == invocation.requests and not invocation.crash_after:
            invocation.dead = f"before {where}"
            self.record("crash", invocation.dead)
            raise SimulatedCrash(invocation.dead)

    def _after_applied(self, invocation: _Invocation, where: str) -> None:
        if invocation.crash_at == invocation.requests and invocation.crash_after:
            invocation.dead = f"after {where} was applied"
            self.record("crash", invocation.dead)
            raise SimulatedCrash(invocation.dead)

    def _backoff(self, invocation: _Invocation, attempt: int) -> None:
        # botocore's standard mode: random up to 2^attempt seconds, at most 20 s.
        invocation.clock.sleep(self.rng.random() * min(20.0, 2.0**attempt))

    def before_call(
        self, service: str, model: Any, params: Any, request_signer: Any, context: Any
    ) -> tuple[AWSResponse, dict[str, Any]] | None:
        """Faults of one SDK call (all its attempts); ``None`` lets it through untouched."""
        invocation = self.current()
        if invocation is None or model is None:
            return None
        where = f"{service}.{model.name}"
        self._enter_request(invocation, where)
        attempts = _max_attempts(service, context)
        applies_here = service == "dynamodb" and model.name in fast_dynamodb.FAST_OPERATIONS
        for attempt in range(1, attempts + 1):
            last = attempt == attempts
            error = None
            if self.roll("throttle"):
                error = ("throttle", 400, _THROTTLE_CODES.get(service, "ThrottlingException"))
            elif self.roll("service_error"):
                error = ("service_error", 500, _SERVICE_ERROR_CODES.get(service, "InternalFailure"))
            if error is not None:
                kind, status, code = error
                if not last:
                    self.absorbed[kind] += 1
                    self._backoff(invocation, attempt)
                    continue
                self.record(kind, where, attempts=attempts)
                return _error_response(model, params, status, code, f"injected {kind}")
            if not applies_here:
                return None  # the stock path applies it; crash after it in after_call
            answer = fast_dynamodb._on_before_call(
                model=model, params=params, request_signer=request_signer
            )
            if answer is None:  # the fast path declined (never under the simulation)
                return None
            if self.roll("timeout_after_commit"):
                if not last:
                    # Applied; the SDK saw a read timeout and sends the same request again.
                    self.record("timeout_after_commit", where, resent=True, attempt=attempt)
                    self._backoff(invocation, attempt)
                    continue
                self.record("timeout_after_commit", where, resent=False, attempt=attempt)
                raise ReadTimeoutError(endpoint_url=str(params.get("url", "")))
            self._after_applied(invocation, where)
            return answer
        return None  # unreachable: the last attempt returns or raises

    def after_call(self, service: str, model: Any) -> None:
        """A crash right after a request the stock path applied (not DynamoDB's fast path)."""
        invocation = self.current()
        if invocation is None or model is None:
            return
        if service == "dynamodb" and model.name in fast_dynamodb.FAST_OPERATIONS:
            return  # decided in before_call
        self._after_applied(invocation, f"{service}.{model.name}")

    # ------------------------------------------------------------------ #
    def http_attempt(self, send: Callable[[], Any], timeout: float) -> Any:
        """One chat-platform HTTP attempt (``send`` performs it): maybe faulted."""
        from autopilot.channels import http as channel_http

        invocation = self.current()
        if invocation is None:
            return send()
        if invocation.dead is not None:
            raise SimulatedCrash(f"{invocation.dead} (the process is gone)")
        if self.roll("channel_5xx"):
            self.record("channel_5xx", "chat platform")
            body = json.dumps({"errcode": -1, "errmsg": "system busy (injected)"}).encode()
            return channel_http.HttpResponse(503, {"Content-Type": "application/json"}, body)
        if self.roll("channel_429"):
            retry_after = self.rng.choice((1, 2, 5))
            self.record("channel_429", "chat platform", retry_after_s=retry_after)
            return channel_http.HttpResponse(429, {"Retry-After": str(retry_after)}, b"")
        if self.roll("channel_hang"):
            self.record("channel_hang", "chat platform", timeout_s=timeout)
            invocation.clock.sleep(timeout)
            raise channel_http._NoAnswer(f"timed out after {timeout:g}s (injected hang)")
        if self.roll("channel_lost"):
            send()  # the platform got it and posted it
            self.record("channel_lost", "chat platform")
            raise channel_http._NoAnswer("connection reset after the request was sent (injected)")
        return send()


def _max_attempts(service: str, context: Any) -> int:
    """Attempts the calling client makes (its ``retries`` config, else botocore's legacy)."""
    config = (context or {}).get("client_config")
    retries = getattr(config, "retries", None) or {}
    if "total_max_attempts" in retries:
        return max(1, int(retries["total_max_attempts"]))
    if "max_attempts" in retries:
        return max(1, int(retries["max_attempts"]) + 1)
    return _LEGACY_ATTEMPTS.get(service, _DEFAULT_LEGACY_ATTEMPTS)


def _error_response(
    model: Any, params: Any, status: int, code: str, message: str
) -> tuple[AWSResponse, dict[str, Any]]:
    """An AWS error answer parsed as botocore parses one (the caller gets its exception)."""
    protocol = model.service_model.resolved_protocol
    headers = {"x-amzn-RequestId": "injected-fault"}
    if protocol == "json":
        prefix = model.service_model.metadata.get("targetPrefix", "")
        body = json.dumps({"__type": f"{prefix}#{code}", "message": message}).encode()
        headers["Content-Type"] = "application/x-amz-json-1.0"
    elif protocol in ("query", "rest-xml", "ec2"):
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
            f"<Message>{message}</Message></Error><RequestId>injected</RequestId></ErrorResponse>"
        ).encode()
        headers["Content-Type"] = "text/xml"
    else:  # rest-json
        body = json.dumps({"message": message}).encode()
        headers["x-amzn-ErrorType"] = code
        headers["Content-Type"] = "application/json"
    http = AWSResponse(
        str(params.get("url", "")), status, HTTPHeaders.from_dict(headers), MockRawResponse(body)
    )
    response_dict = convert_to_response_dict(http, model)
    parsed = create_parser(protocol).parse(response_dict, model.output_shape)
    parsed.setdefault("Error", {}).setdefault("Code", code)
    return http, parsed


def _active() -> FaultInjector | None:
    return _ACTIVE[0] if _ACTIVE and _patches.is_installed() else None


def _service_of(event_name: str) -> str:
    parts = event_name.split(".")
    return parts[1] if len(parts) > 1 else ""


def _on_before_call(
    event_name: str = "",
    model: Any = None,
    params: Any = None,
    request_signer: Any = None,
    context: Any = None,
    **kwargs: Any,
) -> tuple[AWSResponse, dict[str, Any]] | None:
    injector = _active()
    if injector is None:
        return None
    return injector.before_call(_service_of(event_name), model, params, request_signer, context)


def _on_after_call(event_name: str = "", model: Any = None, **kwargs: Any) -> None:
    injector = _active()
    if injector is not None:
        injector.after_call(_service_of(event_name), model)


def _register_builtin() -> None:
    """Every botocore session created from now on carries the hooks (inert until active).

    DynamoDB's runs before the fast path's (same event, registered first), so a
    faulted request never reaches moto; other services' before-call and every
    after-call are registered generically.
    """
    handlers = botocore.handlers.BUILTIN_HANDLERS
    fast = ("before-call.dynamodb", fast_dynamodb._on_before_call)
    dynamodb_spec = ("before-call.dynamodb", _on_before_call)
    if dynamodb_spec not in handlers:
        index = handlers.index(fast) if fast in handlers else len(handlers)
        handlers.insert(index, dynamodb_spec)
    for spec in (("before-call", _generic_before_call), ("after-call", _on_after_call)):
        if spec not in handlers:
            handlers.append(spec)


def _generic_before_call(event_name: str = "", **kwargs: Any) -> Any:
    if _service_of(event_name) == "dynamodb":
        return None  # handled by the DynamoDB-specific hook
    return _on_before_call(event_name=event_name, **kwargs)


def _http_once(self: Any, request: Any, timeout: float, *, at_deadline: bool) -> Any:
    injector = _active()
    original = _ORIGINAL_ONCE
    if injector is None:
        return original(self, request, timeout, at_deadline=at_deadline)
    return injector.http_attempt(
        lambda: original(self, request, timeout, at_deadline=at_deadline), timeout
    )


def _channel_patches() -> ClassPatches:
    from autopilot.channels.http import HttpClient

    global _ORIGINAL_ONCE
    _ORIGINAL_ONCE = HttpClient._once
    return ClassPatches("faults", (HttpClient, "_once", _http_once))


_ORIGINAL_ONCE: Any = None
_patches = _channel_patches()
_register_builtin()
