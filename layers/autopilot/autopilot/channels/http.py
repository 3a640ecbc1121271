"""HTTP for chat platforms: one POST, retried only when that cannot post twice.

Standard library only (``http.client``): the layer stays lean and cold starts
stay short. Every attempt has a timeout; every retry sleep is bounded by the
invocation's :class:`~autopilot.channels.base.Deadline`.

Retry policy (see docs/channels.md):

* **429** and **5xx** — and platform answers that mean the same (WeCom errcode
  45009, DingTalk 130101, Feishu 9499/11232, Telegram ``retry_after``) — are
  retried with exponential backoff and jitter, honouring ``Retry-After`` (capped
  by ``RetryPolicy.max_retry_after_s``), at most ``max_attempts`` attempts and
  never past the deadline; then the send fails with the platform's last answer.
* A connection that could not be **opened** (refused, DNS, connect timeout) is
  retried the same way: nothing reached the platform.
* **Other 4xx** and platform error codes are permanent: reported, not retried.
* A request that was sent but got **no answer** (read timeout, connection dropped
  mid-answer) is *not* retried: the platform may already have posted it, and a
  duplicate post is worse than a recorded failure. It is reported as failed.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import math
import random
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from autopilot.channels.base import UNLIMITED, Deadline
from autopilot.secrets import redact

# Platform answers are small JSON documents; never buffer an unbounded body.
MAX_RESPONSE_BYTES = 64 * 1024


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds of one send's retries. Tests shrink the delays; production keeps these."""

    max_attempts: int = 4
    timeout_s: float = 10.0  # connect and read timeout of one attempt
    base_delay_s: float = 0.5  # first backoff; doubles per attempt
    max_delay_s: float = 8.0  # cap of one computed backoff
    max_retry_after_s: float = 30.0  # a longer Retry-After fails the send instead of waiting
    min_attempt_s: float = 1.0  # do not start an attempt with less time than this left


@dataclass(frozen=True)
class HttpRequest:
    """One request, built afresh per attempt (signatures carry a timestamp)."""

    method: str
    url: str
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, url: str, payload: Any, headers: Mapping[str, str] | None = None) -> HttpRequest:
        """A POST of ``payload`` as UTF-8 JSON."""
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        merged = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
        return cls("POST", url, body, merged)


@dataclass(frozen=True)
class HttpResponse:
    """A platform's answer."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON, or ``None`` if it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None


@dataclass(frozen=True)
class Verdict:
    """A platform's reading of an answer: success, retry, or permanent failure."""

    ok: bool
    retry: bool = False
    message_id: str | None = None
    summary: str = ""  # the platform's answer in a few words (stored with the delivery)
    retry_after_s: float | None = None

    @classmethod
    def success(cls, message_id: str | None, summary: str) -> Verdict:
        return cls(True, message_id=message_id, summary=summary)

    @classmethod
    def failure(cls, summary: str, *, retry: bool = False, retry_after_s: float | None = None):
        return cls(False, retry=retry, summary=summary, retry_after_s=retry_after_s)


Interpret = Callable[[HttpResponse], Verdict]


@dataclass(frozen=True)
class SendResult:
    """What one :meth:`HttpClient.send` did, for the delivery record."""

    ok: bool
    attempts: int
    message_id: str | None = None
    response: str = ""  # the last answer (redacted)
    error: str | None = None  # why it failed (redacted)
    history: tuple[str, ...] = ()  # one line per attempt (redacted), e.g. "429 retry in 2.0s"


def http_verdict(response: HttpResponse) -> Verdict | None:
    """The generic reading of an HTTP status: ``None`` for 2xx (the platform decides)."""
    if 200 <= response.status < 300:
        return None
    summary = f"HTTP {response.status}: {response.text()[:300]}"
    if response.status == 429 or response.status >= 500:
        retry_after = parse_retry_after(response.header("Retry-After"))
        if retry_after is None:
            retry_after = body_retry_after(response.json())
        return Verdict.failure(summary, retry=True, retry_after_s=retry_after)
    return Verdict.failure(summary)


def body_retry_after(body: Any) -> float | None:
    """``retry_after`` seconds from a JSON answer (Discord top level, Telegram ``parameters``)."""
    if not isinstance(body, dict):
        return None
    for holder in (body, body.get("parameters")):
        if isinstance(holder, dict) and isinstance(holder.get("retry_after"), int | float):
            return max(0.0, float(holder["retry_after"]))
    return None


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds) or seconds < 0:
        return 0.0
    return seconds


class _NoAnswer(Exception):
    """The request went out but no complete answer came back (may have been delivered)."""


class _NotConnected(Exception):
    """No connection could be opened: the request never left."""


class HttpClient:
    """POSTs with the retry policy above. ``sleep``/``monotonic``/``rand`` are injectable."""

    def __init__(
        self,
        policy: RetryPolicy | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
        ssl_context: ssl.SSLContext | None = None,
    ):
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._monotonic = monotonic
        self._rand = rand
        self._ssl_context = ssl_context

    def backoff_s(self, attempt: int) -> float:
        """Delay before attempt ``attempt + 1``: exponential, capped, "equal jitter"."""
        ceiling = min(self.policy.max_delay_s, self.policy.base_delay_s * 2 ** (attempt - 1))
        return ceiling / 2 + self._rand() * ceiling / 2

    def send(
        self,
        make_request: Callable[[], HttpRequest],
        interpret: Interpret,
        *,
        deadline: Deadline = UNLIMITED,
    ) -> SendResult:
        """Send until the platform accepts, refuses for good, or attempts/time run out."""
        policy = self.policy
        started = self._monotonic()
        budget_s = deadline.remaining_s()

        def left() -> float:
            return budget_s - (self._monotonic() - started)

        history: list[str] = []
        last_answer = ""
        last_error = "not sent"
        attempt = 0
        while attempt < policy.max_attempts:
            if left() < policy.min_attempt_s:
                last_error = (
                    f"out of time after {attempt} attempt(s) (invocation ending): {last_error}"
                )
                break
            attempt += 1
            timeout = min(policy.timeout_s, left())
            retry_after: float | None = None
            try:
                response = self._once(make_request(), timeout)
            except _NotConnected as exc:
                last_error = f"could not connect: {exc}"
                history.append(f"attempt {attempt}: {last_error}")
                verdict = Verdict.failure(last_error, retry=True)
            except _NoAnswer as exc:
                last_error = (
                    f"no answer ({exc}); not retried: the platform may have posted it already"
                )
                history.append(f"attempt {attempt}: {last_error}")
                return self._result(False, attempt, None, last_answer, last_error, history)
            else:
                verdict = http_verdict(response) or interpret(response)
                last_answer = f"HTTP {response.status} {response.text()[:500]}"
                history.append(f"attempt {attempt}: {verdict.summary or response.status}")
                if verdict.ok:
                    return self._result(
                        True,
                        attempt,
                        verdict.message_id,
                        verdict.summary or last_answer,
                        None,
                        history,
                    )
                last_error = verdict.summary or last_answer
                retry_after = verdict.retry_after_s
            if not verdict.retry:
                return self._result(False, attempt, None, last_answer, last_error, history)
            if attempt >= policy.max_attempts:
                last_error = f"gave up after {attempt} attempts: {last_error}"
                break
            if retry_after is not None and retry_after > policy.max_retry_after_s:
                last_error = (
                    f"platform asked to retry after {retry_after:g}s (more than "
                    f"{policy.max_retry_after_s:g}s): {last_error}"
                )
                break
            delay = max(retry_after or 0.0, self.backoff_s(attempt))
            if delay + policy.min_attempt_s > left():
                last_error = (
                    f"out of time after {attempt} attempt(s) (next retry in {delay:.1f}s, "
                    f"invocation ending): {last_error}"
                )
                break
            history[-1] += f"; retry in {delay:.2f}s"
            self._sleep(delay)
        return self._result(False, attempt, None, last_answer, last_error, history)

    @staticmethod
    def _result(
        ok: bool,
        attempts: int,
        message_id: str | None,
        response: str,
        error: str | None,
        history: list[str],
    ) -> SendResult:
        return SendResult(
            ok,
            attempts,
            message_id,
            redact(response),
            redact(error) if error else None,
            tuple(redact(line) for line in history),
        )

    def _once(self, request: HttpRequest, timeout: float) -> HttpResponse:
        parts = urlsplit(request.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _NotConnected(f"not an http(s) URL: {parts.scheme or '?'}://…")
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        connection: http.client.HTTPConnection
        if parts.scheme == "https":
            connection = http.client.HTTPSConnection(
                parts.hostname,
                parts.port,
                timeout=timeout,
                context=self._ssl_context or ssl.create_default_context(),
            )
        else:
            connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        try:
            try:
                connection.connect()
            except OSError as exc:  # refused, unreachable, DNS, TLS handshake, connect timeout
                raise _NotConnected(type(exc).__name__ + ": " + str(exc)) from None
            try:
                headers = {"User-Agent": "community-autopilot", **request.headers}
                connection.request(request.method, target, body=request.body, headers=headers)
                answer = connection.getresponse()
                body = answer.read(MAX_RESPONSE_BYTES)
            except TimeoutError:
                raise _NoAnswer(f"read timed out after {timeout:.1f}s") from None
            except (OSError, http.client.HTTPException) as exc:
                raise _NoAnswer(f"{type(exc).__name__}: {exc}") from None
            return HttpResponse(answer.status, dict(answer.getheaders()), body)
        finally:
            connection.close()
