"""Chat-bot check-ins through ``POST /webhooks/{platform}`` on moto.

Signed requests check in once; replays inside the window answer the first result
and credit nothing; stale timestamps and bad signatures get 401; other text gets a
help answer and writes nothing. Secrets come from SSM as deployed.
"""

from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from autopilot.aws import client
from autopilot.webhooks.signatures import sign_generic, slack_signature

from autopilot_cli.metering import RequestCounter

from .api_support import LEDGER_WRITES, Api, make_api, token
from .test_api_handler import granted_actions, used_actions

PREFIX = "/community-autopilot/channels"
SLACK_SECRET, SLACK_OLD = "slack-signing-secret-new", "slack-signing-secret-old"
TELEGRAM_TOKEN = "telegram-secret-token-1"
BRIDGE_SECRET = "bridge-secret-0123456789"
SUNRISE = {"community": "sunrise"}


def put_secret(platform: str, values: dict[str, str], community: str = "sunrise") -> None:
    client("ssm", "us-east-1").put_parameter(
        Name=f"{PREFIX}/{community}/webhooks/{platform}",
        Value=json.dumps(values),
        Type="SecureString",
        Overwrite=True,
    )


@pytest.fixture
def api(stack) -> Api:
    api = make_api(stack)
    put_secret("slack", {"signing_secret": SLACK_SECRET, "signing_secret_previous": SLACK_OLD})
    put_secret("telegram", {"signing_secret": TELEGRAM_TOKEN})
    put_secret("bridge", {"signing_secret": BRIDGE_SECRET})
    return api


def now_s(api: Api) -> str:
    return str(int(api.stack.clock.now().timestamp()))


def slack_request(
    api: Api,
    text: str = "",
    command: str = "/checkin",
    user: str = "U1",
    secret: str = SLACK_SECRET,
    timestamp: str | None = None,
) -> tuple[bytes, dict]:
    body = urlencode(
        {
            "token": "x",
            "team_id": "T1",
            "user_id": user,
            "user_name": "alice",
            "command": command,
            "text": text,
            "response_url": "https://hooks.slack.com/x",
        }
    ).encode()
    ts = timestamp or now_s(api)
    return body, {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": slack_signature(secret, ts, body),
    }


def post(api: Api, platform: str, body: bytes, headers: dict, community: str = "sunrise"):
    return api.call(
        "POST", f"/webhooks/{platform}", body=body, headers=headers, query={"community": community}
    )


def balance(api: Api, member: str) -> int | None:
    account = api.stack.app().ledger_store.account("sunrise", member)
    return None if account is None else account.state.balance


def test_slack_check_in_credits_once_and_replays_answer_the_first_result(api):
    body, headers = slack_request(api)
    first = post(api, "slack", body, headers)
    assert first.status == 200, first.body
    assert first.json()["response_type"] == "ephemeral"
    assert "打卡成功" in first.json()["text"] and "+10" in first.json()["text"]
    assert balance(api, "slack:U1") == 10
    assert api.stack.app().ledger_store.account("sunrise", "slack:U1").display_name == "alice"

    api.stack.clock.advance(timedelta(seconds=200))  # still inside the 300 s window
    replay = post(api, "slack", body, headers)
    assert replay.status == 200 and "已经打过卡" in replay.json()["text"]
    assert "连续 1 天" in replay.json()["text"] and balance(api, "slack:U1") == 10

    api.stack.clock.advance(timedelta(seconds=101))  # now 301 s old
    stale = post(api, "slack", body, headers)
    assert stale.status == 401 and stale.json()["error"] == "Unauthorized"
    assert balance(api, "slack:U1") == 10


def test_slack_keyword_in_text_and_rotated_secret(api):
    body, headers = slack_request(api, text="打卡", command="/autopilot", secret=SLACK_OLD)
    answer = post(api, "slack", body, headers)
    assert answer.status == 200 and "打卡成功" in answer.json()["text"]


def test_slack_bad_or_missing_signature_is_401(api):
    body, headers = slack_request(api, secret="not-the-secret")
    assert post(api, "slack", body, headers).status == 401
    body, headers = slack_request(api)
    tampered = body.replace(b"U1", b"U2")
    assert post(api, "slack", tampered, headers).status == 401
    del headers["X-Slack-Signature"]
    assert post(api, "slack", body, headers).status == 401
    future, headers = slack_request(api, timestamp=str(int(now_s(api)) + 301))
    assert post(api, "slack", future, headers).status == 401
    assert balance(api, "slack:U1") is None and balance(api, "slack:U2") is None


def test_other_text_gets_help_and_writes_nothing(api):
    before = api.ledger_items()
    with RequestCounter() as counter:
        body, headers = slack_request(api, text="hello", command="/autopilot")
        answer = post(api, "slack", body, headers)
        update = {
            "update_id": 1,
            "message": {
                "message_id": 3,
                "from": {"id": 9},
                "chat": {"id": 9},
                "text": "good morning",
            },
        }
        telegram = post(
            api,
            "telegram",
            json.dumps(update).encode(),
            {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_TOKEN},
        )
    assert answer.status == 200 and "打卡" in answer.json()["text"]
    assert telegram.status == 200 and telegram.json()["method"] == "sendMessage"
    assert sum(counter.count("dynamodb", op) for op in LEDGER_WRITES) == 0
    assert counter.count("dynamodb") == 0
    assert api.ledger_items() == before


def telegram_update(text: str = "/checkin@AutopilotBot", user: int = 5550001) -> bytes:
    return json.dumps(
        {
            "update_id": 7,
            "message": {
                "message_id": 42,
                "date": 0,
                "text": text,
                "from": {"id": user, "is_bot": False, "first_name": "小明", "last_name": "王"},
                "chat": {"id": -1001, "type": "supergroup"},
            },
        },
        ensure_ascii=False,
    ).encode()


def test_telegram_check_in_answers_with_a_send_message_reply(api):
    headers = {
        "Content-Type": "application/json",
        "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_TOKEN,
    }
    answer = post(api, "telegram", telegram_update(), headers)
    assert answer.status == 200
    reply = answer.json()
    assert reply["method"] == "sendMessage" and reply["chat_id"] == -1001
    assert reply["reply_parameters"] == {"message_id": 42} and "打卡成功" in reply["text"]
    account = api.stack.app().ledger_store.account("sunrise", "telegram:5550001")
    assert (account.state.balance, account.display_name) == (10, "小明 王")

    again = post(api, "telegram", telegram_update(), headers)  # Telegram redelivers
    assert again.status == 200 and "已经打过卡" in again.json()["text"]
    assert balance(api, "telegram:5550001") == 10

    wrong = post(api, "telegram", telegram_update(), {"X-Telegram-Bot-Api-Secret-Token": "no"})
    missing = post(api, "telegram", telegram_update(), {})
    assert (wrong.status, missing.status) == (401, 401)


def test_telegram_non_message_updates_are_acknowledged(api):
    headers = {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_TOKEN}
    edited = json.dumps({"update_id": 8, "edited_message": {"text": "打卡"}}).encode()
    answer = post(api, "telegram", edited, headers)
    assert answer.status == 200 and answer.body == b""


def test_generic_hmac_scheme_with_rotation_window_and_strict_body(api):
    body = json.dumps({"user_id": "u-7", "display_name": "Dana", "text": "checkin"}).encode()
    ts = now_s(api)
    signed = sign_generic(BRIDGE_SECRET, ts, body)
    # A sender rotating its secret sends one v1 per secret; one match is enough.
    signed["X-Autopilot-Signature"] = "v1=" + "0" * 64 + "," + signed["X-Autopilot-Signature"]
    answer = post(api, "bridge", body, signed)
    assert answer.status == 200, answer.body
    assert "Checked in" not in answer.json()["text"]  # sunrise speaks Chinese
    assert answer.json()["checkin"]["member"] == "bridge:u-7"
    assert balance(api, "bridge:u-7") == 10

    unsigned = post(api, "bridge", body, {"X-Autopilot-Timestamp": ts})
    wrong = post(api, "bridge", body, sign_generic("guess", ts, body))
    old_ts = str(int(ts) - 301)
    stale = post(api, "bridge", body, sign_generic(BRIDGE_SECRET, old_ts, body))
    assert (unsigned.status, wrong.status, stale.status) == (401, 401, 401)

    extra = json.dumps({"user_id": "u-8", "text": "checkin", "member": "x"}).encode()
    refused = post(api, "bridge", extra, sign_generic(BRIDGE_SECRET, ts, extra))
    assert refused.status == 400 and "unknown field 'member'" in refused.json()["message"]
    assert balance(api, "bridge:u-8") is None


def test_unknown_community_platform_or_unconfigured_secret(api):
    body, headers = slack_request(api)
    assert post(api, "slack", body, headers, community="nope").status == 404
    no_community = api.call("POST", "/webhooks/slack", body=body, headers=headers)
    assert no_community.status == 400 and "'community'" in no_community.json()["message"]
    # No secret for this community/platform: nothing can verify it.
    assert post(api, "discord", body, headers).status == 401
    assert post(api, "Bad_Platform", body, headers).status == 404


def test_webhook_check_in_request_counts(api):
    body, headers = slack_request(api)
    post(api, "slack", *slack_request(api, text="hi", command="/x"))  # warm: config, secret
    with RequestCounter() as counter:
        assert post(api, "slack", body, headers).status == 200
    assert counter.count("dynamodb") == 2 and counter.count("ssm") == 0, counter.summary()
    api.stack.clock.set(api.stack.clock.now() + timedelta(days=1))
    body, headers = slack_request(api)
    with RequestCounter() as counter:
        assert post(api, "slack", body, headers).status == 200
    assert counter.count("dynamodb") == 1, counter.summary()


def test_handler_answers_the_sample_event(api, repo_root):
    put_secret("telegram", {"signing_secret": "sample-telegram-secret-token"})
    event = json.loads((repo_root / "events" / "ChatWebhookFunction.json").read_text("utf-8"))
    event["queryStringParameters"] = SUNRISE  # the sample names the example config's community
    answer = api.stack.runtime.invoke("ChatWebhookFunction", event)
    assert answer["statusCode"] == 200
    assert json.loads(answer["body"])["method"] == "sendMessage"


def test_every_aws_call_of_the_webhook_is_granted_and_every_grant_is_used(api, repo_root):
    with RequestCounter() as counter:
        post(api, "slack", *slack_request(api))
        post(api, "slack", *slack_request(api))
        post(
            api, "telegram", telegram_update(), {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_TOKEN}
        )
        counter.stop()
        api.stack.push(b"{broken")
        counter.start()
        api.stack.runtime.reset_containers()
        api.stack.clock.advance(timedelta(days=1))
        assert post(api, "slack", *slack_request(api)).status == 200
        # A member whose own zone puts the check-in on another day than the
        # community's: a repeat in a cold container reads that day's marker alone.
        counter.stop()
        ops = token("olga", "ops")
        body = {"community": "sunrise", "timezone": "Etc/GMT+12"}
        assert api.call("PUT", "/members/slack:U9", auth=ops, body=body).status == 200
        counter.start()
        assert post(api, "slack", *slack_request(api, user="U9")).status == 200
        api.stack.runtime.reset_containers()
        repeat = post(api, "slack", *slack_request(api, user="U9"))
        assert repeat.status == 200 and "已经打过卡" in repeat.json()["text"]
    used, granted = used_actions(counter), granted_actions(repo_root, "ChatWebhookFunction")
    assert used <= granted, f"called but not granted: {sorted(used - granted)}"
    assert granted <= used, f"granted but never needed: {sorted(granted - used)}"


@pytest.mark.parametrize("platform", ["slack", "bridge"])
def test_a_correctly_signed_but_stale_first_request_is_401_and_writes_nothing(api, platform):
    # Signed with the right secret, never seen before, but 301 s old: refused before
    # the body is read, so not even the member's account is created.
    before = api.ledger_items()
    old_ts = str(int(now_s(api)) - 301)
    if platform == "slack":
        body, headers = slack_request(api, user="U9", timestamp=old_ts)
    else:
        body = json.dumps({"user_id": "u-9", "text": "checkin"}).encode()
        headers = sign_generic(BRIDGE_SECRET, old_ts, body)
    answer = post(api, platform, body, headers)
    assert answer.status == 401 and answer.json()["error"] == "Unauthorized"
    assert api.ledger_items() == before
    # The same request signed now is accepted: only the timestamp was wrong.
    fresh_ts = now_s(api)
    if platform == "slack":
        body, headers = slack_request(api, user="U9", timestamp=fresh_ts)
    else:
        headers = sign_generic(BRIDGE_SECRET, fresh_ts, body)
    assert post(api, platform, body, headers).status == 200
    assert api.ledger_items() != before
