"""Chat channels through the real dispatcher on moto: SSM secrets, post log, outcomes.

A fake platform on 127.0.0.1 plays each chat app; the channel's secret is an SSM
SecureString in moto, as in production. Asserts what was retried, what the post
log and the occurrence record say, that nothing was posted twice, and that no
secret reaches a log line.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta

import pytest
from autopilot.aws import client
from autopilot.channels.http import HttpClient, RetryPolicy
from autopilot.channels.ratelimit import Rate, RateLimiter

from ..unit.channels.platforms import (
    DISCORD,
    PLATFORMS,
    SECRET_VALUES,
    FakePlatform,
    Reply,
    texts_of,
)
from ..unit.channels.trickle import TricklingServer
from .conftest import make_config

FIRE_AT = datetime(2026, 11, 26, 23, 30, 5, tzinfo=UTC)  # 07:30:05 Asia/Shanghai
FAST = RetryPolicy(
    max_attempts=3, timeout_s=0.5, base_delay_s=0.01, max_delay_s=0.05, min_attempt_s=0.05
)


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def fakes():
    started: dict[str, FakePlatform] = {}
    yield started
    for fake in started.values():
        fake.close()


def put_secret(stack, channel: str, value: dict[str, str], community: str = "sunrise") -> None:
    prefix = stack.env["CHANNEL_SECRETS_PREFIX"]
    client("ssm", "us-east-1").put_parameter(
        Name=f"{prefix}/{community}/{channel}",
        Value=json.dumps(value),
        Type="SecureString",
        Overwrite=True,
    )


def setup(stack, fakes, types, *, extra_channels=()):
    """A config posting 07:30 to a file channel and one channel per platform type."""
    channels = [{"id": "group", "type": "file", "path": "group.jsonl"}]
    for platform_type in types:
        fake = fakes[platform_type] = FakePlatform(PLATFORMS[platform_type].check)
        channels.append({"id": f"{platform_type}-group", "type": platform_type})
        put_secret(stack, f"{platform_type}-group", PLATFORMS[platform_type].secret(fake.base))
    channels += list(extra_channels)
    jobs = [
        {
            "id": "morning-post",
            "cron": "30 7 * * *",
            "action": "post",
            "params": {
                "pool": "morning",
                "channels": [c["id"] for c in channels],
                "template": "早安！今天是{date}。\n{content}",
                "title": "晨读社 早安",
            },
        }
    ]
    stack.push(make_config(jobs=jobs, channels=channels))


def app_with_fast_retries(stack, sleeps):
    app = stack.app()
    app.channel_env.http_client = HttpClient(FAST, sleep=sleeps, rand=lambda: 1.0)
    return app


def test_a_post_reaches_every_platform_once_and_the_log_says_so(stack, fakes, caplog):
    caplog.set_level(logging.DEBUG, logger="autopilot")
    setup(stack, fakes, sorted(PLATFORMS))
    stack.clock.set(FIRE_AT)
    app = app_with_fast_retries(stack, Sleeps())
    report = app.tick()
    assert [o.status for o in report.occurrences] == ["fired"]
    for platform_type, fake in fakes.items():
        assert len(fake.accepted) == 1, platform_type
        assert "早安 " in texts_of(platform_type, fake.accepted[0])
    (post,) = app.post_store.posts("sunrise")
    assert {c: d["status"] for c, d in post.deliveries.items()} == {
        "group": "published",
        **{f"{t}-group": "published" for t in PLATFORMS},
    }
    assert post.deliveries["telegram-group"]["message_id"].isdigit()
    # The same tick again, and a cold container: nothing is posted twice.
    app.tick()
    stack.app().tick()
    assert all(len(f.received) == 1 for f in fakes.values())
    _assert_no_secret_logged(caplog)


def test_errcode_failure_is_recorded_on_the_post_and_the_occurrence(stack, fakes):
    setup(stack, fakes, ["wecom", "slack"])
    fakes["wecom"].queue(Reply(200, {"errcode": 93000, "errmsg": "invalid webhook url"}))
    stack.clock.set(FIRE_AT)
    sleeps = Sleeps()
    app = app_with_fast_retries(stack, sleeps)
    (occurrence,) = app.tick().occurrences
    assert occurrence.status == "failed"
    assert "wecom-group: errcode 93000: invalid webhook url" in occurrence.reason
    (post,) = app.post_store.posts("sunrise")
    wecom = post.deliveries["wecom-group"]
    assert wecom["status"] == "failed" and wecom["attempts"] == 1 and sleeps == []
    assert post.deliveries["slack-group"]["status"] == "published"  # the others still go
    (record,) = stack.history(app)
    assert record.status == "failed" and "errcode 93000" in record.reason


def test_429_then_success_is_retried_and_published_once(stack, fakes):
    setup(stack, fakes, ["discord"])
    fakes["discord"].queue(
        Reply(
            429,
            {"message": "You are being rate limited.", "retry_after": 0.2, "global": False},
            {"Retry-After": "1"},
        )
    )
    stack.clock.set(FIRE_AT)
    sleeps = Sleeps()
    app = app_with_fast_retries(stack, sleeps)
    (occurrence,) = app.tick().occurrences
    assert occurrence.status == "fired"
    (post,) = app.post_store.posts("sunrise")
    assert post.deliveries["discord-group"]["attempts"] == 2
    assert sleeps == [1.0]  # Retry-After honoured
    assert len(fakes["discord"].received) == 2 and len(fakes["discord"].accepted) == 1


def test_persistent_5xx_fails_after_bounded_attempts_with_the_platform_error(stack, fakes):
    setup(stack, fakes, ["feishu"])
    fakes["feishu"].queue(*[Reply(502, "Bad Gateway")] * 5)
    stack.clock.set(FIRE_AT)
    sleeps = Sleeps()
    app = app_with_fast_retries(stack, sleeps)
    (occurrence,) = app.tick().occurrences
    assert occurrence.status == "failed"
    assert "gave up after 3 attempts: HTTP 502: Bad Gateway" in occurrence.reason
    assert len(fakes["feishu"].received) == 3 and len(sleeps) == 2


def test_slow_answer_and_dropped_connection_are_uncertain_never_resent(stack, fakes):
    setup(stack, fakes, ["telegram", "dingtalk"])
    fakes["telegram"].queue(Reply(200, {"ok": True, "result": {"message_id": 1}}, delay_s=1.0))
    fakes["dingtalk"].queue(Reply(drop=True))
    stack.clock.set(FIRE_AT)
    app = app_with_fast_retries(stack, Sleeps())
    (occurrence,) = app.tick().occurrences
    # Both platforms may have posted it: uncertain (reported to ops), never re-sent.
    assert occurrence.status == "uncertain"
    assert "telegram-group: no answer (timed out" in occurrence.reason
    assert "dingtalk-group: no answer" in occurrence.reason
    assert len(fakes["telegram"].received) == 1 and len(fakes["dingtalk"].received) == 1


class CountdownContext:
    """Like Lambda's context: the remaining time really runs down (monotonic time)."""

    def __init__(self, total_ms: int) -> None:
        self._ends_at = time.monotonic() + total_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return int((self._ends_at - time.monotonic()) * 1000)


def test_retries_are_bounded_by_the_invocation_time(stack, fakes):
    """Real time passes (real sleeps, a real countdown): every send stops in time.

    Two chat channels share the invocation: Slack answers 503 with
    ``Retry-After: 1`` (retried, then given up), then a Discord webhook whose
    server trickles its answer a byte every 0.2 s (about 20 s in all) — only a
    total bound can cut it. The post must return with the 5 s it reserves for
    recording still on the clock.
    """
    slack = fakes["slack"] = FakePlatform(PLATFORMS["slack"].check)
    slack.queue(*[Reply(503, "", {"Retry-After": "1"})] * 3)
    put_secret(stack, "slack-group", PLATFORMS["slack"].secret(slack.base))
    trickling = TricklingServer(pace_s=0.2)
    try:
        put_secret(stack, "discord-group", {"webhook_url": trickling.url})
        channels = [
            {"id": "slack-group", "type": "slack"},
            {"id": "discord-group", "type": "discord"},
        ]
        job = {
            "id": "morning-post",
            "cron": "30 7 * * *",
            "action": "post",
            "params": {
                "pool": "morning",
                "channels": [c["id"] for c in channels],
                "template": "早安！{content}",
            },
        }
        stack.push(make_config(jobs=[job], channels=channels))
        stack.clock.set(FIRE_AT)
        app = stack.app()
        # Production timeouts (10 s an attempt), real sleeps: nothing here is frozen.
        # (HttpClient now sleeps on the installed clock by default; this test's
        # point is real time running down, so it gets the real ones.)
        app.channel_env.http_client = HttpClient(
            RetryPolicy(max_attempts=3, timeout_s=10.0, base_delay_s=0.01, min_attempt_s=0.5),
            sleep=time.sleep,
            monotonic=time.monotonic,
        )
        # Under the dispatcher's 10 s safety margin: not even started.
        report = app.tick(remaining_ms=CountdownContext(9_500).get_remaining_time_in_millis)
        assert report.occurrences == [] and slack.received == []
        context = CountdownContext(12_000)  # 12 s: started; 7 s to send, 5 s kept back
        report = app.tick(remaining_ms=context.get_remaining_time_in_millis)
        left_ms = context.get_remaining_time_in_millis()
        (occurrence,) = report.occurrences
        # Discord's answer was cut off by the deadline: it may have posted (uncertain).
        assert occurrence.status == "uncertain"
        assert "slack-group: gave up after 3 attempts: HTTP 503" in occurrence.reason
        assert "discord-group: no answer (deadline reached" in occurrence.reason
        assert "outcome unknown" in occurrence.reason
        assert left_ms > 3_000, f"the post ran into the time it keeps back: {left_ms} ms left"
        assert len(slack.received) == 3 and trickling.requests == 1
        (post,) = app.post_store.posts("sunrise")
        assert post.deliveries["discord-group"]["status"] == "uncertain"
        assert post.deliveries["slack-group"]["status"] == "failed"
    finally:
        trickling.close()


def test_missing_secret_fails_the_delivery_and_names_the_parameter(stack, fakes):
    setup(stack, fakes, [], extra_channels=[{"id": "tg", "type": "telegram"}])
    stack.clock.set(FIRE_AT)
    (occurrence,) = stack.app().tick().occurrences
    assert occurrence.status == "failed"
    assert "create the SecureString parameter /community-autopilot/channels/sunrise/tg" in (
        occurrence.reason
    )
    assert len(stack.lines()) == 1  # the file channel still got its post


def test_no_log_line_or_record_carries_a_secret_even_on_errors(stack, fakes, caplog):
    caplog.set_level(logging.DEBUG, logger="autopilot")
    setup(stack, fakes, sorted(PLATFORMS))
    # Platforms that echo the request (as some error pages do) and a crash.
    fakes["wecom"].queue(Reply(400, f"bad url /cgi-bin/webhook/send?key={SECRET_VALUES[0]}"))
    fakes["telegram"].queue(Reply(500, fakes["telegram"].base + "/bot" + SECRET_VALUES[-1]))
    fakes["slack"].queue(Reply(drop=True))
    stack.clock.set(FIRE_AT)
    app = app_with_fast_retries(stack, Sleeps())
    report = app.tick()
    stored = json.dumps(
        [p.deliveries for p in app.post_store.posts("sunrise")]
        + [r.reason for r in stack.history(app)]
        + [o.reason for o in report.occurrences],
        ensure_ascii=False,
    )
    assert "failed" in stored
    assert any("wecom-group failed" in r.getMessage() for r in caplog.records)
    for secret in SECRET_VALUES:
        assert secret not in stored
    _assert_no_secret_logged(caplog)


def _assert_no_secret_logged(caplog):
    for record in caplog.records:
        line = record.getMessage() + (record.exc_text or "")
        for secret in SECRET_VALUES:
            assert secret not in line, f"secret in log line {line!r}"


def test_two_containers_sharing_a_bucket_never_exceed_the_rate(stack):
    """GCRA in DynamoDB: two 'containers' interleaving sends stay within B + W/T."""
    env = stack.env
    now = [1_800_000_000.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    rate = Rate(interval_s=4.0, burst=4)  # WeCom's: at most 19 in any minute
    limiters = [
        RateLimiter(env["POSTS_TABLE"], "us-east-1", now=lambda: now[0], sleep=sleep)
        for _ in range(2)
    ]
    sent_at: list[float] = []
    for index in range(60):  # a burst of 60 sends, alternating containers
        limiters[index % 2].acquire("RATE#sunrise#wecom-group", rate)
        sent_at.append(now[0])
        now[0] += 0.1  # each send takes a moment
    for start in sent_at:
        in_window = [t for t in sent_at if start <= t < start + 60]
        assert len(in_window) <= rate.max_in(60) <= 19
    assert sent_at[-1] - sent_at[0] < 60 * 4  # and it does not crawl either


def test_a_rate_limited_send_costs_one_request_when_idle(stack, request_counter):
    limiter = RateLimiter(stack.env["POSTS_TABLE"], "us-east-1")
    limiter.acquire("RATE#sunrise#x", Rate(1.0, 2))
    assert request_counter.count("dynamodb") == 1
    other = RateLimiter(stack.env["POSTS_TABLE"], "us-east-1")  # a cold container
    other.acquire("RATE#sunrise#x", Rate(1.0, 2))  # bucket busy, its view stale: 2 requests
    assert request_counter.count("dynamodb") == 3
    with pytest.raises(Exception, match="next slot"):
        limiter.acquire("RATE#sunrise#x", Rate(60.0, 1), budget_s=timedelta(seconds=1).seconds)


def test_a_lost_discord_answer_is_retried_with_the_occurrence_nonce_and_posted_once(stack, fakes):
    """Discord through a bot (``channel_id`` in the secret): the dispatcher's post
    carries a nonce derived from the occurrence, so the lost answer is retried and
    Discord answers the message it already made."""
    fake = fakes["discord"] = FakePlatform(PLATFORMS["discord"].check)
    secret = {**PLATFORMS["discord"].secret(fake.base), "channel_id": "4242"}
    put_secret(stack, "discord-group", secret)
    job = {
        "id": "morning-post",
        "cron": "30 7 * * *",
        "action": "post",
        "params": {"pool": "morning", "channels": ["discord-group"], "template": "{content}"},
    }
    stack.push(make_config(jobs=[job], channels=[{"id": "discord-group", "type": "discord"}]))
    DISCORD.lose_next_answers(fake.base)
    stack.clock.set(FIRE_AT)
    app = app_with_fast_retries(stack, Sleeps())
    (occurrence,) = app.tick().occurrences
    assert occurrence.status == "fired", occurrence.reason
    (created,) = DISCORD.of(fake.base)
    nonces = {r.json()["nonce"] for r in fake.received}
    assert len(fake.received) == 2 and len(nonces) == 1
    (post,) = app.post_store.posts("sunrise")
    assert post.deliveries["discord-group"]["message_id"] == created["id"]
