"""The config file's format, defined once: typed msgspec Structs.

These Structs are the single definition of the document's *shape*: which keys
exist, their types, enums, patterns, bounds, defaults and descriptions.

* ``config/schema.json`` is generated from them (:mod:`autopilot.config.schema`;
  ``python -m autopilot.config.schema`` rewrites it, a test fails when it is stale);
* ``autopilot config validate`` / ``push`` check a file against that generated
  schema with jsonschema, which reports *every* shape problem with its position;
* functions load the pushed (already validated) JSON into these Structs with
  :func:`msgspec.convert`, a C decoder that costs a few milliseconds on a cold start
  and stops at the first problem (a published document has none).

What a schema cannot say (references between ids, duplicate ids, cron and zone
validity, template fields, tier order) lives in :mod:`autopilot.config.model`.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

SCHEMA_VERSION = 1
ID_RE = "^[a-z0-9][a-z0-9_-]{0,47}$"
HHMM_RE = "^([01][0-9]|2[0-3]):[0-5][0-9]$"
DURATION_RE = "^[0-9]+[smhd]$"
CRON_RE = "^\\s*\\S+(\\s+\\S+){4}\\s*$"
NOT_BLANK_RE = "\\S"
RELATIVE_PATH_RE = "^(?!/)(?!.*\\.\\.).+$"
ZONE_RE = "^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$"
ISO_RE = "^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?(Z|[+-]\\d{2}:\\d{2})$"
SHA256_RE = "^[0-9a-f]{64}$"
MAX_TEMPLATE_CHARS = 4000
MAX_PARTS_LIMIT = 10

#: How a value that does not match a pattern is described: ``{value!r} <message>``.
#: Both the CLI (jsonschema) and the functions (msgspec) read this table.
PATTERN_MESSAGES = {
    ID_RE: "is not a valid id: use 1-48 characters a-z, 0-9, '-' or '_', "
    "starting with a letter or digit",
    HHMM_RE: "is not a valid time of day (expected HH:MM, 00:00-23:59)",
    DURATION_RE: "is not a valid duration (expected e.g. 30s, 10m, 2h, 1d)",
    CRON_RE: "is not a 5-field cron expression (minute hour day-of-month month day-of-week)",
    NOT_BLANK_RE: "is blank",
    RELATIVE_PATH_RE: "must be relative to the output directory and must not contain '..'",
    ZONE_RE: "is not an IANA time zone name (e.g. Asia/Shanghai)",
    ISO_RE: "is not an ISO-8601 time with offset (e.g. 2026-03-01T07:00:00Z)",
    SHA256_RE: "is not a lowercase hex SHA-256",
}

#: What an enum's property is called in "unknown <noun> 'x' (known: ...)".
ENUM_NOUNS = {
    "locale": "locale",
    "type": "channel type",
    "action": "action",
    "policy": "misfire policy",
    "quiet_hours": "quiet-hours policy",
    "msgtype": "msgtype",
    "parse_mode": "parse_mode",
    "version": "config version",
    "mode": "entry mode",
    "weight": "weight mode",
    "kind": "reminder kind",
    "audience": "lottery audience",
    "period": "report period",
}

#: What an empty list that needs entries is told, by key (default: "must not be empty").
MIN_ITEMS_MESSAGES = {
    "communities": "at least one community is required",
    "items": "a pool needs at least one item",
    "channels": "a post needs at least one channel",
    "chat_keywords": "chat_keywords must be a non-empty list of words",
    "prizes": "a lottery needs at least one prize tier",
    "keywords": "keywords must be a non-empty list of words",
}

# Keys that would hold a secret: refused with a pointer to SSM, never stored in config.
SECRET_CHANNEL_KEYS = (
    "webhook_url",
    "webhook",
    "url",
    "secret",
    "signing_secret",
    "token",
    "bot_token",
    "access_token",
    "key",
    "api_key",
    "password",
    "sign",
    "chat_id",
    "api_base",
)


def secret_key_message(key: str, community_id: object, channel_id: object) -> str:
    """Why a secret-looking channel key is refused, and where the secret goes instead."""
    where = channel_id if isinstance(channel_id, str) and channel_id else "<channel>"
    community = community_id if isinstance(community_id, str) and community_id else "<community>"
    return (
        f"{key!r} must not be in the config file: put the channel's secrets in the SSM "
        f"SecureString parameter <ChannelSecretsPrefix>/{community}/{where} "
        "(see docs/channels.md)"
    )


Id = Annotated[
    str,
    Meta(
        pattern=ID_RE,
        description="An identifier: 1-48 characters, lowercase letters, digits, '-' and '_', "
        "starting with a letter or digit. Ids are stored with every post and ledger entry: "
        "renaming one starts a new history.",
    ),
]
HHMM = Annotated[
    str,
    Meta(
        pattern=HHMM_RE,
        description='A local wall-clock time HH:MM, 00:00-23:59. Quote it in YAML ("21:00"): '
        "unquoted, YAML 1.1 reads 21:00 as the base-60 number 1260.",
    ),
]
Duration = Annotated[
    str,
    Meta(
        pattern=DURATION_RE,
        description="A duration: a whole number followed by s (seconds), m (minutes), "
        "h (hours) or d (days), e.g. 30s, 10m, 2h, 1d.",
    ),
]
Cron = Annotated[
    str,
    Meta(
        pattern=CRON_RE,
        description="When the job runs: a 5-field cron expression (minute hour day-of-month "
        'month day-of-week) in the community\'s time zone, e.g. "30 7 * * *" for 07:30 every '
        'day, "0 9 * * 1" for Mondays at 09:00. Day-of-week 0 and 7 are Sunday.',
    ),
]
Template = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=MAX_TEMPLATE_CHARS,
        description="A message template with {field} placeholders (Python str.format syntax; "
        "write {{ and }} for literal braces). Fields for posts: community, date, date_iso, "
        "weekday, time, day_of_year, content, content_id, title, pool; capabilities "
        "register more.",
    ),
]
Text = Annotated[str, Meta(min_length=1)]
Ops = Annotated[str, Meta(description="Free text for ops; never shown to members.")]
Positive = Annotated[int, Meta(ge=1)]
Mentions = Annotated[list[Annotated[str, Meta(min_length=1, pattern=NOT_BLANK_RE)]], Meta()]
MaxParts = Annotated[
    int,
    Meta(
        ge=1,
        le=MAX_PARTS_LIMIT,
        description="A message longer than the platform's limit is split into at most this "
        "many messages; the last is truncated with '…' (docs/channels.md).",
    ),
]


def tag_of(cls: type[Struct]) -> str:
    """The tag (``type`` of a channel, ``action`` of a job) a Struct variant carries."""
    return str(cls.__struct_config__.tag)


class _Doc(Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Base of every mapping in the file: unknown keys are errors."""


# --------------------------------------------------------------------------- channels


class _Channel(_Doc, tag_field="type", kw_only=True, forbid_unknown_fields=True):
    """A destination for messages. The allowed keys depend on ``type``."""

    id: Annotated[
        str,
        Meta(
            pattern=ID_RE,
            description="Id of the channel, unique within the community; jobs list it in "
            "params.channels.",
        ),
    ]
    description: Ops | None = None


class ConsoleChannel(_Channel, tag="console", kw_only=True, forbid_unknown_fields=True):
    """console: print to the log (local runs, debugging)."""


class FileChannel(_Channel, tag="file", kw_only=True, forbid_unknown_fields=True):
    """file: append JSON lines to a file under the output directory (local runs, tests)."""

    path: Annotated[
        str,
        Meta(
            min_length=1,
            pattern=RELATIVE_PATH_RE,
            description="File to append JSON lines to, relative to the output directory; "
            "no leading '/' and no '..'.",
        ),
    ]


class SnsChannel(_Channel, tag="sns", kw_only=True, forbid_unknown_fields=True):
    """sns: publish to the deployment's SNS topic."""

    subject: (
        Annotated[
            str,
            Meta(
                min_length=1,
                max_length=100,
                description="SNS message subject (e-mail subscribers see it), used when the "
                "post has no title. At most 100 characters.",
            ),
        ]
        | None
    ) = None


class _ChatChannel(_Channel, kw_only=True, forbid_unknown_fields=True):
    """A chat platform; its webhook URL, tokens and signing secret live in SSM."""

    max_parts: MaxParts | None = None


class WecomChannel(_ChatChannel, tag="wecom", kw_only=True, forbid_unknown_fields=True):
    """WeCom (企业微信) group robot."""

    msgtype: (
        Annotated[
            Literal["text", "markdown"],
            Meta(description="text (default; 2048 bytes) or markdown (4096 bytes)."),
        ]
        | None
    ) = None
    mention_all: Annotated[bool, Meta(description="@all with every post (text only).")] = False
    mentions: (
        Annotated[Mentions, Meta(description="WeCom user ids to @ (markdown: <@userid>).")] | None
    ) = None
    mention_mobiles: (
        Annotated[Mentions, Meta(description="Mobile numbers to @ (text only).")] | None
    ) = None


class DingtalkChannel(_ChatChannel, tag="dingtalk", kw_only=True, forbid_unknown_fields=True):
    """DingTalk (钉钉) group robot."""

    msgtype: (
        Annotated[Literal["text", "markdown"], Meta(description="text (default) or markdown.")]
        | None
    ) = None
    mention_all: Annotated[bool, Meta(description="@all with every post.")] = False
    mentions: Annotated[Mentions, Meta(description="DingTalk user ids to @.")] | None = None
    mention_mobiles: Annotated[Mentions, Meta(description="Mobile numbers to @.")] | None = None


class FeishuChannel(_ChatChannel, tag="feishu", kw_only=True, forbid_unknown_fields=True):
    """Feishu / Lark (飞书) custom bot."""

    msgtype: (
        Annotated[
            Literal["text", "post"],
            Meta(description="text (default) or post (rich text with the post's title)."),
        ]
        | None
    ) = None
    mention_all: Annotated[bool, Meta(description="@all with every post.")] = False


class SlackChannel(_ChatChannel, tag="slack", kw_only=True, forbid_unknown_fields=True):
    """Slack incoming webhook."""

    msgtype: (
        Annotated[
            Literal["text", "blocks"],
            Meta(
                description="text (default) or blocks (a header with the title, sections of "
                "up to 3000 characters)."
            ),
        ]
        | None
    ) = None


class DiscordChannel(_ChatChannel, tag="discord", kw_only=True, forbid_unknown_fields=True):
    """Discord webhook."""

    msgtype: (
        Annotated[
            Literal["content", "embed"],
            Meta(
                description="content (default; 2000 characters) or embed (title + description "
                "of up to 4096 characters)."
            ),
        ]
        | None
    ) = None
    mention_all: Annotated[
        bool,
        Meta(description="@everyone with every post (otherwise mentions in the text never ping)."),
    ] = False
    username: (
        Annotated[
            str,
            Meta(
                min_length=1,
                max_length=80,
                description="Name the webhook posts under (1-80 characters).",
            ),
        ]
        | None
    ) = None


class TelegramChannel(_ChatChannel, tag="telegram", kw_only=True, forbid_unknown_fields=True):
    """Telegram bot."""

    parse_mode: (
        Annotated[
            Literal["HTML", "MarkdownV2", "Markdown"],
            Meta(description="How Telegram formats the text; none (plain text) by default."),
        ]
        | None
    ) = None
    disable_notification: Annotated[bool, Meta(description="Send silently.")] = False


ChannelDoc = (
    ConsoleChannel
    | FileChannel
    | SnsChannel
    | WecomChannel
    | DingtalkChannel
    | FeishuChannel
    | SlackChannel
    | DiscordChannel
    | TelegramChannel
)
CHAT_CHANNELS: tuple[type[_ChatChannel], ...] = (
    WecomChannel,
    DingtalkChannel,
    FeishuChannel,
    SlackChannel,
    DiscordChannel,
    TelegramChannel,
)
_ALL_CHANNELS: tuple[type[_Channel], ...] = (
    ConsoleChannel,
    FileChannel,
    SnsChannel,
    *CHAT_CHANNELS,
)
CHANNEL_TYPES: tuple[str, ...] = tuple(tag_of(c) for c in _ALL_CHANNELS)


# --------------------------------------------------------------------------- pools


class ItemDoc(_Doc, kw_only=True, forbid_unknown_fields=True):
    """One piece of content."""

    id: Annotated[
        str,
        Meta(
            pattern=ID_RE,
            description="Id of the item, unique within its pool (available as {content_id}).",
        ),
    ]
    text: Annotated[
        str,
        Meta(
            min_length=1,
            pattern=NOT_BLANK_RE,
            description="The content ({content} in templates). Leading and trailing blank "
            "space is trimmed.",
        ),
    ]
    title: Annotated[str, Meta(description="Optional title ({title} in templates).")] | None = None


class PoolDoc(_Doc, kw_only=True, forbid_unknown_fields=True):
    """A content pool: items rotated without repeats until the pool is exhausted."""

    id: Annotated[
        str,
        Meta(
            pattern=ID_RE,
            description="Id of the pool, unique within the community; posts name it in "
            "params.pool.",
        ),
    ]
    items: Annotated[
        list[ItemDoc],
        Meta(
            min_length=1,
            description="The content. Keep item ids stable: the rotation remembers which ids "
            "were used.",
        ),
    ]
    description: Ops | None = None


# --------------------------------------------------------------------------- jobs


class MisfireDoc(_Doc, kw_only=True, forbid_unknown_fields=True):
    """What happens to occurrences whose tick was missed (an outage, a throttled dispatcher)."""

    policy: Annotated[
        Literal["latest", "all"],
        Meta(
            description="latest: run only the most recent missed occurrence, and only if it is "
            "at most `grace` late; older ones are recorded as missed (never a burst of stale "
            "posts). all: run every missed occurrence, oldest first, up to 100."
        ),
    ] = "latest"
    grace: Annotated[
        str,
        Meta(
            pattern=DURATION_RE,
            description="How late an occurrence may still run under policy latest, e.g. 10m.",
        ),
    ] = "10m"


class PostParams(_Doc, kw_only=True, forbid_unknown_fields=True):
    """Parameters of a post job."""

    pool: Annotated[str, Meta(pattern=ID_RE, description="Id of the pool the content comes from.")]
    channels: Annotated[
        list[Annotated[str, Meta(pattern=ID_RE)]],
        Meta(
            min_length=1,
            extra_json_schema={"uniqueItems": True},
            description="Ids of the channels to publish to (at least one, each once).",
        ),
    ]
    template: Template
    title: (
        Annotated[
            str,
            Meta(
                min_length=1,
                max_length=MAX_TEMPLATE_CHARS,
                description="Optional message title (SNS subject, chat card title), a template "
                "like `template`.",
            ),
        ]
        | None
    ) = None


class NoParams(_Doc, kw_only=True, forbid_unknown_fields=True):
    """This action takes no parameters."""


QuietPolicy = Annotated[
    Literal["defer", "drop", "ignore"],
    Meta(
        description="What the job does with an occurrence inside the community's quiet hours. "
        "defer: send it when quiet hours end. drop: skip it (recorded as skipped). ignore: "
        "send anyway (refused for reminders: they are never sent at night). Default: defer "
        "for jobs that send messages (post, reminder), ignore for others."
    ),
]
JobId = Annotated[
    str,
    Meta(
        pattern=ID_RE,
        description="Id of the job, unique within the community. Occurrences are recorded "
        "under (community, job, local time): renaming a job makes its next occurrence run "
        "even if the old id already ran it.",
    ),
]
Enabled = Annotated[
    bool,
    Meta(
        description="false pauses the job without deleting it. On re-enabling, the paused "
        "occurrences (up to 7 days back) are handled like missed ones, under the misfire "
        "policy."
    ),
]


class _Job(_Doc, tag_field="action", kw_only=True, forbid_unknown_fields=True):
    """A scheduled job. ``action`` says what it does and which params it takes."""

    id: JobId
    cron: Cron
    misfire: MisfireDoc | None = None
    enabled: Enabled = True
    description: Ops | None = None


class PostJob(_Job, tag="post", kw_only=True, forbid_unknown_fields=True):
    """post: publish the next item of a content pool to channels."""

    params: PostParams
    quiet_hours: QuietPolicy = "defer"


class LedgerExportJob(_Job, tag="ledger_export", kw_only=True, forbid_unknown_fields=True):
    """ledger_export: write last month's ledger as CSV with a manifest to the export bucket."""

    params: NoParams | None = None
    quiet_hours: QuietPolicy = "ignore"


class LedgerReconcileJob(_Job, tag="ledger_reconcile", kw_only=True, forbid_unknown_fields=True):
    """ledger_reconcile: check that entries sum to balances and no entry id repeats."""

    params: NoParams | None = None
    quiet_hours: QuietPolicy = "ignore"


# --------------------------------------------------------------------------- reminder jobs

#: Bounds of a reminder's conversion window (a check-in within it counts as converted).
DEFAULT_CONVERSION_WINDOW = "4h"
MIN_CONVERSION_WINDOW_S = 10 * 60
MAX_CONVERSION_WINDOW_S = 24 * 60 * 60

ReminderTemplate = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=MAX_TEMPLATE_CHARS,
        description="The direct message each member gets (where the channel supports DMs and "
        "the member has an address), with {field} placeholders (Python str.format syntax; "
        "{{ and }} for literal braces). Fields: community, date, weekday, name, streak, "
        "freezes, freeze_note, days_since; lottery and draw_time for kind lottery only "
        "(docs/config.md#reminder-jobs).",
    ),
]
ReminderGroupTemplate = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=MAX_TEMPLATE_CHARS,
        description="The group message that @mentions the members who get no DM: {mentions} "
        "(at most once) is replaced by the mentions of one batch; without it they go on a "
        "line above the text. Fields: community, date, weekday, mentions; lottery and "
        "draw_time for kind lottery only. Default: a text per kind in the community's locale.",
    ),
]
ActiveDays = Annotated[
    int,
    Meta(
        ge=1,
        description="Active members are those whose last check-in day is within the last N "
        "days (default 7).",
    ),
]


class _ReminderParams(_Doc, tag_field="kind", kw_only=True, forbid_unknown_fields=True):
    """Parameters of a reminder job; ``kind`` says whom it selects and which keys it takes."""

    channel: Annotated[
        str,
        Meta(
            pattern=ID_RE,
            description="ONE channel of the community. A member with a DM address gets a "
            "direct message where the channel's type supports them (Telegram, Slack, Discord, "
            "local channels); everyone else is @mentioned in group messages on it.",
        ),
    ]
    template: ReminderTemplate
    group_template: ReminderGroupTemplate | None = None
    conversion_window: (
        Annotated[
            str,
            Meta(
                pattern=DURATION_RE,
                description="A check-in within this long after the reminder counts as "
                "converted: 10m to 24h, default 4h.",
            ),
        ]
        | None
    ) = None
    max_mentions: (
        Annotated[
            int,
            Meta(
                ge=1,
                description="Most members @mentioned in one group message, below the "
                "platform's own limit (Discord 100, 50 elsewhere). Default: the platform's.",
            ),
        ]
        | None
    ) = None


class NotCheckedInParams(
    _ReminderParams, tag="not_checked_in", kw_only=True, forbid_unknown_fields=True
):
    """not_checked_in: active members who have not checked in today."""

    active_days: ActiveDays = 7


class StreakAtRiskParams(
    _ReminderParams, tag="streak_at_risk", kw_only=True, forbid_unknown_fields=True
):
    """streak_at_risk: members whose streak ends tonight unless they check in today."""

    min_streak: Annotated[
        int,
        Meta(ge=1, description="Only streaks of at least this many days (default 3)."),
    ] = 3


class InactiveParams(_ReminderParams, tag="inactive", kw_only=True, forbid_unknown_fields=True):
    """inactive: members whose last check-in day is exactly `days` days ago (win-back)."""

    days: Annotated[
        int,
        Meta(
            ge=1,
            description="Days since the last check-in day (default 7); a member is nudged at "
            "most once per that many days.",
        ),
    ] = 7


class LotteryReminderParams(
    _ReminderParams, tag="lottery", kw_only=True, forbid_unknown_fields=True
):
    """lottery: the entrants or the eligible non-entrants of a lottery that draws today."""

    lottery: Annotated[
        str, Meta(pattern=ID_RE, description="Id of a lottery of this community (lotteries).")
    ]
    audience: Annotated[
        Literal["entrants", "eligible_non_entrants"],
        Meta(
            description="entrants: members who entered today's draw. eligible_non_entrants "
            "(default): active members who have not entered."
        ),
    ] = "eligible_non_entrants"
    active_days: ActiveDays = 7


ReminderParams = NotCheckedInParams | StreakAtRiskParams | InactiveParams | LotteryReminderParams
_REMINDER_PARAMS: tuple[type[_ReminderParams], ...] = (
    NotCheckedInParams,
    StreakAtRiskParams,
    InactiveParams,
    LotteryReminderParams,
)
#: The reminder kinds (``autopilot.reminders.rules.ReminderKind``; a test pins them).
REMINDER_KINDS: tuple[str, ...] = tuple(tag_of(c) for c in _REMINDER_PARAMS)
#: The keys of each kind's own parameters, as ``parse_spec`` takes them except
#: ``lottery``, which is its ``lottery_id`` (a test pins them to the rules).
REMINDER_SPEC_KEYS: dict[str, tuple[str, ...]] = {
    tag_of(c): tuple(
        name for name in c.__struct_fields__ if name not in _ReminderParams.__struct_fields__
    )
    for c in _REMINDER_PARAMS
}


class ReminderJob(_Job, tag="reminder", kw_only=True, forbid_unknown_fields=True):
    """reminder: remind the members a kind selects, by DM or @mention on one channel."""

    params: Annotated[
        ReminderParams,
        Meta(
            description="Whom to remind (kind and its own keys), on which channel, with which "
            "texts (docs/config.md#reminder-jobs)."
        ),
    ]
    # The same type as every job's (the schema checks it even under an unknown
    # action); ``ignore`` is refused by the model, with the reason.
    quiet_hours: QuietPolicy = "defer"


# --------------------------------------------------------------------------- report jobs

ReportTemplate = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=MAX_TEMPLATE_CHARS,
        description="A report post template with {field} placeholders (Python str.format "
        "syntax; {{ and }} for literal braces). Fields: community, period_start, period_end, "
        "checkins, checkin_rate, active_dau_avg, wau, mau, members, joined, left, new_streaks, "
        "top_streak, points_awarded, points_redeemed, points_outstanding, lottery_entrants, "
        "reminders_sent, reminders_converted, posts_failed (docs/config.md#report-posts).",
    ),
]


class MetricsReportParams(_Doc, kw_only=True, forbid_unknown_fields=True):
    """Parameters of a report job: which period, where, and the text."""

    period: Annotated[
        Literal["week", "month"],
        Meta(
            description="week: the Monday-Sunday week that ended before the run's local date. "
            "month: the calendar month before it."
        ),
    ]
    channels: Annotated[
        list[Annotated[str, Meta(pattern=ID_RE)]],
        Meta(
            min_length=1,
            extra_json_schema={"uniqueItems": True},
            description="Ids of the channels to publish to (at least one, each once).",
        ),
    ]
    template: (
        Annotated[
            ReportTemplate,
            Meta(
                description="The message. Default: a text per period in the community's locale "
                "(week: check-ins, rate, weekly actives, joins; month: the points summary)."
            ),
        ]
        | None
    ) = None
    title: (
        Annotated[
            str,
            Meta(
                min_length=1,
                max_length=MAX_TEMPLATE_CHARS,
                description="Optional message title (SNS subject, chat card title), a template "
                "with the same fields as `template`.",
            ),
        ]
        | None
    ) = None


class MetricsReportJob(_Job, tag="metrics_report", kw_only=True, forbid_unknown_fields=True):
    """metrics_report: post a week's or a month's figures from the daily metric snapshots."""

    params: MetricsReportParams
    quiet_hours: QuietPolicy = "defer"


JobDoc = PostJob | ReminderJob | MetricsReportJob | LedgerExportJob | LedgerReconcileJob
#: Actions whose jobs talk to members (and so obey quiet hours).
MESSAGE_ACTIONS = frozenset({"post", "reminder", "metrics_report"})
ACTIONS: tuple[str, ...] = tuple(
    tag_of(c) for c in (PostJob, ReminderJob, MetricsReportJob, LedgerExportJob, LedgerReconcileJob)
)


# --------------------------------------------------------------------------- check-ins


class MilestoneDoc(_Doc, kw_only=True, forbid_unknown_fields=True):
    """A bonus when the streak reaches exactly ``days``."""

    days: Annotated[int, Meta(ge=1, description="Streak length in check-in days.")]
    bonus: Annotated[int, Meta(ge=1, description="Bonus points (reason streak_bonus).")]


class FreezesDoc(_Doc, kw_only=True, forbid_unknown_fields=True):
    """Streak freezes: each bridges one missed day automatically."""

    every_days: Annotated[int, Meta(ge=1, description="Earn a freeze every N streak days.")]
    max_held: Annotated[int, Meta(ge=1, description="Most freezes a member can hold.")]


class TierDoc(_Doc, kw_only=True, forbid_unknown_fields=True):
    """A member tier by lifetime points."""

    id: Annotated[
        str,
        Meta(pattern=ID_RE, description="Tier id (stored on the member and in tier changes)."),
    ]
    name: Annotated[str, Meta(min_length=1, description="Display name of the tier.")]
    min_lifetime_points: Annotated[
        int, Meta(ge=0, description="Lifetime points from which the tier applies.")
    ]


class CheckinsDoc(_Doc, kw_only=True, forbid_unknown_fields=True):
    """Check-in rules: points, daily cap, milestones, freezes, make-up (补签) and tiers."""

    base_points: Annotated[int, Meta(ge=1, description="Points for each daily check-in.")] = 10
    daily_cap: (
        Annotated[
            int,
            Meta(
                ge=1,
                description="Most points one check-in day can award (base + bonus); the bonus "
                "is truncated first. Default: no cap.",
            ),
        ]
        | None
    ) = None
    milestones: list[MilestoneDoc] = []
    freezes: FreezesDoc | None = None
    makeup_cost: (
        Annotated[
            int,
            Meta(
                ge=1,
                description="Points a make-up check-in (补签) for yesterday costs. Omit to "
                "disable make-ups.",
            ),
        ]
        | None
    ) = None
    tiers: Annotated[
        list[TierDoc],
        Meta(description="Member tiers by lifetime points, increasing; the first starts at 0."),
    ] = []


class RewardDoc(_Doc, kw_only=True, forbid_unknown_fields=True):
    """A reward members redeem points for."""

    id: Annotated[
        str, Meta(pattern=ID_RE, description='Reward id (POST /redemptions {"reward": id}).')
    ]
    name: Annotated[str, Meta(min_length=1, description="Display name.")]
    cost_points: Annotated[int, Meta(ge=1, description="Points one redemption costs.")]
    stock: (
        Annotated[
            int,
            Meta(ge=0, description="How many can be redeemed in total. Omit for unlimited."),
        ]
        | None
    ) = None
    description: Ops | None = None


# --------------------------------------------------------------------------- lotteries

#: Entry and claim keywords when a lottery does not set its own.
DEFAULT_LOTTERY_KEYWORDS = ("抽奖", "/lottery")
DEFAULT_CLAIM_KEYWORDS = ("领奖", "/claim")
#: Longest lottery and prize title (members see it in posts).
MAX_LOTTERY_TITLE_CHARS = 80
#: Most tickets one member may hold in one draw (weight ``tickets``).
MAX_TICKETS = 1000
#: Most points one ticket may cost (the ledger's bound on one movement is higher).
MAX_TICKET_COST = 1_000_000
#: The draw's and the ledger's bounds (``lottery.draw.MAX_WEIGHT``,
#: ``ledger.rules.MAX_POINTS``), repeated so this module imports nothing of the
#: project; a test pins them to the originals.
MAX_WEIGHT_CAP = 1_000_000
MAX_PRIZE_POINTS = 1_000_000_000

LotteryTemplate = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=MAX_TEMPLATE_CHARS,
        description="A lottery post template with {field} placeholders (Python str.format "
        "syntax; {{ and }} for literal braces). Fields: community, date, date_iso, weekday, "
        "time, lottery, lottery_id, draw_id, commitment, opens, closes, draws, cost_points, "
        "keyword, entrants, entrants_hash, winners, winner_count, seed, external_value, "
        "record, prize, claim_by, claim_keyword (docs/config.md). Default: a text in the "
        "community's locale.",
    ),
]
Keywords = Annotated[
    list[Annotated[str, Meta(min_length=1, max_length=40, pattern=NOT_BLANK_RE)]],
    Meta(min_length=1, extra_json_schema={"uniqueItems": True}),
]


class LotteryScheduleDoc(_Doc, kw_only=True, forbid_unknown_fields=True):
    """When each cycle opens, closes and draws: crons in the community's time zone.

    A cycle opens at a firing of ``opens``, closes at the first firing of ``closes``
    after it, and draws at the first firing of ``draws`` at or after the close.
    """

    opens: Annotated[
        str,
        Meta(
            pattern=CRON_RE,
            description='When a cycle opens (5-field cron, local time), e.g. "0 0 * * 1" for '
            "Monday 00:00. The announcement (with the seed's commitment) is posted then.",
        ),
    ]
    closes: Annotated[
        str,
        Meta(
            pattern=CRON_RE,
            description='When entries close and the entrant list is frozen, e.g. "55 19 * * 5" '
            "for Friday 19:55. Must come before the next open.",
        ),
    ]
    draws: Annotated[
        str,
        Meta(
            pattern=CRON_RE,
            description='When the winners are drawn, e.g. "0 20 * * 5" for Friday 20:00. Must '
            "come after the close and before the next open.",
        ),
    ]


class LotteryEntryDoc(_Doc, kw_only=True, forbid_unknown_fields=True):
    """How members enter."""

    mode: Annotated[
        Literal["auto", "enter"],
        Meta(
            description="auto: every eligible member is entered at the close, free. enter: "
            "members enter (POST /lotteries/{id}/entries or a chat keyword) and must still be "
            "eligible at the close."
        ),
    ] = "auto"
    cost_points: Annotated[
        int,
        Meta(
            ge=0,
            le=MAX_TICKET_COST,
            description="Points one ticket costs (mode enter only), debited through the ledger "
            "with the entry and refunded if the draw is cancelled. Default 0 (free).",
        ),
    ] = 0
    max_tickets: Annotated[
        int,
        Meta(
            ge=1,
            le=MAX_TICKETS,
            description="Most tickets one member may hold in one draw. Above 1 only with "
            "weight: tickets. Default 1.",
        ),
    ] = 1
    keywords: (
        Annotated[
            Keywords,
            Meta(
                description="Chat messages that enter the lottery (mode enter). Default 抽奖, "
                "/lottery. Must not clash with the check-in keywords or another lottery's.",
            ),
        ]
        | None
    ) = None


class LotteryEligibilityDoc(_Doc, kw_only=True, forbid_unknown_fields=True):
    """Who may be an entrant; every rule given must hold at the close (all optional)."""

    min_checkins: (
        Annotated[
            int,
            Meta(
                ge=1,
                description="At least this many check-in days within the cycle's window (open "
                "to close). More than the window has days is refused.",
            ),
        ]
        | None
    ) = None
    min_streak: (
        Annotated[
            int, Meta(ge=1, description="A streak of at least this many days alive at the close.")
        ]
        | None
    ) = None
    min_tier: (
        Annotated[
            str,
            Meta(
                pattern=ID_RE,
                description="This tier or a higher one (a tier id of checkins.tiers).",
            ),
        ]
        | None
    ) = None
    joined_before_open: Annotated[
        bool, Meta(description="Only members who joined before the cycle opened.")
    ] = False
    not_won_within_days: (
        Annotated[
            int,
            Meta(
                ge=1,
                description="No lottery prize won in this community in the last N check-in "
                "days up to the close (7: last week's winners sit one weekly draw out).",
            ),
        ]
        | None
    ) = None
    not_left: Annotated[
        bool, Meta(description="Members who left before the close are out. Default true.")
    ] = True


class LotteryPrizeDoc(_Doc, kw_only=True, forbid_unknown_fields=True):
    """A prize tier: ``count`` prizes of one kind. Give exactly one of points, reward,
    coupon_pool. Tiers take ranks in the order listed."""

    id: Annotated[
        str, Meta(pattern=ID_RE, description="Tier id, unique within the lottery (e.g. first).")
    ]
    title: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=MAX_LOTTERY_TITLE_CHARS,
            pattern=NOT_BLANK_RE,
            description="Prize title shown to members (一等奖), 1-80 characters.",
        ),
    ]
    count: Annotated[int, Meta(ge=1, description="How many winners this tier has.")]
    points: (
        Annotated[
            int,
            Meta(
                ge=1,
                le=MAX_PRIZE_POINTS,
                description="Points credited to each winner through the ledger.",
            ),
        ]
        | None
    ) = None
    reward: (
        Annotated[
            str,
            Meta(
                pattern=ID_RE,
                description="A reward of the community's catalog (rewards); its stock must "
                "cover every prize naming it.",
            ),
        ]
        | None
    ) = None
    coupon_pool: (
        Annotated[
            str,
            Meta(
                pattern=ID_RE,
                description="A pool of coupon codes ops upload (`autopilot lottery codes "
                "upload`); each winner gets one code, each code is given once.",
            ),
        ]
        | None
    ) = None


class LotteryClaimDoc(_Doc, kw_only=True, forbid_unknown_fields=True):
    """Winners must claim their prize; an unclaimed prize is rerolled."""

    window: Annotated[
        str,
        Meta(
            pattern=DURATION_RE,
            description="How long after the draw a winner may claim (e.g. 2d); then the prize "
            "goes to the next entrant in draw order.",
        ),
    ]
    keywords: (
        Annotated[
            Keywords,
            Meta(description="Chat messages that claim a prize. Default 领奖, /claim."),
        ]
        | None
    ) = None


class LotteryPostsDoc(_Doc, kw_only=True, forbid_unknown_fields=True):
    """Where the lottery's posts go and their templates."""

    channels: Annotated[
        list[Annotated[str, Meta(pattern=ID_RE)]],
        Meta(
            min_length=1,
            extra_json_schema={"uniqueItems": True},
            description="Ids of the community's channels the posts go to (at least one).",
        ),
    ]
    announce: (
        Annotated[
            LotteryTemplate,
            Meta(description="Posted when a cycle opens (include {commitment})."),
        ]
        | None
    ) = None
    closed: (
        Annotated[
            LotteryTemplate,
            Meta(description="Posted at the close (include {entrants} and {entrants_hash})."),
        ]
        | None
    ) = None
    winners: (
        Annotated[
            LotteryTemplate,
            Meta(description="Posted after the draw (include {winners}, {seed} and {record})."),
        ]
        | None
    ) = None
    claim_dm: (
        Annotated[
            LotteryTemplate,
            Meta(
                description="Sent privately to each winner where a channel can (fields prize, "
                "claim_by, claim_keyword). Default: a text in the community's locale when a "
                "claim window is set, none otherwise.",
            ),
        ]
        | None
    ) = None


class LotteryDoc(_Doc, kw_only=True, forbid_unknown_fields=True):
    """A recurring lottery (抽奖) with a verifiable draw (docs/lottery.md)."""

    id: Annotated[
        str,
        Meta(
            pattern=ID_RE,
            description="Id of the lottery, unique within the community (POST "
            "/lotteries/{id}/entries). Draw ids are <id>-<opening local minute>.",
        ),
    ]
    title: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=MAX_LOTTERY_TITLE_CHARS,
            pattern=NOT_BLANK_RE,
            description="Name shown to members ({lottery} in templates), 1-80 characters.",
        ),
    ]
    schedule: LotteryScheduleDoc
    prizes: Annotated[
        list[LotteryPrizeDoc],
        Meta(min_length=1, description="The prize tiers, first prize first."),
    ]
    posts: LotteryPostsDoc
    entry: LotteryEntryDoc | None = None
    eligibility: LotteryEligibilityDoc | None = None
    weight: Annotated[
        Literal["equal", "tickets", "checkins"],
        Meta(
            description="An entrant's weight in the draw: equal (1 each), tickets (tickets "
            "held) or checkins (check-in days in the window), the last two capped by "
            "weight_cap."
        ),
    ] = "equal"
    weight_cap: (
        Annotated[
            int,
            Meta(ge=1, le=MAX_WEIGHT_CAP, description="Highest weight (tickets, checkins)."),
        ]
        | None
    ) = None
    claim: LotteryClaimDoc | None = None
    enabled: Annotated[
        bool,
        Meta(
            description="false pauses the lottery: no cycle opens, closes or draws (a cycle "
            "already open is not closed)."
        ),
    ] = True
    description: Ops | None = None


# --------------------------------------------------------------------------- community


class QuietHoursDoc(_Doc, kw_only=True, forbid_unknown_fields=True):
    """Daily local window in which no message is sent (闭群时间); may wrap midnight."""

    start: Annotated[
        str, Meta(pattern=HHMM_RE, description="First minute of the quiet window (inclusive).")
    ]
    end: Annotated[
        str,
        Meta(
            pattern=HHMM_RE,
            description="First minute after the quiet window (exclusive); deferred messages "
            "are sent then.",
        ),
    ]


DEFAULT_CHAT_KEYWORDS = ("打卡", "签到", "/checkin", "checkin")


class MetricsDoc(_Doc, kw_only=True, forbid_unknown_fields=True):
    """Daily metric snapshots (docs/metrics.md)."""

    daily_snapshot: Annotated[
        bool,
        Meta(
            description="false stops the derived metrics.daily job: no new snapshots (the "
            "counters are kept either way, so turning it back on backfills up to a week)."
        ),
    ] = True


class AlertsDoc(_Doc, kw_only=True, forbid_unknown_fields=True):
    """Where ops hear about incidents (docs/metrics.md, "Ops alerts")."""

    channel: Annotated[
        str,
        Meta(
            pattern=ID_RE,
            description="Id of one of this community's channels: a failed occurrence, an "
            "undelivered post, a reconciliation mismatch or a filling dead-letter queue is "
            "posted there, once per incident.",
        ),
    ]


class CommunityDoc(_Doc, kw_only=True, forbid_unknown_fields=True):
    """One community (a chat group, a server, a channel) and its daily routine."""

    id: Annotated[
        str,
        Meta(
            pattern=ID_RE,
            description="Stable id of the community, unique in the file. Used in storage keys, "
            "API paths and logs.",
        ),
    ]
    name: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=200,
            description="Display name shown to members and in the {community} template field.",
        ),
    ]
    timezone: Annotated[
        str,
        Meta(
            min_length=1,
            pattern=ZONE_RE,
            description="IANA time zone of the community (e.g. Asia/Shanghai, "
            "America/New_York). Cron expressions, quiet hours and the day boundary are all "
            "read in this zone. Never a fixed offset such as +08:00: zones carry their DST "
            "rules.",
        ),
    ]
    channels: Annotated[
        list[ChannelDoc], Meta(description="Where messages go. Jobs refer to channels by id.")
    ]
    jobs: Annotated[
        list[JobDoc],
        Meta(description="Scheduled jobs of the community, each run exactly once per occurrence."),
    ]
    locale: Annotated[
        Literal["zh-CN", "en"],
        Meta(description="Language of generated text (dates, weekdays, system messages)."),
    ] = "en"
    day_boundary: Annotated[
        str,
        Meta(
            pattern=HHMM_RE,
            description='Local time at which a new check-in day starts. "04:00" lets night '
            "owls check in for the previous day until 04:00.",
        ),
    ] = "00:00"
    quiet_hours: QuietHoursDoc | None = None
    pools: Annotated[
        list[PoolDoc],
        Meta(
            description="Content pools. A post takes the next unused item of its pool, so "
            "members see no repeat until the pool is exhausted."
        ),
    ] = []
    checkins: CheckinsDoc | None = None
    rewards: Annotated[
        list[RewardDoc], Meta(description="The reward catalog (POST /redemptions).")
    ] = []
    lotteries: Annotated[
        list[LotteryDoc],
        Meta(description="Recurring lotteries (抽奖) run by the dispatcher (docs/lottery.md)."),
    ] = []
    chat_keywords: (
        Annotated[
            list[Annotated[str, Meta(min_length=1, pattern=NOT_BLANK_RE)]],
            Meta(
                min_length=1,
                description="Messages that count as a check-in when sent to the chat-bot "
                "webhook (default 打卡, 签到, /checkin, checkin).",
            ),
        ]
        | None
    ) = None
    metrics: MetricsDoc | None = None
    alerts: AlertsDoc | None = None
    description: Ops | None = None


class ConfigDoc(_Doc, kw_only=True, forbid_unknown_fields=True):
    """The ops-edited config of Community Autopilot (config/communities.yaml)."""

    version: Annotated[
        Literal[1],
        Meta(description="Format version of this file. This release reads version 1 only."),
    ]
    communities: Annotated[
        list[CommunityDoc],
        Meta(
            min_length=1,
            description="The communities this deployment runs. Each community is independent: "
            "its own time zone, quiet hours, channels, pools and jobs.",
        ),
    ]
    published_at: (
        Annotated[
            str,
            Meta(
                pattern=ISO_RE,
                description="Set by `autopilot config push`, never by hand: when the document "
                "was published (ISO-8601 UTC, e.g. 2026-03-01T07:00:00Z).",
            ),
        ]
        | None
    ) = None
    source_sha256: (
        Annotated[
            str,
            Meta(
                pattern=SHA256_RE,
                description="Set by `autopilot config push`, never by hand: SHA-256 (lowercase "
                "hex) of the YAML file the document was published from.",
            ),
        ]
        | None
    ) = None


def load_document(doc: object) -> ConfigDoc:
    """Convert a parsed document (dicts and lists) into :class:`ConfigDoc`.

    Raises :class:`msgspec.ValidationError` at the first shape problem; the CLI has
    already reported every problem before a document is published.
    """
    return msgspec.convert(doc, ConfigDoc, strict=True)
