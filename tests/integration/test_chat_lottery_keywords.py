"""Lottery keywords in chat: ``抽奖`` enters the open draw, ``领奖`` claims a prize (moto).

The bot answers in the community's language: entered (tickets, cost), already
entered, not eligible (the reasons), not open; claimed or nothing to claim. A
refused entry writes nothing; a redelivered message enters once.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from autopilot.webhooks.signatures import sign_generic

from autopilot_cli.metering import RequestCounter

from .api_support import LEDGER_WRITES, Api
from .lottery_support import CLOSES, DRAW_ID, DRAWS, OPENS
from .test_chat_webhook import BRIDGE_SECRET, TELEGRAM_TOKEN, post, put_secret
from .test_lottery_api import COST, lottery_items, make_api, step
from .test_lottery_api import lottery_config as api_lottery_config

TELEGRAM = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_TOKEN}


@pytest.fixture
def api(stack) -> Api:
    api = make_api(stack)
    api.stack.push(api_lottery_config())
    put_secret("telegram", {"signing_secret": TELEGRAM_TOKEN})
    put_secret("bridge", {"signing_secret": BRIDGE_SECRET})
    return api


def say(api: Api, text: str, user: int = 5550001, message_id: int = 42) -> dict:
    """A Telegram message from ``user``; the bot's sendMessage answer."""
    body = json.dumps(
        {
            "update_id": message_id,
            "message": {
                "message_id": message_id,
                "text": text,
                "from": {"id": user, "first_name": "小明"},
                "chat": {"id": -1001, "type": "supergroup"},
            },
        },
        ensure_ascii=False,
    ).encode()
    answer = post(api, "telegram", body, TELEGRAM)
    assert answer.status == 200, answer.body
    return answer.json()


def balance(api: Api, member: str) -> int | None:
    account = api.stack.app().ledger_store.account("sunrise", member)
    return None if account is None else account.state.balance


def opened(api: Api, *users: int) -> None:
    """The users check in before the opening and again in the window (20 points)."""
    for user in users:
        say(api, "打卡", user)
    step(api, "open", OPENS)
    api.stack.clock.set(OPENS + timedelta(hours=10))
    for user in users:
        say(api, "打卡", user, message_id=43)


def test_entry_keyword_enters_once_and_says_so(api):
    assert "现在不接受报名" in say(api, "抽奖")["text"]  # not opened yet
    opened(api, 5550001)
    answer = say(api, "抽奖", message_id=50)
    assert answer["method"] == "sendMessage" and answer["reply_parameters"] == {"message_id": 50}
    assert answer["text"].startswith("已参加「周五抽奖」（1 张券，权重 1）。")
    assert f"花费 {COST} 积分" in answer["text"]
    assert balance(api, "telegram:5550001") == 20 - COST

    again = say(api, "抽奖", message_id=50)  # Telegram redelivers the same update
    assert again["text"].startswith("你已经参加过「周五抽奖」")
    other = say(api, " 抽奖 ", message_id=51)  # another message: still one entry
    assert other["text"].startswith("你已经参加过")
    assert balance(api, "telegram:5550001") == 20 - COST
    status = api.stack.app().lotteries.status(
        api.stack.app().config().community("sunrise"), "weekly", "telegram:5550001"
    )
    assert status["draw_id"] == DRAW_ID and status["my_entry"]["cost_paid"] == COST


def test_not_eligible_answer_gives_the_reasons_and_writes_nothing(api):
    step(api, "open", OPENS)
    api.stack.clock.set(OPENS + timedelta(hours=10))
    say(api, "打卡", 5550002)  # joins after the opening
    ledger_before, lottery_before = api.ledger_items(), lottery_items(api)
    with RequestCounter() as counter:
        answer = say(api, "抽奖", 5550002, message_id=60)
    assert answer["text"].startswith("暂不符合「周五抽奖」的参加条件：")
    assert "joined" in answer["text"]
    assert sum(counter.count("dynamodb", op) for op in LEDGER_WRITES) == 0
    assert api.ledger_items() == ledger_before and lottery_items(api) == lottery_before


def test_claim_keyword_claims_the_prize_once(api):
    opened(api, 5550001, 5550003)
    assert say(api, "抽奖", 5550001, message_id=70)["text"].startswith("已参加")
    assert say(api, "抽奖", 5550003, message_id=71)["text"].startswith("已参加")
    nothing = say(api, "领奖", 5550001, message_id=72)  # not drawn yet
    assert "没有可领取的奖品" in nothing["text"]
    step(api, "close", CLOSES)
    step(api, "draw", DRAWS)
    api.stack.clock.set(DRAWS + timedelta(hours=1))
    before = balance(api, "telegram:5550001")
    claimed = say(api, "领奖", 5550001, message_id=73)
    assert claimed["text"].startswith("领奖成功："), claimed
    won = balance(api, "telegram:5550001") - before
    assert won in (200, 50)
    assert say(api, "领奖", 5550001, message_id=74)["text"].startswith("领奖成功：")
    assert balance(api, "telegram:5550001") - before == won
    assert "没有可领取的奖品" in say(api, "领奖", 5559999, message_id=75)["text"]


def test_generic_senders_get_the_structured_entry_and_help_names_the_lottery(api):
    opened(api, 5550001)
    ts = str(int(api.stack.clock.now().timestamp()))
    body = json.dumps({"user_id": "u-1", "text": "抽奖"}, ensure_ascii=False).encode()
    answer = post(api, "bridge", body, sign_generic(BRIDGE_SECRET, ts, body))
    # bridge:u-1 has never checked in: not a member, told so (a 404 with the reason).
    assert answer.status == 404 and answer.json()["lottery"]["error"] == "NotAMember"

    checkin = json.dumps({"user_id": "u-1", "text": "打卡"}).encode()
    assert post(api, "bridge", checkin, sign_generic(BRIDGE_SECRET, ts, checkin)).status == 200
    answer = post(api, "bridge", body, sign_generic(BRIDGE_SECRET, ts, body))
    # Joined after the opening: refused with the reasons, in the structured part too.
    assert answer.status == 403
    assert answer.json()["lottery"]["error"] == "NotEligible"
    assert answer.json()["lottery"]["reasons"]

    help_text = say(api, "你好", 5550001, message_id=80)["text"]
    assert "发送 抽奖 参加「周五抽奖」" in help_text


def test_generic_entry_document(api):
    # bridge:u-2 joins before the opening and checks in inside the window.
    ts = str(int(api.stack.clock.now().timestamp()))
    checkin = json.dumps({"user_id": "u-2", "text": "打卡"}).encode()
    assert post(api, "bridge", checkin, sign_generic(BRIDGE_SECRET, ts, checkin)).status == 200
    step(api, "open", OPENS)
    api.stack.clock.set(OPENS + timedelta(hours=10))
    ts = str(int(api.stack.clock.now().timestamp()))
    assert post(api, "bridge", checkin, sign_generic(BRIDGE_SECRET, ts, checkin)).status == 200
    body = json.dumps({"user_id": "u-2", "text": "抽奖"}, ensure_ascii=False).encode()
    answer = post(api, "bridge", body, sign_generic(BRIDGE_SECRET, ts, body))
    assert answer.status == 200, answer.body
    entry = answer.json()["lottery"]
    assert entry["draw_id"] == DRAW_ID and entry["member"] == "bridge:u-2"
    assert entry["cost_points"] == COST and entry["repeat"] is False


def test_every_aws_call_of_a_chat_entry_and_claim_is_granted(api, repo_root):
    from .test_api_handler import granted_actions, used_actions

    opened(api, 5550001)
    with RequestCounter() as counter:
        api.stack.runtime.reset_containers()  # a cold container: nothing cached
        assert say(api, "抽奖", message_id=90)["text"].startswith("已参加")
    step(api, "close", CLOSES)
    step(api, "draw", DRAWS)
    api.stack.clock.set(DRAWS + timedelta(hours=1))
    with RequestCounter() as claims:
        api.stack.runtime.reset_containers()
        assert say(api, "领奖", message_id=91)["text"].startswith("领奖成功")
    used = used_actions(counter) | used_actions(claims)
    granted = granted_actions(repo_root, "ChatWebhookFunction")
    assert used <= granted, f"called but not granted: {sorted(used - granted)}"
