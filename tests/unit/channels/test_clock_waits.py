"""Channel waits run on the injected clock; a send without an answer is uncertain.

On a ``ManualClock`` (``autopilot simulate``) a rate-limit wait or a retry backoff
moves the clock instead of sleeping, each wait is counted from the moved clock,
and a delivery's ``at_utc`` is when its send ended. A request that went out with
no answer back is recorded as ``uncertain`` (it may have been posted); one that
never left, or that the platform refused, is a plain failure.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from autopilot.channels.base import ChannelEnvironment, Deadline, Message
from autopilot.channels.http import HttpClient, HttpRequest, RetryPolicy, parse_retry_after
from autopilot.channels.ratelimit import Rate, RateLimiter
from autopilot.channels.registry import build_channel
from autopilot.channels.sns import SnsChannel
from autopilot.clock import ManualClock, set_clock
from autopilot.config.model import Channel as ChannelSpec
from autopilot.secrets import SecretStore
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from .conftest import FAST, StaticSsm
from .platforms import PLATFORMS, FakePlatform, Reply
from .test_http import accept

START = datetime(2027, 3, 8, 4, 0, tzinfo=UTC)
MESSAGE = Message(text="午安", key="club:noon:1", community_id="club")


@pytest.fixture
def clock() -> Iterator[ManualClock]:
    manual = ManualClock(START)
    previous = set_clock(manual)
    try:
        yield manual
    finally:
        set_clock(previous)


class BucketTable:
    """DynamoDB's conditional UpdateItem on one rate-limit bucket, in memory."""

    def __init__(self) -> None:
        self.tat: dict[str, int] = {}

    def update_item(self, **kwargs: Any) -> dict[str, Any]:
        bucket = kwargs["Key"]["pk"]["S"]
        values = kwargs["ExpressionAttributeValues"]
        current = self.tat.get(bucket)
        if ":seen" in values:
            holds = current == int(values[":seen"]["N"])
        else:
            holds = current is None or current <= int(values[":now"]["N"])
        if not holds:
            item = {} if current is None else {"tat": {"N": str(current)}}
            raise ClientError(
                {"Error": {"Code": "ConditionalCheckFailedException"}, "Item": item}, "UpdateItem"
            )
        self.tat[bucket] = int(values[":tat"]["N"])
        return {}


def wecom_channel(tmp_path, fake: FakePlatform, limiter: RateLimiter | None = None):
    ssm = StaticSsm()
    ssm.parameters["/community-autopilot/channels/club/wecom-ch"] = json.dumps(
        PLATFORMS["wecom"].secret(fake.base)
    )
    env = ChannelEnvironment(
        region="us-east-1",
        output_dir=str(tmp_path),
        secrets=SecretStore("/community-autopilot/channels", "us-east-1", client=ssm),
        http_client=HttpClient(FAST, rand=lambda: 1.0),  # the clock's sleep and monotonic
        rate_limiter=limiter,
    )
    return build_channel(ChannelSpec(id="wecom-ch", type="wecom", options={}), env)


# ----------------------------------------------------------------- waits on the clock


def test_a_burst_waits_on_the_moved_clock(clock):
    """Each wait is counted from the clock the previous wait moved: 4 s, then 4 s more."""
    limiter = RateLimiter("t", "us-east-1", client=BucketTable())
    rate = Rate(4.0, 4)
    waits = [limiter.acquire("RATE#club#ch", rate, budget_s=10.0) for _ in range(8)]
    assert waits == [0.0, 0.0, 0.0, 0.0, 4.0, 4.0, 4.0, 4.0]  # never 8 s, 12 s, 16 s
    assert clock.now() == START + timedelta(seconds=16)


def test_retry_backoff_moves_the_clock_of_a_client_made_before_it_was_installed(
    platforms,
):
    client = HttpClient(FAST, rand=lambda: 1.0)  # a warm container's client
    manual = ManualClock(START)
    previous = set_clock(manual)
    try:
        fake = platforms("wecom")
        fake.queue(Reply(503), Reply(503))
        result = client.send(
            lambda: HttpRequest.json(fake.base + "/cgi-bin/webhook/send?key=x", {}),
            accept,
            deadline=Deadline(lambda: 60_000),
        )
    finally:
        set_clock(previous)
    assert result.attempts == 3
    assert manual.now() == START + timedelta(seconds=0.01 + 0.02)  # base, doubled


def test_a_retry_after_date_is_read_against_the_installed_clock(clock):
    assert parse_retry_after("Mon, 08 Mar 2027 04:00:30 GMT") == 30.0


def test_a_delivery_is_stamped_when_its_send_ended(clock, tmp_path, platforms):
    fake = platforms("wecom")
    channel = wecom_channel(tmp_path, fake, RateLimiter("t", "us-east-1", client=BucketTable()))
    stamps = []
    for _ in range(6):
        delivery = channel.send_to_community(MESSAGE, now=clock.now())
        assert delivery.ok
        stamps.append(delivery.at_utc)
    assert stamps == ["2027-03-08T04:00:00Z"] * 4 + ["2027-03-08T04:00:04Z", "2027-03-08T04:00:08Z"]
    assert len(fake.received) == 6


# ----------------------------------------------------------------- unknown outcomes


def send(fake: FakePlatform, policy: RetryPolicy = FAST, *, idempotent: bool = False):
    client = HttpClient(policy, sleep=lambda _: None, rand=lambda: 1.0)
    return client.send(
        lambda: HttpRequest.json(fake.base + "/hook", {"text": "hi"}),
        accept,
        deadline=Deadline(),
        idempotent=idempotent,
    )


def test_a_dropped_answer_is_unknown(platforms):
    fake = platforms("wecom")
    fake.queue(Reply(drop=True))
    result = send(fake)
    assert not result.ok and result.unknown and result.attempts == 1


def test_a_slow_answer_is_unknown(platforms):
    fake = platforms("wecom")
    fake.queue(Reply(200, {"errcode": 0}, delay_s=1.0))
    result = send(fake, RetryPolicy(timeout_s=0.2, min_attempt_s=0.05))
    assert not result.ok and result.unknown


def test_an_idempotent_send_that_never_got_an_answer_stays_unknown(platforms):
    fake = platforms("wecom")
    fake.queue(*[Reply(drop=True)] * 4)
    result = send(fake, idempotent=True)
    assert not result.ok and result.unknown and result.attempts == 4


def test_a_lost_answer_then_a_refusal_is_a_plain_failure(platforms):
    fake = platforms("wecom")
    fake.queue(Reply(drop=True), Reply(400, {"errcode": 40001}))
    result = send(fake, idempotent=True)
    assert not result.ok and not result.unknown and result.attempts == 2


def test_answered_failures_and_refused_connections_are_not_unknown(platforms):
    fake = platforms("wecom")
    fake.queue(*[Reply(503)] * 4)
    assert not send(fake).unknown
    fake.queue(Reply(400))
    assert not send(fake).unknown
    fake.close()
    refused = send(fake)
    assert not refused.ok and not refused.unknown and "could not connect" in refused.error


def test_a_channel_send_without_an_answer_is_recorded_uncertain(tmp_path, platforms):
    fake = platforms("wecom")
    fake.queue(Reply(drop=True))
    now = datetime(2027, 3, 8, 4, 0, tzinfo=UTC)
    delivery = wecom_channel(tmp_path, fake).send_to_community(MESSAGE, now=now)
    record = delivery.as_dict()
    assert delivery.unknown and record["status"] == "uncertain" and record["unknown"] is True
    assert len(fake.received) == 1  # not retried: it may have been posted


def test_a_channel_send_the_platform_refused_is_failed(tmp_path, platforms):
    fake = platforms("wecom")
    fake.queue(Reply(200, {"errcode": 93000, "errmsg": "invalid webhook url"}))
    now = datetime(2027, 3, 8, 4, 0, tzinfo=UTC)
    record = wecom_channel(tmp_path, fake).send_to_community(MESSAGE, now=now).as_dict()
    assert record["status"] == "failed" and "unknown" not in record


# ----------------------------------------------------------------- SNS


class FailingSns:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def publish(self, **_: Any) -> dict[str, Any]:
        raise self.error


def sns_send(tmp_path, error: Exception):
    env = ChannelEnvironment(
        region="us-east-1",
        output_dir=str(tmp_path),
        sns_topic_arn="arn:aws:sns:us-east-1:123456789012:posts",
        sns_client=FailingSns(error),
    )
    channel = SnsChannel(ChannelSpec(id="announce", type="sns", options={}), env)
    return channel.send_to_community(MESSAGE, now=START, deadline=Deadline(lambda: 60_000))


@pytest.mark.parametrize(
    "error",
    [
        ReadTimeoutError(endpoint_url="https://sns.us-east-1.amazonaws.com"),
        ConnectionClosedError(endpoint_url="https://sns.us-east-1.amazonaws.com"),
    ],
    ids=["read-timeout", "connection-closed"],
)
def test_an_sns_publish_whose_answer_was_lost_is_uncertain(tmp_path, error):
    delivery = sns_send(tmp_path, error)
    assert delivery.unknown and delivery.as_dict()["status"] == "uncertain"
    assert "outcome unknown" in delivery.error


@pytest.mark.parametrize(
    "error",
    [
        ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "Publish"),
        EndpointConnectionError(endpoint_url="https://sns.us-east-1.amazonaws.com"),
    ],
    ids=["throttled", "not-connected"],
)
def test_an_sns_publish_refused_before_sending_is_failed(tmp_path, error):
    delivery = sns_send(tmp_path, error)
    assert not delivery.unknown and delivery.as_dict()["status"] == "failed"
