"""From a chat platform's webhook request to a check-in (or a lottery entry or
claim) and the platform's answer.

Which community: the path ``/webhooks/{platform}?community=<id>``; each
(community, platform) pair has its own secret, so a leaked Slack secret of one
community cannot check members in anywhere else. The member is
``"{platform}:{user id}"`` (platform user ids are only unique per platform). A
user id is never trusted as sent: it must pass the API's one member-id rule
(:func:`autopilot.api.requests.member_id`) as a whole, is never truncated (two
users must never become one member), and Telegram's numeric ``from.id`` must
be a positive integer (``telegram:<digits>``); otherwise the request is a 400
and nothing is written. Bodies are parsed with the API's strict JSON parser
(bounded depth, no control characters or lone surrogates in any string).

What a message does: one of the community's ``chat_keywords`` checks the member
in; one of a lottery's entry ``keywords`` (a lottery members enter) enters the
member in its open draw; one of a lottery's claim keywords (a lottery with a
claim window) claims the member's prize. Keywords are compared trimmed and
case-folded, with a Telegram ``@BotName`` suffix removed; config validation keeps
them from clashing, and check-in keywords win if they ever do. The answer says
what happened in the community's language: entered (tickets, weight, rules still
to meet by the close), or why not (not eligible and the reasons, not open);
claimed (the prize, a coupon code) or nothing to claim.

Reminder preferences: ``退订提醒`` or ``/stop`` opts the member out of every
reminder kind, ``退订提醒 <kind>`` / ``/stop <kind>`` out of one; ``开启提醒`` or
``/remind`` (and, on Telegram, a bare ``/start``: the message a bot gets when a
member opens its chat) opts back in, to every kind or to ``<kind>``. Kinds are
named by id (``lottery``) or a short name (``抽奖``, see :data:`KIND_NAMES`); an
unknown one gets an answer listing them and writes nothing. These words are fixed,
and a community's configured check-in and lottery keywords win over them. Any
other text gets a short help answer and writes nothing.

Replays: a verified request sent again (Slack and the generic scheme only within
their 300 s window) is harmless, because a check-in is idempotent per member and
local day (it credits nothing and answers the first result), an entry per member
and draw, and a claim per prize. Requests outside the
window, and bad signatures, are refused with 401 before anything is read or written.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qs

from autopilot.api.auth import Unauthorized
from autopilot.api.requests import (
    MAX_MEMBER_ID,
    Field,
    fields,
    json_document,
    member_id,
    plain_text,
)
from autopilot.checkins.service import CheckinResult, CheckinService, CheckinSource
from autopilot.config.model import Community, Lottery
from autopilot.errors import (
    BadRequest,
    LotteryNotOpen,
    NotAMember,
    NotEligible,
    NothingToClaim,
    RequestError,
)
from autopilot.lottery.eligibility import MemberFacts, WeightMode, weight_of
from autopilot.members.service import REMINDER_KINDS, MemberPreferences, MemberService
from autopilot.webhooks.signatures import (
    InvalidSignature,
    verify_generic,
    verify_slack,
    verify_telegram,
)

logger = logging.getLogger(__name__)

SLACK, TELEGRAM = "slack", "telegram"
PLATFORM_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
MAX_NAME = 200
# Telegram user ids are positive and below 2**52; anything else is not a user.
MAX_TELEGRAM_ID = 2**63 - 1
# "/checkin@MyBot" is how Telegram groups address one bot among several.
_BOT_SUFFIX = re.compile(r"^(/[^\s@]+)@\S+$")

SecretsLookup = Callable[[str, str], Sequence[str]]


class UnknownPlatform(RequestError):
    """The path names no platform this API can verify."""

    status = 404


@dataclass(frozen=True)
class ChatMessage:
    """What a member typed, as every platform's payload reduces to it."""

    user_id: str
    display_name: str | None
    texts: tuple[str, ...]  # candidates: Slack has the command and its text
    chat_id: Any = None  # Telegram: where the answer goes
    message_id: Any = None


@dataclass(frozen=True)
class WebhookReply:
    """The HTTP answer: status and a JSON body in the platform's format (None: empty)."""

    status: int
    body: dict[str, Any] | None
    checkin: CheckinResult | None = None


def normalize(text: str) -> str:
    """A typed word as keywords are compared: trimmed, case-folded, bot suffix removed."""
    text = text.strip()
    found = _BOT_SUFFIX.match(text)
    if found:
        text = found.group(1)
    return text.casefold()


def is_keyword(message: ChatMessage, keywords: Sequence[str]) -> bool:
    """Whether the message is exactly one of ``keywords`` (check-in, entry or claim)."""
    wanted = {normalize(k) for k in keywords}
    return any(normalize(t) in wanted for t in message.texts if t.strip())


class LotteryAction(StrEnum):
    """What a lottery keyword asks for."""

    ENTER = "enter"
    CLAIM = "claim"


def lottery_keyword(
    community: Community, message: ChatMessage
) -> tuple[Lottery, LotteryAction] | None:
    """The lottery and action the message's keyword names (None: no lottery keyword).

    Entry keywords count only for enabled lotteries members enter (``entry:
    enter``); claim keywords only for enabled lotteries with a claim window.
    The first lottery of the config wins if two ever share a keyword.
    """
    for lottery in community.lotteries:
        if not lottery.enabled:
            continue
        if lottery.entry == "enter" and is_keyword(message, lottery.keywords):
            return lottery, LotteryAction.ENTER
        if lottery.claim_window is not None and is_keyword(message, lottery.claim_keywords):
            return lottery, LotteryAction.CLAIM
    return None


class PreferenceAction(StrEnum):
    """What a reminder-preference keyword asks for."""

    STOP = "stop"  # opt out
    START = "start"  # opt back in


#: Opt-out and opt-in words (compared case-folded; a kind may follow after a space,
#: or directly after the Chinese words: ``退订提醒抽奖``).
STOP_WORDS: tuple[str, ...] = ("退订提醒", "/stop")
START_WORDS: tuple[str, ...] = ("开启提醒", "/remind")
#: Telegram sends ``/start`` when a member opens the bot's chat: bare, it opts back in.
TELEGRAM_START = "/start"
#: Each kind's names in chat, Chinese first: the answers use them and they are
#: accepted after a keyword, as are the kind's id and the id with hyphens.
KIND_NAMES: dict[str, tuple[str, ...]] = {
    "not_checked_in": ("打卡", "打卡提醒", "未打卡", "checkin", "check-in"),
    "streak_at_risk": ("断签", "断签提醒", "连续打卡", "streak"),
    "inactive": ("回归", "回归提醒", "不活跃", "comeback"),
    "lottery": ("抽奖", "抽奖提醒"),
}
_ALL_WORDS = ("all", "全部", "所有")
_KIND_ALIASES: dict[str, str] = {
    alias.casefold(): kind
    for kind in REMINDER_KINDS
    for alias in (kind, kind.replace("_", "-"), *KIND_NAMES.get(kind, ()))
}
_EN_KIND_NAMES = {
    "not_checked_in": "check-in",
    "streak_at_risk": "streak-at-risk",
    "inactive": "come-back",
    "lottery": "lottery",
}


@dataclass(frozen=True)
class PreferenceCommand:
    """A reminder-preference keyword: the action, for one ``kind`` or every kind
    (``None``); ``unknown`` is an argument that names no kind (nothing is changed)."""

    action: PreferenceAction
    kind: str | None = None
    unknown: str | None = None


def _preference_of(platform: str, text: str) -> PreferenceCommand | None:
    words = text.split(maxsplit=1)
    if not words:
        return None
    head, rest = words[0], (words[1].strip() if len(words) > 1 else "")
    found = _BOT_SUFFIX.match(head)
    if found:
        head = found.group(1)
    head = head.casefold()
    for word in (*STOP_WORDS, *START_WORDS):
        if not word.startswith("/") and head.startswith(word) and head != word and not rest:
            head, rest = word, head[len(word) :].strip()
    bare_start = platform == TELEGRAM and head == TELEGRAM_START and not rest
    if head in STOP_WORDS:
        action = PreferenceAction.STOP
    elif head in START_WORDS or bare_start:
        action = PreferenceAction.START
    else:
        return None
    if not rest or rest.casefold() in _ALL_WORDS:
        return PreferenceCommand(action)
    kind = _KIND_ALIASES.get(rest.casefold())
    if kind is None:
        return PreferenceCommand(action, unknown=rest[:40])
    return PreferenceCommand(action, kind)


def preference_command(platform: str, message: ChatMessage) -> PreferenceCommand | None:
    """The reminder-preference keyword of the message, if it is one.

    Slack sends the command and its text apart (``/stop`` + ``lottery``): the two
    joined are tried first, then each alone (``/autopilot`` + ``退订提醒``).
    """
    candidates = [t for t in message.texts if t.strip()]
    if platform == SLACK and len(candidates) == 2:
        text, command = candidates
        candidates.insert(0, f"{command} {text}")
    for candidate in candidates:
        command_found = _preference_of(platform, candidate)
        if command_found is not None:
            return command_found
    return None


# -- payloads ----------------------------------------------------------------------------


def chat_member_id(platform: str, user_id: str) -> str:
    """The member id of a chat user, ``"{platform}:{user id}"``, under the member-id rule.

    Refused (400), never truncated or repaired: a user id with ``#``, spaces,
    control or format characters, or one that makes the member id longer than
    :data:`autopilot.api.requests.MAX_MEMBER_ID`.
    """
    try:
        if not user_id:
            raise BadRequest("empty user id")
        return member_id("member", f"{platform}:{user_id}")
    except BadRequest:
        limit = MAX_MEMBER_ID - len(platform) - 1
        raise BadRequest(
            f"the {platform} user id must be 1-{limit} characters without '#', spaces, "
            "control or format characters"
        ) from None


def _slack_message(body: bytes) -> ChatMessage | None:
    try:
        # errors="strict": a %FF in a field is refused, never turned into U+FFFD.
        form = parse_qs(body.decode("utf-8"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("the Slack body is not UTF-8 form data") from None
    first = {k: v[0] for k, v in form.items() if v}
    for key, value in first.items():
        plain_text("a Slack field name", key)
        plain_text(f"the Slack field {key[:40]!r}", value)
    if first.get("ssl_check"):
        return None  # Slack's certificate probe: answer 200, do nothing
    user_id = first.get("user_id", "")
    if not user_id.strip():
        raise BadRequest("the Slack payload has no user_id")
    return ChatMessage(
        user_id=user_id,
        display_name=first.get("user_name") or None,
        texts=(first.get("text", ""), first.get("command", "")),
    )


def _optional_int(value: Any, what: str) -> int | None:
    # type() not isinstance(): JSON true is not an id.
    if value is None:
        return None
    if type(value) is not int or abs(value) > MAX_TELEGRAM_ID:
        raise BadRequest(f"the Telegram update's {what} must be an integer")
    return value


def _telegram_message(body: bytes) -> ChatMessage | None:
    update = json_document(body, "the Telegram update")
    if not isinstance(update, dict):
        raise BadRequest("the Telegram update must be a JSON object")
    message = update.get("message")
    if not isinstance(message, dict):
        return None  # edits, joins, callbacks...: acknowledged, nothing to do
    sender = message.get("from")
    text = message.get("text")
    if not isinstance(sender, dict) or "id" not in sender or not isinstance(text, str):
        return None  # stickers, photos, channel posts without a sender
    user = sender["id"]
    if type(user) is not int or not 0 < user <= MAX_TELEGRAM_ID:
        raise BadRequest("the Telegram update's message.from.id must be a positive integer")
    names = [sender.get("first_name"), sender.get("last_name")]
    display = " ".join(n for n in names if isinstance(n, str) and n) or sender.get("username")
    chat = message.get("chat")
    chat = chat if isinstance(chat, dict) else {}
    chat_id = _optional_int(chat.get("id"), "message.chat.id")
    return ChatMessage(
        user_id=str(user),
        display_name=display if isinstance(display, str) else None,
        texts=(text,),
        chat_id=user if chat_id is None else chat_id,
        message_id=_optional_int(message.get("message_id"), "message.message_id"),
    )


_GENERIC_FIELDS = {
    "user_id": Field(str, required=True),
    "text": Field(str, required=True),
    "display_name": Field(str),
}


def _generic_message(body: bytes) -> ChatMessage:
    document = json_document(body)
    if not isinstance(document, dict):
        raise BadRequest("the body must be a JSON object")
    parsed = fields(document, _GENERIC_FIELDS)
    return ChatMessage(parsed["user_id"], parsed.get("display_name"), (parsed["text"],))


# -- answers -----------------------------------------------------------------------------


def answer_text(community: Community, result: CheckinResult | None, keywords: Sequence[str]) -> str:
    """The member-facing text in the community's language (None result: the help text)."""
    zh = community.locale.startswith("zh")
    if result is None:
        words = " / ".join(keywords)
        help_text = f"发送 {words} 即可打卡。" if zh else f"Send {words} to check in."
        for lottery in community.lotteries:
            if lottery.enabled and lottery.entry == "enter" and lottery.keywords:
                word = lottery.keywords[0]
                help_text += (
                    f"发送 {word} 参加「{lottery.title}」。"
                    if zh
                    else f" Send {word} to enter {lottery.title}."
                )
        help_text += (
            "发送「退订提醒」不再接收提醒。" if zh else " Send /stop to get no more reminders."
        )
        return help_text
    if result.repeat:
        return (
            f"今天已经打过卡啦：连续 {result.streak} 天，积分 {result.balance}。"
            if zh
            else f"Already checked in today: {result.streak}-day streak, balance {result.balance}."
        )
    return (
        f"打卡成功！连续 {result.streak} 天，+{result.points_awarded} 积分，余额 {result.balance}。"
        if zh
        else f"Checked in! {result.streak}-day streak, +{result.points_awarded} points, "
        f"balance {result.balance}."
    )


def lottery_answer_text(community: Community, lottery: Lottery, result: Any) -> str:
    """The member-facing text of an entry (an ``EntryResult``) or a claim (its dict)."""
    zh = community.locale.startswith("zh")
    title = lottery.title
    if isinstance(result, dict):  # a claim
        prize, code = result.get("prize") or "", result.get("code")
        status = result.get("status")
        if status == "paid":
            text = f"领奖成功：{prize}。" if zh else f"Prize claimed: {prize}."
            if code:
                text += f"兑换码：{code}" if zh else f" Your code: {code}"
            return text
        if status == "short":
            return (
                f"已领取 {prize}，奖品库存暂时不足，补货后自动发放。"
                if zh
                else f"{prize} claimed; it is out of stock for now and will be sent when restocked."
            )
        # "pending": a coupon prize gets its code at the next expire step (minutes).
        again = lottery.claim_keywords[0] if lottery.claim_keywords else ""
        return (
            f"已领取 {prize}，兑换码稍后发放，届时再发送「{again}」即可查看。"
            if zh
            else f"{prize} claimed; your code comes shortly: send {again} again to see it."
        )
    weight = entry_weight(lottery, result)
    tickets = int(getattr(result, "tickets", 1) or 1)
    pending = list(getattr(result, "pending", ()) or ())
    if zh:
        head = "你已经参加过" if result.repeat else "已参加"
        text = f"{head}「{title}」（{tickets} 张券"
        text += (
            f"，权重 {weight}）。" if weight is not None else "，权重按截止时窗口内打卡次数计）。"
        )
        if result.cost_points:
            text += f"花费 {result.cost_points} 积分。"
        if pending:
            text += "截止前还需满足：" + "；".join(pending) + "。"
        return text
    head = "Already entered" if result.repeat else "Entered"
    text = f"{head}: {title} ({tickets} ticket{'s' if tickets != 1 else ''}"
    text += (
        f", weight {weight})."
        if weight is not None
        else ", weight = your check-ins in the window, counted at the close)."
    )
    if result.cost_points:
        text += f" Cost: {result.cost_points} points."
    if pending:
        text += " Still needed by the close: " + "; ".join(pending) + "."
    return text


def entry_weight(lottery: Lottery, result: Any) -> int | None:
    """The entry's weight in the draw if it is known at entry: the service's own
    (``result.weight``) when it gives one, else the lottery's weighting of the tickets
    (``equal``: 1; ``tickets``: the tickets, capped). None for ``checkins`` weighting:
    that weight is the member's check-ins in the window, counted at the close."""
    given = getattr(result, "weight", None)
    if isinstance(given, int):
        return given
    if lottery.weighting.mode == WeightMode.CHECKINS:
        return None
    facts = MemberFacts(member_id=result.member, tickets=int(result.tickets or 1))
    return weight_of(lottery.weighting, facts)


def lottery_refusal_text(community: Community, lottery: Lottery, exc: RequestError) -> str:
    """Why an entry or claim was refused, in the community's language."""
    zh = community.locale.startswith("zh")
    title = lottery.title
    if isinstance(exc, NotEligible):
        reasons = "; ".join(exc.reasons) or str(exc)
        return (
            f"暂不符合「{title}」的参加条件：{reasons}"
            if zh
            else f"Not eligible for {title}: {reasons}"
        )
    if isinstance(exc, LotteryNotOpen):
        return (
            f"「{title}」现在不接受报名（未开始或已截止）。"
            if zh
            else f"{title} is not open for entries now."
        )
    if isinstance(exc, NothingToClaim):
        return (
            f"「{title}」没有可领取的奖品：{exc}" if zh else f"Nothing to claim in {title}: {exc}"
        )
    return str(exc)


def _kind_name(kind: str, zh: bool) -> str:
    return KIND_NAMES[kind][0] if zh else _EN_KIND_NAMES[kind]


def _kinds_list(zh: bool) -> str:
    if zh:
        return "、".join(f"{KIND_NAMES[k][0]}（{k}）" for k in REMINDER_KINDS)
    return ", ".join(f"{k} ({_EN_KIND_NAMES[k]})" for k in REMINDER_KINDS)


def preference_answer_text(
    community: Community, command: PreferenceCommand, preferences: MemberPreferences
) -> str:
    """What a reminder-preference keyword changed, in the community's language.

    The same keyword again gives the same answer (the state is the same).
    """
    zh = community.locale.startswith("zh")
    kind = command.kind
    if command.action is PreferenceAction.STOP:
        if kind is None:
            return (
                "已退订所有提醒，发送「开启提醒」可恢复。"
                if zh
                else "You will get no more reminders. Send /remind to turn them back on."
            )
        if zh:
            name = _kind_name(kind, zh)
            return f"已退订{name}提醒，发送「开启提醒 {name}」可恢复。"
        return (
            f"You will get no more {_kind_name(kind, zh)} reminders. "
            f"Send /remind {kind} to turn them back on."
        )
    if kind is None:
        return (
            "已开启所有提醒，发送「退订提醒」可随时退订。"
            if zh
            else "Reminders are on again. Send /stop to turn them off."
        )
    text = (
        f"已开启{_kind_name(kind, zh)}提醒。"
        if zh
        else f"{_kind_name(kind, zh).capitalize()} reminders are on again."
    )
    still_off = [k for k in REMINDER_KINDS if k in preferences.opted_out]
    if still_off:
        text += (
            "仍已退订：" + "、".join(_kind_name(k, zh) for k in still_off) + "。"
            if zh
            else " Still off: " + ", ".join(_kind_name(k, zh) for k in still_off) + "."
        )
    return text


def unknown_kind_text(community: Community, command: PreferenceCommand) -> str:
    """The answer to a preference keyword naming no reminder kind: the kinds there are."""
    zh = community.locale.startswith("zh")
    # Echoed back: without the characters Slack reads as markup (<!channel>, &...).
    word = re.sub(r"[<>&@]", "", command.unknown or "")
    if zh:
        verb = "退订提醒" if command.action is PreferenceAction.STOP else "开启提醒"
        return (
            f"没有「{word}」这种提醒。可选：{_kinds_list(zh)}。"
            f"例如「{verb} 抽奖」；只发「{verb}」则对所有提醒生效。"
        )
    verb = "/stop" if command.action is PreferenceAction.STOP else "/remind"
    return (
        f"There is no {word!r} reminder. Kinds: {_kinds_list(zh)}. "
        f"For example {verb} lottery; {verb} alone applies to every kind."
    )


def not_a_member_text(community: Community) -> str:
    """The answer to a preference keyword from someone who has never checked in."""
    zh = community.locale.startswith("zh")
    word = community.chat_keywords[0] if community.chat_keywords else ("打卡" if zh else "checkin")
    return (
        f"你还没有加入本社群，还不会收到提醒；发送「{word}」打卡即可加入。"
        if zh
        else f"You are not a member yet, so you get no reminders. Send {word} to check in and join."
    )


def _reply(
    platform: str, message: ChatMessage | None, text: str, status: int = 200
) -> WebhookReply:
    if platform == SLACK:
        return WebhookReply(200, {"response_type": "ephemeral", "text": text})
    if platform == TELEGRAM:
        if message is None:
            return WebhookReply(200, None)
        # A webhook answer may carry one Bot API call: no token, no extra request.
        body: dict[str, Any] = {"method": "sendMessage", "chat_id": message.chat_id, "text": text}
        if message.message_id is not None:
            body["reply_parameters"] = {"message_id": message.message_id}
        return WebhookReply(200, body)
    return WebhookReply(status, {"text": text})


class WebhookService:
    """Verifies a platform's request, checks the member in (or enters or claims a
    lottery, or opts them out of or back into reminders) and words the answer."""

    def __init__(
        self,
        checkins: CheckinService,
        secrets: SecretsLookup,
        lotteries: Any = None,
        members: MemberService | None = None,
    ):
        self._checkins = checkins
        self._secrets = secrets
        # The LotteryService (None: lottery keywords get the help answer).
        self._lotteries = lotteries
        # Reminder preferences: the MemberService the check-ins use unless given.
        self._members: MemberService | None = members or getattr(checkins, "_members", None)

    def handle(
        self,
        community: Community,
        platform: str,
        *,
        headers: Mapping[str, str],
        body: bytes,
        now: datetime,
    ) -> WebhookReply:
        """Answer one webhook request (raises ``RequestError`` for 400/401/404)."""
        if not PLATFORM_PATTERN.match(platform):
            raise UnknownPlatform(f"unknown platform {platform[:40]!r}", code="UnknownPlatform")
        secrets = list(self._secrets(community.id, platform))
        lower = {k.lower(): v for k, v in headers.items()}
        try:
            if platform == SLACK:
                verify_slack(
                    secrets,
                    lower.get("x-slack-request-timestamp"),
                    lower.get("x-slack-signature"),
                    body,
                    now.timestamp(),
                )
            elif platform == TELEGRAM:
                verify_telegram(secrets, lower.get("x-telegram-bot-api-secret-token"))
            else:
                verify_generic(
                    secrets,
                    lower.get("x-autopilot-timestamp"),
                    lower.get("x-autopilot-signature"),
                    body,
                    now.timestamp(),
                )
        except InvalidSignature as exc:
            logger.warning("webhook %s/%s refused: %s", community.id, platform, exc)
            raise Unauthorized("invalid or expired signature", code="Unauthorized") from None

        if platform == SLACK:
            message = _slack_message(body)
        elif platform == TELEGRAM:
            message = _telegram_message(body)
        else:
            message = _generic_message(body)
        if message is None:
            return _reply(platform, None, "")
        member = chat_member_id(platform, message.user_id)
        if not is_keyword(message, community.chat_keywords):
            named = lottery_keyword(community, message) if self._lotteries else None
            if named is not None:
                return self._lottery(community, platform, message, member, *named, now)
            wanted = preference_command(platform, message) if self._members else None
            if wanted is not None:
                return self._preferences(community, platform, message, member, wanted, now)
            return _reply(platform, message, answer_text(community, None, community.chat_keywords))
        name = (message.display_name or "").strip()[:MAX_NAME] or None
        try:
            result = self._checkins.check_in(
                community,
                member,
                now,
                source=CheckinSource.CHAT,
                display_name=name,
            )
        except RequestError as exc:
            # Chat platforms show a non-2xx as a broken bot (Telegram even retries
            # it): the member gets the reason as a normal answer instead.
            return _reply(platform, message, str(exc), exc.status)
        reply = _reply(platform, message, answer_text(community, result, community.chat_keywords))
        if platform not in (SLACK, TELEGRAM) and reply.body is not None:
            # Generic senders are programs: give them the structured result too.
            return WebhookReply(reply.status, {**reply.body, "checkin": result.to_json()}, result)
        return WebhookReply(reply.status, reply.body, result)

    def _lottery(
        self,
        community: Community,
        platform: str,
        message: ChatMessage,
        member: str,
        lottery: Lottery,
        action: LotteryAction,
        now: datetime,
    ) -> WebhookReply:
        """Enter or claim ``lottery`` for the member and word the answer."""
        try:
            if action is LotteryAction.ENTER:
                result: Any = self._lotteries.enter(
                    community,
                    lottery.id,
                    member,
                    tickets=1,
                    request_id=_chat_request_id(platform, message),
                    at_utc=now,
                )
                document = result.to_json()
            else:
                result = self._lotteries.claim(community, lottery.id, member, at_utc=now)
                document = result
        except RequestError as exc:
            # As for check-ins: the member reads the reason, the platform sees a 2xx.
            reply = _reply(
                platform, message, lottery_refusal_text(community, lottery, exc), exc.status
            )
            if platform not in (SLACK, TELEGRAM) and reply.body is not None:
                refusal = {"error": exc.code, "reasons": list(getattr(exc, "reasons", []) or [])}
                return WebhookReply(reply.status, {**reply.body, "lottery": refusal})
            return reply
        reply = _reply(platform, message, lottery_answer_text(community, lottery, result))
        if platform not in (SLACK, TELEGRAM) and reply.body is not None:
            return WebhookReply(reply.status, {**reply.body, "lottery": document})
        return reply

    def _preferences(
        self,
        community: Community,
        platform: str,
        message: ChatMessage,
        member: str,
        command: PreferenceCommand,
        now: datetime,
    ) -> WebhookReply:
        """Opt the member out of (or back into) reminders and word the answer."""
        assert self._members is not None
        if command.unknown is not None:
            # Help, not an error: nothing is read or written.
            return _reply(platform, message, unknown_kind_text(community, command))
        receives = command.action is PreferenceAction.START
        choice: bool | dict[str, bool] = (
            receives if command.kind is None else {command.kind: receives}
        )
        try:
            preferences = self._members.set_preferences(
                community, member, {"reminders": choice}, now
            )
        except RequestError as exc:
            text = not_a_member_text(community) if isinstance(exc, NotAMember) else str(exc)
            reply = _reply(platform, message, text, exc.status)
            if platform not in (SLACK, TELEGRAM) and reply.body is not None:
                return WebhookReply(
                    reply.status, {**reply.body, "preferences": {"error": exc.code}}
                )
            return reply
        reply = _reply(platform, message, preference_answer_text(community, command, preferences))
        if platform not in (SLACK, TELEGRAM) and reply.body is not None:
            return WebhookReply(reply.status, {**reply.body, "preferences": preferences.to_json()})
        return reply


def _chat_request_id(platform: str, message: ChatMessage) -> str:
    """The entry's request id: the platform's message id when it has one. An entry is
    one per member and draw whatever the id, so a redelivered message enters once."""
    if message.message_id is not None:
        return f"chat:{platform}:{message.message_id}"
    return f"chat:{platform}"
