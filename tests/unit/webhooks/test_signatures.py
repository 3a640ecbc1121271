"""Signature schemes against the platforms' documented examples and their edge cases."""

from __future__ import annotations

import pytest
from autopilot.webhooks.service import ChatMessage, is_keyword, normalize
from autopilot.webhooks.signatures import (
    InvalidSignature,
    generic_signature,
    sign_generic,
    slack_signature,
    verify_generic,
    verify_slack,
    verify_telegram,
)

# Slack's documentation example ("Verifying requests from Slack").
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_TS = "1531420618"
SLACK_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
    b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
    b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands"
    b"%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121"
    b".803a0bc887a14d10d2c447fce8b6703c"
)
SLACK_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
NOW = 1531420618 + 10


def test_slack_documentation_example():
    assert slack_signature(SLACK_SECRET, SLACK_TS, SLACK_BODY) == SLACK_SIGNATURE
    verify_slack([SLACK_SECRET], SLACK_TS, SLACK_SIGNATURE, SLACK_BODY, NOW)


def test_slack_accepts_any_of_several_secrets():
    verify_slack(["new-secret", SLACK_SECRET], SLACK_TS, SLACK_SIGNATURE, SLACK_BODY, NOW)


@pytest.mark.parametrize(
    ("secrets", "ts", "signature", "body", "now", "reason"),
    [
        ([SLACK_SECRET], SLACK_TS, SLACK_SIGNATURE, SLACK_BODY, 1531420618 + 301, "timestamp"),
        ([SLACK_SECRET], SLACK_TS, SLACK_SIGNATURE, SLACK_BODY, 1531420618 - 301, "timestamp"),
        ([SLACK_SECRET], SLACK_TS, SLACK_SIGNATURE, SLACK_BODY + b"x", NOW, "match"),
        ([SLACK_SECRET], "1531420619", SLACK_SIGNATURE, SLACK_BODY, NOW, "match"),
        (["other"], SLACK_TS, SLACK_SIGNATURE, SLACK_BODY, NOW, "match"),
        ([], SLACK_TS, SLACK_SIGNATURE, SLACK_BODY, NOW, "configured"),
        ([SLACK_SECRET], None, SLACK_SIGNATURE, SLACK_BODY, NOW, "timestamp"),
        ([SLACK_SECRET], "15e8", SLACK_SIGNATURE, SLACK_BODY, NOW, "timestamp"),
        ([SLACK_SECRET], SLACK_TS, None, SLACK_BODY, NOW, "X-Slack-Signature"),
        ([SLACK_SECRET], SLACK_TS, "v1=" + SLACK_SIGNATURE[3:], SLACK_BODY, NOW, "malformed"),
        ([SLACK_SECRET], SLACK_TS, SLACK_SIGNATURE.upper(), SLACK_BODY, NOW, "malformed"),
    ],
)
def test_slack_refusals(secrets, ts, signature, body, now, reason):
    with pytest.raises(InvalidSignature, match=reason):
        verify_slack(secrets, ts, signature, body, now)


def test_slack_window_edges_are_inclusive():
    verify_slack([SLACK_SECRET], SLACK_TS, SLACK_SIGNATURE, SLACK_BODY, 1531420618 + 300)
    verify_slack([SLACK_SECRET], SLACK_TS, SLACK_SIGNATURE, SLACK_BODY, 1531420618 - 300)


def test_telegram_secret_token():
    verify_telegram(["old", "tok-1"], "tok-1")
    for presented in (None, "", "tok-2", "tok-1 ", "ток"):
        with pytest.raises(InvalidSignature):
            verify_telegram(["tok-1"], presented)
    with pytest.raises(InvalidSignature, match="configured"):
        verify_telegram([], "tok-1")


def test_generic_scheme_is_hmac_of_timestamp_dot_body():
    import hashlib
    import hmac

    body, ts = b'{"user_id":"u1","text":"checkin"}', "1700000000"
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert generic_signature("s3cret", ts, body) == expected
    headers = sign_generic("s3cret", ts, body)
    assert headers == {"X-Autopilot-Timestamp": ts, "X-Autopilot-Signature": f"v1={expected}"}
    verify_generic(["s3cret"], ts, headers["X-Autopilot-Signature"], body, 1700000000)
    # Several v1 values (rotation), in any order, spaces tolerated; other schemes ignored.
    verify_generic(["s3cret"], ts, f"v0=abc, v1={'f' * 64}, v1={expected}", body, 1700000000)
    verify_generic(["new", "s3cret"], ts, f"v1={expected.upper()}", body, 1700000000)
    for header in (None, "", f"v0={expected}", f"v1={expected[:-1]}", "garbage"):
        with pytest.raises(InvalidSignature):
            verify_generic(["s3cret"], ts, header, body, 1700000000)
    with pytest.raises(InvalidSignature, match="timestamp"):
        verify_generic(["s3cret"], ts, f"v1={expected}", body, 1700000301)


def test_keywords_match_whole_messages_case_and_bot_suffix_insensitively():
    keywords = ("打卡", "/checkin", "CheckIn")
    assert normalize(" /CheckIn@MyBot ") == "/checkin"
    for text in ("打卡", " 打卡 ", "/checkin", "/checkin@AutopilotBot", "checkin", "CHECKIN"):
        assert is_keyword(ChatMessage("u", None, (text,)), keywords), text
    for text in ("打卡了", "please checkin", "", "/checkin now"):
        assert not is_keyword(ChatMessage("u", None, (text,)), keywords), text
    assert is_keyword(ChatMessage("u", None, ("", "/checkin")), keywords)  # Slack command


def test_webhook_secrets_rotation_keys_and_negative_cache():
    from autopilot.errors import ChannelError
    from autopilot.secrets import ChannelSecret
    from autopilot.webhooks.secrets import WebhookSecrets, WebhookUnavailable

    calls: list[str] = []
    clock = [0.0]

    class Store:
        def get(self, community_id: str, channel_id: str) -> ChannelSecret:
            calls.append(channel_id)
            if channel_id == "webhooks/slack":
                return ChannelSecret(
                    "p",
                    {
                        "signing_secret": "a",
                        "signing_secret_next": "b",
                        "bot_token": "not-a-signing-secret",
                    },
                )
            if channel_id == "webhooks/flaky":
                raise ChannelError("throttled")
            raise ChannelError("missing", permanent=True)

    secrets = WebhookSecrets(Store(), monotonic=lambda: clock[0])  # type: ignore[arg-type]
    assert secrets("c", "slack") == ["a", "b"]
    assert secrets("c", "nope") == [] and secrets("c", "nope") == []
    assert calls.count("webhooks/nope") == 1  # "not configured" is remembered...
    clock[0] += 61
    assert secrets("c", "nope") == [] and calls.count("webhooks/nope") == 2  # ...for a minute
    with pytest.raises(WebhookUnavailable):
        secrets("c", "flaky")
