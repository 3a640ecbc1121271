"""Fake chat platforms: a real HTTP server on 127.0.0.1 that plays WeCom, DingTalk,
Feishu, Slack, Discord or Telegram.

Each platform checks what it receives the way the real one documents it (URL,
payload shape, size limit, signature — computed here independently of the code
under test) and answers like it. Tests queue special answers (429 with
Retry-After, 500, errcode failures, slow answers, dropped connections) with
:meth:`FakePlatform.queue`; every request is recorded.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Reply:
    """An answer: status, body (dict → JSON), headers; or a slow answer, or a dropped one."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    drop: bool = False


@dataclass
class Received:
    """One request as the platform saw it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Check = Callable[[Received], Reply]

# The platforms' own clock, for their signature-freshness checks. Deliberately the
# wall clock, not autopilot.clock: a real platform compares a signed timestamp with
# real time, so the channels sign with the wall clock (their ``wall=time.time``) even
# when the dispatcher runs a simulated week in 2027. Only the difference between the
# two readings matters (within an hour), never the date, so this holds at any date
# and under `make test-moved-clock`, where libfaketime moves both readings alike.
platform_wall: Callable[[], float] = time.time


class FakePlatform:
    """The server. ``check`` answers normal requests; queued replies go first."""

    def __init__(self, check: Check):
        self.check = check
        self.received: list[Received] = []
        self.accepted: list[Received] = []  # requests answered with success
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        platform = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                parts = urlsplit(self.path)
                request = Received(
                    "POST",
                    parts.path,
                    {k: v[0] for k, v in parse_qs(parts.query).items()},
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                with platform._lock:
                    platform.received.append(request)
                    queued = platform._queue.popleft() if platform._queue else None
                reply = queued or platform.check(request)
                if reply.drop:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                if queued is None and 200 <= reply.status < 300 and _accepted(reply):
                    with platform._lock:
                        platform.accepted.append(request)
                if isinstance(reply.body, dict | list):
                    data = json.dumps(reply.body).encode()
                    content_type = "application/json"
                else:
                    data = str(reply.body or "").encode()
                    content_type = "text/plain"
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): what a real server sees too

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def queue(self, *replies: Reply) -> None:
        """Answer the next requests with these, in order, before the normal check."""
        with self._lock:
            self._queue.extend(replies)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _accepted(reply: Reply) -> bool:
    body = reply.body
    if isinstance(body, dict):
        if "errcode" in body:
            return body["errcode"] == 0
        if "code" in body:
            return body["code"] == 0
        if "ok" in body:
            return body["ok"] is True
    return True


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


# --------------------------------------------------------------------------- platforms

WECOM_KEY = "wecom-key-0f6c2b1e-7d3a-4c55-9e1a-8b2f3c4d5e6f"
DINGTALK_TOKEN = "dingtalk-access-token-5f2e9a7c3b1d"
DINGTALK_SECRET = "SEC0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab"
FEISHU_HOOK = "feishu-hook-2b7c9d1e-3f4a-4b5c-8d6e-7f8a9b0c1d2e"
FEISHU_SECRET = "feishu-signing-secret-Qm9vYmFy"
FEISHU_APP_ID = "cli_a1b2c3d4e5f60718"
FEISHU_APP_SECRET = "feishu-app-secret-9Zx8Yw7Vu6Ts5Rq4"
FEISHU_CHAT = "oc_5ad11d72b830411d72b836c20"
SLACK_PATH = "/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"
SLACK_BOT_TOKEN = "xoxb-1111111111-2222222222-abcdefghijklmnop"
DISCORD_PATH = "/api/webhooks/123456789012345678/discord-webhook-token-abcdefghijklmnop"
DISCORD_BOT_TOKEN = "discord-bot-token-MTIzNDU2Nzg5.abcdef"
TELEGRAM_TOKEN = "123456789:AAH-telegram-bot-token-abcdefghijk"
TELEGRAM_CHAT = "-1001234567890"

SECRET_VALUES = (
    WECOM_KEY,
    DINGTALK_TOKEN,
    DINGTALK_SECRET,
    FEISHU_HOOK,
    FEISHU_SECRET,
    FEISHU_APP_SECRET,
    SLACK_PATH,
    SLACK_BOT_TOKEN,
    DISCORD_PATH,
    DISCORD_BOT_TOKEN,
    TELEGRAM_TOKEN,
)


def wecom_check(request: Received) -> Reply:
    """WeCom group robot: /cgi-bin/webhook/send?key=…, errcode answers."""
    if request.path != "/cgi-bin/webhook/send" or request.query.get("key") != WECOM_KEY:
        return Reply(200, {"errcode": 93000, "errmsg": "invalid webhook url"})
    payload = request.json()
    msgtype = payload.get("msgtype")
    if msgtype not in ("text", "markdown") or "content" not in payload.get(msgtype, {}):
        return Reply(200, {"errcode": 40008, "errmsg": "invalid message type"})
    limit = 2048 if msgtype == "text" else 4096
    if len(payload[msgtype]["content"].encode()) > limit:
        return Reply(200, {"errcode": 40058, "errmsg": "content exceed max length"})
    return Reply(200, {"errcode": 0, "errmsg": "ok"})


def dingtalk_check(request: Received) -> Reply:
    """DingTalk: /robot/send?access_token=…&timestamp=…&sign=… (加签), errcode answers."""
    if request.path != "/robot/send" or request.query.get("access_token") != DINGTALK_TOKEN:
        return Reply(200, {"errcode": 300001, "errmsg": "token is not exist"})
    timestamp = request.query.get("timestamp", "")
    expected = base64.b64encode(
        hmac.new(
            DINGTALK_SECRET.encode(), f"{timestamp}\n{DINGTALK_SECRET}".encode(), hashlib.sha256
        ).digest()
    ).decode()
    if request.query.get("sign") != expected:
        return Reply(200, {"errcode": 310000, "errmsg": "sign not match"})
    if not timestamp.isdigit() or abs(int(timestamp) - platform_wall() * 1000) > 3_600_000:
        return Reply(200, {"errcode": 310000, "errmsg": "timestamp expired"})
    payload = request.json()
    msgtype = payload.get("msgtype")
    if msgtype == "text":
        content = payload["text"]["content"]
    elif msgtype == "markdown":
        if not payload["markdown"].get("title"):
            return Reply(200, {"errcode": 40035, "errmsg": "missing title"})
        content = payload["markdown"]["text"]
    else:
        return Reply(200, {"errcode": 40035, "errmsg": "invalid msgtype"})
    if len(content.encode()) > 20_000:
        return Reply(200, {"errcode": 460101, "errmsg": "message too long"})
    return Reply(200, {"errcode": 0, "errmsg": "ok"})


class FeishuMessages:
    """The fake Feishu app API: tokens, messages per server (``Host``), uuid memory.

    Like ``im/v1/messages``: ``uuid`` is at most 50 characters, and a request with
    a ``uuid`` already used (within the hour) sends nothing new — it answers the
    message sent then. ``lose_answers`` makes the server send the message and
    then drop the connection. ``expire_tokens`` revokes every token issued.
    """

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.created: dict[str, list[dict[str, Any]]] = {}
        self.by_uuid: dict[tuple[str, str], dict[str, Any]] = {}
        self.lose_answers: dict[str, int] = {}
        self.revoked: set[str] = set()
        self.lock = threading.Lock()
        self._ids = iter(range(1, 10**9))

    def of(self, base: str) -> list[dict[str, Any]]:
        return self.created.get(base.removeprefix("http://"), [])

    def lose_next_answers(self, base: str, count: int = 1) -> None:
        self.lose_answers[base.removeprefix("http://")] = count

    def expire_tokens(self) -> None:
        with self.lock:
            self.revoked.update(self.tokens)

    def token(self, request: Received) -> Reply:
        payload = request.json()
        if payload.get("app_id") != FEISHU_APP_ID or payload.get("app_secret") != FEISHU_APP_SECRET:
            return Reply(200, {"code": 10014, "msg": "app secret invalid"})
        with self.lock:
            value = f"t-g1044{next(self._ids):08d}feishutenanttoken"
            self.tokens.append(value)
        return Reply(200, {"code": 0, "msg": "ok", "tenant_access_token": value, "expire": 7200})

    def send(self, request: Received) -> Reply:
        auth = request.headers.get("authorization", "").removeprefix("Bearer ")
        if auth not in self.tokens or auth in self.revoked:
            return Reply(400, {"code": 99991663, "msg": "Invalid access token for authorization."})
        if request.query.get("receive_id_type") != "chat_id":
            return Reply(400, {"code": 99992402, "msg": "field validation failed"})
        payload = request.json()
        if payload.get("receive_id") != FEISHU_CHAT:
            return Reply(400, {"code": 230001, "msg": "invalid receive_id"})
        uuid = payload.get("uuid")
        if uuid is not None and (not isinstance(uuid, str) or len(uuid) > 50):
            return Reply(400, {"code": 99992402, "msg": "field validation failed: uuid"})
        kind = payload.get("msg_type")
        content = json.loads(payload.get("content") or "null")
        valid = (kind == "text" and isinstance(content, dict) and "text" in content) or (
            kind == "post" and isinstance(content, dict) and "zh_cn" in content
        )
        if not valid:
            return Reply(400, {"code": 230001, "msg": "invalid message content"})
        host = request.headers.get("host", "")
        with self.lock:
            known = self.by_uuid.get((host, uuid)) if uuid is not None else None
            if known is not None:
                return Reply(200, {"code": 0, "msg": "success", "data": known})
            message = {
                "message_id": f"om_{next(self._ids):032x}",
                "chat_id": FEISHU_CHAT,
                "msg_type": kind,
                "body": {"content": payload["content"]},
            }
            self.created.setdefault(host, []).append(message)
            if uuid is not None:
                self.by_uuid[(host, uuid)] = message
            if self.lose_answers.get(host, 0) > 0:
                self.lose_answers[host] -= 1
                return Reply(drop=True)
        return Reply(200, {"code": 0, "msg": "success", "data": message})


FEISHU = FeishuMessages()


def feishu_check(request: Received) -> Reply:
    """Feishu: /open-apis/bot/v2/hook/<id>, body timestamp + sign, code answers.

    And the app API: ``auth/v3/tenant_access_token/internal``, ``im/v1/messages``.
    """
    if request.path == "/open-apis/auth/v3/tenant_access_token/internal":
        return FEISHU.token(request)
    if request.path == "/open-apis/im/v1/messages":
        return FEISHU.send(request)
    if request.path != f"/open-apis/bot/v2/hook/{FEISHU_HOOK}":
        return Reply(404, {"code": 19001, "msg": "param invalid: incoming webhook access token"})
    if len(request.body) > 20 * 1024:
        return Reply(400, {"code": 9499, "msg": "request body too large"})
    payload = request.json()
    timestamp = payload.get("timestamp", "")
    key = f"{timestamp}\n{FEISHU_SECRET}".encode()
    expected = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
    if payload.get("sign") != expected:
        return Reply(
            200,
            {
                "code": 19021,
                "msg": "sign match fail or timestamp is not within one hour from current time",
            },
        )
    if abs(int(timestamp) - platform_wall()) > 3600:
        return Reply(200, {"code": 19021, "msg": "timestamp is not within one hour"})
    msg_type = payload.get("msg_type")
    if (msg_type == "text" and isinstance(payload["content"].get("text"), str)) or (
        msg_type == "post" and "zh_cn" in payload["content"].get("post", {})
    ):
        pass
    else:
        return Reply(200, {"code": 9499, "msg": "Bad Request"})
    return Reply(200, {"code": 0, "data": {}, "msg": "success"})


def slack_check(request: Received) -> Reply:
    """Slack incoming webhook (200 "ok") and chat.postMessage (ok/error JSON)."""
    if request.path == "/api/chat.postMessage":
        if request.headers.get("authorization") != f"Bearer {SLACK_BOT_TOKEN}":
            return Reply(200, {"ok": False, "error": "invalid_auth"})
        payload = request.json()
        if not str(payload.get("channel", "")).startswith("U"):
            return Reply(200, {"ok": False, "error": "channel_not_found"})
        return Reply(200, {"ok": True, "channel": "D0123", "ts": f"{platform_wall():.6f}"})
    if request.path != SLACK_PATH:
        return Reply(404, "no_service")
    payload = request.json()
    if not isinstance(payload.get("text"), str) or not payload["text"]:
        return Reply(400, "invalid_payload")
    for block in payload.get("blocks", []):
        if block["type"] == "section" and _utf16(block["text"]["text"]) > 3000:
            return Reply(400, "invalid_blocks")
    return Reply(200, "ok")


_discord_ids = iter(range(1_100_000_000_000_000_000, 2**63))


class DiscordMessages:
    """What the fake Discord created, per server (its ``Host``), and its nonce memory.

    Like Discord's Create Message: a ``nonce`` is a string of at most 25 characters
    (or an integer); with ``enforce_nonce`` a second request with a nonce the same
    bot already used answers the message created then, creating nothing. Webhooks
    ignore ``nonce`` (they do not deduplicate). ``lose_answers`` makes the server
    create the message and then drop the connection: the lost answer of a crash.
    """

    def __init__(self) -> None:
        self.created: dict[str, list[dict[str, Any]]] = {}  # host -> messages, in order
        self.by_nonce: dict[tuple[str, str], dict[str, Any]] = {}
        self.lose_answers: dict[str, int] = {}  # host -> how many answers to drop
        self.lock = threading.Lock()

    def of(self, base: str) -> list[dict[str, Any]]:
        """The messages the server at ``base`` (``http://127.0.0.1:port``) created."""
        return self.created.get(base.removeprefix("http://"), [])

    def lose_next_answers(self, base: str, count: int = 1) -> None:
        self.lose_answers[base.removeprefix("http://")] = count

    def create(self, request: Received, channel: str) -> Reply:
        payload = request.json()
        host = request.headers.get("host", "")
        nonce = payload.get("nonce")
        if nonce is not None and (
            isinstance(nonce, bool)
            or not isinstance(nonce, str | int)
            or (isinstance(nonce, str) and len(nonce) > 25)
        ):
            return Reply(400, {"message": "Invalid Form Body", "code": 50035})
        if payload.get("enforce_nonce") and nonce is None:
            return Reply(400, {"message": "Invalid Form Body", "code": 50035})
        with self.lock:
            key = (host, str(nonce))
            known = self.by_nonce.get(key) if payload.get("enforce_nonce") else None
            if known is not None:
                return Reply(200, known)  # the message created before: no new one
            message = {
                "id": str(next(_discord_ids)),
                "channel_id": channel,
                "content": payload.get("content", ""),
                "nonce": nonce,
            }
            self.created.setdefault(host, []).append(message)
            if nonce is not None:
                self.by_nonce[key] = message
            if self.lose_answers.get(host, 0) > 0:
                self.lose_answers[host] -= 1
                return Reply(drop=True)
        return Reply(200, message)


DISCORD = DiscordMessages()


def discord_check(request: Received) -> Reply:
    """Discord webhook with ?wait=true (answers the message), and the bot calls."""
    if request.path.startswith("/api/users/@me/channels") or request.path.startswith(
        "/api/channels/"
    ):
        if request.headers.get("authorization") != f"Bot {DISCORD_BOT_TOKEN}":
            return Reply(401, {"message": "401: Unauthorized", "code": 0})
        if request.path.endswith("/users/@me/channels"):
            return Reply(200, {"id": "998877", "type": 1})
        channel = request.path.removeprefix("/api/channels/").removesuffix("/messages")
        return DISCORD.create(request, channel)
    if request.path != DISCORD_PATH:
        return Reply(401, {"message": "Invalid Webhook Token", "code": 50027})
    if request.query.get("wait") != "true":
        return Reply(204)
    payload = request.json()
    content = payload.get("content", "")
    if _utf16(content) > 2000:
        return Reply(400, {"message": "Invalid Form Body", "code": 50035})
    if not content and not payload.get("embeds"):
        return Reply(400, {"message": "Cannot send an empty message", "code": 50006})
    message = {"id": str(next(_discord_ids)), "content": content}
    with DISCORD.lock:  # webhooks ignore `nonce`: every request is a new message
        DISCORD.created.setdefault(request.headers.get("host", ""), []).append(message)
    return Reply(200, message)


_telegram_ids = iter(range(1, 10**9))


def telegram_check(request: Received) -> Reply:
    """Telegram Bot API sendMessage."""
    if request.path != f"/bot{TELEGRAM_TOKEN}/sendMessage":
        return Reply(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
    payload = request.json()
    if not payload.get("chat_id"):
        return Reply(
            400, {"ok": False, "error_code": 400, "description": "Bad Request: chat_id is empty"}
        )
    text = payload.get("text", "")
    if not text or _utf16(text) > 4096:
        return Reply(
            400, {"ok": False, "error_code": 400, "description": "Bad Request: message is too long"}
        )
    return Reply(
        200,
        {
            "ok": True,
            "result": {
                "message_id": next(_telegram_ids),
                "chat": {"id": payload["chat_id"]},
                "text": text,
            },
        },
    )


@dataclass(frozen=True)
class PlatformSpec:
    """A platform: its checker, the channel type, and the SSM secret pointing at a server."""

    type: str
    check: Check
    secret: Callable[[str], dict[str, str]]


PLATFORMS: dict[str, PlatformSpec] = {
    "wecom": PlatformSpec(
        "wecom",
        wecom_check,
        lambda base: {"webhook_url": f"{base}/cgi-bin/webhook/send?key={WECOM_KEY}"},
    ),
    "dingtalk": PlatformSpec(
        "dingtalk",
        dingtalk_check,
        lambda base: {
            "webhook_url": f"{base}/robot/send?access_token={DINGTALK_TOKEN}",
            "secret": DINGTALK_SECRET,
        },
    ),
    "feishu": PlatformSpec(
        "feishu",
        feishu_check,
        lambda base: {
            "webhook_url": f"{base}/open-apis/bot/v2/hook/{FEISHU_HOOK}",
            "secret": FEISHU_SECRET,
        },
    ),
    "slack": PlatformSpec(
        "slack",
        slack_check,
        lambda base: {
            "webhook_url": f"{base}{SLACK_PATH}",
            "bot_token": SLACK_BOT_TOKEN,
            "api_base": f"{base}/api",
        },
    ),
    "discord": PlatformSpec(
        "discord",
        discord_check,
        lambda base: {
            "webhook_url": f"{base}{DISCORD_PATH}",
            "bot_token": DISCORD_BOT_TOKEN,
            "api_base": f"{base}/api",
        },
    ),
    "telegram": PlatformSpec(
        "telegram",
        telegram_check,
        lambda base: {"bot_token": TELEGRAM_TOKEN, "chat_id": TELEGRAM_CHAT, "api_base": base},
    ),
}


def texts_of(platform_type: str, request: Received) -> str:
    """The message text a request carries, whatever the platform's payload shape."""
    payload = request.json()
    if platform_type == "wecom":
        return payload[payload["msgtype"]]["content"]
    if platform_type == "dingtalk":
        return (
            payload["text"]["content"]
            if payload["msgtype"] == "text"
            else payload["markdown"]["text"]
        )
    if platform_type == "feishu":
        if isinstance(payload.get("content"), str):  # the app API: content is a JSON string
            content = json.loads(payload["content"])
            if payload["msg_type"] == "text":
                return content["text"]
            paragraphs = content["zh_cn"]["content"]
            return "\n".join("".join(e.get("text", "") for e in p) for p in paragraphs)
        if payload["msg_type"] == "text":
            return payload["content"]["text"]
        paragraphs = payload["content"]["post"]["zh_cn"]["content"]
        return "\n".join("".join(e.get("text", "") for e in p) for p in paragraphs)
    if platform_type == "slack":
        blocks = payload.get("blocks")
        if blocks:
            return "\n".join(b["text"]["text"] for b in blocks if b["type"] == "section")
        return payload["text"]
    if platform_type == "discord":
        if payload.get("embeds"):
            return payload["embeds"][0]["description"]
        return payload["content"]
    return payload["text"]
