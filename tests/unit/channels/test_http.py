"""The retry policy against a real server on 127.0.0.1: what is retried, what is not."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

from autopilot.channels.base import Deadline
from autopilot.channels.http import HttpClient, HttpRequest, RetryPolicy, Verdict, parse_retry_after
from autopilot.secrets import register_secret

from .conftest import FAST
from .platforms import FakePlatform, Received, Reply


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
