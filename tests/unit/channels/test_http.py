"""The retry policy against a real server on 127.0.0.1: what is retried, what is not."""

from __future__ import annotations

import math
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from functools import partial

from autopilot.channels.base import Deadline
from autopilot.channels.http import (
    HttpClient,
    HttpRequest,
    RetryPolicy,
    Verdict,
    body_retry_after,
    parse_retry_after,
)
from autopilot.channels.webhooks import errcode_verdict
from autopilot.secrets import register_secret

from .conftest import FAST
from .platforms import FakePlatform, Received, Reply
from .trickle import TricklingServer


def ok(_: Received) -> Reply:
    return Reply(200, {"errcode": 0})


def accept(response) -> Verdict:
    body = response.json() or {}
    if body.get("errcode") == 0:
        return Verdict.success("m1", "ok")
    return Verdict.failure(f"errcode {body.get('errcode')}", retry=body.get("errcode") == 45009)


def send(fake: FakePlatform, sleeps, policy: RetryPolicy = FAST, deadline: Deadline | None = None):
    client = HttpClient(policy, sleep=sleeps, rand=lambda: 1.0)
    return client.send(
        lambda: HttpRequest.json(fake.base + "/hook?key=s3cr3t-key-value", {"text": "hi"}),
        accept,
        deadline=deadline or Deadline(),
    )


def test_5xx_is_retried_with_exponential_backoff_then_succeeds(sleeps):
    fake = FakePlatform(ok)
    try:
        fake.queue(Reply(500, "boom"), Reply(503, "busy"))
        result = send(fake, sleeps)
        assert result.ok and result.attempts == 3 and len(fake.received) == 3
        assert sleeps == [0.01, 0.02]  # base, doubled (jitter pinned to its ceiling)
    finally:
        fake.close()


def test_429_honours_retry_after_and_gives_up_with_the_platform_answer(sleeps):
    fake = FakePlatform(ok)
    try:
        fake.queue(*[Reply(429, "slow down", {"Retry-After": "2"})] * 4)
        result = send(fake, sleeps)
        assert not result.ok and result.attempts == 4 and len(fake.received) == 4
        assert sleeps == [2.0, 2.0, 2.0]
        assert "gave up after 4 attempts" in result.error and "HTTP 429" in result.error
    finally:
        fake.close()


def test_a_retry_after_beyond_the_cap_fails_at_once(sleeps):
    fake = FakePlatform(ok)
    try:
        fake.queue(Reply(429, "", {"Retry-After": "600"}))
        result = send(fake, sleeps)
        assert not result.ok and result.attempts == 1 and sleeps == []
        assert "retry after 600s" in result.error
    finally:
        fake.close()


def test_other_4xx_and_platform_errors_are_permanent(sleeps):
    fake = FakePlatform(ok)
    try:
        fake.queue(Reply(400, "invalid_payload"))
        result = send(fake, sleeps)
        assert (result.ok, result.attempts, sleeps) == (False, 1, [])
        assert "HTTP 400: invalid_payload" in result.error
        fake.queue(Reply(200, {"errcode": 93000}))
        assert send(fake, sleeps).error == "errcode 93000"
        fake.queue(Reply(200, {"errcode": 45009}))  # rate limited in the body: retried
        result = send(fake, sleeps)
        assert result.ok and result.attempts == 2
    finally:
        fake.close()


def test_a_slow_answer_times_out_and_is_not_retried(sleeps):
    fake = FakePlatform(ok)
    try:
        fake.queue(Reply(200, {"errcode": 0}, delay_s=1.0))
        result = send(fake, sleeps, RetryPolicy(timeout_s=0.2, min_attempt_s=0.05))
        assert not result.ok and result.attempts == 1 and len(fake.received) == 1
        assert "may have posted it" in result.error and sleeps == []
    finally:
        fake.close()


def test_a_dropped_connection_is_not_retried(sleeps):
    fake = FakePlatform(ok)
    try:
        fake.queue(Reply(drop=True))
        result = send(fake, sleeps)
        assert not result.ok and result.attempts == 1 and len(fake.received) == 1
        assert "no answer" in result.error
    finally:
        fake.close()


def test_a_refused_connection_is_retried_nothing_was_sent(sleeps):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = HttpClient(FAST, sleep=sleeps, rand=lambda: 1.0)
    result = client.send(
        lambda: HttpRequest.json(f"http://127.0.0.1:{port}/hook", {}), accept, deadline=Deadline()
    )
    assert not result.ok and result.attempts == 4 and len(sleeps) == 3
    assert "could not connect" in result.error


def test_retries_stop_at_the_deadline(sleeps):
    fake = FakePlatform(ok)
    try:
        fake.queue(*[Reply(503, "", {"Retry-After": "1"})] * 4)
        clock = FakeTime()
        client = HttpClient(FAST, sleep=clock.sleep, monotonic=clock.monotonic)
        # 2.5 s left in the invocation, 1 s of it reserved for recording the outcome:
        # one retry after 1 s fits, a second one would not.
        result = client.send(
            lambda: HttpRequest.json(fake.base + "/hook", {}),
            accept,
            deadline=Deadline(lambda: 2_500, reserve_ms=1_000),
        )
        assert not result.ok and len(fake.received) == 2 and clock.slept == [1.0]
        assert "out of time after 2 attempt(s)" in result.error
    finally:
        fake.close()


def test_a_trickling_answer_is_cut_off_at_the_invocation_deadline():
    """A platform answering a byte every 0.2 s cannot keep a send past the deadline."""
    server = TricklingServer(pace_s=0.2)
    try:
        client = HttpClient(RetryPolicy(timeout_s=10.0, min_attempt_s=0.05))
        started = time.monotonic()  # an upper bound of real time, not a benchmark
        result = client.send(
            lambda: HttpRequest.json(server.url, {"text": "hi"}),
            accept,
            deadline=Deadline(lambda: 1_000, reserve_ms=0),  # 1 s left in the invocation
        )
        elapsed = time.monotonic() - started
        assert elapsed < 1.0 + 1.5, f"the send ran {elapsed:.1f}s past a 1 s deadline"
        assert not result.ok and result.attempts == 1 and server.requests == 1
        assert "deadline reached" in result.error
        assert "outcome unknown" in result.error and "may have posted it" in result.error
    finally:
        server.close()


def test_a_trickling_answer_is_cut_off_at_the_attempt_timeout_without_a_deadline():
    """Outside Lambda (no deadline) the attempt's own timeout is a total bound too."""
    server = TricklingServer(pace_s=0.2)
    try:
        client = HttpClient(RetryPolicy(timeout_s=0.8, min_attempt_s=0.05))
        started = time.monotonic()
        result = client.send(
            lambda: HttpRequest.json(server.url, {"text": "hi"}), accept, deadline=Deadline()
        )
        elapsed = time.monotonic() - started
        assert elapsed < 0.8 + 1.5, f"the attempt ran {elapsed:.1f}s, its limit is 0.8 s"
        assert not result.ok and result.attempts == 1 and server.requests == 1
        assert "timed out after 0.8s" in result.error and "outcome unknown" in result.error
    finally:
        server.close()


class FakeTime:
    """A monotonic clock that only moves when slept on."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_errors_never_carry_a_known_secret_or_a_url_path(sleeps):
    register_secret("s3cr3t-key-value")  # what SecretStore does with every value it reads
    fake = FakePlatform(ok)
    try:
        fake.queue(Reply(400, "bad request for /hook?key=s3cr3t-key-value"))
        result = send(fake, sleeps)
        assert "s3cr3t-key-value" not in (result.error or "") + result.response
        assert all("s3cr3t" not in line for line in result.history)
    finally:
        fake.close()


def test_retry_after_parses_seconds_and_http_dates():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:05 GMT", now=now) == 5.0
    assert (
        parse_retry_after(
            (now - timedelta(seconds=5)).strftime("%a, %d %b %Y %H:%M:%S GMT"), now=now
        )
        == 0.0
    )
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_retry_after_from_a_hostile_platform_never_raises():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now=now) > 2.5e11  # refused later
    assert parse_retry_after("Fri, 31 Dec 9999 23:59:59 -2359", now=now) > 2.5e11
    assert parse_retry_after("Mon, 01 Jan 0001 00:00:00 +2359", now=now) == 0.0
    assert parse_retry_after("Sat, 01 Jan 10000 00:00:00 GMT", now=now) is None
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:05 +9999", now=now) is None
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after("1e400") == math.inf and parse_retry_after("9" * 400) == math.inf
    assert parse_retry_after("nan") is None and parse_retry_after("soon") is None
    assert body_retry_after({"retry_after": 10**400}) == math.inf  # float() would overflow
    assert body_retry_after({"parameters": {"retry_after": -3}}) == 0.0
    assert body_retry_after({"retry_after": True}) is None
    assert body_retry_after({"retry_after": float("nan")}) is None


def test_hostile_answers_fail_or_retry_the_send_never_raise(sleeps):
    """Huge/negative/non-numeric/far-future Retry-After, deep JSON, infinite numbers."""
    fake = FakePlatform(ok)
    try:
        deep = "[" * 30_000 + "]" * 30_000  # 60 KB: json.loads raises RecursionError
        fake.queue(
            Reply(429, "", {"Retry-After": "Fri, 31 Dec 9999 23:59:59 GMT"}),
            Reply(429, '{"retry_after": 1' + "0" * 400 + "}", {"Content-Type": "x"}),
            Reply(503, "", {"Retry-After": "-5"}),
            Reply(503, "", {"Retry-After": "soon"}),
            Reply(200, deep),
        )
        result = send(fake, sleeps)
        assert not result.ok and result.attempts == 1 and "more than 5s" in result.error
        result = send(fake, sleeps)
        assert not result.ok and result.attempts == 1 and "retry after infs" in result.error
        result = send(fake, sleeps)  # -5: now, "soon": the backoff; then the deep body
        assert not result.ok and result.attempts == 3 and sleeps == [0.01, 0.02]
        fake.queue(Reply(200, '{"errcode": Infinity}'))
        client = HttpClient(FAST, sleep=sleeps, rand=lambda: 1.0)
        result = client.send(
            lambda: HttpRequest.json(fake.base + "/hook", {}),
            partial(errcode_verdict, retry_codes=frozenset()),
        )
        assert not result.ok and "unexpected errcode" in result.error
    finally:
        fake.close()


def test_a_tls_handshake_that_never_completes_ends_at_the_deadline():
    """Connect and TLS handshake are bounded by the same deadline as the answer."""
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never speaks TLS
        port = silent.getsockname()[1]
        client = HttpClient(RetryPolicy(timeout_s=10.0, min_attempt_s=0.05))
        started = time.monotonic()  # an upper bound of real time, not a benchmark
        result = client.send(
            lambda: HttpRequest.json(f"https://127.0.0.1:{port}/hook", {}),
            accept,
            deadline=Deadline(lambda: 1_000, reserve_ms=0),
        )
        elapsed = time.monotonic() - started
    assert elapsed < 1.0 + 1.5, f"the handshake ran {elapsed:.1f}s past a 1 s deadline"
    assert not result.ok and "could not connect" in result.error
    assert "out of time" in result.error or "gave up" in result.error


def test_a_connection_close_answer_whose_body_comes_after_its_headers_is_read():
    """A body arriving after the headers of a ``Connection: close`` answer is still read.

    ``http.client`` closes the connection as soon as it has such headers; reading
    the body then failed with EBADF, and a delivered message was recorded as
    "no answer" (now: uncertain).
    """

    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        def answer() -> None:
            conn, _ = server.accept()
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(4096)
                head, _, body = data.partition(b"\r\n\r\n")
                length = int(
                    next(
                        line.split(b":", 1)[1]
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    )
                )
                while len(body) < length:
                    body += conn.recv(4096)
                payload = b'{"errcode": 0}'
                conn.sendall(
                    b"HTTP/1.0 200 OK\r\nConnection: close\r\n"
                    b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n"
                )
                time.sleep(0.2)  # the body in its own segment, after the headers were read
                conn.sendall(payload)

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        client = HttpClient(FAST, sleep=lambda _: None)
        result = client.send(lambda: HttpRequest.json(f"http://127.0.0.1:{port}/hook", {}), accept)
        thread.join(5)
    assert result.ok and result.attempts == 1 and not result.unknown, result
