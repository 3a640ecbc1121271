"""Reminders reach members on real chat platforms, end to end on the template's stack.

The dispatcher function's ``reminder`` action selects the members and enqueues
them; the reminder function (the real handler, fed by the queue built from the
template) plans and sends through a chat channel whose secret is an SSM
SecureString under ``ChannelSecretsPrefix``, as in production. Each platform is
the fake server of ``tests/unit/channels/platforms.py`` on 127.0.0.1, which checks
the route, signature and body shape the way the platform documents them. Every
test asserts what the platform received and what ``ReminderTable`` says (the
members' markers and the job's counters), never just that "something was sent".

Members of chat platforms have ids ``<platform>:<user id>`` ("wecom:zhangsan");
the reminder service passes the part after the prefix as the platform user id
when the channel's type equals the prefix.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from autopilot.aws import client
from autopilot.channels.http import HttpClient, RetryPolicy
from autopilot.ledger.store import AccountItem, member_pk
from autopilot.reminders.service import Batch
from autopilot.reminders.store import counter_key

from autopilot_cli.local.runtime import scheduled_event

from ..unit.channels.platforms import (
    DINGTALK_TOKEN,
    DISCORD,
    DISCORD_PATH,
    PLATFORMS,
    SLACK_BOT_TOKEN,
    SLACK_PATH,
    TELEGRAM_CHAT,
    TELEGRAM_TOKEN,
    WECOM_KEY,
    FakePlatform,
    Reply,
)
from .conftest import make_config

# 20:00:05 on Friday 27 November in Shanghai (outside the 00:00-07:00 quiet hours).
AT_20 = datetime(2026, 11, 27, 12, 0, 5, tzinfo=UTC)
TODAY = date(2026, 11, 27)
CHANNEL = "chat"
JOB = "nudge"
GROUP_TEXT = "今天还没打卡哦～"
# Fast retries with recorded sleeps: a permanently failing platform costs milliseconds.
FAST = RetryPolicy(
    max_attempts=4, timeout_s=0.5, base_delay_s=0.01, max_delay_s=0.05, min_attempt_s=0.05
)


def nudge(**params: Any) -> dict[str, Any]:
    """A ``not_checked_in`` reminder at 20:00 on the chat channel (params override)."""
    return {
        "id": JOB,
        "cron": "0 20 * * *",
        "action": "reminder",
        "params": {
            "kind": "not_checked_in",
            "active_days": 7,
            "channel": CHANNEL,
            "template": "{name}，今天还没打卡哦",
            "group_template": "{mentions} " + GROUP_TEXT,
            **params,
        },
    }


# --------------------------------------------------------------------------- helpers
# Copied from test_reminders.py / test_channels_dispatch.py (their helpers are private).


class Sleeps(list[float]):
    """Records backoff sleeps instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def put_secret(stack, channel: str, value: dict[str, str], community: str = "sunrise") -> None:
    prefix = stack.env["CHANNEL_SECRETS_PREFIX"]
    client("ssm", "us-east-1").put_parameter(
        Name=f"{prefix}/{community}/{channel}",
        Value=json.dumps(value),
        Type="SecureString",
        Overwrite=True,
    )


def tick(stack, when: datetime) -> dict[str, Any]:
    """One scheduled invocation of the dispatcher function at ``when``."""
    stack.clock.set(when)
    return stack.runtime.invoke("DispatcherFunction", scheduled_event(when))


def drain(stack) -> list[Any]:
    """Polls of the reminder queue by the reminder function until it is empty."""
    results = []
    while (r := stack.runtime.deliver_sqs("ReminderFunction", "ReminderQueue")) is not None:
        results.append(r)
    return results


def queued(stack) -> list[Batch]:
    """The reminder batches waiting in the queue (received, then made visible again)."""
    sqs = client("sqs", "us-east-1")
    url = stack.runtime.physical_id("ReminderQueue")
    out, handles = [], []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            break
        out += [Batch.parse(m["Body"]) for m in got]
        handles += [m["ReceiptHandle"] for m in got]
    for h in handles:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=h, VisibilityTimeout=0)
    return out


def counters(stack, day: date = TODAY) -> dict[str, int]:
    item = client("dynamodb", "us-east-1").get_item(
        TableName=stack.env["REMINDER_TABLE"],
        Key={"pk": {"S": counter_key("sunrise", day, JOB)}},
    )
    return {k: int(v["N"]) for k, v in item.get("Item", {}).items() if "N" in v}


def marker(stack, member: str, day: date = TODAY) -> dict[str, str]:
    item = client("dynamodb", "us-east-1").get_item(
        TableName=stack.env["REMINDER_TABLE"],
        Key={"pk": {"S": f"rem#sunrise#{day.isoformat()}#{JOB}#{member}"}},
    )
    return {k: next(iter(v.values())) for k, v in item.get("Item", {}).items()}


def outcomes(stack, members: list[tuple[str, str, str | None]]) -> dict[str, tuple[str, str]]:
    """Each member's marker: (status, delivery)."""
    out = {}
    for member_id, _, _ in members:
        got = marker(stack, member_id)
        out[member_id] = (got.get("status", ""), got.get("delivery", ""))
    return out


def _local(day: int, hour: int = 10) -> datetime:
    """``hour``:00 on ``day`` November 2026 in Shanghai, as UTC."""
    return datetime(2026, 11, day, hour - 8, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _output_dir(stack, monkeypatch):
    monkeypatch.setenv("AUTOPILOT_OUTPUT_DIR", str(stack.output_dir))


@pytest.fixture
def fakes() -> Iterator[dict[str, FakePlatform]]:
    started: dict[str, FakePlatform] = {}
    yield started
    for fake in started.values():
        fake.close()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def setup(
    stack,
    fakes: dict[str, FakePlatform],
    sleeps: Sleeps,
    platform_type: str,
    members: list[tuple[str, str, str | None]],
    *,
    job: dict[str, Any] | None = None,
    **options: Any,
) -> FakePlatform:
    """A community with the chat channel ``chat`` on a fake ``platform_type`` and a reminder.

    ``members``: (member id, display name, DM address or None). Each checked in on
    the 24th to the 26th and not today, so the 20:00 reminder selects them all.
    The reminder function's container is made to retry fast (recorded sleeps).
    """
    fake = fakes[platform_type] = FakePlatform(PLATFORMS[platform_type].check)
    put_secret(stack, CHANNEL, PLATFORMS[platform_type].secret(fake.base))
    channels = [
        {"id": "group", "type": "file", "path": "group.jsonl"},
        {"id": CHANNEL, "type": platform_type, **options},
    ]
    stack.push(
        make_config(jobs=[job or nudge()], channels=channels, published_at="2026-11-27T11:00:00Z")
    )
    app = stack.app()
    community = app.config().communities[0]
    for member_id, name, dm_address in members:
        for day in (24, 25, 26):
            app.checkins.check_in(community, member_id, _local(day), display_name=name)
        if dm_address is not None:
            item = AccountItem.get(member_pk("sunrise", member_id), "ACCOUNT")
            item.update(actions=[AccountItem.dm_address.set(dm_address)])
    # The reminder function's own App (built at its cold start): fast retries.
    handler = stack.runtime.load_handler("ReminderFunction")
    function_app = sys.modules[handler.__module__].app
    function_app.channel_env.http_client = HttpClient(FAST, sleep=sleeps, rand=lambda: 1.0)
    return fake


def select_and_send(stack) -> tuple[Batch, ...]:
    """The 20:00 tick (the dispatcher selects), then the reminder function drains the queue.

    Returns the queued batches, as the function received them.
    """
    report = tick(stack, AT_20)
    assert report["counts"]["fired"] == 1, report
    batches = tuple(queued(stack))
    assert drain(stack) == [{"batchItemFailures": []}] * len(batches)
    return batches


def selected_ids(batches: tuple[Batch, ...], prefix: str) -> list[str]:
    """The platform user ids of the selected members, in the order they were queued."""
    return [m.removeprefix(prefix) for b in batches for m, _ in b.recipients]


# --------------------------------------------------------------------------- WeCom


WECOM_MEMBERS = [
    # A DM address, but a group robot cannot send DMs: zhangsan is mentioned too.
    ("wecom:zhangsan", "张三", "zhangsan"),
    ("wecom:lisi", "李四", None),
    ("wecom:wangwu", "王五", None),
]


@pytest.mark.parametrize("msgtype", ["text", "markdown"])
def test_wecom_members_are_mentioned_in_one_group_robot_message(stack, fakes, sleeps, msgtype):
    # The channel's own @ options are for posts: a reminder mentions its members only.
    fake = setup(
        stack,
        fakes,
        sleeps,
        "wecom",
        WECOM_MEMBERS,
        msgtype=msgtype,
        mention_all=msgtype == "text",
        mentions=["boss"],
    )

    batches = select_and_send(stack)

    ids = selected_ids(batches, "wecom:")
    assert sorted(ids) == ["lisi", "wangwu", "zhangsan"]
    (request,) = fake.received
    assert fake.accepted == [request]  # one group message, accepted by the fake robot
    assert request.path == "/cgi-bin/webhook/send" and request.query["key"] == WECOM_KEY
    body = request.json()
    if msgtype == "text":
        assert body["msgtype"] == "text"
        # The selected members, in their order: no "@all", no "boss" from the channel.
        assert body["text"]["mentioned_list"] == ids
        assert "mentioned_mobile_list" not in body["text"]
        # WeCom shows the @names itself: nobody is named in the content.
        assert body["text"]["content"].strip() == GROUP_TEXT
    else:
        content = body["markdown"]["content"]
        assert content == " ".join(f"<@{i}>" for i in ids) + " " + GROUP_TEXT
        assert "<@boss>" not in content
    assert counters(stack) == {"selected": 3, "sent": 3}
    assert outcomes(stack, WECOM_MEMBERS) == {m: ("sent", "group") for m, _, _ in WECOM_MEMBERS}
    got = marker(stack, "wecom:zhangsan")
    assert got["channel_id"] == CHANNEL and got["sent_at"] == "2026-11-27T12:00:05Z"
    assert got["convert_until"] == "2026-11-27T16:00:05Z"  # the default 4 h window


# --------------------------------------------------------------------------- DingTalk


def test_dingtalk_mentions_are_in_at_user_ids_and_in_the_text_of_a_signed_request(
    stack, fakes, sleeps
):
    members = [
        ("dingtalk:manager4220", "经理", None),
        ("dingtalk:user0017", "小李", None),
        ("dingtalk:user0042", "小周", None),
    ]
    fake = setup(stack, fakes, sleeps, "dingtalk", members)

    batches = select_and_send(stack)

    ids = selected_ids(batches, "dingtalk:")
    (request,) = fake.received
    assert fake.accepted == [request]  # the fake recomputed the HMAC: the signature matched
    assert request.path == "/robot/send" and request.query["access_token"] == DINGTALK_TOKEN
    assert request.query["timestamp"].isdigit() and request.query["sign"]
    body = request.json()
    assert body["at"] == {"atUserIds": ids, "atMobiles": [], "isAtAll": False}
    assert body["text"]["content"] == " ".join(f"@{i}" for i in ids) + " " + GROUP_TEXT
    assert counters(stack) == {"selected": 3, "sent": 3}
    assert outcomes(stack, members) == {m: ("sent", "group") for m, _, _ in members}


# --------------------------------------------------------------------------- Telegram


def test_telegram_dms_a_member_with_an_address_and_mentions_the_other_in_the_group(
    stack, fakes, sleeps
):
    members = [
        ("telegram:111111111", "小明", "111111111"),  # a private chat with the bot
        ("telegram:222222222", "小红", None),
    ]
    fake = setup(stack, fakes, sleeps, "telegram", members)

    select_and_send(stack)

    assert len(fake.received) == 2 and fake.accepted == fake.received
    assert {r.path for r in fake.received} == {f"/bot{TELEGRAM_TOKEN}/sendMessage"}
    by_chat = {r.json()["chat_id"]: r.json() for r in fake.received}
    assert set(by_chat) == {"111111111", TELEGRAM_CHAT}
    # The DM: the member's own rendered template, no mention entities.
    direct = by_chat["111111111"]
    assert direct["text"] == "小明，今天还没打卡哦"
    assert "entities" not in direct
    # The group message: 小红 by name, with a text_mention entity over the name.
    group = by_chat[TELEGRAM_CHAT]
    assert group["text"] == "小红 " + GROUP_TEXT
    assert group["entities"] == [
        {"type": "text_mention", "offset": 0, "length": 2, "user": {"id": 222222222}}
    ]
    assert "小明" not in group["text"]  # the DM'd member is not mentioned again
    assert counters(stack) == {"selected": 2, "sent": 2}
    assert outcomes(stack, members) == {
        "telegram:111111111": ("sent", "direct"),
        "telegram:222222222": ("sent", "group"),
    }


def test_telegram_html_mentions_link_the_member(stack, fakes, sleeps):
    members = [("telegram:333333333", "阿强 <b>", None)]
    fake = setup(stack, fakes, sleeps, "telegram", members, parse_mode="HTML")

    select_and_send(stack)

    (request,) = fake.accepted
    body = request.json()
    assert body["parse_mode"] == "HTML" and body["chat_id"] == TELEGRAM_CHAT
    # The name is escaped: it cannot open a tag in the group message.
    assert body["text"] == '<a href="tg://user?id=333333333">阿强 &lt;b&gt;</a> ' + GROUP_TEXT
    assert counters(stack) == {"selected": 1, "sent": 1}


# --------------------------------------------------------------------------- Discord


DISCORD_MEMBERS = [
    (f"discord:{80351110224678912 + n}", name, None)
    for n, name in enumerate(["小明", "小红", "阿强", "小李", "小周"])
]


def test_discord_batches_over_max_mentions_cover_every_member_exactly_once(stack, fakes, sleeps):
    fake = setup(stack, fakes, sleeps, "discord", DISCORD_MEMBERS, job=nudge(max_mentions=2))

    batches = select_and_send(stack)

    ids = selected_ids(batches, "discord:")
    assert len(fake.received) == 3 and fake.accepted == fake.received
    assert len(DISCORD.of(fake.base)) == 3  # three messages created
    covered: list[str] = []
    for request in fake.received:
        assert request.path == DISCORD_PATH and request.query["wait"] == "true"
        body = request.json()
        users = body["allowed_mentions"]["users"]
        assert body["allowed_mentions"] == {"parse": [], "users": users}  # no @everyone
        assert 1 <= len(users) <= 2
        assert body["content"] == " ".join(f"<@{u}>" for u in users) + " " + GROUP_TEXT
        covered += users
    assert covered == ids  # consecutive batches of 2, 2 and 1, nobody twice
    assert sorted(covered) == sorted(m.removeprefix("discord:") for m, _, _ in DISCORD_MEMBERS)
    assert counters(stack) == {"selected": 5, "sent": 5}
    assert outcomes(stack, DISCORD_MEMBERS) == {m: ("sent", "group") for m, _, _ in DISCORD_MEMBERS}


# --------------------------------------------------------------------------- Slack


def test_slack_dms_through_the_bot_token_and_mentions_the_others_by_webhook(stack, fakes, sleeps):
    members = [("slack:U024BE7LH", "Ann", "U024BE7LH"), ("slack:U0G9QF9C6", "Bob", None)]
    fake = setup(stack, fakes, sleeps, "slack", members)

    select_and_send(stack)

    assert len(fake.received) == 2 and fake.accepted == fake.received
    (direct,) = [r for r in fake.received if r.path == "/api/chat.postMessage"]
    assert direct.headers["authorization"] == f"Bearer {SLACK_BOT_TOKEN}"
    assert direct.json()["channel"] == "U024BE7LH"
    assert direct.json()["text"] == "Ann，今天还没打卡哦"
    (group,) = [r for r in fake.received if r.path == SLACK_PATH]
    assert group.json()["text"] == "<@U0G9QF9C6> " + GROUP_TEXT
    assert "authorization" not in group.headers  # the webhook URL is the credential
    assert counters(stack) == {"selected": 2, "sent": 2}
    assert outcomes(stack, members) == {
        "slack:U024BE7LH": ("sent", "direct"),
        "slack:U0G9QF9C6": ("sent", "group"),
    }


# --------------------------------------------------------------------------- failures


FAILURES = [
    # WeCom: HTTP 200 with an errcode is a permanent failure: one request.
    (
        "wecom",
        [Reply(200, {"errcode": 93000, "errmsg": "invalid webhook url"})],
        1,
        "errcode 93000",
    ),
    # Telegram: a 500 that never stops is retried within the policy, then given up.
    (
        "telegram",
        [Reply(500, {"ok": False, "error_code": 500, "description": "Internal Server Error"})] * 10,
        FAST.max_attempts,
        "HTTP 500",
    ),
]


@pytest.mark.parametrize(
    ("platform_type", "replies", "requests", "error"),
    FAILURES,
    ids=["wecom-errcode", "telegram-500"],
)
def test_a_failing_platform_marks_the_members_failed_and_a_redelivery_sends_nothing(
    stack, fakes, sleeps, platform_type, replies, requests, error
):
    numeric = platform_type == "telegram"  # Telegram mentions need numeric ids
    members = [
        (f"{platform_type}:{4000 + n if numeric else f'user{n}'}", f"成员{n}", None)
        for n in range(3)
    ]
    fake = setup(stack, fakes, sleeps, platform_type, members)
    fake.queue(*replies)

    (batch,) = select_and_send(stack)

    assert len(fake.received) == requests  # one group message, its attempts
    assert fake.accepted == []
    assert len(sleeps) == requests - 1
    assert counters(stack) == {"selected": 3, "failed": 3}
    assert outcomes(stack, members) == {m: ("failed", "group") for m, _, _ in members}
    for member_id, _, _ in members:
        got = marker(stack, member_id)
        assert error in got["error"], got  # the platform's complaint, kept for ops
        assert WECOM_KEY not in got["error"] and TELEGRAM_TOKEN not in got["error"]
        assert "sent_at" not in got and "convert_until" not in got
    # SQS delivers the same message again: the markers say it was handled.
    event = stack.runtime.sqs_event(
        [{"body": json.dumps(batch.to_json()), "messageId": "again"}], queue_id="ReminderQueue"
    )
    assert stack.runtime.invoke("ReminderFunction", event) == {"batchItemFailures": []}
    # And a duplicated tick of the occurrence selects nobody.
    tick(stack, AT_20 + timedelta(seconds=20))
    assert drain(stack) == []
    assert len(fake.received) == requests  # nothing more sent: at most once
    assert counters(stack) == {"selected": 3, "failed": 3}
    assert outcomes(stack, members) == {m: ("failed", "group") for m, _, _ in members}
