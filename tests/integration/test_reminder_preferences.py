"""Members opt out of (and back into) reminders, per kind: ``PUT /me/preferences``
through the template's gateway and the API function, and the chat keywords
``退订提醒``/``/stop`` and ``开启提醒``/``/remind`` through the webhook function (moto).

Bad input is a 400 naming the field and writes nothing; a member without an
account is a 404 (as for ``GET /me``); the same request twice answers the same and
writes once; the bot answers in the community's language.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from autopilot.webhooks.signatures import sign_generic

from autopilot_cli.metering import RequestCounter

from .api_support import LEDGER_WRITES, T0, Api, api_config, make_api, token
from .test_chat_webhook import (
    BRIDGE_SECRET,
    SLACK_SECRET,
    TELEGRAM_TOKEN,
    now_s,
    post,
    put_secret,
    slack_request,
)

SUNRISE = {"community": "sunrise"}
KINDS = ("not_checked_in", "streak_at_risk", "inactive", "lottery")
ALL_ON = dict.fromkeys(KINDS, True)
ALL_OFF = dict.fromkeys(KINDS, False)
TELEGRAM = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_TOKEN}


@pytest.fixture
def api(stack) -> Api:
    api = make_api(stack)
    for community in ("sunrise", "other"):
        put_secret("telegram", {"signing_secret": TELEGRAM_TOKEN}, community)
    put_secret("slack", {"signing_secret": SLACK_SECRET})
    put_secret("bridge", {"signing_secret": BRIDGE_SECRET})
    return api


def joined(api: Api, member: str = "alice", community: str = "sunrise") -> None:
    """``member`` checks in (and so has an account)."""
    answer = api.call("POST", "/checkins", auth=token(member), body={"community": community})
    assert answer.status == 200, answer.body


def put_preferences(api: Api, body: Any, member: str = "alice") -> Any:
    return api.call("PUT", "/me/preferences", auth=token(member), body=body)


def stored(api: Api, member: str = "alice", community: str = "sunrise") -> tuple[bool, tuple]:
    account = api.stack.app().ledger_store.account(community, member)
    assert account is not None
    return account.reminders_opt_out, account.reminder_opt_outs


def writes(counter: RequestCounter) -> int:
    return sum(counter.count("dynamodb", op) for op in LEDGER_WRITES)


# -- PUT /me/preferences -------------------------------------------------------------


def test_opt_out_of_one_kind_then_of_all_then_back_in(api):
    joined(api)
    me = api.call("GET", "/me", auth=token("alice"), query=SUNRISE).json()
    assert me["profile"]["reminders"] == ALL_ON

    one = put_preferences(api, {**SUNRISE, "reminders": {"lottery": False}})
    assert one.status == 200, one.body
    assert one.json() == {
        "member_id": "alice",
        "community": "sunrise",
        "reminders": {**ALL_ON, "lottery": False},
        "timezone": None,
        "dm_address": None,
    }
    assert list(one.json()["reminders"]) == list(KINDS)  # the kinds' order
    assert stored(api) == (False, ("lottery",))

    every = put_preferences(api, {**SUNRISE, "reminders": False})
    assert every.json()["reminders"] == ALL_OFF
    assert stored(api) == (True, ())
    # Turning kinds off while every kind is off keeps "every kind" (new kinds too).
    still = put_preferences(api, {**SUNRISE, "reminders": {"inactive": False}})
    assert still.json()["reminders"] == ALL_OFF and stored(api) == (True, ())

    # One kind back on: every other current kind stays off, one by one.
    lottery = put_preferences(api, {**SUNRISE, "reminders": {"lottery": True}})
    assert lottery.json()["reminders"] == {**ALL_OFF, "lottery": True}
    assert stored(api) == (False, ("inactive", "not_checked_in", "streak_at_risk"))
    me = api.call("GET", "/me", auth=token("alice"), query=SUNRISE).json()
    assert me["profile"]["reminders"] == {**ALL_OFF, "lottery": True}

    mixed = put_preferences(
        api, {**SUNRISE, "reminders": {"inactive": True, "streak_at_risk": True, "lottery": False}}
    )
    assert mixed.json()["reminders"] == {
        "not_checked_in": False,
        "streak_at_risk": True,
        "inactive": True,
        "lottery": False,
    }
    back = put_preferences(api, {**SUNRISE, "reminders": True})
    assert back.json()["reminders"] == ALL_ON
    assert stored(api) == (False, ())  # both fields cleared
    me = api.call("GET", "/me", auth=token("alice"), query=SUNRISE).json()
    assert me["profile"]["reminders"] == ALL_ON and me["profile"]["reminders_opt_out"] is False


def test_timezone_and_dm_address_are_set_and_cleared(api):
    joined(api)
    body = {**SUNRISE, "timezone": "Europe/Berlin", "dm_address": "5550001"}
    answer = put_preferences(api, body)
    assert answer.status == 200, answer.body
    assert (answer.json()["timezone"], answer.json()["dm_address"]) == ("Europe/Berlin", "5550001")
    assert answer.json()["reminders"] == ALL_ON  # untouched
    account = api.stack.app().ledger_store.account("sunrise", "alice")
    assert (account.timezone, account.dm_address, account.state.balance) == (
        "Europe/Berlin",
        "5550001",
        10,
    )
    cleared = put_preferences(api, {**SUNRISE, "timezone": None, "dm_address": None})
    assert (cleared.json()["timezone"], cleared.json()["dm_address"]) == (None, None)
    account = api.stack.app().ledger_store.account("sunrise", "alice")
    assert (account.timezone, account.dm_address, account.state.balance) == (None, None, 10)


def test_the_same_put_twice_gives_the_same_answer_and_writes_once(api):
    joined(api)
    body = {**SUNRISE, "reminders": {"streak_at_risk": False}, "timezone": "Asia/Tokyo"}
    with RequestCounter() as counter:
        first = put_preferences(api, body)
    assert first.status == 200 and writes(counter) == 1
    # One read and one conditional put (docs/api.md).
    assert (counter.count("dynamodb", "GetItem"), counter.count("dynamodb", "PutItem")) == (1, 1)
    items = api.ledger_items()
    api.stack.clock.advance(timedelta(minutes=5))
    with RequestCounter() as counter:
        second = put_preferences(api, body)
    assert second.status == 200 and second.json() == first.json()
    assert writes(counter) == 0 and api.ledger_items() == items  # not even updated_at
    assert counter.count("dynamodb") == 1, counter.summary()


BAD_BODIES = [
    ({}, "missing required field 'community'"),
    (SUNRISE, "send at least one of reminders, timezone, dm_address"),
    ({**SUNRISE, "remind": False}, "unknown field 'remind'"),
    ({**SUNRISE, "reminders_opt_out": True}, "unknown field 'reminders_opt_out'"),
    ({**SUNRISE, "reminders": {"lotery": False}}, "unknown reminder kind 'lotery'"),
    ({**SUNRISE, "reminders": {"lottery": "false"}}, "reminders.lottery must be a boolean"),
    ({**SUNRISE, "reminders": {"lottery": 0}}, "reminders.lottery must be a boolean"),
    ({**SUNRISE, "reminders": {}}, "reminders must name at least one kind"),
    ({**SUNRISE, "reminders": "off"}, "reminders must be true"),
    ({**SUNRISE, "reminders": None}, "reminders must be true"),
    ({**SUNRISE, "reminders": 0}, "reminders must be true"),
    ({**SUNRISE, "timezone": "America"}, "timezone: unknown time zone 'America'"),
    ({**SUNRISE, "timezone": "Mars/Olympus"}, "timezone: unknown time zone"),
    ({**SUNRISE, "timezone": "../etc/passwd"}, "timezone: unknown time zone"),
    ({**SUNRISE, "timezone": 8}, "timezone must be a string"),
    ({**SUNRISE, "timezone": "A" * 65}, "timezone must be 1-64 characters"),
    ({**SUNRISE, "dm_address": ""}, "dm_address must be 1-200 characters"),
    ({**SUNRISE, "dm_address": "x" * 201}, "dm_address must be 1-200 characters"),
    ({**SUNRISE, "dm_address": 5550001}, "dm_address must be a string"),
    ({**SUNRISE, "dm_address": " 555"}, "dm_address must not start or end with spaces"),
    ({**SUNRISE, "dm_address": "555\n1"}, "dm_address contains a control character"),
    ({**SUNRISE, "dm_address": "555\u00071"}, "dm_address, contains a control character"),
    # One bad field refuses the whole request: the good one is not written either.
    ({**SUNRISE, "reminders": False, "timezone": "America"}, "timezone"),
]


@pytest.mark.parametrize(("body", "message"), BAD_BODIES, ids=[m for _, m in BAD_BODIES])
def test_bad_input_is_a_400_naming_the_field_and_writes_nothing(api, body, message):
    joined(api)
    before = api.ledger_items()
    with RequestCounter() as counter:
        answer = put_preferences(api, body)
    assert answer.status == 400, answer.body
    assert answer.json()["error"] == "BadRequest" and message in answer.json()["message"]
    assert writes(counter) == 0 and api.ledger_items() == before


def test_a_body_that_is_not_an_object_is_a_400(api):
    joined(api)
    before = api.ledger_items()
    for raw in ("[]", "not json", ""):
        answer = put_preferences(api, raw)
        assert answer.status == 400 and answer.json()["error"] == "BadRequest", raw
    assert api.ledger_items() == before


def test_an_unknown_member_is_a_404_and_is_not_registered(api):
    joined(api)
    before = api.ledger_items()
    with RequestCounter() as counter:
        answer = put_preferences(api, {**SUNRISE, "reminders": False}, member="nobody")
    assert answer.status == 404 and answer.json()["error"] == "NotAMember"
    assert writes(counter) == 0 and api.ledger_items() == before
    # As GET /me answers the same member.
    me = api.call("GET", "/me", auth=token("nobody"), query=SUNRISE)
    assert me.status == 404 and me.json()["error"] == "NotAMember"


def test_unknown_or_foreign_community_and_ops_only_tokens_are_refused(api):
    joined(api)
    before = api.ledger_items()
    unknown = put_preferences(api, {"community": "nope", "reminders": False})
    assert unknown.status == 404 and unknown.json()["error"] == "UnknownCommunity"
    pinned = api.call(
        "PUT",
        "/me/preferences",
        auth=token("alice", community="other"),
        body={**SUNRISE, "reminders": False},
    )
    assert pinned.status == 403
    anonymous = api.call("PUT", "/me/preferences", body={**SUNRISE, "reminders": False})
    assert anonymous.status == 401
    assert api.ledger_items() == before


def test_an_opt_out_survives_a_check_in_through_a_warm_container(api):
    joined(api)  # the API container caches alice's account
    assert put_preferences(api, {**SUNRISE, "reminders": {"inactive": False}}).status == 200
    api.stack.clock.set(T0 + timedelta(days=1))
    joined(api)  # written from a fresh read: the version moved on
    assert stored(api) == (False, ("inactive",))
    account = api.stack.app().ledger_store.account("sunrise", "alice")
    assert account.state.streak == 2


# -- chat keywords -------------------------------------------------------------------


def say(
    api: Api, text: str, user: int = 5550001, community: str = "sunrise", message_id: int = 42
) -> dict:
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
    answer = post(api, "telegram", body, TELEGRAM, community=community)
    assert answer.status == 200, answer.body
    assert answer.json()["method"] == "sendMessage"
    return answer.json()


MEMBER = "telegram:5550001"


def test_chat_opt_out_of_all_and_back_in_zh(api):
    say(api, "打卡")
    off = say(api, "退订提醒")
    assert off["text"] == "已退订所有提醒，发送「开启提醒」可恢复。"
    assert off["reply_parameters"] == {"message_id": 42}
    assert stored(api, MEMBER) == (True, ())
    on = say(api, "开启提醒")
    assert on["text"] == "已开启所有提醒，发送「退订提醒」可随时退订。"
    assert stored(api, MEMBER) == (False, ())
    assert say(api, "/stop@AutopilotBot")["text"].startswith("已退订所有提醒")
    assert stored(api, MEMBER) == (True, ())
    assert say(api, "/remind")["text"].startswith("已开启所有提醒")
    assert stored(api, MEMBER) == (False, ())


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("退订提醒 抽奖", "lottery"),
        ("退订提醒抽奖", "lottery"),
        ("退订提醒\u3000断签", "streak_at_risk"),
        ("/stop lottery", "lottery"),
        ("/STOP@AutopilotBot not_checked_in", "not_checked_in"),
        ("/stop not-checked-in", "not_checked_in"),
        (" 退订提醒 inactive ", "inactive"),
    ],
)
def test_chat_opt_out_of_one_kind(api, text, kind):
    say(api, "打卡")
    answer = say(api, text)
    assert answer["text"].startswith("已退订") and "开启提醒" in answer["text"]
    assert stored(api, MEMBER) == (False, (kind,))


def test_chat_opt_back_into_one_kind_says_what_is_still_off(api):
    say(api, "打卡")
    say(api, "退订提醒")
    answer = say(api, "开启提醒 抽奖")
    assert answer["text"] == "已开启抽奖提醒。仍已退订：打卡、断签、回归。"
    assert stored(api, MEMBER) == (False, ("inactive", "not_checked_in", "streak_at_risk"))
    # The API shows the same state to the same member.
    me = api.call("GET", "/me", auth=token(MEMBER), query=SUNRISE).json()
    assert me["profile"]["reminders"] == {**ALL_OFF, "lottery": True}


def test_telegram_start_opts_back_in(api):
    say(api, "打卡")
    say(api, "退订提醒")
    assert say(api, "/start")["text"].startswith("已开启所有提醒")
    assert stored(api, MEMBER) == (False, ())
    # /start with a deep-link payload is not a reminder keyword: the help answer.
    say(api, "退订提醒")
    assert "发送 打卡 / /checkin / checkin 即可打卡" in say(api, "/start ref-7")["text"]
    assert stored(api, MEMBER) == (True, ())


def test_configured_keywords_win_over_the_reminder_keywords(api):
    document = api_config()
    document["communities"][0]["chat_keywords"] = ["打卡", "/start"]
    api.stack.push(document)
    api.stack.runtime.reset_containers()
    answer = say(api, "/start")
    assert answer["text"].startswith("打卡成功")


def test_chat_repeat_answers_the_same_and_writes_nothing(api):
    say(api, "打卡")
    first = say(api, "退订提醒 断签")
    before = api.ledger_items()
    with RequestCounter() as counter:
        again = say(api, "退订提醒 断签", message_id=43)
    assert again["text"] == first["text"]
    assert writes(counter) == 0 and api.ledger_items() == before


def test_chat_unknown_kind_lists_the_kinds_and_writes_nothing(api):
    say(api, "打卡")
    before = api.ledger_items()
    with RequestCounter() as counter:
        zh = say(api, "退订提醒 天气")
        en = say(api, "/remind <!channel>weather", community="other")
    assert zh["text"].startswith("没有「天气」这种提醒。可选：")
    assert "抽奖（lottery）" in zh["text"] and "退订提醒 抽奖" in zh["text"]
    assert en["text"].startswith("There is no '!channelweather' reminder. Kinds: not_checked_in")
    assert "/remind lottery" in en["text"]
    assert counter.count("dynamodb") == 0 and api.ledger_items() == before


def test_chat_opt_out_from_someone_who_never_checked_in(api):
    before = api.ledger_items()
    with RequestCounter() as counter:
        zh = say(api, "退订提醒", user=5559999)
        en = say(api, "/stop", user=5559999, community="other")
    assert zh["text"] == "你还没有加入本社群，还不会收到提醒；发送「打卡」打卡即可加入。"
    assert en["text"].startswith("You are not a member yet")
    assert writes(counter) == 0 and api.ledger_items() == before


def test_chat_answers_in_english_for_an_english_community(api):
    say(api, "checkin", community="other")
    off = say(api, "/stop", community="other")
    assert off["text"] == "You will get no more reminders. Send /remind to turn them back on."
    assert stored(api, MEMBER, "other") == (True, ())
    one = say(api, "/remind lottery", community="other")
    assert one["text"] == (
        "Lottery reminders are on again. Still off: check-in, streak-at-risk, come-back."
    )
    kind = say(api, "/stop streak", community="other")
    assert kind["text"] == (
        "You will get no more streak-at-risk reminders. "
        "Send /remind streak_at_risk to turn them back on."
    )
    assert say(api, "/remind", community="other")["text"] == (
        "Reminders are on again. Send /stop to turn them off."
    )
    assert stored(api, MEMBER, "other") == (False, ())
    # The sunrise account of the same Telegram user is another member's: untouched.
    assert api.stack.app().ledger_store.account("sunrise", MEMBER) is None


def test_slack_command_and_text_and_the_help_mentions_the_keyword(api):
    post(api, "slack", *slack_request(api))  # U1 checks in with /checkin
    answer = post(api, "slack", *slack_request(api, text="lottery", command="/stop"))
    assert answer.status == 200 and answer.json()["response_type"] == "ephemeral"
    assert answer.json()["text"].startswith("已退订抽奖提醒")
    assert stored(api, "slack:U1") == (False, ("lottery",))
    text = post(api, "slack", *slack_request(api, text="开启提醒", command="/autopilot"))
    assert text.json()["text"].startswith("已开启所有提醒")
    assert stored(api, "slack:U1") == (False, ())
    # /start is Telegram's alone: elsewhere it is other text (the help answer).
    help_answer = post(api, "slack", *slack_request(api, text="", command="/start"))
    assert "发送「退订提醒」不再接收提醒" in help_answer.json()["text"]


def test_generic_senders_get_the_structured_preferences(api):
    def bridge(user: str, text: str) -> Any:
        body = json.dumps({"user_id": user, "text": text}, ensure_ascii=False).encode()
        return post(api, "bridge", body, sign_generic(BRIDGE_SECRET, now_s(api), body))

    assert bridge("u-7", "打卡").status == 200
    answer = bridge("u-7", "退订提醒 回归")
    assert answer.status == 200, answer.body
    assert answer.json()["preferences"] == {
        "member_id": "bridge:u-7",
        "community": "sunrise",
        "reminders": {**ALL_ON, "inactive": False},
        "timezone": None,
        "dm_address": None,
    }
    stranger = bridge("u-8", "/stop")
    assert stranger.status == 404 and stranger.json()["preferences"] == {"error": "NotAMember"}
    unknown = bridge("u-7", "/stop x")
    assert unknown.status == 200 and "preferences" not in unknown.json()
