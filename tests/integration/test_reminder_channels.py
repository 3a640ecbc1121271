"""Planned reminder messages (``plan_delivery``) through every channel: ``send_planned``.

Each chat platform is the fake server of ``tests/unit/channels/platforms.py`` on
127.0.0.1, which checks the route, signature and shape as the platform documents
them. The tests assert that a group message arrives as ONE platform message
whose body carries the mentions in the platform's own fields, signed like a
community post; that DMs go to the member's address; that a 429 is waited and
retried; and that a plan over the platform's limit fails without a request.
"""

from __future__ import annotations

import io
import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from autopilot.channels.base import ChannelEnvironment, Deadline, Message
from autopilot.channels.ratelimit import Rate
from autopilot.channels.registry import build_channel
from autopilot.config.model import Channel as ChannelSpec
from autopilot.reminders.mentions import PlannedMessage, Recipient, plan_delivery

from ..unit.channels import conftest as channel_fixtures
from ..unit.channels.platforms import (
    DINGTALK_TOKEN,
    DISCORD,
    DISCORD_BOT_TOKEN,
    DISCORD_PATH,
    FEISHU,
    FEISHU_APP_ID,
    FEISHU_APP_SECRET,
    FEISHU_CHAT,
    FEISHU_HOOK,
    PLATFORMS,
    SECRET_VALUES,
    SLACK_BOT_TOKEN,
    SLACK_PATH,
    TELEGRAM_CHAT,
    TELEGRAM_TOKEN,
    WECOM_KEY,
    Reply,
)

# The channel tests' fixtures: fake platforms, a channel wired to one, recorded sleeps.
platforms = channel_fixtures.platforms
make_channel = channel_fixtures.make_channel
sleeps = channel_fixtures.sleeps

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
TEMPLATE = "{mentions} 今天还没打卡，别忘了哦！"
NAMES = ("小明", "小红", "阿强")
# Each platform's user ids for the three members (Discord/Telegram: numeric ids).
IDS: dict[str, tuple[str, str, str]] = {
    "wecom": ("zhangsan", "lisi", "wangwu"),
    "dingtalk": ("manager4220", "user0017", "user0042"),
    "feishu": ("ou_7d8a6e6df7621556ce0d21922b676706", "ou_1a2b", "ou_3c4d"),
    "slack": ("U024BE7LH", "U0G9QF9C6", "U0A1B2C3D"),
    "discord": ("80351110224678912", "80351110224678913", "80351110224678914"),
    "telegram": ("111111111", "222222222", "333333333"),
}
FEISHU_APP = {"app_id": FEISHU_APP_ID, "app_secret": FEISHU_APP_SECRET, "chat_id": FEISHU_CHAT}


def message(idempotency_key: str | None = None) -> Message:
    return Message(
        text="(replaced by the plan)",
        key="club:reminder:1",
        community_id="club",
        idempotency_key=idempotency_key,
    )


def recipients(platform_type: str, *, dm: bool = False) -> list[Recipient]:
    return [
        Recipient(
            member_id=f"m{index}",
            display_name=name,
            platform_user_id=user_id,
            dm_address=user_id if dm else None,
        )
        for index, (name, user_id) in enumerate(zip(NAMES, IDS[platform_type], strict=True))
    ]


def group_plan(platform_type: str, **options: Any) -> PlannedMessage:
    (planned,) = plan_delivery(platform_type, recipients(platform_type), TEMPLATE, options=options)
    assert planned.kind == "group" and len(planned.recipients) == 3
    return planned


# --------------------------------------------------------------------------- group messages


def check_wecom(received, ids, options):
    assert received.path == "/cgi-bin/webhook/send" and received.query["key"] == WECOM_KEY
    body = received.json()
    if options.get("msgtype") == "markdown":  # markdown: <@userid> in the content
        assert all(f"<@{i}>" in body["markdown"]["content"] for i in ids)
    else:
        assert body["text"]["mentioned_list"] == list(ids)
        assert "今天还没打卡" in body["text"]["content"]


def check_dingtalk(received, ids, options):
    # The fake verified the signature; it has to be there.
    assert received.query["access_token"] == DINGTALK_TOKEN
    assert received.query["timestamp"].isdigit() and received.query["sign"]
    body = received.json()
    assert body["at"]["atUserIds"] == list(ids) and body["at"]["isAtAll"] is False
    text = body["markdown"]["text"] if body["msgtype"] == "markdown" else body["text"]["content"]
    assert all(f"@{i}" in text for i in ids)


def check_feishu(received, ids, options):
    body = received.json()
    if received.path == "/open-apis/im/v1/messages":  # the app route
        assert received.headers["authorization"].startswith("Bearer t-")
        assert body["receive_id"] == FEISHU_CHAT and body["msg_type"] == "text"
        assert len(body["uuid"]) <= 50
        text = json.loads(body["content"])["text"]
    else:  # the custom bot: timestamp + sign in the body (the fake verified them)
        assert received.path == f"/open-apis/bot/v2/hook/{FEISHU_HOOK}"
        assert body["timestamp"].isdigit() and body["sign"]
        assert body["msg_type"] == "text"
        text = body["content"]["text"]
    for user_id, name in zip(ids, NAMES, strict=True):
        assert f'<at user_id="{user_id}">{name}</at>' in text


def check_slack(received, ids, options):
    assert received.path == SLACK_PATH
    text = received.json()["text"]
    assert all(f"<@{i}>" in text for i in ids) and "今天还没打卡" in text


def check_discord(received, ids, options):
    body = received.json()
    if received.path.startswith("/api/channels/"):  # the bot route: a nonce, the bot's token
        assert received.headers["authorization"] == f"Bot {DISCORD_BOT_TOKEN}"
        assert body["enforce_nonce"] is True and len(body["nonce"]) <= 25
    else:
        assert received.path == DISCORD_PATH and received.query["wait"] == "true"
    assert body["allowed_mentions"] == {"parse": [], "users": list(ids)}
    assert all(f"<@{i}>" in body["content"] for i in ids)


def check_telegram(received, ids, options):
    assert received.path == f"/bot{TELEGRAM_TOKEN}/sendMessage"
    body = received.json()
    assert body["chat_id"] == TELEGRAM_CHAT
    if options.get("parse_mode") == "HTML":
        assert body["parse_mode"] == "HTML"
        for user_id, name in zip(ids, NAMES, strict=True):
            assert f'<a href="tg://user?id={user_id}">{name}</a>' in body["text"]
    else:
        entities = body["entities"]
        assert [e["type"] for e in entities] == ["text_mention"] * 3
        assert [e["user"]["id"] for e in entities] == [int(i) for i in ids]
        for entity, name in zip(entities, NAMES, strict=True):  # offsets in UTF-16 units
            units = body["text"].encode("utf-16-le")
            start, length = 2 * entity["offset"], 2 * entity["length"]
            assert units[start : start + length].decode("utf-16-le") == name


CHECKS = {
    "wecom": check_wecom,
    "dingtalk": check_dingtalk,
    "feishu": check_feishu,
    "slack": check_slack,
    "discord": check_discord,
    "telegram": check_telegram,
}

CASES = [
    ("wecom", {}, {}),
    ("wecom", {"msgtype": "markdown"}, {}),
    ("dingtalk", {}, {}),
    ("dingtalk", {"msgtype": "markdown"}, {}),
    ("feishu", {}, {}),
    ("feishu", {"msgtype": "post"}, "app"),  # a post channel still sends mentions as text
    ("slack", {}, {}),
    ("slack", {"msgtype": "blocks"}, {}),
    ("discord", {}, {}),
    ("discord", {"msgtype": "embed"}, {"channel_id": "4242"}),  # the bot route
    ("telegram", {}, {}),
    ("telegram", {"parse_mode": "HTML"}, {}),
]


@pytest.mark.parametrize(("platform_type", "options", "secret"), CASES)
def test_a_group_reminder_is_one_message_with_the_platforms_mentions(
    platform_type, options, secret, platforms, make_channel
):
    fake = platforms(platform_type)
    if secret == "app":
        secret = {**FEISHU_APP, "api_base": fake.base}
    channel = make_channel(platform_type, fake, secret=secret, **options)
    planned = group_plan(platform_type, **options)
    before = dict(planned.payload)

    delivery = channel.send_planned(planned, message("club:reminder:occ-1"), now=NOW)

    assert delivery.ok, delivery.error
    # One attempt per request (Feishu's app route asks for its token first).
    assert delivery.parts == 1 and delivery.attempts == len(fake.received)
    assert delivery.at_utc == "2026-11-27T12:00:00Z"
    posts = [r for r in fake.accepted if "tenant_access_token" not in r.path]
    assert len(posts) == 1  # one platform message, accepted by the fake's checks
    CHECKS[platform_type](posts[0], IDS[platform_type], options)
    assert dict(planned.payload) == before  # the plan itself is not changed


def test_discord_group_messages_of_one_occurrence_get_their_own_nonces_and_a_rerun_posts_once(
    platforms, make_channel
):
    fake = platforms("discord")
    channel = make_channel("discord", fake, secret={"channel_id": "4242"})
    first, second = plan_delivery("discord", recipients("discord"), TEMPLATE, max_mentions=2)
    same = message("club:reminder:occ-2")
    assert channel.send_planned(first, same, now=NOW).ok
    assert channel.send_planned(second, same, now=NOW).ok
    assert len(DISCORD.of(fake.base)) == 2  # two batches: two nonces, two messages
    nonces = [r.json()["nonce"] for r in fake.received]
    assert nonces[0] != nonces[1]
    # A rerun after a crash plans the same batches: the same nonce, no new message.
    again = channel.send_planned(first, same, now=NOW)
    assert again.ok and len(DISCORD.of(fake.base)) == 2
    assert fake.received[-1].json()["nonce"] == nonces[0]


def test_feishu_app_group_messages_carry_a_uuid_per_batch(platforms, make_channel):
    fake = platforms("feishu")
    channel = make_channel("feishu", fake, secret={**FEISHU_APP, "api_base": fake.base})
    plans = plan_delivery("feishu", recipients("feishu"), TEMPLATE, max_mentions=1)
    assert len(plans) == 3
    for planned in plans:
        assert channel.send_planned(planned, message("occ-3"), now=NOW).ok
    uuids = [r.json()["uuid"] for r in fake.received if r.path == "/open-apis/im/v1/messages"]
    assert len(set(uuids)) == 3 and len(FEISHU.of(fake.base)) == 3
    assert channel.send_planned(plans[0], message("occ-3"), now=NOW).ok
    assert len(FEISHU.of(fake.base)) == 3  # the same uuid again: Feishu sends nothing new


def test_without_an_idempotency_key_the_bot_routes_send_no_key(platforms, make_channel):
    fake = platforms("discord")
    channel = make_channel("discord", fake, secret={"channel_id": "4242"})
    assert channel.send_planned(group_plan("discord"), message(None), now=NOW).ok
    assert "nonce" not in fake.received[0].json()


# --------------------------------------------------------------------------- direct messages


@pytest.mark.parametrize("platform_type", ["telegram", "slack", "discord"])
def test_a_direct_reminder_goes_to_the_members_address(platform_type, platforms, make_channel):
    fake = platforms(platform_type)
    channel = make_channel(platform_type, fake)
    members = recipients(platform_type, dm=True)
    members[0] = replace(members[0], direct_text="小明，今天还没打卡哦")
    plans = plan_delivery(platform_type, members, TEMPLATE)
    assert [p.kind for p in plans] == ["direct"] * 3

    delivery = channel.send_planned(plans[0], message("occ-4"), now=NOW)

    assert delivery.ok, delivery.error
    last = fake.accepted[-1]
    body = last.json()
    user_id = IDS[platform_type][0]
    if platform_type == "telegram":
        assert body["chat_id"] == user_id and body["text"] == "小明，今天还没打卡哦"
    elif platform_type == "slack":
        assert last.path == "/api/chat.postMessage" and body["channel"] == user_id
        assert last.headers["authorization"] == f"Bearer {SLACK_BOT_TOKEN}"
        assert body["text"] == "小明，今天还没打卡哦"
    else:
        opened = fake.accepted[0].json()
        assert opened == {"recipient_id": user_id}
        assert last.path == "/api/channels/998877/messages"
        assert body["content"] == "小明，今天还没打卡哦"
        assert body["allowed_mentions"] == {"parse": []}  # a DM pings nobody else
    # The template's text names the member where it has {mentions}.
    assert channel.send_planned(plans[1], message("occ-4"), now=NOW).ok
    sent = json.dumps(fake.accepted[-1].json(), ensure_ascii=False)
    assert "小红 今天还没打卡，别忘了哦！" in sent


@pytest.mark.parametrize("platform_type", ["wecom", "dingtalk", "feishu"])
def test_a_direct_plan_on_a_channel_without_dms_is_a_failed_delivery(
    platform_type, platforms, make_channel
):
    fake = platforms(platform_type)
    planned = PlannedMessage("direct", "hi", tuple(recipients(platform_type)[:1]), address="x")
    delivery = make_channel(platform_type, fake).send_planned(planned, message(), now=NOW)
    assert not delivery.ok and "cannot send direct messages" in (delivery.error or "")
    assert fake.received == []


def test_a_plan_that_cannot_be_sent_is_a_failed_delivery_not_an_exception(platforms, make_channel):
    fake = platforms("telegram")
    channel = make_channel("telegram", fake)
    one = tuple(recipients("telegram")[:1])
    no_address = PlannedMessage("direct", "hi", one)
    odd_kind = PlannedMessage("broadcast", "hi", one)  # type: ignore[arg-type]
    empty_group = PlannedMessage("group", "hi", one)  # no payload
    for planned, error in [
        (no_address, "without an address"),
        (odd_kind, "unknown planned message kind 'broadcast'"),
        (empty_group, "has no text at 'text'"),
    ]:
        delivery = channel.send_planned(planned, message(), now=NOW)
        assert not delivery.ok and error in (delivery.error or ""), delivery.error
        assert delivery.attempts == 0
    assert fake.received == []


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize("platform_type", sorted(PLATFORMS))
def test_a_429_with_retry_after_is_waited_and_retried_once_posted(
    platform_type, platforms, make_channel, sleeps
):
    fake = platforms(platform_type)
    fake.queue(Reply(429, {"message": "You are being rate limited."}, {"Retry-After": "2"}))
    channel = make_channel(platform_type, fake)
    delivery = channel.send_planned(group_plan(platform_type), message(), now=NOW)
    assert delivery.ok, delivery.error
    assert delivery.attempts == 2 and sleeps == [2.0]  # Retry-After honoured
    assert len(fake.received) == 2 and len(fake.accepted) == 1
    assert fake.received[0].body == fake.received[1].body or platform_type in (
        "dingtalk",
        "feishu",  # re-signed per attempt
    )


TEXT_FIELD = {
    "wecom": (("text", "content"), 2048),
    "dingtalk": (("text", "content"), 18_000),
    "feishu": (("content", "text"), 15_000),
    "slack": (("text",), 40_000),
    "discord": (("content",), 2_000),
    "telegram": (("text",), 4_096),
}


@pytest.mark.parametrize("platform_type", sorted(PLATFORMS))
def test_a_planned_message_over_the_limit_fails_without_a_request(
    platform_type, platforms, make_channel
):
    fake = platforms(platform_type)
    planned = group_plan(platform_type)
    path, limit = TEXT_FIELD[platform_type]
    payload = json.loads(json.dumps(planned.payload))
    holder = payload
    for key in path[:-1]:
        holder = holder[key]
    holder[path[-1]] = "a" * (limit + 1)
    too_long = replace(planned, payload=payload)

    delivery = make_channel(platform_type, fake).send_planned(too_long, message(), now=NOW)

    assert not delivery.ok and delivery.attempts == 0
    assert f"over the limit of {limit}" in (delivery.error or "")
    assert "never split" in (delivery.error or "")
    assert fake.received == []
    assert not any(secret in (delivery.error or "") for secret in SECRET_VALUES)


def test_a_discord_plan_with_more_than_100_mentions_fails_without_a_request(
    platforms, make_channel
):
    fake = platforms("discord")
    planned = group_plan("discord")
    users = [str(80351110224678912 + n) for n in range(101)]
    payload = {**planned.payload, "allowed_mentions": {"parse": [], "users": users}}
    delivery = make_channel("discord", fake).send_planned(
        replace(planned, payload=payload), message(), now=NOW
    )
    assert not delivery.ok and "mentions 101 users" in (delivery.error or "")
    assert fake.received == []


class SpyLimiter:
    """The shared rate limiter's interface, recording which bucket and rate were asked for."""

    def __init__(self) -> None:
        self.taken: list[tuple[str, Rate]] = []

    @staticmethod
    def bucket(community_id: str, channel_id: str, *, direct: bool = False) -> str:
        return f"RATE#{community_id}#{channel_id}" + ("#dm" if direct else "")

    def acquire(self, bucket: str, rate: Rate, *, budget_s: Any) -> None:
        self.taken.append((bucket, rate))


def test_group_messages_share_the_community_posts_rate_limit(platforms, make_channel):
    fake = platforms("telegram")
    channel = make_channel("telegram", fake)
    spy = channel.env.rate_limiter = SpyLimiter()
    channel.send_to_community(message(), now=NOW)
    channel.send_planned(group_plan("telegram"), message(), now=NOW)
    assert spy.taken == [("RATE#club#telegram-ch", channel.community_rate)] * 2


def test_a_group_message_with_no_time_left_is_not_sent(platforms, make_channel):
    fake = platforms("wecom")
    ending = Deadline(remaining_ms=lambda: 1_000, reserve_ms=1_000)
    delivery = make_channel("wecom", fake).send_planned(
        group_plan("wecom"), message(), now=NOW, deadline=ending
    )
    assert not delivery.ok and "out of time" in (delivery.error or "")
    assert fake.received == []


# --------------------------------------------------------------------------- local and SNS


def local_channel(tmp_path, channel_type: str, **options: Any):
    env = ChannelEnvironment(region="us-east-1", output_dir=str(tmp_path), stdout=io.StringIO())
    return build_channel(ChannelSpec(id=channel_type, type=channel_type, options=options), env)


def test_console_prints_the_planned_text(tmp_path):
    channel = local_channel(tmp_path, "console")
    members = recipients("slack")
    members[2] = replace(members[2], dm_address="阿强的终端")
    direct, group = plan_delivery("console", members, TEMPLATE)
    assert channel.send_planned(group, message(), now=NOW).ok
    assert channel.send_planned(direct, message(), now=NOW).ok
    printed = channel.env.stdout.getvalue()
    assert "@小明 @小红 今天还没打卡，别忘了哦！" in printed
    assert "club → 阿强的终端" in printed and "阿强 今天还没打卡，别忘了哦！" in printed


def test_file_appends_the_planned_text(tmp_path):
    channel = local_channel(tmp_path, "file", path="reminders.jsonl")
    plans = plan_delivery("file", recipients("slack"), TEMPLATE)
    assert all(channel.send_planned(p, message(), now=NOW).ok for p in plans)
    lines = (tmp_path / "reminders.jsonl").read_text(encoding="utf-8").splitlines()
    (record,) = (json.loads(line) for line in lines)
    assert record["text"] == "@小明 @小红 @阿强 今天还没打卡，别忘了哦！"
    assert record["key"] == "club:reminder:1" and record["channel"] == "file"


def test_sns_publishes_the_planned_text(tmp_path):
    published: list[dict[str, Any]] = []

    class Sns:
        def publish(self, **kwargs: Any) -> dict[str, str]:
            published.append(kwargs)
            return {"MessageId": "sns-1"}

    channel = local_channel(tmp_path, "sns")
    channel.env.sns_topic_arn = "arn:aws:sns:us-east-1:123456789012:posts"
    channel.env.sns_client = Sns()
    (group,) = plan_delivery("sns", recipients("slack"), TEMPLATE)
    delivery = channel.send_planned(group, message(), now=NOW)
    assert delivery.ok and delivery.message_id == "sns-1"
    assert published[0]["Message"] == "@小明 @小红 @阿强 今天还没打卡，别忘了哦！"
