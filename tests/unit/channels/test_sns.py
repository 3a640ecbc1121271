"""An SNS publish is bounded by the invocation's time like every other send."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

from autopilot.channels.base import ChannelEnvironment, Deadline, Message
from autopilot.channels.sns import SnsChannel
from autopilot.config.model import Channel as ChannelSpec

NOW = datetime(2026, 11, 27, 7, 30, tzinfo=UTC)
MESSAGE = Message(text="早安", key="club:morning:1", community_id="club")
TOPIC = "arn:aws:sns:us-east-1:123456789012:posts"


class HangingSns:
    """An SNS endpoint that never answers (until the test ends)."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = threading.Event()

    def publish(self, **_: Any) -> dict[str, Any]:
        self.calls += 1
        self.release.wait(30)
        return {"MessageId": "late"}


class QuickSns:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def publish(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        return {"MessageId": "m-1"}


def channel(client: Any, tmp_path) -> SnsChannel:
    env = ChannelEnvironment(
        region="us-east-1", output_dir=str(tmp_path), sns_topic_arn=TOPIC, sns_client=client
    )
    return SnsChannel(ChannelSpec(id="announce", type="sns", options={}), env)


def test_a_publish_that_does_not_answer_ends_at_the_deadline(tmp_path):
    sns = HangingSns()
    try:
        started = time.monotonic()  # an upper bound of real time, not a benchmark
        delivery = channel(sns, tmp_path).send_to_community(
            MESSAGE, now=NOW, deadline=Deadline(lambda: 1_000, reserve_ms=0)
        )
        elapsed = time.monotonic() - started
        assert elapsed < 1.0 + 1.5, f"the publish ran {elapsed:.1f}s past a 1 s deadline"
        assert not delivery.ok and sns.calls == 1
        assert "deadline reached" in delivery.error and "outcome unknown" in delivery.error
    finally:
        sns.release.set()


def test_no_publish_is_started_without_time_left(tmp_path):
    sns = QuickSns()
    delivery = channel(sns, tmp_path).send_to_member(
        "u1", MESSAGE, now=NOW, deadline=Deadline(lambda: 5_500, reserve_ms=5_000)
    )
    assert not delivery.ok and sns.calls == [] and "out of time" in delivery.error


def test_a_publish_within_the_deadline_is_published(tmp_path):
    sns = QuickSns()
    delivery = channel(sns, tmp_path).send_to_member(
        "u1", MESSAGE, now=NOW, deadline=Deadline(lambda: 60_000)
    )
    assert delivery.ok and delivery.message_id == "m-1"
    assert sns.calls[0]["MessageAttributes"]["member"]["StringValue"] == "u1"
