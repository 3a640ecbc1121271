"""Chat platforms: WeCom, DingTalk, Feishu/Lark, Slack, Discord and Telegram.

Each channel turns a :class:`~autopilot.channels.base.Message` into the
platform's payload (split to fit its size limit, see ``split``), signs it where
the platform wants a signature, takes a token from the shared rate limiter per
request, POSTs it with the retry policy of ``http`` and reads the platform's
answer — a 200 with a non-zero ``errcode`` is a failure, not a success.

Every wait (rate-limit slots, retry backoff) and the token cache's lifetime go
through ``autopilot.clock``, so a simulated burst waits in simulated time; a
delivery's ``at_utc`` is when its send ended (the caller's ``now`` plus the time
the send took on that clock). A request that went out without an answer ends as
an *uncertain* delivery (``Delivery.unknown``). Signature timestamps (DingTalk,
Feishu) stay on the real wall clock: the platform checks them against its own.

Webhook URLs, tokens and signing secrets come from the channel's SSM parameter
(``autopilot.secrets``); the config only holds non-secret options (message type,
mentions, parse mode). docs/channels.md describes each platform's setup, limits
and failures.

A planned reminder's group message (``autopilot.reminders.mentions``) arrives
as the platform's whole body with its mention fields: ``group_steps`` posts it
as it is — never split, never rebuilt — through the same route, signature,
rate limit, retries and answer reading as a community post.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import re
import threading
import time
from abc import abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote, quote_plus

from autopilot.channels.base import (
    UNLIMITED,
    Channel,
    ChannelEnvironment,
    Deadline,
    Delivery,
    Message,
)
from autopilot.channels.http import (
    HttpRequest,
    HttpResponse,
    Interpret,
    SendResult,
    Verdict,
    body_retry_after,
    seconds_value,
)
from autopilot.channels.ratelimit import Rate, RateLimited
from autopilot.channels.split import TextLimit, split_text, utf8_bytes, utf16_units
from autopilot.clock import monotonic as clock_monotonic
from autopilot.config.model import Channel as ChannelSpec
from autopilot.errors import ChannelError
from autopilot.secrets import ChannelSecret, redact, register_secret
from autopilot.timeutil import iso_utc

if TYPE_CHECKING:  # annotations only: mentions imports the channels
    from autopilot.reminders.mentions import PlannedMessage

DEFAULT_MAX_PARTS = 4


@dataclass(frozen=True)
class Step:
    """One request of a send: how to build it (per attempt) and how to read the answer."""

    make_request: Callable[[], HttpRequest]
    interpret: Interpret
    # The request carries a key the platform deduplicates on: a lost answer may be retried.
    idempotent: bool = False
    # Sees every answer, 2xx or not (see HttpClient.send).
    on_answer: Callable[[HttpResponse], None] | None = None
    # False for a setup request (a token, opening a DM channel): not a part of the message.
    part: bool = True


def part_key(
    message: Message, channel_id: str, address: str | None, index: int, length: int
) -> str | None:
    """The platform idempotency key of one part of one send, or ``None`` without a key.

    Derived from the message's ``idempotency_key`` (the occurrence's id), the
    channel, the recipient (DMs: one message per member) and the part's index, so
    every part of every destination has its own key and the same part of the same
    occurrence always gets the same one — in a rerun on another container too.
    Hashed (SHA-256, hex) to the platform's length limit: Discord's ``nonce`` takes
    25 characters, 100 bits.
    """
    if not message.idempotency_key:
        return None
    source = "\x1f".join(
        (message.idempotency_key, message.community_id, channel_id, address or "", str(index))
    )
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:length]


def group_scope(planned: PlannedMessage) -> str:
    """The recipient part of a planned group message's idempotency key (``part_key``).

    One reminder posts several group messages under the same occurrence: naming
    the batch's members gives each its own key, and a rerun that plans the same
    batch again computes the same key (the platform then posts nothing new).
    """
    return "group:" + "\x1f".join(planned.member_ids)


def with_title(message: Message, text: str | None = None) -> str:
    """Plain text: the title (if any) on its own paragraph above the text."""
    body = message.text if text is None else text
    return f"{message.title}\n\n{body}" if message.title else body


def _add_query(url: str, query: str) -> str:
    return url + ("&" if "?" in url else "?") + query


def errcode_verdict(response: HttpResponse, retry_codes: frozenset[int]) -> Verdict:
    """WeCom/DingTalk answers: HTTP 200 with ``{"errcode": 0, "errmsg": "ok"}`` on success."""
    body = response.json()
    if not isinstance(body, dict) or "errcode" not in body:
        return Verdict.failure(f"unexpected answer: {response.text()[:200]}")
    try:
        code = int(body["errcode"])
    except (TypeError, ValueError, OverflowError):  # OverflowError: `Infinity`
        return Verdict.failure(f"unexpected errcode: {body['errcode']!r}")
    message = str(body.get("errmsg", ""))
    if code == 0:
        return Verdict.success(None, f"errcode 0 {message}".strip())
    return Verdict.failure(f"errcode {code}: {message}", retry=code in retry_codes)


class HttpChannel(Channel):
    """A channel that POSTs to a chat platform. Subclasses describe the platform."""

    community_rate: Rate = Rate(1.0, 1)
    direct_rate: Rate | None = None
    # What the SSM parameter must hold for a community send (key -> what it is).
    required_secrets: ClassVar[Mapping[str, str]] = {"webhook_url": "the webhook address"}

    def __init__(self, spec: ChannelSpec, env: ChannelEnvironment):
        super().__init__(spec, env)
        self.max_parts = int(spec.options.get("max_parts", DEFAULT_MAX_PARTS))

    # -- what a platform defines -------------------------------------------------------

    @abstractmethod
    def limit(self) -> TextLimit:
        """The size limit of one message's text with this channel's options."""

    @abstractmethod
    def community_steps(self, secret: ChannelSecret, message: Message) -> list[Step]:
        """The requests that post ``message`` to the community (one per part)."""

    def member_steps(self, secret: ChannelSecret, address: str, message: Message) -> list[Step]:
        """The requests that send ``message`` to one member."""
        raise ChannelError(f"channel type {self.type!r} cannot send direct messages")

    @abstractmethod
    def group_steps(
        self, secret: ChannelSecret, payload: Mapping[str, Any], message: Message, scope: str
    ) -> list[Step]:
        """The request that posts a planned group message's ``payload`` as it is.

        Exactly one message step, to the community's route, with only what the
        transport adds (signature, chat id, ``nonce``/``uuid`` keyed by ``scope``,
        see :func:`group_scope`). A payload over the platform's limit raises
        :class:`ChannelError` (see :meth:`one_message`).
        """

    # -- shared machinery ------------------------------------------------------------

    def parts(self, text: str, limit: TextLimit | None = None) -> list[str]:
        """``text`` split to fit (see ``autopilot.channels.split``)."""
        return split_text(text, limit or self.limit(), self.max_parts)

    def one_message(
        self, payload: Mapping[str, Any], path: tuple[str, ...], limit: TextLimit
    ) -> dict[str, Any]:
        """``payload`` as a dict, if its text at ``path`` fits one platform message.

        A planned group message is never split (a split would cut the mentions
        off their text or send the mention fields twice): a text over the limit
        is a planner bug, refused before any request.
        """
        value: Any = payload
        for key in path:
            value = value.get(key) if isinstance(value, Mapping) else None
        where = ".".join(path)
        if not isinstance(value, str) or not value:
            raise ChannelError(f"planned {self.type} group message has no text at {where!r}")
        size = limit.measure(value)
        if size > limit.max_length:
            raise ChannelError(
                f"planned {self.type} group message is {size} {limit.unit} at {where!r}, over "
                f"the limit of {limit.max_length} {limit.unit} for one message; a group "
                "message is never split (plan_delivery should have made smaller batches)"
            )
        return dict(payload)

    def _secret(self, community_id: str) -> ChannelSecret:
        if self.env.secrets is None:
            raise ChannelError("no secret store configured (CHANNEL_SECRETS_PREFIX)")
        return self.env.secrets.get(community_id, self.id)

    def send_to_community(
        self, message: Message, *, now: datetime, deadline: Deadline = UNLIMITED
    ) -> Delivery:
        return self._deliver(message, now, deadline, None)

    def send_to_member(
        self, address: str, message: Message, *, now: datetime, deadline: Deadline = UNLIMITED
    ) -> Delivery:
        if not self.supports_direct:
            return super().send_to_member(address, message, now=now, deadline=deadline)
        return self._deliver(message, now, deadline, address)

    def send_group(
        self,
        planned: PlannedMessage,
        message: Message,
        *,
        now: datetime,
        deadline: Deadline = UNLIMITED,
    ) -> Delivery:
        """Post the plan's ``payload`` as one message, like a community post (``group_steps``)."""
        return self._deliver(message, now, deadline, None, planned)

    def _deliver(
        self,
        message: Message,
        now: datetime,
        deadline: Deadline,
        address: str | None,
        group: PlannedMessage | None = None,
    ) -> Delivery:
        at = iso_utc(now)
        started = clock_monotonic()
        try:
            secret = self._secret(message.community_id)
            if group is not None:
                steps = self.group_steps(secret, group.payload, message, group_scope(group))
            elif address is None:
                steps = self.community_steps(secret, message)
            else:
                steps = self.member_steps(secret, address, message)
        except ChannelError as exc:
            return Delivery(self.id, False, at, attempts=0, error=redact(exc))
        rate = self.community_rate if address is None else (self.direct_rate or self.community_rate)
        bucket_direct = address is not None
        ids: list[str] = []
        answers: list[str] = []
        attempts = 0
        total = sum(1 for step in steps if step.part)  # setup requests are not parts
        done = 0  # parts posted so far
        for step in steps:
            result = self._post(step, message, rate, bucket_direct, deadline)
            attempts += result.attempts
            # When the send ended: rate-limit waits and retries count (simulated ones too).
            at = iso_utc(now + timedelta(seconds=max(0.0, clock_monotonic() - started)))
            if not result.ok:
                index = done + 1
                where = f"part {index}/{total}: " if total > 1 else ""
                posted = (
                    f" (parts 1-{done} were posted)"
                    if done > 1
                    else " (part 1 was posted)"
                    if done == 1
                    else ""
                )
                return Delivery(
                    self.id,
                    False,
                    at,
                    message_id=",".join(ids) or None,
                    response=result.response,
                    attempts=attempts,
                    error=f"{where}{result.error}{posted}",
                    parts=total,
                    unknown=result.unknown,
                )
            if step.part:
                done += 1
                if result.message_id:
                    ids.append(result.message_id)
                answers.append(result.response)
        return Delivery(
            self.id,
            True,
            at,
            message_id=",".join(ids) or None,
            response=" | ".join(dict.fromkeys(answers)),
            attempts=attempts,
            parts=total,
        )

    def _post(
        self, step: Step, message: Message, rate: Rate, direct: bool, deadline: Deadline
    ) -> SendResult:
        """Take a rate-limit token, then send one request with retries."""
        http = self.env.http()
        if self.env.rate_limiter is not None:
            bucket = self.env.rate_limiter.bucket(message.community_id, self.id, direct=direct)
            try:
                # Asked afresh before every DynamoDB request and the wait: their time counts.
                self.env.rate_limiter.acquire(
                    bucket,
                    rate,
                    budget_s=lambda: deadline.remaining_s() - http.policy.min_attempt_s,
                )
            except RateLimited as exc:
                return SendResult(False, 0, error=str(exc))
        return http.send(
            step.make_request,
            step.interpret,
            deadline=deadline,
            idempotent=step.idempotent,
            on_answer=step.on_answer,
        )


def _mentions(options: Mapping[str, Any], key: str) -> list[str]:
    return [str(value) for value in options.get(key) or []]


# --------------------------------------------------------------------------- WeCom


class WeComChannel(HttpChannel):
    """WeCom (企业微信) group robot: ``msgtype`` text (default) or markdown.

    Documented limit: 20 messages a minute per robot; text 2048 bytes, markdown
    4096 bytes. ``mention_all``/``mentions``/``mention_mobiles`` @ members (text),
    ``mentions`` become ``<@userid>`` in markdown.
    """

    type = "wecom"
    community_rate = Rate(4.0, 4)  # at most 4 + 15 = 19 in any minute
    RETRY_CODES = frozenset({-1, 45009})  # system busy; api freq out of limit

    def limit(self) -> TextLimit:
        return self._limit(self.spec.options.get("msgtype"))

    @staticmethod
    def _limit(msgtype: object) -> TextLimit:
        if msgtype == "markdown":
            return TextLimit(4096, utf8_bytes, "bytes")
        return TextLimit(2048, utf8_bytes, "bytes")

    def group_steps(
        self, secret: ChannelSecret, payload: Mapping[str, Any], message: Message, scope: str
    ) -> list[Step]:
        url = secret.require("webhook_url", "the robot's webhook address")
        msgtype = str(payload.get("msgtype"))
        body = self.one_message(payload, (msgtype, "content"), self._limit(msgtype))
        interpret: Interpret = partial(errcode_verdict, retry_codes=self.RETRY_CODES)
        return [Step(partial(HttpRequest.json, url, body), interpret)]

    def community_steps(self, secret: ChannelSecret, message: Message) -> list[Step]:
        url = secret.require("webhook_url", "the robot's webhook address")
        options = self.spec.options
        interpret: Interpret = partial(errcode_verdict, retry_codes=self.RETRY_CODES)
        if options.get("msgtype") == "markdown":
            mentions = "".join(f"<@{m}>" for m in _mentions(options, "mentions"))
            text = f"**{message.title}**\n\n{message.text}" if message.title else message.text
            if mentions:
                text = f"{mentions}\n{text}"
            return [
                Step(
                    partial(
                        HttpRequest.json,
                        url,
                        {"msgtype": "markdown", "markdown": {"content": part}},
                    ),
                    interpret,
                )
                for part in self.parts(text)
            ]
        users = _mentions(options, "mentions") + (["@all"] if options.get("mention_all") else [])
        mobiles = _mentions(options, "mention_mobiles")
        steps = []
        for index, part in enumerate(self.parts(with_title(message))):
            content: dict[str, Any] = {"content": part}
            if index == 0:  # @ people once, not once per part
                if users:
                    content["mentioned_list"] = users
                if mobiles:
                    content["mentioned_mobile_list"] = mobiles
            payload = {"msgtype": "text", "text": content}
            steps.append(Step(partial(HttpRequest.json, url, payload), interpret))
        return steps


# --------------------------------------------------------------------------- DingTalk


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's signature: base64(HMAC-SHA256(key=secret, "timestamp\\nsecret")), URL-encoded."""
    digest = hmac.new(
        secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256
    ).digest()
    return quote_plus(base64.b64encode(digest).decode("ascii"))


class DingTalkChannel(HttpChannel):
    """DingTalk (钉钉) custom robot, optionally with the signed-URL ("加签") scheme.

    Documented limit: 20 messages a minute per robot (exceeding it blocks the robot
    for 10 minutes). ``msgtype`` text (default) or markdown; ``mention_all``,
    ``mentions`` (user ids), ``mention_mobiles``.
    """

    type = "dingtalk"
    community_rate = Rate(4.0, 4)
    RETRY_CODES = frozenset({-1, 130101})  # system busy; send too fast
    # DingTalk documents ~20,000 bytes per message; we keep a margin for the JSON.
    LIMIT = TextLimit(18_000, utf8_bytes, "bytes")

    def __init__(self, spec: ChannelSpec, env: ChannelEnvironment, *, wall=time.time):
        super().__init__(spec, env)
        self._wall = wall

    def limit(self) -> TextLimit:
        return self.LIMIT

    def community_steps(self, secret: ChannelSecret, message: Message) -> list[Step]:
        url = secret.require("webhook_url", "the robot's webhook address")
        signing_secret = secret.get("secret", "").strip()
        options = self.spec.options
        at = {
            "atMobiles": _mentions(options, "mention_mobiles"),
            "atUserIds": _mentions(options, "mentions"),
            "isAtAll": bool(options.get("mention_all")),
        }
        markdown = options.get("msgtype") == "markdown"
        text = message.text if markdown else with_title(message)
        title = (message.title or message.text.strip().split("\n", 1)[0])[:64] or "-"
        signed_request = partial(self._signed_request, url, signing_secret)
        interpret: Interpret = partial(errcode_verdict, retry_codes=self.RETRY_CODES)
        steps = []
        for index, part in enumerate(self.parts(text)):
            payload: dict[str, Any] = (
                {"msgtype": "markdown", "markdown": {"title": title, "text": part}}
                if markdown
                else {"msgtype": "text", "text": {"content": part}}
            )
            if index == 0 and (at["atMobiles"] or at["atUserIds"] or at["isAtAll"]):
                payload["at"] = at
            steps.append(Step(partial(signed_request, payload), interpret))
        return steps

    def group_steps(
        self, secret: ChannelSecret, payload: Mapping[str, Any], message: Message, scope: str
    ) -> list[Step]:
        url = secret.require("webhook_url", "the robot's webhook address")
        signing_secret = secret.get("secret", "").strip()
        markdown = payload.get("msgtype") == "markdown"
        field = ("markdown", "text") if markdown else ("text", "content")
        body = self.one_message(payload, field, self.LIMIT)
        interpret: Interpret = partial(errcode_verdict, retry_codes=self.RETRY_CODES)
        return [Step(partial(self._signed_request, url, signing_secret, body), interpret)]

    def _signed_request(
        self, url: str, signing_secret: str, payload: dict[str, Any]
    ) -> HttpRequest:
        # Signed per attempt: DingTalk refuses a timestamp more than an hour old.
        if not signing_secret:
            return HttpRequest.json(url, payload)
        timestamp_ms = int(self._wall() * 1000)
        sign = dingtalk_sign(signing_secret, timestamp_ms)
        return HttpRequest.json(_add_query(url, f"timestamp={timestamp_ms}&sign={sign}"), payload)


# --------------------------------------------------------------------------- Feishu / Lark


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """Feishu/Lark's signature: base64(HMAC-SHA256(key="timestamp\\nsecret", msg=b""))."""
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode("ascii")


def feishu_verdict(response: HttpResponse) -> Verdict:
    """Feishu answers ``{"code": 0, "msg": "success"}`` (older bots: ``StatusCode``)."""
    body = response.json()
    if not isinstance(body, dict):
        return Verdict.failure(f"unexpected answer: {response.text()[:200]}")
    code = body.get("code", body.get("StatusCode"))
    message = str(body.get("msg") or body.get("StatusMessage") or "")
    if code == 0:
        return Verdict.success(None, f"code 0 {message}".strip())
    # 9499 / 11232: too many requests; the rest (bad signature 19021, keyword 19024…) stay.
    return Verdict.failure(f"code {code}: {message}", retry=code in (9499, 11232))


# Feishu Open API answers: rate limits (retried) and tokens that are no longer valid.
FEISHU_RETRY_CODES = frozenset({9499, 11232, 230020, 99991400})
FEISHU_TOKEN_CODES = frozenset({99991661, 99991663, 99991668})


class FeishuChannel(HttpChannel):
    """Feishu/Lark: a custom bot's webhook, or an app bot (``im/v1/messages``).

    ``msgtype`` text (default) or post (rich text with a title). The route is
    chosen by the channel's secret: ``webhook_url`` (custom bot, optional
    signature verification "签名校验") or ``app_id`` + ``app_secret`` + ``chat_id``
    (an app bot in the group). Only the app route deduplicates: each part carries
    a ``uuid`` derived from the occurrence (Feishu sends at most one message per
    ``uuid`` in an hour), so a lost answer is retried and a rerun posts nothing
    new. Custom bots take no such key.

    Documented limits: 100 requests a minute and 5 a second per custom bot; request
    body at most 20 KB (the app API allows more; the same limits are kept).
    """

    type = "feishu"
    community_rate = Rate(0.75, 3)  # at most 3 + 1 = 4 a second, 3 + 80 = 83 a minute
    # 20 KB per request body: text keeps room for the JSON around it.
    LIMIT = TextLimit(15_000, utf8_bytes, "bytes")
    UUID_LENGTH = 50  # Feishu: uuid is at most 50 characters
    TOKEN_MARGIN_S = 300.0  # refresh a tenant_access_token this long before it expires

    def __init__(
        self,
        spec: ChannelSpec,
        env: ChannelEnvironment,
        *,
        wall=time.time,
        monotonic: Callable[[], float] | None = None,
    ):
        super().__init__(spec, env)
        self._wall = wall  # signatures: the platform checks them against real time
        # Token lifetimes: the clock installed at call time (simulated in `simulate`).
        self._monotonic = clock_monotonic if monotonic is None else monotonic
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}  # (api, app) -> token, until
        self._token_lock = threading.Lock()

    def limit(self) -> TextLimit:
        return self.LIMIT

    def _contents(self, message: Message) -> list[tuple[str, dict[str, Any]]]:
        """``(msg_type, content)`` per part; ``content`` as the app API takes it."""
        mention_all = bool(self.spec.options.get("mention_all"))
        post = self.spec.options.get("msgtype") == "post"
        parts = self.parts(message.text if post else with_title(message))
        contents: list[tuple[str, dict[str, Any]]] = []
        for index, part in enumerate(parts):
            if post:
                paragraphs: list[list[dict[str, str]]] = [
                    [{"tag": "text", "text": line}] for line in part.split("\n")
                ]
                if index == 0 and mention_all:
                    paragraphs.insert(0, [{"tag": "at", "user_id": "all"}])
                title = message.title or ""
                if len(parts) > 1 and title:
                    title = f"{title} ({index + 1}/{len(parts)})"
                contents.append(("post", {"zh_cn": {"title": title, "content": paragraphs}}))
            else:
                if index == 0 and mention_all:
                    part = '<at user_id="all">所有人</at> ' + part
                contents.append(("text", {"text": part}))
        return contents

    def community_steps(self, secret: ChannelSecret, message: Message) -> list[Step]:
        if secret.get("app_id", "").strip():
            return self._app_steps(secret, message, self._contents(message), None)
        url = secret.require("webhook_url", "the bot's webhook address")
        signing_secret = secret.get("secret", "").strip()
        payloads = [
            # The custom bot wants a post's content under "post"; the app API does not.
            {"msg_type": kind, "content": {"post": content} if kind == "post" else content}
            for kind, content in self._contents(message)
        ]
        request = partial(self._hook_request, url, signing_secret)
        return [Step(partial(request, p), feishu_verdict) for p in payloads]

    def group_steps(
        self, secret: ChannelSecret, payload: Mapping[str, Any], message: Message, scope: str
    ) -> list[Step]:
        """A text message (``<at user_id=…>`` in its text), by the app or the custom bot."""
        body = self.one_message(payload, ("content", "text"), self.LIMIT)
        if secret.get("app_id", "").strip():
            content = dict(body["content"])
            return self._app_steps(secret, message, [(str(body["msg_type"]), content)], scope)
        url = secret.require("webhook_url", "the bot's webhook address")
        signing_secret = secret.get("secret", "").strip()
        return [Step(partial(self._hook_request, url, signing_secret, body), feishu_verdict)]

    def _hook_request(self, url: str, signing_secret: str, payload: dict[str, Any]) -> HttpRequest:
        """A custom bot request, signed per attempt (timestamp and sign in the body)."""
        if signing_secret:
            timestamp_s = int(self._wall())
            payload = {
                "timestamp": str(timestamp_s),
                "sign": feishu_sign(signing_secret, timestamp_s),
                **payload,
            }
        return HttpRequest.json(url, payload)

    def _app_steps(
        self,
        secret: ChannelSecret,
        message: Message,
        contents: list[tuple[str, dict[str, Any]]],
        scope: str | None,
    ) -> list[Step]:
        """The app API's requests for ``contents`` (``_contents``); ``scope`` keys the uuids."""
        app_id = secret.require("app_id", "the app's App ID (cli_…)")
        app_secret = secret.require("app_secret", "the app's App Secret")
        chat_id = secret.require("chat_id", "the group's chat id (oc_…)")
        api = secret.get("api_base", "https://open.feishu.cn").rstrip("/")
        cache_key = (api, app_id)
        token: dict[str, str] = {}
        steps: list[Step] = []
        with self._token_lock:
            cached = self._tokens.get(cache_key)
        if cached is not None and cached[1] > self._monotonic():
            token["value"] = cached[0]
        else:

            def got_token(response: HttpResponse) -> Verdict:
                body = response.json()
                value = body.get("tenant_access_token") if isinstance(body, dict) else None
                if (
                    not isinstance(body, dict)
                    or body.get("code") != 0
                    or not isinstance(value, str)
                ):
                    code = body.get("code") if isinstance(body, dict) else None
                    msg = body.get("msg", "") if isinstance(body, dict) else response.text()[:200]
                    return Verdict.failure(
                        f"tenant_access_token: code {code}: {msg}",
                        retry=code in FEISHU_RETRY_CODES,
                    )
                register_secret(value)  # never logged or stored, like the SSM values
                token["value"] = value
                lifetime = seconds_value(body.get("expire")) or 0.0
                with self._token_lock:
                    self._tokens[cache_key] = (
                        value,
                        self._monotonic() + lifetime - self.TOKEN_MARGIN_S,
                    )
                return Verdict.success(None, "tenant_access_token ok")

            steps.append(
                Step(
                    lambda: HttpRequest.json(
                        f"{api}/open-apis/auth/v3/tenant_access_token/internal",
                        {"app_id": app_id, "app_secret": app_secret},
                    ),
                    got_token,
                    idempotent=True,  # asking for a token twice posts nothing
                    part=False,
                )
            )

        def forget_revoked_token(response: HttpResponse) -> None:
            # Feishu answers an invalid token with HTTP 400 or 200 and one of these codes.
            body = response.json()
            if isinstance(body, dict) and body.get("code") in FEISHU_TOKEN_CODES:
                with self._token_lock:  # the next send asks for a new token
                    self._tokens.pop(cache_key, None)

        def request(kind: str, content: dict[str, Any], uuid: str | None) -> HttpRequest:
            payload: dict[str, Any] = {
                "receive_id": chat_id,
                "msg_type": kind,
                "content": json.dumps(content, ensure_ascii=False),
            }
            if uuid is not None:
                payload["uuid"] = uuid
            return HttpRequest.json(
                f"{api}/open-apis/im/v1/messages?receive_id_type=chat_id",
                payload,
                {"Authorization": f"Bearer {token.get('value', '')}"},
            )

        for index, (kind, content) in enumerate(contents):
            uuid = part_key(message, self.id, scope, index, self.UUID_LENGTH)
            steps.append(
                Step(
                    partial(request, kind, content, uuid),
                    feishu_api_verdict,
                    idempotent=uuid is not None,
                    on_answer=forget_revoked_token,
                )
            )
        return steps


def feishu_api_verdict(response: HttpResponse) -> Verdict:
    """Feishu Open API: ``{"code": 0, "data": {"message_id": "om_…"}}`` on success."""
    body = response.json()
    if not isinstance(body, dict):
        return Verdict.failure(f"unexpected answer: {response.text()[:200]}")
    code = body.get("code")
    message = str(body.get("msg") or "")
    if code == 0:
        data = body.get("data")
        message_id = data.get("message_id") if isinstance(data, dict) else None
        message_id = str(message_id) if message_id else None
        return Verdict.success(message_id, f"code 0 {message} message_id={message_id}".strip())
    return Verdict.failure(f"code {code}: {message}", retry=code in FEISHU_RETRY_CODES)


# --------------------------------------------------------------------------- Slack


def slack_webhook_verdict(response: HttpResponse) -> Verdict:
    """Incoming webhooks answer ``200 ok``; errors are 4xx with a plain-text reason."""
    return Verdict.success(None, response.text()[:100] or f"HTTP {response.status}")


def slack_api_verdict(response: HttpResponse) -> Verdict:
    """Web API answers 200 with ``{"ok": false, "error": "…"}`` on failure."""
    body = response.json()
    if not isinstance(body, dict):
        return Verdict.failure(f"unexpected answer: {response.text()[:200]}")
    if body.get("ok") is True:
        ts = str(body.get("ts") or "") or None
        return Verdict.success(ts, f"ok channel={body.get('channel', '')} ts={ts}")
    error = str(body.get("error", "unknown_error"))
    retry = error in ("ratelimited", "internal_error")
    return Verdict.failure(f"Slack error: {error}", retry=retry)


class SlackChannel(HttpChannel):
    """Slack incoming webhook (``msgtype`` text or blocks); DMs with a bot token.

    Documented limit: about one message a second per webhook. Text up to 40,000
    characters; a section block's text up to 3,000. Direct messages use
    ``chat.postMessage`` with the parameter's ``bot_token`` and the member's user id.
    """

    type = "slack"
    supports_direct = True
    community_rate = Rate(1.2, 1)
    direct_rate = Rate(0.25, 4)  # ~240 a minute across the workspace, 1/s per DM channel
    TEXT_LIMIT = TextLimit(40_000, utf16_units)
    BLOCK_LIMIT = TextLimit(3_000, utf16_units)

    def limit(self) -> TextLimit:
        return self.BLOCK_LIMIT if self.spec.options.get("msgtype") == "blocks" else self.TEXT_LIMIT

    def _payloads(self, message: Message) -> list[dict[str, Any]]:
        if self.spec.options.get("msgtype") != "blocks":
            return [{"text": part} for part in self.parts(with_title(message))]
        payloads = []
        for index, part in enumerate(self.parts(message.text)):
            blocks: list[dict[str, Any]] = []
            if index == 0 and message.title:
                blocks.append(
                    {
                        "type": "header",
                        "text": {"type": "plain_text", "text": message.title[:150], "emoji": True},
                    }
                )
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": part}})
            fallback = (message.title or part)[:150]  # notifications show this text
            payloads.append({"text": fallback, "blocks": blocks})
        return payloads

    def community_steps(self, secret: ChannelSecret, message: Message) -> list[Step]:
        url = secret.require("webhook_url", "the incoming webhook's address")
        return [
            Step(partial(HttpRequest.json, url, p), slack_webhook_verdict)
            for p in self._payloads(message)
        ]

    def group_steps(
        self, secret: ChannelSecret, payload: Mapping[str, Any], message: Message, scope: str
    ) -> list[Step]:
        """The incoming webhook, like community posts (``<@U…>`` mentions work there)."""
        url = secret.require("webhook_url", "the incoming webhook's address")
        body = self.one_message(payload, ("text",), self.TEXT_LIMIT)
        return [Step(partial(HttpRequest.json, url, body), slack_webhook_verdict)]

    def member_steps(self, secret: ChannelSecret, address: str, message: Message) -> list[Step]:
        token = secret.require("bot_token", "a bot token (xoxb-…) with chat:write, for DMs")
        api = secret.get("api_base", "https://slack.com/api").rstrip("/")
        headers = {"Authorization": f"Bearer {token}"}
        return [
            Step(
                partial(
                    HttpRequest.json, f"{api}/chat.postMessage", {"channel": address, **p}, headers
                ),
                slack_api_verdict,
            )
            for p in self._payloads(message)
        ]


# --------------------------------------------------------------------------- Discord


def discord_verdict(response: HttpResponse) -> Verdict:
    """``?wait=true`` answers the created message (its ``id``); 204 without it."""
    body = response.json()
    if isinstance(body, dict) and body.get("id"):
        return Verdict.success(str(body["id"]), f"message {body['id']}")
    return Verdict.success(None, f"HTTP {response.status}")


class DiscordChannel(HttpChannel):
    """Discord webhook (``msgtype`` content or embed); DMs with a bot token.

    Documented limits: 5 requests per 2 seconds per webhook and about 30 messages
    a minute per channel; content 2,000 characters, an embed description 4,096.
    Mentions in content are disabled (``allowed_mentions``) unless ``mention_all``.
    """

    type = "discord"
    supports_direct = True
    community_rate = Rate(2.5, 4)  # at most 4 in 2 s, 4 + 24 = 28 a minute
    direct_rate = Rate(0.1, 5)  # bot-wide limit is 50 requests a second
    CONTENT_LIMIT = TextLimit(2_000, utf16_units)
    EMBED_LIMIT = TextLimit(4_096, utf16_units)

    def __init__(self, spec: ChannelSpec, env: ChannelEnvironment):
        super().__init__(spec, env)
        self._dm_channels: dict[str, str] = {}
        self._dm_lock = threading.Lock()

    def limit(self) -> TextLimit:
        embed = self.spec.options.get("msgtype") == "embed"
        return self.EMBED_LIMIT if embed else self.CONTENT_LIMIT

    NONCE_LENGTH = 25  # Discord: a nonce is at most 25 characters
    MENTION_LIMIT = 100  # Discord: allowed_mentions.users holds at most 100 ids

    def _payloads(
        self, message: Message, *, mentions: bool, username: bool
    ) -> list[dict[str, Any]]:
        options = self.spec.options
        mention_all = mentions and bool(options.get("mention_all"))
        allowed = {"parse": ["everyone"] if mention_all else []}
        payloads: list[dict[str, Any]] = []
        if options.get("msgtype") == "embed":
            for index, part in enumerate(self.parts(message.text)):
                embed: dict[str, Any] = {"description": part}
                if index == 0 and message.title:
                    embed["title"] = message.title[:256]
                payload: dict[str, Any] = {"embeds": [embed], "allowed_mentions": allowed}
                if index == 0 and mention_all:
                    payload["content"] = "@everyone"
                payloads.append(payload)
        else:
            text = with_title(message)
            if mention_all:
                text = "@everyone " + text
            payloads = [{"content": p, "allowed_mentions": allowed} for p in self.parts(text)]
        if username and options.get("username"):  # webhooks only: a bot has its own name
            for payload in payloads:
                payload["username"] = str(options["username"])
        return payloads

    def _bot_steps(
        self,
        payloads: list[dict[str, Any]],
        message: Message,
        address: str | None,
        channel: Callable[[], str],
        api: str,
        headers: Mapping[str, str],
    ) -> list[Step]:
        """Create Message requests, each part with its own ``nonce`` (``enforce_nonce``).

        With ``enforce_nonce`` Discord answers the message it already created for
        a nonce (same bot, last few minutes) instead of creating another: a
        request whose answer was lost is safe to send again, and so is a rerun.
        """

        def request(payload: dict[str, Any]) -> HttpRequest:
            # The channel id may only be known once an earlier step has run (DMs).
            target = quote(channel(), safe="")
            return HttpRequest.json(f"{api}/channels/{target}/messages", payload, headers)

        steps = []
        for index, payload in enumerate(payloads):
            nonce = part_key(message, self.id, address, index, self.NONCE_LENGTH)
            if nonce is not None:
                payload = {**payload, "nonce": nonce, "enforce_nonce": True}
            steps.append(
                Step(partial(request, payload), discord_verdict, idempotent=nonce is not None)
            )
        return steps

    def community_steps(self, secret: ChannelSecret, message: Message) -> list[Step]:
        channel_id = secret.get("channel_id", "").strip()
        if channel_id:
            # A bot posting to the channel: the only Discord route with deduplication.
            token = secret.require("bot_token", "a bot token, to post to channel_id")
            api = secret.get("api_base", "https://discord.com/api/v10").rstrip("/")
            return self._bot_steps(
                self._payloads(message, mentions=True, username=False),
                message,
                None,
                lambda: channel_id,
                api,
                {"Authorization": f"Bot {token}"},
            )
        # Webhooks take no nonce (Discord ignores it there): no deduplication.
        url = _add_query(secret.require("webhook_url", "the webhook's address"), "wait=true")
        return [
            Step(partial(HttpRequest.json, url, p), discord_verdict)
            for p in self._payloads(message, mentions=True, username=True)
        ]

    def group_steps(
        self, secret: ChannelSecret, payload: Mapping[str, Any], message: Message, scope: str
    ) -> list[Step]:
        """The community's route: the bot (with a ``nonce``) when ``channel_id`` is set."""
        body = self.one_message(payload, ("content",), self.CONTENT_LIMIT)
        allowed = body.get("allowed_mentions")
        users = allowed.get("users") if isinstance(allowed, Mapping) else None
        if isinstance(users, list) and len(users) > self.MENTION_LIMIT:
            raise ChannelError(
                f"planned discord group message mentions {len(users)} users, over Discord's "
                f"limit of {self.MENTION_LIMIT} (allowed_mentions.users); it is never split"
            )
        channel_id = secret.get("channel_id", "").strip()
        if channel_id:
            token = secret.require("bot_token", "a bot token, to post to channel_id")
            api = secret.get("api_base", "https://discord.com/api/v10").rstrip("/")
            return self._bot_steps(
                [body], message, scope, lambda: channel_id, api, {"Authorization": f"Bot {token}"}
            )
        url = _add_query(secret.require("webhook_url", "the webhook's address"), "wait=true")
        if self.spec.options.get("username"):  # the same name as the community's posts
            body["username"] = str(self.spec.options["username"])
        return [Step(partial(HttpRequest.json, url, body), discord_verdict)]

    def member_steps(self, secret: ChannelSecret, address: str, message: Message) -> list[Step]:
        token = secret.require("bot_token", "a bot token, for DMs")
        api = secret.get("api_base", "https://discord.com/api/v10").rstrip("/")
        headers = {"Authorization": f"Bot {token}"}
        channel_holder: dict[str, str] = {}
        steps: list[Step] = []
        with self._dm_lock:
            known = self._dm_channels.get(address)
        if known:
            channel_holder["id"] = known
        else:
            # Discord DMs go to a DM channel that must be opened first (idempotent).
            def opened(response: HttpResponse) -> Verdict:
                body = response.json()
                if isinstance(body, dict) and body.get("id"):
                    channel_holder["id"] = str(body["id"])
                    with self._dm_lock:
                        self._dm_channels[address] = channel_holder["id"]
                    return Verdict.success(None, f"DM channel {body['id']}")
                return Verdict.failure(f"no DM channel in answer: {response.text()[:200]}")

            steps.append(
                Step(
                    lambda: HttpRequest.json(
                        f"{api}/users/@me/channels", {"recipient_id": address}, headers
                    ),
                    opened,
                    idempotent=True,  # opening a DM channel twice answers the same channel
                    part=False,
                )
            )
        steps += self._bot_steps(
            self._payloads(message, mentions=False, username=False),
            message,
            address,
            lambda: channel_holder.get("id", ""),
            api,
            headers,
        )
        return steps


# --------------------------------------------------------------------------- Telegram

_MARKDOWN_V2_SPECIAL = re.compile(r"([_*\[\]()~`>#+\-=|{}.!\\])")


def telegram_title(title: str, parse_mode: str | None) -> str:
    """The title in bold, escaped for the parse mode (plain without one)."""
    if parse_mode == "HTML":
        return f"<b>{html.escape(title)}</b>"
    if parse_mode == "MarkdownV2":
        return f"*{_MARKDOWN_V2_SPECIAL.sub(r'\\\1', title)}*"
    if parse_mode == "Markdown":
        return f"*{title.replace('*', '')}*"
    return title


def telegram_verdict(response: HttpResponse) -> Verdict:
    """``{"ok": true, "result": {"message_id": …}}`` or ``{"ok": false, "error_code", …}``."""
    body = response.json()
    if not isinstance(body, dict):
        return Verdict.failure(f"unexpected answer: {response.text()[:200]}")
    if body.get("ok") is True:
        result = body.get("result") or {}
        message_id = result.get("message_id") if isinstance(result, dict) else None
        return Verdict.success(
            None if message_id is None else str(message_id), f"ok message_id={message_id}"
        )
    code = body.get("error_code")
    return Verdict.failure(
        f"{code}: {body.get('description', '')}",
        retry=code == 429 or (isinstance(code, int) and code >= 500),
        retry_after_s=body_retry_after(body),
    )


class TelegramChannel(HttpChannel):
    """Telegram Bot API ``sendMessage`` to the group's ``chat_id``, or to a member's chat.

    Documented limits: about 20 messages a minute to one group, 30 a second across
    chats; 4,096 characters of text. ``parse_mode`` HTML, MarkdownV2 or Markdown.
    """

    type = "telegram"
    supports_direct = True
    required_secrets: ClassVar[Mapping[str, str]] = {
        "bot_token": "the bot's token",
        "chat_id": "the group's chat id",
    }
    community_rate = Rate(4.0, 3)  # at most 3 + 15 = 18 a minute
    direct_rate = Rate(0.05, 5)  # at most 5 + 20 = 25 a second
    LIMIT = TextLimit(4_096, utf16_units)

    def limit(self) -> TextLimit:
        return self.LIMIT

    def _steps(self, secret: ChannelSecret, chat_id: str, message: Message) -> list[Step]:
        token = secret.require("bot_token", "the bot's token from @BotFather")
        api = secret.get("api_base", "https://api.telegram.org").rstrip("/")
        parse_mode = self.spec.options.get("parse_mode")
        text = message.text
        if message.title:
            text = f"{telegram_title(message.title, parse_mode)}\n\n{text}"
        url = f"{api}/bot{token}/sendMessage"
        steps = []
        for part in self.parts(text):
            payload: dict[str, Any] = {"chat_id": chat_id, "text": part}
            if parse_mode:
                payload["parse_mode"] = parse_mode
            if self.spec.options.get("disable_notification"):
                payload["disable_notification"] = True
            steps.append(Step(partial(HttpRequest.json, url, payload), telegram_verdict))
        return steps

    def community_steps(self, secret: ChannelSecret, message: Message) -> list[Step]:
        return self._steps(secret, secret.require("chat_id", "the group's chat id"), message)

    def member_steps(self, secret: ChannelSecret, address: str, message: Message) -> list[Step]:
        return self._steps(secret, address, message)

    def group_steps(
        self, secret: ChannelSecret, payload: Mapping[str, Any], message: Message, scope: str
    ) -> list[Step]:
        """``sendMessage`` to the group's ``chat_id``; entities or parse mode as planned."""
        token = secret.require("bot_token", "the bot's token from @BotFather")
        chat_id = secret.require("chat_id", "the group's chat id")
        api = secret.get("api_base", "https://api.telegram.org").rstrip("/")
        body = {**self.one_message(payload, ("text",), self.LIMIT), "chat_id": chat_id}
        if self.spec.options.get("disable_notification"):
            body["disable_notification"] = True
        url = f"{api}/bot{token}/sendMessage"
        return [Step(partial(HttpRequest.json, url, body), telegram_verdict)]


WEBHOOK_CHANNELS: tuple[type[HttpChannel], ...] = (
    WeComChannel,
    DingTalkChannel,
    FeishuChannel,
    SlackChannel,
    DiscordChannel,
    TelegramChannel,
)
