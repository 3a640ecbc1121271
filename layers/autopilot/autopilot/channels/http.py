"""HTTP for chat platforms: one POST, retried only when that cannot post twice.

Standard library only (``http.client``): the layer stays lean and cold starts
stay short.

**Time comes from the injected clock.** The retry sleeps and the send's own
clock (how much of the deadline is left) are ``autopilot.clock.sleep`` and
``autopilot.clock.monotonic``, looked up at call time: real time in Lambda, the
simulated clock in ``autopilot simulate`` (a backoff there moves the clock
instead of stalling the run, and a container that outlives a clock swap follows
it). Only the socket timeouts stay on the operating system's real clock: they
bound real waits on a real socket.

**Hard time bounds.** A send never outlives the invocation's
:class:`~autopilot.channels.base.Deadline`: the connection, the TLS handshake,
writing the request, *every* read of the answer, the retry sleeps — all of it.
A socket timeout alone bounds one ``recv`` only, so a platform that answers one
byte at a time would keep an attempt alive for ever; here every socket
operation gets the time left until the attempt's end as its timeout (see
:class:`_DeadlineSocket`), and the attempt's end is the earlier of
``RetryPolicy.timeout_s`` after its start and the invocation's deadline. An
answer cut off at the deadline is an *unknown outcome* (the platform may have
accepted the request): reported as such, never retried.

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
  mid-answer, the deadline reached mid-answer) is *not* retried: the platform may
  already have posted it, and a duplicate post is worse than a recorded failure.
  It is reported as failed, outcome unknown (``SendResult.unknown``, recorded as
  an ``uncertain`` delivery) — unless the request carries an idempotency key
  the platform deduplicates on (``idempotent=True``): then it is retried like a
  5xx, and the platform answers the message it already made; if no later
  attempt gets a definite answer, the outcome stays unknown.
* Answers are read defensively: a hostile or broken platform (``Retry-After`` of
  ``1e400``, ``-5``, ``soon`` or a date in year 9999; a JSON body nested 30,000
  levels deep; an ``errcode`` of ``Infinity``) gets a failed or retried delivery,
  never an exception.
"""

from __future__ import annotations

import email.utils
import http.client
import io
import json
import math
import random
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from autopilot.channels.base import UNLIMITED, Deadline
from autopilot.clock import get_clock
from autopilot.clock import monotonic as clock_monotonic
from autopilot.clock import sleep as clock_sleep
from autopilot.secrets import redact

# Platform answers are small JSON documents; never buffer an unbounded body.
MAX_RESPONSE_BYTES = 64 * 1024


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds of one send's retries. Tests shrink the delays; production keeps these."""

    max_attempts: int = 4
    timeout_s: float = 10.0  # total time of one attempt: connect, send, read the whole answer
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
        """The body as JSON, or ``None`` if it is not JSON (or too deeply nested to read)."""
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError):  # RecursionError: `[[[[…` from a hostile server
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
    # Failed without a definite answer: the platform may have posted it (Delivery.unknown).
    unknown: bool = False


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


def seconds_value(value: Any) -> float | None:
    """A platform's "seconds" number as a float ≥ 0, or ``None`` if it is not one.

    Platforms are not trusted: ``true``, strings, NaN and integers too large for a
    float (``10**400`` overflows ``float()``) are ``None``; negatives are 0;
    infinity stays infinite (the caller refuses to wait that long).
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        seconds = float(value)
    except OverflowError:
        return math.inf if value > 0 else 0.0
    if math.isnan(seconds):
        return None
    return max(0.0, seconds)


def body_retry_after(body: Any) -> float | None:
    """``retry_after`` seconds from a JSON answer (Discord top level, Telegram ``parameters``)."""
    if not isinstance(body, dict):
        return None
    for holder in (body, body.get("parameters")):
        if isinstance(holder, dict):
            seconds = seconds_value(holder.get("retry_after"))
            if seconds is not None:
                return seconds
    return None


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date).

    ``None`` when it is neither (the backoff applies); a past date or a negative
    number is 0; a far-future date (year 9999) is a large number the caller
    refuses to wait for. Never raises, whatever the platform sent.
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            # `now` is only for tests; otherwise the installed clock (real time in
            # Lambda, the simulated time in `autopilot simulate`).
            seconds = (when - (now or get_clock().now())).total_seconds()
        except (TypeError, ValueError, OverflowError, IndexError):
            return None
    return seconds_value(seconds)


def _read(interpret: Interpret, response: HttpResponse) -> Verdict:
    """The platform's reading of an answer; an answer it cannot read is a plain failure.

    The platform readers are written defensively, but the answer comes from a
    server we do not control: whatever it sent must end as a recorded delivery,
    not an exception that loses the others' (and it was answered, so it is not
    retried).
    """
    try:
        return interpret(response)
    except Exception as exc:
        return Verdict.failure(f"unreadable answer ({type(exc).__name__}): {response.text()[:200]}")


class _NoAnswer(Exception):
    """The request went out but no complete answer came back (may have been delivered)."""


class _NotConnected(Exception):
    """No connection could be opened: the request never left."""


class _AttemptTimeout(TimeoutError):
    """The attempt's time ran out between two socket operations."""


class _DeadlineSocket:
    """A connected socket whose every operation ends by one monotonic instant.

    ``http.client`` only knows per-operation timeouts; this gives each ``send``
    and ``recv`` the time left until ``expires_at`` instead, and refuses to start
    one when none is left, so the whole exchange — however the server paces its
    bytes — ends by then (plus at most one scheduling slice).
    """

    def __init__(self, sock: socket.socket, expires_at: float, monotonic: Callable[[], float]):
        self._sock = sock
        self._expires_at = expires_at
        self._monotonic = monotonic

    def _arm(self) -> None:
        left = self._expires_at - self._monotonic()
        if left <= 0:
            raise _AttemptTimeout("time is up")
        self._sock.settimeout(left)

    def sendall(self, data: Any) -> None:
        view = memoryview(data).cast("B")
        while view:
            self._arm()
            sent = self._sock.send(view)
            view = view[sent:]

    def recv_into(self, buffer: Any, nbytes: int = 0) -> int:
        self._arm()
        return self._sock.recv_into(buffer, nbytes)

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        if mode != "rb":  # http.client only ever reads the answer through it
            raise ValueError(f"unsupported mode {mode!r}")
        return io.BufferedReader(_DeadlineReader(self))

    def close(self) -> None:
        """Nothing: ``_once`` closes the real socket when the whole answer is read.

        ``http.client`` closes the connection's socket as soon as it has the
        headers of a ``Connection: close`` answer (HTTP/1.0 servers, many proxies),
        counting on the socket to stay open for the response's own reader, as a
        real socket's ``makefile`` does. Closing it here would make every body that
        arrives after its headers an ``EBADF`` — a delivered message read as
        "no answer".
        """


def _connect(
    host: str, port: int, expires_at: float, monotonic: Callable[[], float]
) -> socket.socket:
    """A TCP connection to ``host``, every address tried within one deadline.

    (``socket.create_connection`` gives *each* address the whole timeout.) Name
    resolution itself cannot be bounded by a socket timeout; in Lambda it answers
    from the resolver within milliseconds.
    """
    error: OSError = TimeoutError("connect timed out")
    for family, kind, proto, _, address in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
        left = expires_at - monotonic()
        if left <= 0:
            break
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(left)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error


class _DeadlineReader(io.RawIOBase):
    """The raw stream ``http.client`` reads the answer from: one armed ``recv`` per read."""

    def __init__(self, sock: _DeadlineSocket):
        super().__init__()
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._sock.recv_into(buffer)


class HttpClient:
    """POSTs with the retry policy above. ``sleep``/``monotonic``/``rand`` are injectable.

    By default ``sleep`` and ``monotonic`` are ``autopilot.clock``'s, which ask the
    clock installed *at call time*: a client created before a simulation installs
    its clock (a warm container) still waits on the simulated one. Socket
    timeouts are always real (``time.monotonic``): they bound the operating
    system's waits.
    """

    def __init__(
        self,
        policy: RetryPolicy | None = None,
        *,
        sleep: Callable[[float], None] | None = None,
        monotonic: Callable[[], float] | None = None,
        rand: Callable[[], float] = random.random,
        ssl_context: ssl.SSLContext | None = None,
    ):
        self.policy = policy or RetryPolicy()
        self._sleep = clock_sleep if sleep is None else sleep
        self._monotonic = clock_monotonic if monotonic is None else monotonic
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
        idempotent: bool = False,
        on_answer: Callable[[HttpResponse], None] | None = None,
    ) -> SendResult:
        """Send until the platform accepts, refuses for good, or attempts/time run out.

        ``idempotent``: the request carries a key the platform deduplicates on
        (Discord ``nonce`` with ``enforce_nonce``), so a request whose answer was
        lost may be sent again — the platform answers the message it already
        created instead of posting a second one. Otherwise a lost answer ends the
        send (outcome unknown). ``on_answer`` sees every answer, whatever its
        status (e.g. to forget a token the platform says is no longer valid).
        """
        policy = self.policy
        started = self._monotonic()
        budget_s = deadline.remaining_s()

        def left() -> float:
            return budget_s - (self._monotonic() - started)

        history: list[str] = []
        last_answer = ""
        last_error = "not sent"
        attempt = 0
        # An attempt went out and no answer came back (only idempotent sends go on
        # after one): unless a later answer settles it, the outcome is unknown.
        unanswered = False
        while attempt < policy.max_attempts:
            if left() < policy.min_attempt_s:
                last_error = (
                    f"out of time after {attempt} attempt(s) (invocation ending): {last_error}"
                )
                break
            attempt += 1
            # The attempt's hard end: its own timeout, or the invocation's deadline if sooner.
            at_deadline = left() <= policy.timeout_s
            timeout = min(policy.timeout_s, left())
            retry_after: float | None = None
            try:
                response = self._once(make_request(), timeout, at_deadline=at_deadline)
            except _NotConnected as exc:
                last_error = f"could not connect: {exc}"
                history.append(f"attempt {attempt}: {last_error}")
                verdict = Verdict.failure(last_error, retry=True)
            except _NoAnswer as exc:
                unanswered = True
                if idempotent:
                    last_error = f"no answer ({exc}); outcome unknown"
                    history.append(f"attempt {attempt}: {last_error}, retried with the same key")
                    verdict = Verdict.failure(last_error, retry=True)
                else:
                    last_error = (
                        f"no answer ({exc}); outcome unknown, not retried: "
                        "the platform may have posted it already"
                    )
                    history.append(f"attempt {attempt}: {last_error}")
                    return self._result(
                        False, attempt, None, last_answer, last_error, history, unknown=True
                    )
            else:
                if on_answer is not None:
                    on_answer(response)
                verdict = http_verdict(response) or _read(interpret, response)
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
                    # A definite refusal of the same request: an earlier lost one was refused too.
                    unanswered = False
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
        return self._result(
            False, attempt, None, last_answer, last_error, history, unknown=unanswered
        )

    @staticmethod
    def _result(
        ok: bool,
        attempts: int,
        message_id: str | None,
        response: str,
        error: str | None,
        history: list[str],
        *,
        unknown: bool = False,
    ) -> SendResult:
        return SendResult(
            ok,
            attempts,
            message_id,
            redact(response),
            redact(error) if error else None,
            tuple(redact(line) for line in history),
            unknown=unknown and not ok,
        )

    def _once(self, request: HttpRequest, timeout: float, *, at_deadline: bool) -> HttpResponse:
        """One attempt, over by ``timeout`` seconds from now whatever the server does."""
        parts = urlsplit(request.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _NotConnected(f"not an http(s) URL: {parts.scheme or '?'}://…")
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        # Real time: these bound the operating system's waits on a real socket, also
        # in a simulation (whose clock stands still while a socket waits).
        expires_at = time.monotonic() + timeout
        connection: http.client.HTTPConnection
        if parts.scheme == "https":
            context = self._ssl_context or ssl.create_default_context()
            connection = http.client.HTTPSConnection(parts.hostname, parts.port, context=context)
        else:
            connection = http.client.HTTPConnection(parts.hostname, parts.port)
        raw: socket.socket | None = None
        try:
            try:
                # Connect ourselves (not connection.connect()): the TCP connect and the TLS
                # handshake each get only the time left, and the connection then talks
                # through the deadline-bound socket.
                raw = _connect(parts.hostname, connection.port, expires_at, time.monotonic)
                if parts.scheme == "https":
                    raw.settimeout(max(0.001, expires_at - time.monotonic()))
                    raw = context.wrap_socket(raw, server_hostname=parts.hostname)
            except OSError as exc:  # refused, unreachable, DNS, TLS handshake, connect timeout
                raise _NotConnected(type(exc).__name__ + ": " + str(exc)) from None
            connection.sock = _DeadlineSocket(raw, expires_at, time.monotonic)  # type: ignore[assignment]
            try:
                headers = {"User-Agent": "community-autopilot", **request.headers}
                connection.request(request.method, target, body=request.body, headers=headers)
                answer = connection.getresponse()
                body = answer.read(MAX_RESPONSE_BYTES)
            except TimeoutError:
                if at_deadline:
                    raise _NoAnswer(
                        f"deadline reached: the invocation's time ran out after {timeout:.1f}s "
                        "before the platform's answer was complete"
                    ) from None
                raise _NoAnswer(
                    f"timed out after {timeout:.1f}s without a complete answer"
                ) from None
            except (OSError, http.client.HTTPException) as exc:
                raise _NoAnswer(f"{type(exc).__name__}: {exc}") from None
            return HttpResponse(answer.status, dict(answer.getheaders()), body)
        finally:
            connection.close()
            if raw is not None:
                raw.close()
