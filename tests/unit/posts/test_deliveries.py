"""A post's deliveries across reruns: intent before the send, never a second send.

PostService over an in-memory store that keeps the conditions of the real one
(``begin_delivery``: only when the channel has no delivery, or replacing a given
intent, or the intent's own token; ``record_delivery(if_token=…)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from autopilot.channels.base import Delivery
from autopilot.config.model import parse_config
from autopilot.posts.rules import RotationState
from autopilot.posts.service import PostService
from autopilot.posts.store import PostRecord
from autopilot.scheduler.rules import Occurrence
from autopilot.scheduler.service import ActionContext, outcome_status
from autopilot.timeutil import iso_utc

NOW = datetime(2026, 11, 26, 23, 30, 5, tzinfo=UTC)


class FakeStore:
    def __init__(self, deliveries: dict[str, dict[str, Any]] | None = None) -> None:
        self.deliveries = dict(deliveries or {})
        self.calls: list[tuple[str, str]] = []
        self.refuse_begin = False
        self.outcome_meanwhile: dict[str, Any] | None = None

    def read_rotation(self, community_id, pool_id):
        return RotationState(), None

    def create_post(self, record, occ, rotation, version, now):
        return False  # an earlier attempt's post exists

    def get_post(self, occ):
        return PostRecord(
            "c", "j", occ.key, "", "morning", "m0", "早安", None, dict(self.deliveries)
        )

    def begin_delivery(self, occ, channel_id, intent, *, replaces=None):
        self.calls.append(("begin", channel_id))
        current = self.deliveries.get(channel_id)
        allowed = (current is None and replaces is None) or (
            current is not None
            and (
                (current.get("status") == "sending" and current.get("token") == replaces)
                or current.get("token") == intent["token"]
            )
        )
        if self.refuse_begin or not allowed:
            return False
        self.deliveries[channel_id] = dict(intent)
        return True

    def record_delivery(self, occ, channel_id, delivery, *, if_token=None):
        self.calls.append(("record", channel_id))
        if if_token is not None:
            if self.outcome_meanwhile is not None:  # the earlier attempt was still alive
                self.deliveries[channel_id] = self.outcome_meanwhile
            current = self.deliveries.get(channel_id) or {}
            if current.get("status") != "sending" or current.get("token") != if_token:
                return False
        self.deliveries[channel_id] = dict(delivery)
        return True


@dataclass
class Step:
    idempotent: bool
    part: bool = True


@dataclass
class FakeChannel:
    spec: Any
    env: Any
    store: FakeStore
    answer: dict[str, Any] = field(default_factory=dict)
    type: str = "file"
    idempotent: bool = False
    sent: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.spec.id

    def send_to_community(self, message, *, now, deadline=None):
        self.store.calls.append(("send", self.id))
        self.sent.append(message.idempotency_key)
        answer = {"ok": True, **self.answer}
        return Delivery(self.id, answer.pop("ok"), iso_utc(now), **answer)

    def community_steps(self, secret, message):
        return [Step(True, part=False), Step(self.idempotent)]


class FakeSecrets:
    def get(self, community_id, channel_id):
        return {}


@dataclass
class Env:
    secrets: Any = field(default_factory=FakeSecrets)


@pytest.fixture
def community():
    config = parse_config(
        {
            "version": 1,
            "communities": [
                {
                    "id": "c",
                    "name": "C",
                    "timezone": "UTC",
                    "channels": [
                        {"id": "a", "type": "console"},
                        {"id": "b", "type": "console"},
                    ],
                    "pools": [{"id": "morning", "items": [{"id": "m0", "text": "早安"}]}],
                    "jobs": [
                        {
                            "id": "j",
                            "cron": "30 23 * * *",
                            "action": "post",
                            "params": {
                                "pool": "morning",
                                "channels": ["a", "b"],
                                "template": "{content}",
                            },
                        }
                    ],
                }
            ],
        }
    )
    return config.communities[0]


def run(community, store, *, attempt=2, now=NOW, **channel: Any):
    channels: dict[str, FakeChannel] = {}

    def factory(spec, env):
        made = channels[spec.id] = FakeChannel(spec, env, store, **channel)
        return made

    class Clock:
        def now(self):
            return now

    service = PostService(store, Env(), clock=Clock(), channel_factory=factory)  # type: ignore[arg-type]
    occ = Occurrence("c", "j", datetime(2026, 11, 26, 23, 30), NOW, NOW)
    ctx = ActionContext(community, community.job("j"), occ, now, attempt)
    result = service.run(ctx)
    return result, channels


def test_the_intent_is_recorded_before_the_send_and_the_outcome_after(community):
    store = FakeStore()
    result, _ = run(community, store, attempt=1)
    assert result.ok and outcome_status(result) == "fired"
    assert store.calls == [
        ("begin", "a"),
        ("send", "a"),
        ("record", "a"),
        ("begin", "b"),
        ("send", "b"),
        ("record", "b"),
    ]
    assert store.deliveries["a"]["status"] == "published" and store.deliveries["a"]["attempt"] == 1


@pytest.mark.parametrize("status", ["published", "failed", "uncertain"])
def test_a_decided_delivery_is_never_sent_again(community, status):
    store = FakeStore({"a": {"status": status, "error": "e"}, "b": {"status": status}})
    result, _ = run(community, store)
    assert [c for c in store.calls if c[0] == "send"] == []
    assert outcome_status(result) == {"published": "fired"}.get(status, status)


def test_an_unfinished_send_is_recorded_uncertain_not_resent(community):
    intent = {"status": "sending", "attempt": 1, "at_utc": "2026-11-26T23:30:05Z", "token": "t1"}
    store = FakeStore({"a": dict(intent)})
    result, _ = run(community, store)
    assert ("send", "a") not in store.calls and ("send", "b") in store.calls
    a = store.deliveries["a"]
    assert a["status"] == "uncertain" and a["attempt"] == 1 and a["unknown"] is True
    assert "attempt 1 crashed mid-send" in a["error"] and "not re-sent" in a["error"]
    assert outcome_status(result) == "uncertain" and result.uncertain
    assert result.error.startswith("a: attempt 1 crashed mid-send")
    assert result.error.endswith("(uncertain: may or may not have been posted; not re-sent)")
    assert result.detail["deliveries"]["b"]["status"] == "published"


def test_an_outcome_recorded_meanwhile_by_the_earlier_attempt_is_kept(community):
    intent = {"status": "sending", "attempt": 1, "at_utc": "2026-11-26T23:30:05Z", "token": "t1"}
    store = FakeStore({"a": dict(intent)})
    store.outcome_meanwhile = {"status": "published", "message_id": "42"}
    result, _ = run(community, store)
    assert store.deliveries["a"] == {"status": "published", "message_id": "42"}
    assert outcome_status(result) == "fired"


def test_a_refused_intent_sends_nothing(community):
    store = FakeStore()
    store.refuse_begin = True
    result, _ = run(community, store)
    assert [c for c in store.calls if c[0] == "send"] == []
    assert outcome_status(result) == "uncertain"  # whoever holds it has not finished


def test_a_lost_answer_is_recorded_uncertain(community):
    store = FakeStore()
    result, _ = run(community, store, answer={"ok": False, "error": "no answer", "unknown": True})
    assert store.deliveries["a"]["status"] == "uncertain" and store.deliveries["a"]["unknown"]
    assert outcome_status(result) == "uncertain"


@pytest.mark.parametrize(
    ("channel_type", "idempotent", "age", "resent"),
    [
        ("feishu", True, timedelta(minutes=3), True),
        ("feishu", True, timedelta(minutes=51), False),  # past Feishu's window
        ("feishu", False, timedelta(minutes=3), False),  # a custom bot: no uuid
        ("discord", True, timedelta(minutes=3), False),  # nonce window too short
        ("file", True, timedelta(minutes=3), False),
    ],
)
def test_a_resend_only_where_the_platform_deduplicates(
    community, channel_type, idempotent, age, resent
):
    began = iso_utc(NOW)
    intent = {"status": "sending", "attempt": 1, "at_utc": began, "token": "t1"}
    store = FakeStore({"a": dict(intent), "b": {"status": "published"}})
    result, channels = run(
        community, store, now=NOW + age, type=channel_type, idempotent=idempotent
    )
    assert (("send", "a") in store.calls) is resent
    if resent:
        assert store.deliveries["a"]["status"] == "published"
        assert channels["a"].sent == ["c:j:2026-11-26T23:30@2026-11-26T23:30:05Z"]  # same key
        assert outcome_status(result) == "fired"
    else:
        assert store.deliveries["a"]["status"] == "uncertain"
        assert outcome_status(result) == "uncertain"
