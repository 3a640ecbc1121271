"""Each platform's payload, signature, answer and size limit, against its fake server."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from autopilot.channels.base import Message

from .platforms import (
    DISCORD,
    FEISHU,
    FEISHU_APP_ID,
    FEISHU_APP_SECRET,
    FEISHU_CHAT,
    PLATFORMS,
    TELEGRAM_CHAT,
    Reply,
    texts_of,
)

NOW = datetime(2026, 11, 27, 7, 30, tzinfo=UTC)
MESSAGE = Message(
    text="早安！今天也要加油。", key="club:morning:1", community_id="club", title="早安"
)


@pytest.mark.parametrize("platform_type", sorted(PLATFORMS))
def test_a_post_reaches_the_platform_signed_and_shaped_as_documented(
    platform_type, platforms, make_channel
):
    fake = platforms(platform_type)
    delivery = make_channel(platform_type, fake).send_to_community(MESSAGE, now=NOW)
    assert delivery.ok, delivery.error
    assert len(fake.received) == len(fake.accepted) == 1  # the fake checked and accepted it
    assert "早安！今天也要加油。" in texts_of(platform_type, fake.accepted[0])
    assert delivery.attempts == 1 and delivery.at_utc == "2026-11-27T07:30:00Z"
    if platform_type in ("discord", "telegram"):  # they answer with the message id
        assert delivery.message_id and delivery.message_id.isdigit()


@pytest.mark.parametrize(
    ("platform_type", "options", "limit", "measure"),
    [
        ("wecom", {}, 2048, lambda t: len(t.encode())),
        ("wecom", {"msgtype": "markdown"}, 4096, lambda t: len(t.encode())),
        ("dingtalk", {}, 20_000, lambda t: len(t.encode())),
        ("feishu", {}, 20_000, lambda t: len(t.encode())),
        ("slack", {"msgtype": "blocks"}, 3000, len),
        ("discord", {}, 2000, len),
        ("telegram", {}, 4096, len),
    ],
)
def test_long_posts_are_split_to_fit_and_never_rejected(
    platform_type, options, limit, measure, platforms, make_channel
):
    fake = platforms(platform_type)
    paragraph = "打卡第一天，坚持就是胜利。" * 20  # 260 characters, 780 bytes
    text = "\n\n".join([paragraph] * (3 * limit // len(paragraph.encode()) + 1))
    message = Message(text=text, key="k", community_id="club")
    delivery = make_channel(platform_type, fake, max_parts=10, **options).send_to_community(
        message, now=NOW
    )
    assert delivery.ok, delivery.error
    sent = [texts_of(platform_type, r) for r in fake.accepted]
    assert delivery.parts == len(sent) > 1
    assert all(measure(part) <= limit for part in sent)
    assert "".join(sent).replace("\n", "") == text.replace("\n", "")  # split at paragraphs


def test_wecom_mentions_go_with_the_first_part_only(platforms, make_channel):
    fake = platforms("wecom")
    channel = make_channel("wecom", fake, mention_all=True, mention_mobiles=["13800001111"])
    long = Message(text="早" * 1500, key="k", community_id="club")
    assert channel.send_to_community(long, now=NOW).ok
    first, *rest = (r.json()["text"] for r in fake.accepted)
    assert first["mentioned_list"] == ["@all"]
    assert first["mentioned_mobile_list"] == ["13800001111"]
    assert len(rest) == 2 and not any("mentioned_list" in r for r in rest)


@pytest.mark.parametrize(
    ("platform_type", "reply", "error"),
    [
        ("wecom", Reply(200, {"errcode": 93000, "errmsg": "invalid webhook url"}), "errcode 93000"),
        (
            "dingtalk",
            Reply(200, {"errcode": 310000, "errmsg": "keywords not in content"}),
            "310000",
        ),
        ("feishu", Reply(200, {"code": 19024, "msg": "Key Words Not Found"}), "code 19024"),
        ("slack", Reply(404, "channel_not_found"), "HTTP 404: channel_not_found"),
        ("discord", Reply(404, {"message": "Unknown Webhook", "code": 10015}), "Unknown Webhook"),
        (
            "telegram",
            Reply(
                400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}
            ),
            "chat not found",
        ),
    ],
)
def test_platform_errors_are_failures_and_not_retried(
    platform_type, reply, error, platforms, make_channel, sleeps
):
    fake = platforms(platform_type)
    fake.queue(reply)
    delivery = make_channel(platform_type, fake).send_to_community(MESSAGE, now=NOW)
    assert not delivery.ok and error in delivery.error
    assert len(fake.received) == 1 and sleeps == []


def test_rate_limit_answers_in_the_body_are_retried(platforms, make_channel, sleeps):
    fake = platforms("telegram")
    fake.queue(
        Reply(
            429,
            {
                "ok": False,
                "error_code": 429,
                "description": "Too Many Requests: retry after 3",
                "parameters": {"retry_after": 3},
            },
        )
    )
    delivery = make_channel("telegram", fake).send_to_community(MESSAGE, now=NOW)
    assert delivery.ok and delivery.attempts == 2 and sleeps == [3.0]
    assert len(fake.accepted) == 1


def test_a_wrong_signing_secret_is_reported_as_the_platform_says(platforms, make_channel):
    fake = platforms("dingtalk")
    channel = make_channel("dingtalk", fake)
    store = channel.env.secrets
    name = store.name("club", "dingtalk-ch")
    ssm = store._ssm()
    ssm.parameters[name] = ssm.parameters[name].replace("SEC0", "SEC9")
    delivery = channel.send_to_community(MESSAGE, now=NOW)
    assert not delivery.ok and "errcode 310000: sign not match" in delivery.error


def test_a_missing_secret_names_the_parameter_to_create(make_channel):
    delivery = make_channel("slack", None).send_to_community(MESSAGE, now=NOW)
    assert not delivery.ok and delivery.attempts == 0
    assert "/community-autopilot/channels/club/slack-ch" in delivery.error


@pytest.mark.parametrize("platform_type", ["telegram", "slack", "discord"])
def test_direct_messages_where_the_platform_allows_them(platform_type, platforms, make_channel):
    fake = platforms(platform_type)
    address = {"telegram": "4242", "slack": "U024BE7LH", "discord": "80351110224678912"}
    channel = make_channel(platform_type, fake)
    delivery = channel.send_to_member(address[platform_type], MESSAGE, now=NOW)
    assert delivery.ok, delivery.error
    last = fake.accepted[-1].json()
    if platform_type == "telegram":
        assert last["chat_id"] == "4242" and last["chat_id"] != TELEGRAM_CHAT
    elif platform_type == "slack":
        assert last["channel"] == "U024BE7LH" and fake.accepted[-1].path == "/api/chat.postMessage"
    else:
        assert [r.path for r in fake.accepted] == [
            "/api/users/@me/channels",
            "/api/channels/998877/messages",
        ]
        again = channel.send_to_member(address[platform_type], MESSAGE, now=NOW)
        assert again.ok and len(fake.accepted) == 3  # the DM channel is remembered


@pytest.mark.parametrize("platform_type", ["wecom", "dingtalk", "feishu"])
def test_group_robots_cannot_send_direct_messages(platform_type, platforms, make_channel):
    fake = platforms(platform_type)
    delivery = make_channel(platform_type, fake).send_to_member("someone", MESSAGE, now=NOW)
    assert not delivery.ok and "cannot send direct messages" in delivery.error
    assert fake.received == []


def _discord_bot_channel(platforms, make_channel):
    fake = platforms("discord")
    return fake, make_channel("discord", fake, secret={"channel_id": "4242"})


def test_discord_bot_posts_carry_a_nonce_per_part_and_a_lost_answer_posts_once(
    platforms, make_channel
):
    """A post whose answer is lost is sent again with the same nonce: one message."""
    fake, channel = _discord_bot_channel(platforms, make_channel)
    message = Message(
        text="早" * 3000, key="k", community_id="club", idempotency_key="club/morning/2026-11-27"
    )
    DISCORD.lose_next_answers(fake.base)  # Discord creates part 1, the answer never arrives
    delivery = channel.send_to_community(message, now=NOW)
    assert delivery.ok, delivery.error
    assert delivery.parts == 2 and delivery.attempts == 3  # part 1 twice, part 2 once
    created = DISCORD.of(fake.base)
    assert len(created) == 2  # not 3: the second request for part 1 made nothing new
    sent = [r.json() for r in fake.received]
    assert all(p["enforce_nonce"] is True for p in sent)
    nonces = [p["nonce"] for p in sent]
    assert nonces[0] == nonces[1] != nonces[2] and all(len(n) <= 25 for n in nonces)
    assert delivery.message_id == ",".join(m["id"] for m in created)
    assert all(r.path == "/api/channels/4242/messages" for r in fake.received)

    # The container crashed before recording: a rerun (a new container) posts nothing new.
    rerun = make_channel("discord", fake, secret={"channel_id": "4242"})
    again = rerun.send_to_community(message, now=NOW)
    assert again.ok and again.message_id == delivery.message_id
    assert len(DISCORD.of(fake.base)) == 2


def test_discord_nonces_differ_per_occurrence_channel_and_member(platforms, make_channel):
    fake, channel = _discord_bot_channel(platforms, make_channel)
    first = Message(text="早安", key="k", community_id="club", idempotency_key="occ-1")
    second = Message(text="早安", key="k", community_id="club", idempotency_key="occ-2")
    assert channel.send_to_community(first, now=NOW).ok
    assert channel.send_to_community(second, now=NOW).ok  # same text, another occurrence
    for member in ("111", "222"):  # the same occurrence to two members: two DMs
        dm = channel.send_to_member(member, first, now=NOW)
        # Opening the DM channel is a setup request, not a part of the message.
        assert dm.ok and dm.parts == 1 and dm.message_id and "," not in dm.message_id
    assert channel.send_to_member("111", first, now=NOW).ok  # a rerun: nothing new
    assert len(DISCORD.of(fake.base)) == 4
    nonces = [r.json().get("nonce") for r in fake.received if r.path.endswith("/messages")]
    assert len(set(nonces)) == 4


def test_without_a_key_a_lost_answer_is_not_resent(platforms, make_channel):
    """No idempotency key (a manual send), or a webhook (Discord ignores nonces there)."""
    fake, channel = _discord_bot_channel(platforms, make_channel)
    DISCORD.lose_next_answers(fake.base)
    delivery = channel.send_to_community(MESSAGE, now=NOW)
    assert not delivery.ok and "outcome unknown, not retried" in delivery.error
    assert len(fake.received) == 1 and "nonce" not in fake.received[0].json()
    webhook_fake = platforms("discord")
    webhook = make_channel("discord", webhook_fake)
    keyed = Message(text="早安", key="k", community_id="club", idempotency_key="occ-1")
    assert webhook.send_to_community(keyed, now=NOW).ok
    assert "nonce" not in webhook_fake.received[0].json()


FEISHU_APP = {"app_id": FEISHU_APP_ID, "app_secret": FEISHU_APP_SECRET, "chat_id": FEISHU_CHAT}


def test_feishu_app_posts_carry_a_uuid_per_part_and_a_lost_answer_posts_once(
    platforms, make_channel
):
    fake = platforms("feishu")
    app = {**FEISHU_APP, "api_base": fake.base}
    channel = make_channel("feishu", fake, secret=app, msgtype="post")
    message = Message(
        text="早" * 6000, key="k", community_id="club", title="晨读", idempotency_key="occ-9"
    )
    FEISHU.lose_next_answers(fake.base)  # Feishu sends part 1, the answer never arrives
    delivery = channel.send_to_community(message, now=NOW)
    assert delivery.ok, delivery.error
    created = FEISHU.of(fake.base)
    assert delivery.parts == len(created) > 1  # one message per part, none twice
    assert delivery.attempts == 1 + len(created) + 1  # the token, each part, part 1 again
    assert delivery.message_id == ",".join(m["message_id"] for m in created)
    sends = [r.json() for r in fake.received if r.path == "/open-apis/im/v1/messages"]
    uuids = [p["uuid"] for p in sends]
    assert uuids[0] == uuids[1] and len(set(uuids)) == len(created)
    assert all(len(u) <= 50 for u in uuids)
    assert f"晨读 (1/{len(created)})" in sends[0]["content"]  # every part of a post has the title

    # A rerun after a crash (a new container, a new token): nothing new is sent.
    again = make_channel("feishu", fake, secret=app, msgtype="post").send_to_community(
        message, now=NOW
    )
    assert again.ok and again.message_id == delivery.message_id
    assert len(FEISHU.of(fake.base)) == len(created)
    for token in FEISHU.tokens:  # a tenant token is a secret like the SSM values
        assert token not in again.response + delivery.response


def test_feishu_app_token_is_cached_and_renewed_when_revoked(platforms, make_channel):
    fake = platforms("feishu")
    channel = make_channel("feishu", fake, secret={**FEISHU_APP, "api_base": fake.base})
    tokens_before = len(FEISHU.tokens)
    assert channel.send_to_community(MESSAGE, now=NOW).ok
    assert channel.send_to_community(MESSAGE, now=NOW).ok  # no key: sent again, token cached
    assert len(FEISHU.tokens) == tokens_before + 1
    FEISHU.expire_tokens()
    failed = channel.send_to_community(MESSAGE, now=NOW)
    assert not failed.ok and "99991663" in failed.error and failed.attempts == 1
    assert channel.send_to_community(MESSAGE, now=NOW).ok  # a fresh token
    assert len(FEISHU.tokens) == tokens_before + 2
    assert len(FEISHU.of(fake.base)) == 3


def test_feishu_custom_bot_webhook_carries_no_uuid(platforms, make_channel):
    """Custom bots take no idempotency key: the webhook payload is unchanged."""
    fake = platforms("feishu")
    keyed = Message(text="早安", key="k", community_id="club", idempotency_key="occ-1")
    assert make_channel("feishu", fake).send_to_community(keyed, now=NOW).ok
    assert "uuid" not in fake.received[0].json()
