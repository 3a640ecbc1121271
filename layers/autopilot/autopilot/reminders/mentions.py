"""Planning the delivery of one reminder to many members on one channel type.

Pure: no AWS, no network, no clock. :func:`plan_delivery` takes the channel
type, the group text template and the recipients, and answers the messages to
send, each carrying the recipients it covers so the service can record every
member's send.

The rule:

1. **Direct message** where the channel type can reach one member
   (``supports_direct`` of the channel class: Telegram, Slack, Discord, and the
   local console/file/SNS channels) *and* the member has a DM address. Its text
   is the member's own rendered text (``Recipient.direct_text``), or else the
   group template with ``{mentions}`` replaced by the member's name (a template
   without the placeholder is sent as it is).
2. **Group messages** for everyone else: the template with ``{mentions}``
   replaced by the batch's mentions (a template without the placeholder gets
   them on a line of their own above the text). Each platform @mentions its way:

   ========  ==============================================================
   wecom     ``text.mentioned_list`` (user ids) / ``mentioned_mobile_list``;
             WeCom shows the @names itself. Markdown: ``<@userid>`` in the text.
   dingtalk  ``at.atUserIds`` / ``at.atMobiles`` *and* ``@userid`` / ``@mobile``
             in the text (DingTalk only highlights an @ that appears in it).
   feishu    ``<at user_id="…">name</at>`` in a text message (always text,
             whatever the channel's ``msgtype``: a post would need ``at`` tags).
   slack     ``<@U…>`` in the text.
   discord   ``<@id>`` in ``content`` (also with ``msgtype`` embed) with
             ``allowed_mentions.users`` listing exactly those ids (``parse``
             empty: no @everyone, no roles).
   telegram  a text mention by name: a ``text_mention`` entity (no parse mode),
             ``<a href="tg://user?id=…">`` (HTML) or ``[name](tg://user?id=…)``
             (Markdown/MarkdownV2). Needs the numeric user id.
   others    console/file/sns: ``@name`` as plain text.
   ========  ==============================================================

   A member without a platform id (nor a mobile, where the platform takes one)
   gets the name in plain text: seen, not notified. A user id is preferred to a
   mobile when both are known. Names longer than :data:`MAX_NAME_LENGTH`
   characters are shortened with ``…`` in mentions (the member id is what
   notifies; a 2 KB name must not crowd out the reminder).
3. **Batches**: recipients are taken in input order and a batch closes when the
   next one would break the platform's size limit or mention limit
   (:func:`limits_for`); this greedy cut gives the fewest batches of
   consecutive recipients. Every group message fits in **one** platform message
   (a split would cut mentions off their text or send the mention fields twice).
4. Nothing is lost or doubled: every distinct ``member_id`` of the input is in
   exactly one planned message (a repeated ``member_id`` is planned once, at
   its first place), and nobody is mentioned twice.

Order of the plan: the direct messages in input order, then the group messages
in input order. A template that cannot hold even one recipient within the
platform's limit raises :class:`MentionPlanError` (a configuration problem: the
reminder template is too long for the channel), so nothing is sent half-planned.

Limits (sizes are imported from the channels, never restated here):

- sizes: WeCom text 2,048 / markdown 4,096 bytes (``WeComChannel.limit``),
  DingTalk ``DingTalkChannel.LIMIT``, Feishu ``FeishuChannel.LIMIT``, Slack
  ``SlackChannel.TEXT_LIMIT``, Discord ``DiscordChannel.CONTENT_LIMIT`` (the
  mentions go in ``content``: mentions inside an embed notify nobody),
  Telegram ``TelegramChannel.LIMIT`` (counted on the marked-up text, which is
  never shorter than what Telegram counts), SNS ``sns.MAX_MESSAGE_BYTES``;
  console and file have none.
- mentions per message: Discord 100 (Discord API reference, Allowed Mentions
  Object: ``users`` "max size of 100"). WeCom (群机器人配置说明,
  developer.work.weixin.qq.com/document/path/91770), DingTalk (robot message
  types, open.dingtalk.com/document/development/robot-message-type), Feishu
  (custom bot guide), Slack (``chat.postMessage``) and Telegram (Bot API
  ``MessageEntity``) document no maximum: :data:`UNDOCUMENTED_MENTION_LIMIT`
  (50) is our conservative bound there — far under anything those platforms
  have been seen to enforce, and a message notifying more reads as spam.
  Local channels notify nobody: no mention limit (``max_mentions`` does not
  batch them either).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from autopilot.channels.base import ChannelEnvironment
from autopilot.channels.registry import channel_class
from autopilot.channels.split import ELLIPSIS, TextLimit, utf8_bytes, utf16_units
from autopilot.config.model import Channel as ChannelSpec

PLACEHOLDER = "{mentions}"
MAX_NAME_LENGTH = 32
# Discord API reference, "Allowed Mentions Object": users, max size of 100.
DISCORD_MENTION_LIMIT = 100
# WeCom, DingTalk, Feishu, Slack and Telegram document no maximum (module docstring).
UNDOCUMENTED_MENTION_LIMIT = 50
MENTION_SEPARATOR = " "

Kind = Literal["direct", "group"]


class MentionPlanError(ValueError):
    """The reminder cannot be planned: says which channel type and what is wrong."""


@dataclass(frozen=True)
class Recipient:
    """One member to remind, with what each platform can reach them by.

    ``platform_user_id``: the member's id on this channel's platform (WeCom/
    DingTalk userid, Feishu open_id/user_id, Slack ``U…``, Discord/Telegram
    numeric id). ``mobile``: WeCom/DingTalk can @ by mobile number.
    ``dm_address``: where a direct message goes (Telegram chat id, Slack user or
    IM channel id, Discord user id; local channels: any label).
    ``direct_text``: the member's own rendered reminder for a DM.
    """

    member_id: str
    display_name: str
    platform_user_id: str | None = None
    mobile: str | None = None
    dm_address: str | None = None
    direct_text: str | None = None


@dataclass(frozen=True)
class MentionLimits:
    """One group message's limits on a channel type (``None``: unlimited)."""

    text: TextLimit | None
    max_mentions: int | None


@dataclass(frozen=True)
class PlannedMessage:
    """One message to send and the recipients it covers.

    ``kind`` "direct": send ``text`` to ``address`` (the channel's
    ``send_to_member`` builds the body; ``payload`` is empty). ``kind`` "group":
    post ``payload``, the platform's whole message body with the mentions
    (``text`` is its text, for logs and local channels). ``mentioned`` lists the
    platform ids/mobiles notified, in order; ``recipients`` are all the members
    this message reminds (mentioned or named in plain text).
    """

    kind: Kind
    text: str
    recipients: tuple[Recipient, ...]
    address: str | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)
    mentioned: tuple[str, ...] = ()

    @property
    def member_ids(self) -> tuple[str, ...]:
        """The covered members' ids, in input order."""
        return tuple(r.member_id for r in self.recipients)


# --------------------------------------------------------------------------- limits


def supports_direct(channel_type: str) -> bool:
    """Whether the channel type can message one member (its class's ``supports_direct``)."""
    return bool(channel_class(channel_type).supports_direct)


def _wecom_limit(msgtype: str) -> TextLimit:
    # WeComChannel keeps its limits in limit(): ask an instance built with the options.
    cls: Any = channel_class("wecom")
    spec = ChannelSpec(id="mentions", type="wecom", options={"msgtype": msgtype})
    limit: TextLimit = cls(spec, ChannelEnvironment(region="", output_dir="")).limit()
    return limit


def limits_for(channel_type: str, options: Mapping[str, Any] | None = None) -> MentionLimits:
    """The size and mention limits of one group mention message (see the module docstring).

    ``options`` are the channel's config options (``msgtype`` for WeCom/DingTalk).
    """
    options = options or {}
    if channel_type in ("console", "file"):
        return MentionLimits(None, None)
    if channel_type == "sns":
        from autopilot.channels.sns import MAX_MESSAGE_BYTES

        return MentionLimits(TextLimit(MAX_MESSAGE_BYTES, utf8_bytes, "bytes"), None)
    cls: Any = channel_class(channel_type)
    if channel_type == "wecom":
        msgtype = "markdown" if options.get("msgtype") == "markdown" else "text"
        return MentionLimits(_wecom_limit(msgtype), UNDOCUMENTED_MENTION_LIMIT)
    if channel_type in ("dingtalk", "feishu", "telegram"):
        return MentionLimits(cls.LIMIT, UNDOCUMENTED_MENTION_LIMIT)
    if channel_type == "slack":
        return MentionLimits(cls.TEXT_LIMIT, UNDOCUMENTED_MENTION_LIMIT)
    if channel_type == "discord":
        return MentionLimits(cls.CONTENT_LIMIT, DISCORD_MENTION_LIMIT)
    raise MentionPlanError(f"channel type {channel_type!r}: no mention rules")


# --------------------------------------------------------------------------- mentions


@dataclass(frozen=True)
class _Mention:
    """How one recipient appears in a group message."""

    recipient: Recipient
    text: str  # what goes into the text ("" when the platform shows the @ itself)
    user_id: str | None = None  # a platform id that is notified
    mobile: str | None = None  # a mobile that is notified (WeCom/DingTalk)

    @property
    def notifies(self) -> bool:
        return self.user_id is not None or self.mobile is not None


def short_name(name: str) -> str:
    """``name`` cut to :data:`MAX_NAME_LENGTH` characters with ``…`` (mentions only)."""
    name = " ".join(name.split()) or "?"  # a newline in a name must not break the layout
    if len(name) <= MAX_NAME_LENGTH:
        return name
    return name[: MAX_NAME_LENGTH - len(ELLIPSIS)] + ELLIPSIS


def _clean(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def _slack_escape(text: str) -> str:
    # Slack's three control characters; a name like "<!channel>" stays text.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_MARKDOWN_V2_SPECIAL = "_*[]()~`>#+-=|{}.!\\"


def _markdown_v2_escape(text: str) -> str:
    return "".join("\\" + c if c in _MARKDOWN_V2_SPECIAL else c for c in text)


class _Style:
    """One platform's way to name a member in text and to build the body."""

    def __init__(self, channel_type: str, options: Mapping[str, Any]):
        self.type = channel_type
        self.msgtype = str(options.get("msgtype") or "text")
        self.parse_mode = options.get("parse_mode")

    def plain(self, name: str, *, at: bool = True) -> str:
        """A name as plain text (escaped for the platform's markup; ``@name`` locally)."""
        if self.type == "slack":
            return _slack_escape(name)
        if self.type == "telegram" and self.parse_mode == "HTML":
            return html.escape(name, quote=False)
        if self.type == "telegram" and self.parse_mode == "MarkdownV2":
            return _markdown_v2_escape(name)
        if self.type == "telegram" and self.parse_mode == "Markdown":
            return name.replace("*", "").replace("_", "").replace("`", "").replace("[", "")
        if self.type == "feishu":
            return html.escape(name, quote=False)  # "<at" in a name must not open a tag
        if self.type in ("console", "file", "sns") and at:
            return "@" + name
        return name

    def mention(self, recipient: Recipient) -> _Mention:
        name = short_name(recipient.display_name)
        user_id = _clean(recipient.platform_user_id)
        mobile = _clean(recipient.mobile)
        kind = self.type
        markdown = self.msgtype == "markdown"
        if kind == "wecom" and markdown and user_id:  # markdown: <@userid> only, no mobiles
            return _Mention(recipient, f"<@{user_id}>", user_id=user_id)
        if kind == "wecom" and not markdown and user_id:  # WeCom shows the @name itself
            return _Mention(recipient, "", user_id=user_id)
        if kind == "wecom" and not markdown and mobile:
            return _Mention(recipient, "", mobile=mobile)
        if kind == "dingtalk" and user_id:
            return _Mention(recipient, f"@{user_id}", user_id=user_id)
        if kind == "dingtalk" and mobile:
            return _Mention(recipient, f"@{mobile}", mobile=mobile)
        if kind == "feishu" and user_id:
            quoted = html.escape(user_id, quote=True)
            at = f'<at user_id="{quoted}">{html.escape(name, quote=False)}</at>'
            return _Mention(recipient, at, user_id=user_id)
        if kind == "slack" and user_id:
            return _Mention(recipient, f"<@{user_id}>", user_id=user_id)
        if kind == "discord" and user_id and user_id.isdigit():
            return _Mention(recipient, f"<@{user_id}>", user_id=user_id)
        if kind == "telegram" and user_id and user_id.isdigit():
            link = f"tg://user?id={user_id}"
            if self.parse_mode == "HTML":
                text = f'<a href="{link}">{html.escape(name, quote=False)}</a>'
            elif self.parse_mode == "MarkdownV2":
                text = f"[{_markdown_v2_escape(name)}]({link})"
            elif self.parse_mode == "Markdown":
                text = f"[{name.replace(']', '').replace('[', '')}]({link})"
            else:  # plain text: the name, with a text_mention entity over it
                text = name
            return _Mention(recipient, text, user_id=user_id)
        return _Mention(recipient, self.plain(name))

    def payload(self, text: str, mentions: Sequence[_Mention], before: str) -> dict[str, Any]:
        """The group message body; ``before`` is the text ahead of the mentions."""
        users = [m.user_id for m in mentions if m.user_id is not None]
        mobiles = [m.mobile for m in mentions if m.user_id is None and m.mobile is not None]
        kind = self.type
        if kind == "wecom":
            if self.msgtype == "markdown":
                return {"msgtype": "markdown", "markdown": {"content": text}}
            content: dict[str, Any] = {"content": text}
            if users:
                content["mentioned_list"] = users
            if mobiles:
                content["mentioned_mobile_list"] = mobiles
            return {"msgtype": "text", "text": content}
        if kind == "dingtalk":
            at = {"atUserIds": users, "atMobiles": mobiles, "isAtAll": False}
            if self.msgtype == "markdown":
                title = text.strip().split("\n", 1)[0][:64] or "-"
                return {"msgtype": "markdown", "markdown": {"title": title, "text": text}, "at": at}
            return {"msgtype": "text", "text": {"content": text}, "at": at}
        if kind == "feishu":
            return {"msg_type": "text", "content": {"text": text}}
        if kind == "discord":
            return {"content": text, "allowed_mentions": {"parse": [], "users": users}}
        if kind == "telegram":
            body: dict[str, Any] = {"text": text}
            if self.parse_mode:
                body["parse_mode"] = self.parse_mode
            elif entities := _telegram_entities(mentions, before):
                body["entities"] = entities
            return body
        return {"text": text}


def _telegram_entities(mentions: Sequence[_Mention], before: str) -> list[dict[str, Any]]:
    """``text_mention`` entities over the names (offsets in UTF-16 code units)."""
    entities: list[dict[str, Any]] = []
    offset = utf16_units(before)
    for index, mention in enumerate(m for m in mentions if m.text):
        if index:
            offset += utf16_units(MENTION_SEPARATOR)
        length = utf16_units(mention.text)
        if mention.user_id is not None:
            entities.append(
                {
                    "type": "text_mention",
                    "offset": offset,
                    "length": length,
                    "user": {"id": int(mention.user_id)},
                }
            )
        offset += length
    return entities


# --------------------------------------------------------------------------- planning


# Punctuation that follows a word without a space (Chinese and Latin).
_CLOSING = frozenset("，。！？、；：,.!?;:）)」』～~")


@dataclass(frozen=True)
class _Template:
    before: str
    after: str
    placeholder: bool = True

    @classmethod
    def parse(cls, template: str, channel_type: str) -> _Template:
        count = template.count(PLACEHOLDER)
        if count > 1:
            raise MentionPlanError(
                f"channel type {channel_type!r}: the group template has {PLACEHOLDER} "
                f"{count} times; it takes it at most once"
            )
        if count == 0:
            return cls("", "\n" + template, placeholder=False)
        before, after = template.split(PLACEHOLDER, 1)
        return cls(before, after)

    def render(self, mentions_text: str) -> str:
        if not mentions_text and self.after.startswith("\n") and not self.before:
            return self.after[1:]  # nobody named in text (WeCom lists): no empty first line
        if not mentions_text:
            # Nobody named in the text (WeCom's mentioned_list notifies): close the gap
            # the placeholder leaves, keeping one space between two words.
            left, right = self.before.rstrip(), self.after.lstrip()
            spaced = (left != self.before or right != self.after) and left and right
            return left + (" " if spaced and right[0] not in _CLOSING else "") + right
        return self.before + mentions_text + self.after


def _unique(recipients: Iterable[Recipient]) -> list[Recipient]:
    seen: set[str] = set()
    out: list[Recipient] = []
    for recipient in recipients:
        if recipient.member_id not in seen:
            seen.add(recipient.member_id)
            out.append(recipient)
    return out


def _batches(
    mentions: Sequence[_Mention],
    template: _Template,
    limits: MentionLimits,
    channel_type: str,
) -> list[list[_Mention]]:
    """Consecutive batches, each as long as the size and mention limits allow.

    The size is kept incrementally (UTF-8 bytes and UTF-16 units add up over a
    concatenation), so planning 10,000 recipients stays linear.
    """
    text_limit = limits.text
    measure: Callable[[str], int] = text_limit.measure if text_limit else len
    base = measure(template.before) + measure(template.after)
    separator = measure(MENTION_SEPARATOR)
    batches: list[list[_Mention]] = []
    batch: list[_Mention] = []
    size = base
    notified = 0
    has_text = False  # the batch names someone in its text (a separator comes first)
    for mention in mentions:
        token = measure(mention.text) if mention.text else 0
        grown = size + token + (separator if has_text and mention.text else 0)
        count = notified + (1 if mention.notifies else 0)
        fits = (text_limit is None or grown <= text_limit.max_length) and (
            limits.max_mentions is None or count <= limits.max_mentions
        )
        if batch and not fits:
            batches.append(batch)
            batch, size, notified, has_text = [], base, 0, False
            grown = size + token
            count = 1 if mention.notifies else 0
            fits = text_limit is None or grown <= text_limit.max_length
        if not fits:
            assert text_limit is not None
            raise MentionPlanError(
                f"channel type {channel_type!r}: the group template leaves no room for one "
                f"mention within {text_limit.max_length} {text_limit.unit} "
                f"(template {base} {text_limit.unit}, mention {token}): shorten the template"
            )
        batch.append(mention)
        size, notified = grown, count
        has_text = has_text or bool(mention.text)
    if batch:
        batches.append(batch)
    return batches


def plan_delivery(
    channel_type: str,
    recipients: Iterable[Recipient],
    group_template: str,
    *,
    options: Mapping[str, Any] | None = None,
    max_mentions: int | None = None,
) -> list[PlannedMessage]:
    """The messages that deliver one reminder to ``recipients`` (see the module rule).

    ``group_template``: the reminder's group text with at most one ``{mentions}``.
    ``options``: the channel's config options (``msgtype``, ``parse_mode``).
    ``max_mentions`` lowers the platform's mention limit (never raises it).
    """
    options = options or {}
    style = _Style(channel_type, options)
    limits = limits_for(channel_type, options)
    if max_mentions is not None:
        if max_mentions < 1:
            raise MentionPlanError(f"max_mentions must be at least 1, not {max_mentions}")
        bound = limits.max_mentions
        limits = MentionLimits(
            limits.text, max_mentions if bound is None else min(bound, max_mentions)
        )
    template = _Template.parse(group_template, channel_type)
    direct_ok = supports_direct(channel_type)

    direct: list[PlannedMessage] = []
    grouped: list[_Mention] = []
    for recipient in _unique(recipients):
        address = _clean(recipient.dm_address) if direct_ok else None
        if address is not None:
            text = recipient.direct_text
            if text is None:  # the group text, naming the member where it names people
                name = style.plain(recipient.display_name, at=False) if template.placeholder else ""
                text = template.render(name)
            direct.append(PlannedMessage("direct", text, (recipient,), address=address))
        else:
            grouped.append(style.mention(recipient))

    planned = direct
    for batch in _batches(grouped, template, limits, channel_type):
        mentions_text = MENTION_SEPARATOR.join(m.text for m in batch if m.text)
        text = template.render(mentions_text)
        planned.append(
            PlannedMessage(
                "group",
                text,
                tuple(m.recipient for m in batch),
                payload=style.payload(text, batch, template.before),
                mentioned=tuple(
                    m.user_id if m.user_id is not None else str(m.mobile)
                    for m in batch
                    if m.notifies
                ),
            )
        )
    return planned
