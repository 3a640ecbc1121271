"""Typed config model and the semantic checks a JSON Schema cannot express.

``parse_config`` turns a plain document (parsed YAML or the published JSON) into
frozen dataclasses, collecting *every* problem with its path instead of stopping
at the first: bad cron expressions, unknown time zones, references to channels or
pools that do not exist, duplicate ids. Functions call it on the published JSON;
the CLI calls it after the JSON Schema and maps paths to file lines.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any

from croniter import croniter

from autopilot.checkins.rules import CheckinRules, Milestone, Tier
from autopilot.errors import ConfigError, ConfigIssue
from autopilot.timeutil import parse_duration, parse_hhmm, parse_iso, zone

SCHEMA_VERSION = 1
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}$")
CHANNEL_TYPES = (
    "console",
    "file",
    "sns",
    "wecom",
    "dingtalk",
    "feishu",
    "slack",
    "discord",
    "telegram",
)
MESSAGE_ACTIONS = frozenset({"post"})
# ledger_export / ledger_reconcile are finance jobs run through the dispatcher.
ACTIONS = frozenset({"post", "ledger_export", "ledger_reconcile"})
DEFAULT_CHAT_KEYWORDS = ("打卡", "签到", "/checkin", "checkin")
MISFIRE_POLICIES = ("latest", "all")
QUIET_POLICIES = ("defer", "drop", "ignore")
LOCALES = ("zh-CN", "en")
DEFAULT_GRACE = timedelta(minutes=10)
MAX_TEMPLATE_CHARS = 4000


@dataclass(frozen=True)
class QuietHours:
    """A daily local window (may wrap midnight) in which no message is sent."""

    start: time
    end: time

    def contains(self, wall: time) -> bool:
        """Whether the local wall-clock time ``wall`` falls inside the window."""
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= wall < self.end
        return wall >= self.start or wall < self.end


@dataclass(frozen=True)
class Channel:
    """A destination for messages; ``options`` holds type-specific settings."""

    id: str
    type: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ContentItem:
    """One piece of content in a pool."""

    id: str
    text: str
    title: str | None = None


@dataclass(frozen=True)
class Pool:
    """A content pool, rotated without repeats until exhausted."""

    id: str
    items: tuple[ContentItem, ...]

    def item(self, content_id: str) -> ContentItem | None:
        """The item with ``content_id`` or ``None``."""
        return next((i for i in self.items if i.id == content_id), None)


@dataclass(frozen=True)
class MisfirePolicy:
    """What happens to occurrences whose tick was missed.

    ``latest``: only the most recent occurrence may run, and only within ``grace``
    of its due time; older ones are recorded as missed. ``all``: every missed
    occurrence runs, oldest first, up to the catch-up bound.
    """

    policy: str = "latest"
    grace: timedelta = DEFAULT_GRACE


@dataclass(frozen=True)
class Job:
    """A scheduled job of one community."""

    id: str
    cron: str
    action: str
    params: Mapping[str, Any]
    misfire: MisfirePolicy
    quiet_hours: str
    enabled: bool = True
    description: str = ""

    @property
    def sends_messages(self) -> bool:
        """Whether the job's action talks to members (and so obeys quiet hours)."""
        return self.action in MESSAGE_ACTIONS


@dataclass(frozen=True)
class Reward:
    """A catalog reward members redeem points for; ``stock`` None means unlimited."""

    id: str
    name: str
    cost_points: int
    stock: int | None = None


@dataclass(frozen=True)
class Community:
    """One community: its zone, day boundary, quiet hours, channels, pools and jobs."""

    id: str
    name: str
    timezone: str
    locale: str
    day_boundary: time
    quiet_hours: QuietHours | None
    channels: tuple[Channel, ...]
    pools: tuple[Pool, ...]
    jobs: tuple[Job, ...]
    checkins: CheckinRules = field(default_factory=CheckinRules)
    rewards: tuple[Reward, ...] = ()
    chat_keywords: tuple[str, ...] = DEFAULT_CHAT_KEYWORDS

    def reward(self, reward_id: str) -> Reward:
        """The reward ``reward_id`` (KeyError if the catalog has none)."""
        for reward in self.rewards:
            if reward.id == reward_id:
                return reward
        raise KeyError(reward_id)

    def channel(self, channel_id: str) -> Channel:
        """The channel ``channel_id`` (KeyError if the config has none)."""
        for channel in self.channels:
            if channel.id == channel_id:
                return channel
        raise KeyError(channel_id)

    def pool(self, pool_id: str) -> Pool:
        """The pool ``pool_id`` (KeyError if the config has none)."""
        for pool in self.pools:
            if pool.id == pool_id:
                return pool
        raise KeyError(pool_id)

    def job(self, job_id: str) -> Job:
        """The job ``job_id`` (KeyError if the config has none)."""
        for job in self.jobs:
            if job.id == job_id:
                return job
        raise KeyError(job_id)


@dataclass(frozen=True)
class Config:
    """The whole parsed config."""

    communities: tuple[Community, ...]
    published_at: datetime | None = None
    version_tag: str = ""
    warnings: tuple[ConfigIssue, ...] = ()

    def community(self, community_id: str) -> Community:
        """The community ``community_id`` (KeyError if unknown)."""
        for community in self.communities:
            if community.id == community_id:
                return community
        raise KeyError(community_id)


# Template fields offered by every post; capabilities register more through
# autopilot.posts.context, and validation accepts the union.
TemplateFieldsProvider = Callable[[], frozenset[str]]
_template_fields: TemplateFieldsProvider | None = None


def set_template_fields_provider(provider: TemplateFieldsProvider) -> None:
    """Let the posts capability tell validation which template fields exist."""
    global _template_fields
    _template_fields = provider


def template_fields(template: str) -> list[str]:
    """The field names a ``str.format``-style template refers to (raises on bad syntax)."""
    names = []
    for _, name, spec, conversion in string.Formatter().parse(template):
        if name is not None:
            if not name or not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
                raise ValueError(f"invalid placeholder {{{name}}}: use {{name}} with a-z, 0-9, _")
            if spec or conversion:
                # Fields are rendered as text; a spec or conversion would fail at post time.
                raise ValueError(
                    f"placeholder {{{name}}} may not have a format spec or "
                    "conversion: write plain {name}"
                )
            names.append(name)
    return names


class _Collector:
    """Collects issues while walking the document."""

    def __init__(self) -> None:
        self.issues: list[ConfigIssue] = []

    def error(self, path: tuple[str | int, ...], message: str) -> None:
        self.issues.append(ConfigIssue(path, message, "error"))

    def warn(self, path: tuple[str | int, ...], message: str) -> None:
        self.issues.append(ConfigIssue(path, message, "warning"))


def _expect(
    col: _Collector,
    mapping: Mapping[str, Any],
    key: str,
    kind: type | tuple[type, ...],
    path: tuple[str | int, ...],
    *,
    required: bool = True,
    default: Any = None,
) -> Any:
    if key not in mapping:
        if required:
            col.error((*path, key), f"required key {key!r} is missing")
        return default
    value = mapping[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    # bool is an int in Python; a YAML `yes` must not pass as a number.
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join(
            k.__name__.replace("str", "string").replace("dict", "mapping").replace("list", "list")
            for k in kinds
        )
        col.error((*path, key), f"expected {names}, got {type(value).__name__} {value!r}")
        return default
    return value


def _unknown_keys(
    col: _Collector, mapping: Mapping[str, Any], allowed: set[str], path: tuple[str | int, ...]
) -> None:
    for key in mapping:
        if key not in allowed:
            col.error((*path, key), f"unknown key {key!r} (allowed: {', '.join(sorted(allowed))})")


def _check_id(col: _Collector, value: Any, path: tuple[str | int, ...]) -> bool:
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        col.error(path, f"invalid id {value!r}: use 1-48 characters a-z, 0-9, '-' or '_'")
        return False
    return True


def validate_cron(expression: str) -> str | None:
    """Return a message if ``expression`` is not a valid 5-field cron expression."""
    if not isinstance(expression, str) or len(expression.split()) != 5:
        return (
            f"invalid cron expression {expression!r}: expected 5 fields "
            "(minute hour day-of-month month day-of-week)"
        )
    if not croniter.is_valid(expression):
        return f"invalid cron expression {expression!r}"
    try:
        croniter(expression, datetime(2026, 1, 1)).get_next(datetime)
    except Exception as exc:  # croniter raises several types for impossible dates
        return f"cron expression {expression!r} never fires ({exc})"
    return None


# Chat-platform channels: option -> allowed values (a tuple), or the type it takes.
_CHAT_CHANNEL_OPTIONS: dict[str, dict[str, Any]] = {
    "wecom": {
        "msgtype": ("text", "markdown"),
        "mention_all": bool,
        "mentions": list,
        "mention_mobiles": list,
    },
    "dingtalk": {
        "msgtype": ("text", "markdown"),
        "mention_all": bool,
        "mentions": list,
        "mention_mobiles": list,
    },
    "feishu": {"msgtype": ("text", "post"), "mention_all": bool},
    "slack": {"msgtype": ("text", "blocks")},
    "discord": {"msgtype": ("content", "embed"), "mention_all": bool, "username": str},
    "telegram": {
        "parse_mode": ("HTML", "MarkdownV2", "Markdown"),
        "disable_notification": bool,
    },
}
# Keys that would hold a secret: refused with a pointer to SSM, never stored in config.
SECRET_CHANNEL_KEYS = frozenset(
    {
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
    }
)
MAX_PARTS_LIMIT = 10


def _parse_chat_channel_options(
    col: _Collector, raw: Mapping[str, Any], ctype: str, cid: Any, path: tuple[str | int, ...]
) -> set[str]:
    """Check a chat channel's options; return the keys it allows."""
    spec = _CHAT_CHANNEL_OPTIONS[ctype]
    for key in raw:
        if key in SECRET_CHANNEL_KEYS:
            col.error(
                (*path, key),
                f"{key!r} must not be in the config file: put the channel's secrets in the SSM "
                f"SecureString parameter <ChannelSecretsPrefix>/<community>/{cid or '<channel>'} "
                "(see docs/channels.md)",
            )
    for key, rule in spec.items():
        if isinstance(rule, tuple):
            value = _expect(col, raw, key, str, path, required=False)
            if value is not None and value not in rule:
                col.error((*path, key), f"{key} must be one of {', '.join(rule)}, got {value!r}")
            continue
        value = _expect(col, raw, key, rule, path, required=False)
        if rule is list and value is not None:
            for index, entry in enumerate(value):
                if not isinstance(entry, str) or not entry.strip():
                    col.error((*path, key, index), f"expected a non-empty string, got {entry!r}")
    max_parts = _expect(col, raw, "max_parts", int, path, required=False)
    if isinstance(max_parts, int) and not 1 <= max_parts <= MAX_PARTS_LIMIT:
        col.error((*path, "max_parts"), f"max_parts must be 1 to {MAX_PARTS_LIMIT}")
    if ctype == "wecom" and raw.get("msgtype") == "markdown":
        for key in ("mention_all", "mention_mobiles"):
            if raw.get(key):
                col.error(
                    (*path, key),
                    f"WeCom markdown messages cannot use {key}: use msgtype text, or "
                    "mentions (user ids, rendered as <@userid>)",
                )
    username = raw.get("username")
    if ctype == "discord" and isinstance(username, str) and not 1 <= len(username) <= 80:
        col.error((*path, "username"), "Discord usernames are 1 to 80 characters")
    # Secret keys are reported above with their own message, not as unknown keys.
    return set(spec) | {"max_parts"} | (SECRET_CHANNEL_KEYS & set(raw))


def _parse_channel(col: _Collector, raw: Any, path: tuple[str | int, ...]) -> Channel | None:
    if not isinstance(raw, Mapping):
        col.error(path, "a channel must be a mapping with id and type")
        return None
    cid = _expect(col, raw, "id", str, path)
    ctype = _expect(col, raw, "type", str, path)
    ok = cid is not None and _check_id(col, cid, (*path, "id"))
    if ctype is not None and ctype not in CHANNEL_TYPES:
        col.error(
            (*path, "type"), f"unknown channel type {ctype!r} (known: {', '.join(CHANNEL_TYPES)})"
        )
        ok = False
    options = {k: v for k, v in raw.items() if k not in ("id", "type")}
    allowed = {"id", "type", "description"}
    if ctype == "file":
        allowed |= {"path"}
        path_value = _expect(col, raw, "path", str, path)
        if isinstance(path_value, str) and (path_value.startswith("/") or ".." in path_value):
            col.error(
                (*path, "path"),
                "file channel path must be relative to the output "
                "directory and must not contain '..'",
            )
    elif ctype == "sns":
        allowed |= {"subject"}
        subject = _expect(col, raw, "subject", str, path, required=False)
        if isinstance(subject, str) and len(subject) > 100:
            col.error((*path, "subject"), "SNS subjects are limited to 100 characters")
    elif ctype in _CHAT_CHANNEL_OPTIONS:
        allowed |= _parse_chat_channel_options(col, raw, ctype, cid, path)
    _unknown_keys(col, raw, allowed, path)
    if not ok or ctype is None:
        return None
    return Channel(id=cid, type=ctype, options=options)


def _parse_pool(col: _Collector, raw: Any, path: tuple[str | int, ...]) -> Pool | None:
    if not isinstance(raw, Mapping):
        col.error(path, "a pool must be a mapping with id and items")
        return None
    _unknown_keys(col, raw, {"id", "items", "description"}, path)
    pid = _expect(col, raw, "id", str, path)
    if pid is not None:
        _check_id(col, pid, (*path, "id"))
    items_raw = _expect(col, raw, "items", list, path, default=[])
    if isinstance(raw.get("items"), list) and not raw["items"]:
        col.error((*path, "items"), "a pool needs at least one item")
    items: list[ContentItem] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items_raw):
        ipath = (*path, "items", index)
        if not isinstance(item, Mapping):
            col.error(ipath, "a pool item must be a mapping with id and text")
            continue
        _unknown_keys(col, item, {"id", "text", "title"}, ipath)
        iid = _expect(col, item, "id", str, ipath)
        text = _expect(col, item, "text", str, ipath)
        title = _expect(col, item, "title", str, ipath, required=False)
        if iid is not None and _check_id(col, iid, (*ipath, "id")):
            if iid in seen:
                col.error((*ipath, "id"), f"duplicate item id {iid!r} (also item {seen[iid]})")
            seen[iid] = index
        if isinstance(text, str) and not text.strip():
            col.error((*ipath, "text"), "item text is empty")
        if iid is not None and isinstance(text, str):
            items.append(ContentItem(id=iid, text=text.strip(), title=title))
    if pid is None:
        return None
    return Pool(id=pid, items=tuple(items))


def _parse_job(
    col: _Collector,
    raw: Any,
    path: tuple[str | int, ...],
    channel_ids: set[str],
    pools: dict[str, Pool],
) -> Job | None:
    if not isinstance(raw, Mapping):
        col.error(path, "a job must be a mapping")
        return None
    _unknown_keys(
        col,
        raw,
        {"id", "cron", "action", "params", "misfire", "quiet_hours", "enabled", "description"},
        path,
    )
    jid = _expect(col, raw, "id", str, path)
    if jid is not None:
        _check_id(col, jid, (*path, "id"))
    cron = _expect(col, raw, "cron", str, path)
    if cron is not None:
        problem = validate_cron(cron)
        if problem:
            col.error((*path, "cron"), problem)
    action = _expect(col, raw, "action", str, path)
    if action is not None and action not in ACTIONS:
        col.error(
            (*path, "action"), f"unknown action {action!r} (known: {', '.join(sorted(ACTIONS))})"
        )
    params = _expect(col, raw, "params", Mapping, path, required=False, default={})
    enabled = _expect(col, raw, "enabled", bool, path, required=False, default=True)
    description = _expect(col, raw, "description", str, path, required=False, default="")

    misfire = MisfirePolicy()
    mraw = _expect(col, raw, "misfire", Mapping, path, required=False)
    if isinstance(mraw, Mapping):
        mpath = (*path, "misfire")
        _unknown_keys(col, mraw, {"policy", "grace"}, mpath)
        policy = _expect(col, mraw, "policy", str, mpath, required=False, default="latest")
        if policy not in MISFIRE_POLICIES:
            col.error(
                (*mpath, "policy"),
                f"unknown misfire policy {policy!r} (known: {', '.join(MISFIRE_POLICIES)})",
            )
            policy = "latest"
        grace = DEFAULT_GRACE
        graw = _expect(col, mraw, "grace", str, mpath, required=False)
        if graw is not None:
            try:
                grace = parse_duration(graw)
            except ValueError as exc:
                col.error((*mpath, "grace"), str(exc))
        misfire = MisfirePolicy(policy=policy, grace=grace)

    sends = action in MESSAGE_ACTIONS
    quiet = _expect(
        col, raw, "quiet_hours", str, path, required=False, default="defer" if sends else "ignore"
    )
    if quiet not in QUIET_POLICIES:
        col.error(
            (*path, "quiet_hours"),
            f"unknown quiet-hours policy {quiet!r} (known: {', '.join(QUIET_POLICIES)})",
        )
        quiet = "defer"

    if action == "post" and isinstance(params, Mapping):
        _check_post_params(col, params, (*path, "params"), channel_ids, pools)
    elif action in ("ledger_export", "ledger_reconcile") and isinstance(params, Mapping):
        _unknown_keys(col, params, set(), (*path, "params"))

    if jid is None or cron is None or action is None:
        return None
    return Job(
        id=jid,
        cron=cron,
        action=action,
        params=dict(params or {}),
        misfire=misfire,
        quiet_hours=quiet,
        enabled=bool(enabled),
        description=description or "",
    )


def _check_post_params(
    col: _Collector,
    params: Mapping[str, Any],
    path: tuple[str | int, ...],
    channel_ids: set[str],
    pools: dict[str, Pool],
) -> None:
    _unknown_keys(col, params, {"pool", "channels", "template", "title"}, path)
    pool = _expect(col, params, "pool", str, path)
    if isinstance(pool, str) and pool not in pools:
        known = ", ".join(sorted(pools)) or "none defined"
        col.error((*path, "pool"), f"unknown pool {pool!r} (pools: {known})")
    channels = _expect(col, params, "channels", list, path)
    if isinstance(channels, list):
        if not channels:
            col.error((*path, "channels"), "a post needs at least one channel")
        for index, channel_id in enumerate(channels):
            if not isinstance(channel_id, str):
                col.error(
                    (*path, "channels", index),
                    f"expected a channel id (string), got {type(channel_id).__name__}",
                )
                continue
            if channel_id not in channel_ids:
                known = ", ".join(sorted(channel_ids)) or "none defined"
                col.error(
                    (*path, "channels", index),
                    f"unknown channel {channel_id!r} (channels: {known})",
                )
        if len(set(map(str, channels))) != len(channels):
            col.error((*path, "channels"), "a channel is listed twice")
    for key in ("template", "title"):
        template = _expect(col, params, key, str, path, required=key == "template")
        if isinstance(template, str):
            if len(template) > MAX_TEMPLATE_CHARS:
                col.error((*path, key), f"template longer than {MAX_TEMPLATE_CHARS} characters")
            try:
                names = template_fields(template)
            except ValueError as exc:
                col.error((*path, key), f"bad template: {exc}")
                continue
            if _template_fields is not None:
                known_fields = _template_fields()
                for name in names:
                    if name not in known_fields:
                        col.error(
                            (*path, key),
                            f"unknown template field {{{name}}} "
                            f"(known: {', '.join(sorted(known_fields))})",
                        )


def _parse_quiet(col: _Collector, raw: Any, path: tuple[str | int, ...]) -> QuietHours | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        col.error(path, "quiet_hours must be a mapping with start and end (HH:MM)")
        return None
    _unknown_keys(col, raw, {"start", "end"}, path)
    parsed = {}
    for key in ("start", "end"):
        value = _expect(col, raw, key, str, path)
        if value is not None:
            try:
                parsed[key] = parse_hhmm(value)
            except ValueError as exc:
                col.error((*path, key), str(exc))
    if len(parsed) != 2:
        return None
    if parsed["start"] == parsed["end"]:
        col.warn(path, "quiet hours start and end are equal: the window is empty")
    return QuietHours(parsed["start"], parsed["end"])


def _parse_community(col: _Collector, raw: Any, path: tuple[str | int, ...]) -> Community | None:
    if not isinstance(raw, Mapping):
        col.error(path, "a community must be a mapping")
        return None
    _unknown_keys(
        col,
        raw,
        {
            "id",
            "name",
            "timezone",
            "locale",
            "day_boundary",
            "quiet_hours",
            "channels",
            "pools",
            "jobs",
            "description",
            "checkins",
            "rewards",
            "chat_keywords",
        },
        path,
    )
    cid = _expect(col, raw, "id", str, path)
    if cid is not None:
        _check_id(col, cid, (*path, "id"))
    name = _expect(col, raw, "name", str, path)
    tz_name = _expect(col, raw, "timezone", str, path)
    if tz_name is not None:
        try:
            zone(tz_name)
        except ValueError as exc:
            col.error((*path, "timezone"), str(exc))
            tz_name = None
    locale = _expect(col, raw, "locale", str, path, required=False, default="en")
    if locale not in LOCALES:
        col.error((*path, "locale"), f"unknown locale {locale!r} (known: {', '.join(LOCALES)})")
        locale = "en"
    boundary = time(0, 0)
    braw = _expect(col, raw, "day_boundary", str, path, required=False)
    if braw is not None:
        try:
            boundary = parse_hhmm(braw)
        except ValueError as exc:
            col.error((*path, "day_boundary"), str(exc))
    quiet = _parse_quiet(col, raw.get("quiet_hours"), (*path, "quiet_hours"))

    channels: list[Channel] = []
    seen_channels: dict[str, int] = {}
    for index, craw in enumerate(_expect(col, raw, "channels", list, path, default=[])):
        channel = _parse_channel(col, craw, (*path, "channels", index))
        if channel is None:
            continue
        if channel.id in seen_channels:
            col.error(
                (*path, "channels", index, "id"),
                f"duplicate channel id {channel.id!r} (also channels[{seen_channels[channel.id]}])",
            )
            continue
        seen_channels[channel.id] = index
        channels.append(channel)

    pools: dict[str, Pool] = {}
    pool_index: dict[str, int] = {}
    for index, praw in enumerate(
        _expect(col, raw, "pools", list, path, required=False, default=[])
    ):
        pool = _parse_pool(col, praw, (*path, "pools", index))
        if pool is None:
            continue
        if pool.id in pools:
            col.error(
                (*path, "pools", index, "id"),
                f"duplicate pool id {pool.id!r} (also pools[{pool_index[pool.id]}])",
            )
            continue
        pools[pool.id] = pool
        pool_index[pool.id] = index

    jobs: list[Job] = []
    job_index: dict[str, int] = {}
    for index, jraw in enumerate(_expect(col, raw, "jobs", list, path, default=[])):
        job = _parse_job(col, jraw, (*path, "jobs", index), set(seen_channels), pools)
        if job is None:
            continue
        if job.id in job_index:
            col.error(
                (*path, "jobs", index, "id"),
                f"duplicate job id {job.id!r} (also jobs[{job_index[job.id]}])",
            )
            continue
        job_index[job.id] = index
        jobs.append(job)

    rules = _parse_checkins(col, raw.get("checkins"), (*path, "checkins"))
    rewards = _parse_rewards(col, raw.get("rewards"), (*path, "rewards"))
    keywords = DEFAULT_CHAT_KEYWORDS
    kraw = _expect(col, raw, "chat_keywords", list, path, required=False)
    if isinstance(kraw, list):
        if not kraw or not all(isinstance(k, str) and k.strip() for k in kraw):
            col.error((*path, "chat_keywords"), "chat_keywords must be a non-empty list of words")
        else:
            keywords = tuple(k.strip() for k in kraw)

    if cid is None or name is None or tz_name is None:
        return None
    return Community(
        id=cid,
        name=name,
        timezone=tz_name,
        locale=locale,
        day_boundary=boundary,
        quiet_hours=quiet,
        channels=tuple(channels),
        pools=tuple(pools.values()),
        jobs=tuple(jobs),
        checkins=rules,
        rewards=rewards,
        chat_keywords=keywords,
    )


def _points(
    col: _Collector,
    raw: Mapping[str, Any],
    key: str,
    path: tuple[str | int, ...],
    *,
    required: bool = False,
    default: int | None = None,
    minimum: int = 0,
) -> int | None:
    value = _expect(col, raw, key, int, path, required=required, default=default)
    if isinstance(value, int) and not isinstance(value, bool) and value < minimum:
        col.error((*path, key), f"{key} must be at least {minimum}, got {value}")
        return default
    return value


def _parse_checkins(col: _Collector, raw: Any, path: tuple[str | int, ...]) -> CheckinRules:
    """Check-in rules: base points, cap, milestones, freezes, make-up cost, tiers."""
    if raw is None:
        return CheckinRules()
    if not isinstance(raw, Mapping):
        col.error(path, "checkins must be a mapping")
        return CheckinRules()
    _unknown_keys(
        col,
        raw,
        {"base_points", "daily_cap", "milestones", "freezes", "makeup_cost", "tiers"},
        path,
    )
    base = _points(col, raw, "base_points", path, default=10, minimum=1) or 10
    cap = _points(col, raw, "daily_cap", path, minimum=1)
    if cap is not None and cap < base:
        col.error((*path, "daily_cap"), f"daily_cap {cap} is below base_points {base}")
    milestones: list[Milestone] = []
    for index, mraw in enumerate(
        _expect(col, raw, "milestones", list, path, required=False, default=[])
    ):
        mpath = (*path, "milestones", index)
        if not isinstance(mraw, Mapping):
            col.error(mpath, "a milestone is a mapping with days and bonus")
            continue
        _unknown_keys(col, mraw, {"days", "bonus"}, mpath)
        days = _points(col, mraw, "days", mpath, required=True, minimum=1)
        bonus = _points(col, mraw, "bonus", mpath, required=True, minimum=1)
        if days is not None and bonus is not None:
            if any(m.days == days for m in milestones):
                col.error((*mpath, "days"), f"duplicate milestone for {days} days")
            milestones.append(Milestone(days, bonus))
    every, held = None, 0
    fraw = _expect(col, raw, "freezes", Mapping, path, required=False)
    if isinstance(fraw, Mapping):
        fpath = (*path, "freezes")
        _unknown_keys(col, fraw, {"every_days", "max_held"}, fpath)
        every = _points(col, fraw, "every_days", fpath, required=True, minimum=1)
        held = _points(col, fraw, "max_held", fpath, required=True, minimum=1) or 0
    makeup = _points(col, raw, "makeup_cost", path, minimum=1)
    tiers: list[Tier] = []
    for index, traw in enumerate(
        _expect(col, raw, "tiers", list, path, required=False, default=[])
    ):
        tpath = (*path, "tiers", index)
        if not isinstance(traw, Mapping):
            col.error(tpath, "a tier is a mapping with id, name and min_lifetime_points")
            continue
        _unknown_keys(col, traw, {"id", "name", "min_lifetime_points"}, tpath)
        tid = _expect(col, traw, "id", str, tpath)
        tname = _expect(col, traw, "name", str, tpath)
        minimum = _points(col, traw, "min_lifetime_points", tpath, required=True)
        if (
            tid is not None
            and _check_id(col, tid, (*tpath, "id"))
            and tname
            and minimum is not None
        ):
            if tiers and minimum <= tiers[-1].min_lifetime_points:
                col.error(
                    (*tpath, "min_lifetime_points"),
                    "tiers must be listed in increasing min_lifetime_points",
                )
            if any(t.id == tid for t in tiers):
                col.error((*tpath, "id"), f"duplicate tier id {tid!r}")
            tiers.append(Tier(tid, tname, minimum))
    if tiers and tiers[0].min_lifetime_points != 0:
        col.error(
            (*path, "tiers", 0, "min_lifetime_points"),
            "the first tier must start at 0 lifetime points",
        )
    return CheckinRules(
        base_points=base,
        daily_cap=cap,
        milestones=tuple(sorted(milestones, key=lambda m: m.days)),
        freeze_every_days=every,
        freeze_max_held=held,
        makeup_cost=makeup,
        tiers=tuple(tiers),
    )


def _parse_rewards(col: _Collector, raw: Any, path: tuple[str | int, ...]) -> tuple[Reward, ...]:
    """The reward catalog."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        col.error(path, "rewards must be a list")
        return ()
    rewards: list[Reward] = []
    for index, rraw in enumerate(raw):
        rpath = (*path, index)
        if not isinstance(rraw, Mapping):
            col.error(rpath, "a reward is a mapping with id, name and cost_points")
            continue
        _unknown_keys(col, rraw, {"id", "name", "cost_points", "stock", "description"}, rpath)
        rid = _expect(col, rraw, "id", str, rpath)
        rname = _expect(col, rraw, "name", str, rpath)
        cost = _points(col, rraw, "cost_points", rpath, required=True, minimum=1)
        stock = _points(col, rraw, "stock", rpath, minimum=0)
        if rid is not None and _check_id(col, rid, (*rpath, "id")) and rname and cost is not None:
            if any(r.id == rid for r in rewards):
                col.error((*rpath, "id"), f"duplicate reward id {rid!r}")
                continue
            rewards.append(Reward(rid, rname, cost, stock))
    return tuple(rewards)


def collect_issues(doc: Any) -> tuple[Config | None, list[ConfigIssue]]:
    """Parse ``doc`` and return the config (``None`` if any error) with every issue found."""
    # Importing the posts context registers the template fields validation accepts.
    import autopilot.checkins.fields
    import autopilot.posts.context  # noqa: F401

    col = _Collector()
    if not isinstance(doc, Mapping):
        col.error((), "the config must be a mapping with 'version' and 'communities'")
        return None, col.issues
    _unknown_keys(col, doc, {"version", "communities", "published_at", "source_sha256"}, ())
    version = _expect(col, doc, "version", int, ())
    if version is not None and version != SCHEMA_VERSION:
        col.error(
            ("version",),
            f"unsupported config version {version} (this release reads {SCHEMA_VERSION})",
        )
    published_at = None
    if "published_at" in doc and not isinstance(doc["published_at"], str):
        col.error(("published_at",), "published_at must be an ISO-8601 string with offset")
    if isinstance(doc.get("published_at"), str):
        try:
            published_at = parse_iso(doc["published_at"])
        except ValueError as exc:
            col.error(("published_at",), str(exc))
    communities: list[Community] = []
    seen: dict[str, int] = {}
    raw_list = _expect(col, doc, "communities", list, (), default=[])
    if isinstance(doc.get("communities"), list) and not raw_list:
        col.error(("communities",), "at least one community is required")
    for index, raw in enumerate(raw_list):
        community = _parse_community(col, raw, ("communities", index))
        if community is None:
            continue
        if community.id in seen:
            col.error(
                ("communities", index, "id"),
                f"duplicate community id {community.id!r} (also communities[{seen[community.id]}])",
            )
            continue
        seen[community.id] = index
        communities.append(community)
    if any(i.severity == "error" for i in col.issues):
        return None, col.issues
    warnings = tuple(i for i in col.issues if i.severity == "warning")
    config = Config(
        communities=tuple(communities),
        published_at=published_at,
        version_tag=str(doc.get("source_sha256", "")),
        warnings=warnings,
    )
    return config, col.issues


def parse_config(doc: Any, *, source: str = "<config>") -> Config:
    """Parse and validate ``doc``; raise ``ConfigError`` listing every error."""
    config, issues = collect_issues(doc)
    if config is None:
        raise ConfigError(issues=issues, source=source)
    return config
