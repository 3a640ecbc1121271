"""Typed config model and the checks a JSON Schema cannot express.

The file's *shape* is defined once, by the Structs of
:mod:`autopilot.config.document` (``config/schema.json`` is generated from them).
This module holds what the rest of the code uses (frozen dataclasses with
lookups) and the hand-written checks a schema cannot say: references between
channels, pools and jobs, duplicate ids, cron and time-zone validity, template
fields, the order of tiers. ``collect_issues`` returns every such problem with its
path; functions call :func:`parse_config` on the published JSON, the CLI calls
:func:`semantic_issues` after the JSON Schema has reported every shape problem.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

import msgspec
from croniter import croniter

from autopilot.checkins.rules import CheckinRules, Milestone, Tier
from autopilot.config import document as d
from autopilot.config.document import (
    ACTIONS,
    CHANNEL_TYPES,
    DEFAULT_CHAT_KEYWORDS,
    DEFAULT_CLAIM_KEYWORDS,
    DEFAULT_LOTTERY_KEYWORDS,
    MAX_PARTS_LIMIT,
    MAX_TEMPLATE_CHARS,
    MESSAGE_ACTIONS,
    REMINDER_KINDS,
    SCHEMA_VERSION,
    SECRET_CHANNEL_KEYS,
)
from autopilot.config.fields import LOTTERY_TEMPLATE_FIELDS, TEMPLATE_FIELDS, template_fields
from autopilot.errors import ConfigError, ConfigIssue
from autopilot.lottery.draw import MAX_WEIGHT
from autopilot.lottery.eligibility import EligibilityRules, InvalidEligibility, Weighting
from autopilot.lottery.prizes import PrizePlan, parse_plan, reward_stock_problems
from autopilot.timeutil import parse_duration, parse_hhmm, parse_iso, zone

__all__ = [
    "ACTIONS",
    "CHANNEL_TYPES",
    "LOTTERY_ACTIONS",
    "LOTTERY_STEPS",
    "MAX_PARTS_LIMIT",
    "MAX_TEMPLATE_CHARS",
    "MESSAGE_ACTIONS",
    "REMINDER_ACTION",
    "REMINDER_FIELDS",
    "REMINDER_GROUP_FIELDS",
    "REMINDER_KINDS",
    "REMINDER_LOTTERY_FIELDS",
    "REPORT_ACTION",
    "REPORT_FIELDS",
    "REPORT_PERIODS",
    "SCHEMA_VERSION",
    "SECRET_CHANNEL_KEYS",
    "Channel",
    "Community",
    "Config",
    "ContentItem",
    "Job",
    "Lottery",
    "LotteryPosts",
    "MisfirePolicy",
    "Pool",
    "QuietHours",
    "Reward",
    "collect_issues",
    "default_reminder_group_template",
    "default_report_template",
    "lottery_job_id",
    "parse_config",
    "reminder_jobs",
    "semantic_issues",
    "template_fields",
    "validate_cron",
]

DEFAULT_GRACE = timedelta(minutes=10)
ID_PATTERN = re.compile(d.ID_RE)


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


#: Job ids of the dispatcher jobs a lottery runs: ``lottery.<lottery id>.<step>``.
#: ``.`` never occurs in a config id, so these never collide with ops' own jobs.
LOTTERY_STEPS = ("open", "close", "draw", "expire")


def lottery_job_id(lottery_id: str, step: str) -> str:
    """The id of the dispatcher job that runs ``step`` of lottery ``lottery_id``."""
    return f"lottery.{lottery_id}.{step}"


#: The dispatcher action of each lottery step (``lottery_open``...). The App
#: registers them; they are never written in ``jobs:``, only derived from
#: ``lotteries:`` (:func:`lottery_jobs`).
LOTTERY_ACTIONS = {step: f"lottery_{step}" for step in LOTTERY_STEPS}
#: Cron of the ``expire`` step (rerolls of unclaimed prizes), derived only for a
#: lottery with a claim window: often enough that a claim deadline is honoured
#: within a quarter of an hour.
LOTTERY_EXPIRE_CRON = "*/15 * * * *"
#: A missed lottery step still runs, up to two days late: a draw that an outage
#: delayed must still happen (it is deterministic whenever it runs).
LOTTERY_MISFIRE = timedelta(days=2)


@dataclass(frozen=True)
class LotteryPosts:
    """Where a lottery's posts go and their templates (``LOTTERY_FIELDS``).

    ``announce`` at open (with the seed's commitment), ``closed`` at close (entrant
    count and list hash), ``winners`` at the draw; ``claim_dm`` is sent to each
    winner directly where a channel can (``None``: no direct messages).
    """

    channels: tuple[str, ...]
    announce: str
    closed: str
    winners: str
    claim_dm: str | None = None


@dataclass(frozen=True)
class Lottery:
    """A recurring lottery of one community (``lotteries:`` in the config).

    Each cycle opens, closes and draws at the next firings of its three crons in
    the community's zone (``autopilot.lottery.schedule``). ``entry`` is ``auto``
    (every eligible member is entered at close) or ``enter`` (members enter by the
    API or a chat keyword, paying ``cost_points`` per ticket, at most
    ``max_tickets`` tickets). ``claim_window`` None: prizes are paid at the draw;
    otherwise a winner claims within it or the prize is rerolled.
    """

    id: str
    title: str
    opens: str
    closes: str
    draws: str
    entry: str = "auto"
    cost_points: int = 0
    max_tickets: int = 1
    keywords: tuple[str, ...] = ()
    rules: EligibilityRules = field(default_factory=EligibilityRules)
    weighting: Weighting = field(default_factory=Weighting)
    plan: PrizePlan | None = None
    posts: LotteryPosts | None = None
    claim_window: timedelta | None = None
    claim_keywords: tuple[str, ...] = ()
    enabled: bool = True
    description: str = ""

    def job_id(self, step: str) -> str:
        """The id of this lottery's dispatcher job for ``step`` (``open``...)."""
        return lottery_job_id(self.id, step)


def lottery_jobs(lottery: Lottery) -> tuple[Job, ...]:
    """The dispatcher jobs that run ``lottery``: open, close, draw, and expire when it
    has a claim window (none for a disabled lottery).

    Each runs its step's action with ``{"lottery": id}``, misfire policy ``all``
    within two days (a missed draw must still run), ignoring quiet hours.
    """
    if not lottery.enabled:
        return ()
    crons = {"open": lottery.opens, "close": lottery.closes, "draw": lottery.draws}
    if lottery.claim_window is not None:
        crons["expire"] = LOTTERY_EXPIRE_CRON
    return tuple(
        Job(
            id=lottery.job_id(step),
            cron=cron,
            action=LOTTERY_ACTIONS[step],
            params={"lottery": lottery.id},
            misfire=MisfirePolicy("all", LOTTERY_MISFIRE),
            quiet_hours="ignore",
            enabled=True,
            description=f"lottery {lottery.id}: {step}",
        )
        for step, cron in crons.items()
    )


#: The derived job that snapshots each community's metrics day after it ends.
METRICS_JOB_ID = "metrics.daily"
METRICS_ACTION = "metrics_snapshot"
#: Minutes after the community's day boundary at which the day is snapshotted.
METRICS_DELAY_MINUTES = 30


def metrics_jobs(day_boundary: time) -> tuple[Job, ...]:
    """The daily snapshot job of a community (docs/metrics.md): 30 minutes after its
    day ends, misfire ``all`` within a week (missed days are backfilled, oldest
    first), ignoring quiet hours (it talks to nobody)."""
    at = (
        datetime.combine(date(2000, 1, 1), day_boundary) + timedelta(minutes=METRICS_DELAY_MINUTES)
    ).time()
    return (
        Job(
            id=METRICS_JOB_ID,
            cron=f"{at.minute} {at.hour} * * *",
            action=METRICS_ACTION,
            params={},
            misfire=MisfirePolicy("all", timedelta(days=7)),
            quiet_hours="ignore",
            enabled=True,
            description="daily metric snapshot of the day that just ended",
        ),
    )


#: The action of reminder jobs (``jobs:`` with ``action: reminder``).
REMINDER_ACTION = "reminder"


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
    lotteries: tuple[Lottery, ...] = ()
    # Daily metric snapshots (the derived metrics.daily job) and the ops alerts channel.
    daily_snapshot: bool = True
    alerts_channel: str | None = None

    def lottery(self, lottery_id: str) -> Lottery:
        """The lottery ``lottery_id`` (KeyError if the config has none)."""
        for lottery in self.lotteries:
            if lottery.id == lottery_id:
                return lottery
        raise KeyError(lottery_id)

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


def reminder_jobs(community: Community) -> tuple[Job, ...]:
    """The community's enabled reminder jobs, in config order.

    Their ``params`` are the normalized mapping :func:`_reminder_params` builds
    (``kind``, ``spec``, ``channel``, ``template``, ``group_template``,
    ``conversion_window_s``, ``max_mentions``). The check-in path reads them to know
    which reminders a check-in may have converted; a paused job reminds nobody.
    """
    return tuple(j for j in community.jobs if j.enabled and j.action == REMINDER_ACTION)


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


Path = tuple[str | int, ...]
#: A check :func:`semantic_issues` runs on each lottery whose crons and zone are
#: valid: ``(lottery, its community, the document's published_at)`` to issues with
#: paths relative to the lottery.
LotteryCheck = Callable[[Lottery, Community, datetime | None], list[ConfigIssue]]


class _Collector:
    """Collects issues while walking the document."""

    def __init__(self, lottery_checks: Sequence[LotteryCheck] = ()) -> None:
        self.issues: list[ConfigIssue] = []
        # Checks that simulate a lottery's schedule (cycles over a year and more).
        # The CLI passes them (``autopilot.lottery.schedule.lottery_schedule_issues``:
        # that module builds on the scheduler, which imports this one, so it cannot
        # be imported here); functions, which only read published documents, skip
        # them to keep cold starts short.
        self.lottery_checks = tuple(lottery_checks)

    def error(self, path: Path, message: str) -> None:
        self.issues.append(ConfigIssue(path, message, "error"))

    def warn(self, path: Path, message: str) -> None:
        self.issues.append(ConfigIssue(path, message, "warning"))


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


# --------------------------------------------------------------------------- shape errors

_MSGSPEC_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_PATH_PART = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


_TYPE_NAMES = {"str": "string", "object": "mapping", "array": "list", "null": "null"}


def _value_at(doc: Any, path: Path) -> Any:
    for part in path:
        try:
            doc = doc[part]
        except (KeyError, IndexError, TypeError):
            return None
    return doc


def _shape_issue(exc: msgspec.ValidationError, doc: Any) -> ConfigIssue:
    """Translate msgspec's (first) validation error into a ConfigIssue with a path."""
    text = str(exc)
    match = _MSGSPEC_PATH.search(text)
    path: Path = ()
    if match:
        text = text[: match.start()]
        path = tuple(
            name if name else int(index) for name, index in _PATH_PART.findall(match.group("path"))
        )
    field_match = re.fullmatch(r"Object (missing required|contains unknown) field `(.+)`", text)
    if field_match:
        key = field_match.group(2)
        if field_match.group(1) == "missing required":
            return ConfigIssue((*path, key), f"required key {key!r} is missing")
        return ConfigIssue((*path, key), f"unknown key {key!r}")
    length_match = re.fullmatch(r"Expected `(?:array|str)` of length (>=|<=) (\d+)", text)
    if length_match:
        limit = int(length_match.group(2))
        if length_match.group(1) == ">=":
            empty = d.MIN_ITEMS_MESSAGES.get(str(path[-1]) if path else "", "must not be empty")
            return ConfigIssue(path, empty if limit == 1 else f"needs {limit}+")
        return ConfigIssue(path, f"is longer than the limit of {limit}")
    type_match = re.fullmatch(r"Expected `([\w |]+)`, got `(\w+)`", text)
    if type_match:
        wanted, got = (
            " or ".join(_TYPE_NAMES.get(t, t) for t in group.split(" | "))
            for group in type_match.groups()
        )
        return ConfigIssue(path, f"expected {wanted}, got {got} {_value_at(doc, path)!r}")
    regex_match = re.fullmatch(r"Expected `str` matching regex '(.*)'", text)
    if regex_match:
        pattern = regex_match.group(1).encode().decode("unicode_escape")
        message = d.PATTERN_MESSAGES.get(pattern, f"does not match the pattern {pattern}")
        return ConfigIssue(path, f"{_value_at(doc, path)!r} {message}")
    enum_match = re.fullmatch(r"Invalid (?:enum )?value (.+)", text)
    if enum_match and path == ("version",):
        return ConfigIssue(
            path,
            f"unsupported config version {enum_match.group(1)} "
            f"(this release reads {SCHEMA_VERSION})",
        )
    if enum_match and path and isinstance(path[-1], str):
        noun = d.ENUM_NOUNS.get(path[-1], path[-1])
        known = f" (known: {', '.join(REMINDER_KINDS)})" if path[-1] == "kind" else ""
        return ConfigIssue(path, f"unknown {noun} {enum_match.group(1)}{known}")
    return ConfigIssue(path, text[:1].lower() + text[1:])


# --------------------------------------------------------------------------- semantic checks


def _check_ids(col: _Collector, ids: list[str], path: Path, what: str, also: str) -> set[int]:
    """Report repeated ids; return the indexes of the duplicates (skipped later)."""
    seen: dict[str, int] = {}
    duplicates: set[int] = set()
    for index, item_id in enumerate(ids):
        if item_id in seen:
            col.error(
                (*path, index, "id"),
                f"duplicate {what} id {item_id!r} (also {also.format(seen[item_id])})",
            )
            duplicates.add(index)
        else:
            seen[item_id] = index
    return duplicates


def _channel(col: _Collector, raw: d.ChannelDoc, community_id: str, path: Path) -> Channel:
    if isinstance(raw, d.WecomChannel) and raw.msgtype == "markdown":
        for key in ("mention_all", "mention_mobiles"):
            if getattr(raw, key):
                col.error(
                    (*path, key),
                    f"WeCom markdown messages cannot use {key}: use msgtype text, or "
                    "mentions (user ids, rendered as <@userid>)",
                )
    # The channel implementations read their settings from ``options``: the keys
    # the file sets, exactly (omit_defaults leaves out what it does not set).
    options = {k: v for k, v in msgspec.to_builtins(raw).items() if k not in ("id", "type")}
    return Channel(id=raw.id, type=d.tag_of(type(raw)), options=options)


def _pool(col: _Collector, raw: d.PoolDoc, path: Path) -> Pool:
    duplicates = _check_ids(col, [i.id for i in raw.items], (*path, "items"), "item", "item {}")
    items = tuple(
        ContentItem(id=i.id, text=i.text.strip(), title=i.title)
        for index, i in enumerate(raw.items)
        if index not in duplicates
    )
    return Pool(id=raw.id, items=items)


def _template(
    col: _Collector,
    template: str,
    path: Path,
    known: frozenset[str] = TEMPLATE_FIELDS,
    what: str = "",
) -> None:
    """Report bad syntax and fields outside ``known`` (``what``: " for a lottery post")."""
    try:
        names = template_fields(template)
    except ValueError as exc:
        col.error(path, f"bad template: {exc}")
        return
    for name in names:
        if name not in known:
            col.error(
                path,
                f"unknown template field {{{name}}}{what} (known: {', '.join(sorted(known))})",
            )


def _job(
    col: _Collector,
    raw: d.JobDoc,
    path: Path,
    channel_ids: set[str],
    pools: Mapping[str, Pool],
    *,
    locale: str = "en",
    lottery_ids: frozenset[str] = frozenset(),
) -> Job:
    problem = validate_cron(raw.cron)
    if problem:
        col.error((*path, "cron"), problem)
    misfire = MisfirePolicy()
    if raw.misfire is not None:
        misfire = MisfirePolicy(raw.misfire.policy, parse_duration(raw.misfire.grace))
    params: dict[str, Any] = {}
    if isinstance(raw, d.PostJob):
        ppath = (*path, "params")
        post = raw.params
        if post.pool not in pools:
            known = ", ".join(sorted(pools)) or "none defined"
            col.error((*ppath, "pool"), f"unknown pool {post.pool!r} (pools: {known})")
        for index, channel_id in enumerate(post.channels):
            if channel_id not in channel_ids:
                known = ", ".join(sorted(channel_ids)) or "none defined"
                col.error(
                    (*ppath, "channels", index),
                    f"unknown channel {channel_id!r} (channels: {known})",
                )
        if len(set(post.channels)) != len(post.channels):
            col.error((*ppath, "channels"), "a channel is listed twice")
        _template(col, post.template, (*ppath, "template"))
        if post.title is not None:
            _template(col, post.title, (*ppath, "title"))
        params = msgspec.to_builtins(post)
    elif isinstance(raw, d.MetricsReportJob):
        params = _report_params(
            col, raw.params, (*path, "params"), channel_ids=channel_ids, locale=locale
        )
    elif isinstance(raw, d.ReminderJob):
        if raw.quiet_hours == "ignore":
            col.error(
                (*path, "quiet_hours"),
                "quiet_hours 'ignore' is not allowed for a reminder: reminders are never sent "
                "during quiet hours (use defer, the default, or drop)",
            )
        params = _reminder_params(
            col,
            raw.params,
            (*path, "params"),
            channel_ids=channel_ids,
            lottery_ids=lottery_ids,
            locale=locale,
        )
    return Job(
        id=raw.id,
        cron=raw.cron,
        action=d.tag_of(type(raw)),
        params=params,
        misfire=misfire,
        quiet_hours=raw.quiet_hours,
        enabled=raw.enabled,
        description=raw.description or "",
    )


# --------------------------------------------------------------------------- report posts

#: The action of report jobs (``jobs:`` with ``action: metrics_report``): a week's or
#: a month's figures, aggregated from the daily metric snapshots
#: (``autopilot.metrics.reports``), posted to channels.
REPORT_ACTION = "metrics_report"
#: The periods a report covers: the Monday-Sunday week, or the calendar month, that
#: ended before the run's local date.
REPORT_PERIODS = ("week", "month")
#: Fields of a report post (docs/config.md#report-posts): the community's name, the
#: period's first and last local day (ISO), and the figures of the period's snapshots
#: (``autopilot.metrics.reports.report_fields`` computes exactly these; a test pins
#: the two together).
REPORT_FIELDS = frozenset(
    {
        "community",
        "period_start",
        "period_end",
        "checkins",
        "checkin_rate",
        "active_dau_avg",
        "wau",
        "mau",
        "members",
        "joined",
        "left",
        "new_streaks",
        "top_streak",
        "points_awarded",
        "points_redeemed",
        "points_outstanding",
        "lottery_entrants",
        "reminders_sent",
        "reminders_converted",
        "posts_failed",
    }
)

#: Default report texts by language and period: the week for the group (activity),
#: the month for finance (points).
_REPORT_TEMPLATES: dict[str, dict[str, str]] = {
    "zh": {
        "week": "📊 {community}本周数据（{period_start}–{period_end}）：打卡 {checkins} 次，"
        "参与率 {checkin_rate}，周活跃 {wau} 人，新加入 {joined} 人。",
        "month": "💰 {community} {period_start}–{period_end} 积分月报：发放 {points_awarded}，"
        "兑换 {points_redeemed}，期末未兑换余额 {points_outstanding}。",
    },
    "en": {
        "week": "📊 {community} this week ({period_start}–{period_end}): {checkins} check-ins, "
        "check-in rate {checkin_rate}, {wau} weekly active members, {joined} joined.",
        "month": "💰 {community} points report {period_start}–{period_end}: {points_awarded} "
        "awarded, {points_redeemed} redeemed, {points_outstanding} outstanding at the end.",
    },
}


def default_report_template(locale: str, period: str) -> str:
    """The text a report job of ``period`` gets when it sets no ``template``: Chinese
    for a ``zh*`` locale, English otherwise."""
    return _REPORT_TEMPLATES["zh" if locale.startswith("zh") else "en"][period]


def _report_params(
    col: _Collector,
    raw: d.MetricsReportParams,
    path: Path,
    *,
    channel_ids: set[str],
    locale: str,
) -> dict[str, Any]:
    """The normalized parameters of a report job (``period``, ``channels``,
    ``template``: the written text or the default, ``title`` or None), every
    problem at its path."""
    for index, channel_id in enumerate(raw.channels):
        if channel_id not in channel_ids:
            known = ", ".join(sorted(channel_ids)) or "none defined"
            col.error(
                (*path, "channels", index), f"unknown channel {channel_id!r} (channels: {known})"
            )
    if len(set(raw.channels)) != len(raw.channels):
        col.error((*path, "channels"), "a channel is listed twice")
    for key in ("template", "title"):
        written = getattr(raw, key)
        if written is not None:
            _template(col, written, (*path, key), REPORT_FIELDS, " in a report post")
    return {
        "period": raw.period,
        "channels": list(raw.channels),
        "template": raw.template or default_report_template(locale, raw.period),
        "title": raw.title,
    }


# --------------------------------------------------------------------------- reminders

#: Fields of a reminder's direct message, rendered per member by the reminder
#: service: the community's name, the local ``date`` and ``weekday`` of the
#: reminder's day, the member's display ``name``, ``streak`` (days), ``freezes``
#: held, ``freeze_note`` (empty, or a sentence saying a freeze would cover tonight's
#: miss), ``days_since`` (days since the last check-in day), and for kind lottery
#: the lottery's title (``lottery``) and its local ``draw_time``.
REMINDER_FIELDS = frozenset(
    {
        "community",
        "date",
        "weekday",
        "name",
        "streak",
        "freezes",
        "freeze_note",
        "days_since",
        "lottery",
        "draw_time",
    }
)
#: Fields of a reminder's group message: ``mentions`` is one batch's @mentions.
REMINDER_GROUP_FIELDS = frozenset(
    {"community", "date", "weekday", "mentions", "lottery", "draw_time"}
)
#: Fields only a reminder of kind ``lottery`` has (the others have no lottery).
REMINDER_LOTTERY_FIELDS = frozenset({"lottery", "draw_time"})
MENTIONS_FIELD = "mentions"

#: Default group texts by language and kind (``lottery_entrants`` for the lottery
#: kind's ``entrants`` audience, who need no invitation to enter).
_REMINDER_GROUP_TEMPLATES: dict[str, dict[str, str]] = {
    "zh": {
        "not_checked_in": "{mentions} 今天还没打卡哦，别忘了～",
        "streak_at_risk": "{mentions} 你们的连续打卡今晚就要断了，快来打卡！",
        "inactive": "{mentions} 好久没见到你们打卡啦，回来打个卡吧～",
        "lottery": "{mentions} 「{lottery}」今天 {draw_time} 开奖，快来参加！",
        "lottery_entrants": "{mentions} 「{lottery}」今天 {draw_time} 开奖，祝你们好运！",
    },
    "en": {
        "not_checked_in": "{mentions} you haven't checked in today — there's still time!",
        "streak_at_risk": "{mentions} your check-in streak ends tonight — check in to keep it!",
        "inactive": "{mentions} we haven't seen you check in for a while — come back today!",
        "lottery": "{mentions} {lottery} draws today at {draw_time} — join in while you can!",
        "lottery_entrants": "{mentions} {lottery} draws today at {draw_time} — good luck!",
    },
}


def default_reminder_group_template(locale: str, kind: str, audience: str | None = None) -> str:
    """The group text a reminder of ``kind`` gets when it sets no ``group_template``:
    Chinese for a ``zh*`` locale, English otherwise (``audience`` for kind lottery)."""
    texts = _REMINDER_GROUP_TEMPLATES["zh" if locale.startswith("zh") else "en"]
    if kind == "lottery" and audience == "entrants":
        return texts["lottery_entrants"]
    return texts[kind]


def _reminder_template(
    col: _Collector, template: str, path: Path, *, kind: str, group: bool
) -> None:
    """A reminder text: syntax and known fields, lottery fields for kind lottery only,
    ``{mentions}`` at most once (group text)."""
    known = REMINDER_GROUP_FIELDS if group else REMINDER_FIELDS
    where = " in a reminder's group_template" if group else " in a reminder's template"
    try:
        names = template_fields(template)
    except ValueError as exc:
        col.error(path, f"bad template: {exc}")
        return
    for name in dict.fromkeys(names):
        if name in REMINDER_LOTTERY_FIELDS and kind != "lottery":
            col.error(
                path,
                f"template field {{{name}}} is only for reminders of kind lottery "
                f"(this one is {kind})",
            )
        elif name not in known:
            fields = sorted(known - REMINDER_LOTTERY_FIELDS if kind != "lottery" else known)
            hint = ""
            if name == MENTIONS_FIELD:
                hint = " ({mentions} belongs in group_template; a DM names one member: {name})"
            col.error(
                path,
                f"unknown template field {{{name}}}{where} (known: {', '.join(fields)}){hint}",
            )
    if group and names.count(MENTIONS_FIELD) > 1:
        col.error(
            path,
            f"{{mentions}} appears {names.count(MENTIONS_FIELD)} times: a group message "
            "@mentions its members once (write it at most once)",
        )


def _reminder_params(
    col: _Collector,
    raw: d.ReminderParams,
    path: Path,
    *,
    channel_ids: set[str],
    lottery_ids: frozenset[str],
    locale: str,
) -> dict[str, Any]:
    """The normalized parameters of a reminder job, every problem at its path.

    ``spec`` holds the kind's own parameters with every default filled, as
    :func:`autopilot.reminders.rules.parse_spec` takes them (``lottery`` becomes
    ``lottery_id``). That module imports this one, so it is not called here: the
    Structs of :mod:`autopilot.config.document` check the same keys, types and
    bounds, and a test pins the two together.
    """
    kind = d.tag_of(type(raw))
    if raw.channel not in channel_ids:
        known = ", ".join(sorted(channel_ids)) or "none defined"
        col.error((*path, "channel"), f"unknown channel {raw.channel!r} (channels: {known})")
    spec: dict[str, Any] = {}
    audience: str | None = None
    for key in d.REMINDER_SPEC_KEYS[kind]:
        spec["lottery_id" if key == "lottery" else key] = getattr(raw, key)
    if isinstance(raw, d.LotteryReminderParams):
        audience = raw.audience
        if raw.lottery not in lottery_ids:
            known = ", ".join(sorted(lottery_ids)) or "none defined"
            col.error((*path, "lottery"), f"unknown lottery {raw.lottery!r} (lotteries: {known})")
    _reminder_template(col, raw.template, (*path, "template"), kind=kind, group=False)
    if raw.group_template is not None:
        _reminder_template(
            col, raw.group_template, (*path, "group_template"), kind=kind, group=True
        )
    window = parse_duration(raw.conversion_window or d.DEFAULT_CONVERSION_WINDOW)
    seconds = int(window.total_seconds())
    if not d.MIN_CONVERSION_WINDOW_S <= seconds <= d.MAX_CONVERSION_WINDOW_S:
        col.error(
            (*path, "conversion_window"),
            f"conversion_window {raw.conversion_window!r} is out of range: use 10m to 24h "
            "(a check-in within it counts as converted by the reminder)",
        )
    return {
        "kind": kind,
        "spec": spec,
        "channel": raw.channel,
        "template": raw.template,
        "group_template": raw.group_template
        or default_reminder_group_template(locale, kind, audience),
        "conversion_window_s": seconds,
        "max_mentions": raw.max_mentions,
    }


def _checkins(col: _Collector, raw: d.CheckinsDoc | None, path: Path) -> CheckinRules:
    """Check-in rules: base points, cap, milestones, freezes, make-up cost, tiers."""
    if raw is None:
        return CheckinRules()
    errors_before = len(col.issues)
    if raw.daily_cap is not None and raw.daily_cap < raw.base_points:
        col.error(
            (*path, "daily_cap"),
            f"daily_cap {raw.daily_cap} is below base_points {raw.base_points}",
        )
    milestones: list[Milestone] = []
    for index, m in enumerate(raw.milestones):
        if any(x.days == m.days for x in milestones):
            col.error(
                (*path, "milestones", index, "days"), f"duplicate milestone for {m.days} days"
            )
        milestones.append(Milestone(m.days, m.bonus))
    tiers: list[Tier] = []
    for index, t in enumerate(raw.tiers):
        tpath = (*path, "tiers", index)
        if tiers and t.min_lifetime_points <= tiers[-1].min_lifetime_points:
            col.error(
                (*tpath, "min_lifetime_points"),
                "tiers must be listed in increasing min_lifetime_points",
            )
        if any(x.id == t.id for x in tiers):
            col.error((*tpath, "id"), f"duplicate tier id {t.id!r}")
        tiers.append(Tier(t.id, t.name, t.min_lifetime_points))
    if tiers and tiers[0].min_lifetime_points != 0:
        col.error(
            (*path, "tiers", 0, "min_lifetime_points"),
            "the first tier must start at 0 lifetime points",
        )
    if len(col.issues) > errors_before:
        return CheckinRules()  # the rules refuse themselves; the issues say why
    try:
        return CheckinRules(
            base_points=raw.base_points,
            daily_cap=raw.daily_cap,
            milestones=tuple(sorted(milestones, key=lambda m: m.days)),
            freeze_every_days=raw.freezes.every_days if raw.freezes else None,
            freeze_max_held=raw.freezes.max_held if raw.freezes else 0,
            makeup_cost=raw.makeup_cost,
            tiers=tuple(tiers),
        )
    except ValueError as exc:  # a rule the checks above do not know yet
        col.error(path, str(exc))
        return CheckinRules()


def _rewards(col: _Collector, raw: list[d.RewardDoc], path: Path) -> tuple[Reward, ...]:
    rewards: list[Reward] = []
    for index, r in enumerate(raw):
        if any(x.id == r.id for x in rewards):
            col.error((*path, index, "id"), f"duplicate reward id {r.id!r}")
            continue
        rewards.append(Reward(r.id, r.name, r.cost_points, r.stock))
    return tuple(rewards)


# --------------------------------------------------------------------------- lotteries

#: Default lottery post templates by community locale, and by entry mode for the
#: announcement (an automatic lottery has no keyword to send).
_LOTTERY_TEMPLATES: dict[str, dict[str, str]] = {
    "zh-CN": {
        "announce_auto": "🎁 {lottery} 开始啦！{opens} 开放，{closes} 截止，{draws} 开奖。\n"
        "符合条件的伙伴将自动参与。\n随机种子承诺（SHA-256）：{commitment}",
        "announce_enter": "🎁 {lottery} 开始啦！{opens} 开放，{closes} 截止，{draws} 开奖。\n"
        "发送「{keyword}」参与。\n随机种子承诺（SHA-256）：{commitment}",
        "announce_cost": "🎁 {lottery} 开始啦！{opens} 开放，{closes} 截止，{draws} 开奖。\n"
        "发送「{keyword}」参与，每张券 {cost_points} 积分。\n"
        "随机种子承诺（SHA-256）：{commitment}",
        "closed": "🔒 {lottery} 已截止：共 {entrants} 人参与，{draws} 开奖。\n"
        "参与名单哈希（SHA-256）：{entrants_hash}",
        "winners": "🎉 {lottery} 开奖结果（{draw_id}）：\n{winners}\n"
        "种子：{seed}\n外部随机值：{external_value}\n抽奖记录：{record}\n"
        "任何人都可以复核本次抽奖（autopilot lottery verify）。",
        "claim_dm": "恭喜你在 {lottery} 中获得 {prize}！"
        "请在 {claim_by} 前发送「{claim_keyword}」领奖。",
    },
    "en": {
        "announce_auto": "🎁 {lottery} is open: it closes {closes}, the draw is {draws}.\n"
        "Every eligible member takes part automatically.\n"
        "Seed commitment (SHA-256): {commitment}",
        "announce_enter": "🎁 {lottery} is open: it closes {closes}, the draw is {draws}.\n"
        'Send "{keyword}" to enter.\nSeed commitment (SHA-256): {commitment}',
        "announce_cost": "🎁 {lottery} is open: it closes {closes}, the draw is {draws}.\n"
        'Send "{keyword}" to enter; a ticket costs {cost_points} points.\n'
        "Seed commitment (SHA-256): {commitment}",
        "closed": "🔒 {lottery} is closed: {entrants} entrants, the draw is {draws}.\n"
        "Entrant list hash (SHA-256): {entrants_hash}",
        "winners": "🎉 {lottery} winners ({draw_id}):\n{winners}\n"
        "Seed: {seed}\nExternal value: {external_value}\nRecord: {record}\n"
        "Anyone can check the draw (autopilot lottery verify).",
        "claim_dm": "Congratulations! You won {prize} in {lottery}. "
        'Send "{claim_keyword}" before {claim_by} to claim it.',
    },
}


def default_lottery_template(locale: str, name: str) -> str:
    """The default template ``name`` (``announce_auto``, ``announce_enter``,
    ``announce_cost``, ``closed``, ``winners``, ``claim_dm``) in ``locale``."""
    return _LOTTERY_TEMPLATES.get(locale, _LOTTERY_TEMPLATES["en"])[name]


def _keyword(word: str) -> str:
    """A keyword as the chat webhook compares it: trimmed and case-folded."""
    return word.strip().casefold()


@dataclass
class _LotteryContext:
    """What a lottery's checks need from its community."""

    community: d.CommunityDoc
    tz: Any  # ZoneInfo, or None when the community's zone is unknown
    channel_ids: set[str]
    rewards: tuple[Reward, ...]
    # Lotteries whose crons and zone are valid: the schedule checks may run on them.
    schedulable: set[str] = field(default_factory=set)


def _lottery(col: _Collector, raw: d.LotteryDoc, path: Path, ctx: _LotteryContext) -> Lottery:
    """One lottery: its typed form, with every problem reported at its path."""
    entry = raw.entry if raw.entry is not None else d.LotteryEntryDoc()
    epath = (*path, "entry")
    if entry.mode == "auto" and entry.cost_points > 0:
        col.error(
            (*epath, "cost_points"),
            f"cost_points {entry.cost_points} with mode auto: automatic entries cost nothing "
            "(use mode: enter for a paid entry)",
        )
    if entry.max_tickets > 1 and raw.weight != "tickets":
        col.error(
            (*epath, "max_tickets"),
            f"max_tickets {entry.max_tickets} needs weight: tickets (with weight "
            f"{raw.weight}, a second ticket would change nothing)",
        )
    if entry.mode == "auto" and entry.keywords is not None:
        col.warn(
            (*epath, "keywords"),
            "keywords have no effect with mode auto (members do not enter themselves)",
        )
    keywords: tuple[str, ...] = ()
    if entry.mode == "enter":
        keywords = (
            tuple(k.strip() for k in entry.keywords) if entry.keywords else DEFAULT_LOTTERY_KEYWORDS
        )

    claim_window: timedelta | None = None
    claim_keywords: tuple[str, ...] = ()
    if raw.claim is not None:
        claim_window = parse_duration(raw.claim.window)
        if claim_window <= timedelta(0):
            col.error((*path, "claim", "window"), "the claim window must be longer than 0")
        claim_keywords = (
            tuple(k.strip() for k in raw.claim.keywords)
            if raw.claim.keywords
            else DEFAULT_CLAIM_KEYWORDS
        )

    # Eligibility and weights: the library's own checks, at the document's paths.
    elig = raw.eligibility if raw.eligibility is not None else d.LotteryEligibilityDoc()
    rules = EligibilityRules()
    try:
        rules = EligibilityRules.of(
            min_checkins=elig.min_checkins,
            min_streak=elig.min_streak,
            min_tier=elig.min_tier,
            joined_before_open=elig.joined_before_open,
            not_won_within_days=elig.not_won_within_days,
            not_left=elig.not_left,
        )
    except InvalidEligibility as exc:
        for issue in exc.issues:
            col.error((*path, "eligibility", *issue.path), issue.message)
    weighting = Weighting()
    try:
        weighting = Weighting(raw.weight, raw.weight_cap or MAX_WEIGHT)  # type: ignore[arg-type]
    except InvalidEligibility as exc:
        for issue in exc.issues:
            col.error((*path, *issue.path), issue.message)
    if raw.weight_cap is not None and raw.weight == "equal":
        col.warn((*path, "weight_cap"), "weight_cap has no effect with weight: equal")
    if raw.weight == "tickets" and entry.mode == "auto":
        col.warn(
            (*path, "weight"),
            "weight tickets with mode auto: automatic entries hold one ticket, so every "
            "weight is 1",
        )

    # Prizes: the plan's own problems, then the catalog's stock.
    plan, problems = parse_plan([msgspec.to_builtins(p) for p in raw.prizes])
    for problem in problems:
        col.error((*path, "prizes", *problem.path), problem.message)
    if plan is not None:
        stock = {r.id: r.stock for r in ctx.rewards}
        for problem in reward_stock_problems(plan, stock):
            col.error((*path, "prizes", *problem.path), problem.message)

    # Posts: known channels, templates (defaults in the community's locale).
    ppath = (*path, "posts")
    for index, channel_id in enumerate(raw.posts.channels):
        if channel_id not in ctx.channel_ids:
            known = ", ".join(sorted(ctx.channel_ids)) or "none defined"
            col.error(
                (*ppath, "channels", index), f"unknown channel {channel_id!r} (channels: {known})"
            )
    if len(set(raw.posts.channels)) != len(raw.posts.channels):
        col.error((*ppath, "channels"), "a channel is listed twice")
    locale = ctx.community.locale
    announce_kind = (
        "announce_auto"
        if entry.mode == "auto"
        else "announce_cost"
        if entry.cost_points > 0
        else "announce_enter"
    )
    templates = {
        "announce": raw.posts.announce or default_lottery_template(locale, announce_kind),
        "closed": raw.posts.closed or default_lottery_template(locale, "closed"),
        "winners": raw.posts.winners or default_lottery_template(locale, "winners"),
    }
    claim_dm = raw.posts.claim_dm
    if claim_dm is None and claim_window is not None:
        claim_dm = default_lottery_template(locale, "claim_dm")
    for key in ("announce", "closed", "winners", "claim_dm"):
        written = getattr(raw.posts, key)
        if written is not None:
            _template(col, written, (*ppath, key), LOTTERY_TEMPLATE_FIELDS, " for a lottery post")

    # Crons, then the schedule they make and what it implies for eligibility.
    spath = (*path, "schedule")
    crons_ok = True
    for key in ("opens", "closes", "draws"):
        cron_problem = validate_cron(getattr(raw.schedule, key))
        if cron_problem:
            col.error((*spath, key), cron_problem)
            crons_ok = False
    lottery = Lottery(
        id=raw.id,
        title=raw.title.strip(),
        opens=raw.schedule.opens,
        closes=raw.schedule.closes,
        draws=raw.schedule.draws,
        entry=entry.mode,
        cost_points=entry.cost_points,
        max_tickets=entry.max_tickets,
        keywords=keywords,
        rules=rules,
        weighting=weighting,
        plan=plan,
        posts=LotteryPosts(
            channels=tuple(raw.posts.channels),
            announce=templates["announce"],
            closed=templates["closed"],
            winners=templates["winners"],
            claim_dm=claim_dm,
        ),
        claim_window=claim_window,
        claim_keywords=claim_keywords,
        enabled=raw.enabled,
        description=raw.description or "",
    )
    if crons_ok and ctx.tz is not None:
        ctx.schedulable.add(raw.id)
    return lottery


def _lottery_keywords(
    col: _Collector,
    raws: list[d.LotteryDoc],
    lotteries: Mapping[int, Lottery],
    path: Path,
    checkin_keywords: tuple[str, ...],
) -> None:
    """Entry and claim keywords must not clash with check-in keywords or each other."""
    taken: dict[str, str] = {_keyword(k): "a check-in keyword" for k in checkin_keywords}
    for index, lottery in lotteries.items():
        raw = raws[index]
        lpath = (*path, index)
        for kind, words, written, where in (
            (
                "entry",
                lottery.keywords,
                raw.entry.keywords if raw.entry is not None else None,
                (*lpath, "entry"),
            ),
            (
                "claim",
                lottery.claim_keywords,
                raw.claim.keywords if raw.claim is not None else None,
                (*lpath, "claim"),
            ),
        ):
            for position, word in enumerate(words):
                key = _keyword(word)
                at = (*where, "keywords", position) if written else where
                if key in taken:
                    default = "" if written else " (a default: set keywords to other words)"
                    col.error(
                        at,
                        f"{kind} keyword {word!r}{default} is already {taken[key]}: "
                        "a chat message must mean one thing",
                    )
                else:
                    taken[key] = f"the {kind} keyword of lottery {lottery.id!r}"


def _lotteries(
    col: _Collector,
    raw: d.CommunityDoc,
    path: Path,
    *,
    channel_ids: set[str],
    rewards: tuple[Reward, ...],
    chat_keywords: tuple[str, ...],
) -> tuple[dict[int, Lottery], set[str]]:
    """The community's lotteries by document index, and the ids of those whose
    schedule can be checked (valid crons in a known zone)."""
    lpath = (*path, "lotteries")
    try:
        tz = zone(raw.timezone)
    except ValueError:
        tz = None  # reported with the community's timezone
    ctx = _LotteryContext(community=raw, tz=tz, channel_ids=channel_ids, rewards=rewards)
    skip = _check_ids(col, [lot.id for lot in raw.lotteries], lpath, "lottery", "lotteries[{}]")
    parsed: dict[int, Lottery] = {}
    for index, lot in enumerate(raw.lotteries):
        if index in skip or lot.description == _STUB_DESCRIPTION:
            continue
        parsed[index] = _lottery(col, lot, (*lpath, index), ctx)
    _lottery_keywords(col, raw.lotteries, parsed, lpath, chat_keywords)
    return parsed, ctx.schedulable


def _community(
    col: _Collector, raw: d.CommunityDoc, path: Path, reference: datetime | None = None
) -> Community:
    try:
        zone(raw.timezone)
    except ValueError as exc:
        col.error((*path, "timezone"), str(exc))
    quiet = None
    if raw.quiet_hours is not None:
        quiet = QuietHours(parse_hhmm(raw.quiet_hours.start), parse_hhmm(raw.quiet_hours.end))
        if quiet.start == quiet.end:
            col.warn(
                (*path, "quiet_hours"), "quiet hours start and end are equal: the window is empty"
            )
    skip = _check_ids(
        col, [c.id for c in raw.channels], (*path, "channels"), "channel", "channels[{}]"
    )
    channels = tuple(
        _channel(col, c, raw.id, (*path, "channels", i))
        for i, c in enumerate(raw.channels)
        if i not in skip
    )
    skip = _check_ids(col, [p.id for p in raw.pools], (*path, "pools"), "pool", "pools[{}]")
    pools = {
        p.id: _pool(col, p, (*path, "pools", i)) for i, p in enumerate(raw.pools) if i not in skip
    }
    skip = _check_ids(col, [j.id for j in raw.jobs], (*path, "jobs"), "job", "jobs[{}]")
    channel_ids = {c.id for c in channels}
    lottery_ids = frozenset(lot.id for lot in raw.lotteries)
    jobs = tuple(
        _job(
            col,
            j,
            (*path, "jobs", i),
            channel_ids,
            pools,
            locale=raw.locale,
            lottery_ids=lottery_ids,
        )
        for i, j in enumerate(raw.jobs)
        if i not in skip
    )
    keywords = (
        tuple(k.strip() for k in raw.chat_keywords) if raw.chat_keywords else DEFAULT_CHAT_KEYWORDS
    )
    checkins = _checkins(col, raw.checkins, (*path, "checkins"))
    rewards = _rewards(col, raw.rewards, (*path, "rewards"))
    parsed, schedulable = _lotteries(
        col, raw, path, channel_ids=channel_ids, rewards=rewards, chat_keywords=keywords
    )
    lotteries = tuple(parsed.values())
    daily_snapshot = raw.metrics.daily_snapshot if raw.metrics is not None else True
    alerts_channel = raw.alerts.channel if raw.alerts is not None else None
    if alerts_channel is not None and alerts_channel not in channel_ids:
        known = ", ".join(sorted(channel_ids)) or "none defined"
        col.error(
            (*path, "alerts", "channel"),
            f"unknown channel {alerts_channel!r} (channels: {known})",
        )
    community = Community(
        id=raw.id,
        name=raw.name,
        timezone=raw.timezone,
        locale=raw.locale,
        day_boundary=parse_hhmm(raw.day_boundary),
        quiet_hours=quiet,
        channels=channels,
        pools=tuple(pools.values()),
        # Ops' jobs first, then the lotteries' derived ones (ids lottery.<id>.<step>),
        # then the daily metric snapshot (metrics.daily).
        jobs=(
            *jobs,
            *(job for lottery in lotteries for job in lottery_jobs(lottery)),
            *(metrics_jobs(parse_hhmm(raw.day_boundary)) if daily_snapshot else ()),
        ),
        checkins=checkins,
        rewards=rewards,
        chat_keywords=keywords,
        lotteries=lotteries,
        daily_snapshot=daily_snapshot,
        alerts_channel=alerts_channel,
    )
    for index, lottery in parsed.items():
        if lottery.id not in schedulable:
            continue
        for check in col.lottery_checks:
            for issue in check(lottery, community, reference):
                where = (*path, "lotteries", index, *issue.path)
                if issue.severity == "error":
                    col.error(where, issue.message)
                else:
                    col.warn(where, issue.message)
    return community


def _config(col: _Collector, raw: d.ConfigDoc) -> Config:
    published_at = None
    if raw.published_at is not None:
        try:
            published_at = parse_iso(raw.published_at)
        except ValueError as exc:
            col.error(("published_at",), str(exc))
    skip = _check_ids(
        col, [c.id for c in raw.communities], ("communities",), "community", "communities[{}]"
    )
    communities = tuple(
        _community(col, c, ("communities", i), published_at)
        for i, c in enumerate(raw.communities)
        if i not in skip
    )
    return Config(
        communities=communities,
        published_at=published_at,
        version_tag=raw.source_sha256 or "",
        warnings=tuple(i for i in col.issues if i.severity == "warning"),
    )


def _msgspec_path(exc: msgspec.ValidationError) -> Path:
    match = _MSGSPEC_PATH.search(str(exc))
    path: Path = tuple(
        name if name else int(index)
        for name, index in _PATH_PART.findall(match.group("path") if match else "")
    )
    field_match = re.match(r"Object contains unknown field `(.+)`", str(exc))
    return (*path, field_match.group(1)) if field_match else path


_STUB_DESCRIPTION = "\x00stand-in for a lottery of the wrong shape"
#: Valid stand-ins for a community's parts that have the wrong shape. They keep
#: the part's id (references to it still resolve) and raise no semantic issue.
_STUBS: dict[str, Any] = {
    "channels": lambda cid: {"id": cid, "type": "console"},
    "pools": lambda cid: {"id": cid, "items": [{"id": "stub", "text": "stub"}]},
    "jobs": lambda cid: {"id": cid, "cron": "0 0 * * *", "action": "ledger_reconcile"},
    "items": lambda cid: {"id": cid, "text": "stub"},
    # A lottery stand-in raises no issue of its own (its description marks it).
    "lotteries": lambda cid: {
        "id": cid,
        "title": "stub",
        "schedule": {"opens": "0 0 * * 1", "closes": "0 12 * * 1", "draws": "0 13 * * 1"},
        "prizes": [{"id": "stub", "title": "stub", "count": 1, "points": 1}],
        "posts": {"channels": ["stub"]},
        "enabled": False,
        "description": _STUB_DESCRIPTION,
    },
}
_REQUIRED_STUBS: dict[str, Any] = {
    "id": "invalid",
    "name": "invalid",
    "timezone": "UTC",
    "channels": [],
    "jobs": [],
}
_MAX_REPAIRS = 200


def _repair(community: dict[str, Any], path: Path) -> bool:
    """Replace the part of ``community`` at ``path`` by a valid stand-in; False if none."""
    if not path or not isinstance(path[0], str):
        return False
    key = path[0]
    target: Any = community
    if key == "pools" and len(path) > 3 and path[2] == "items":
        target, key, path = community["pools"][path[1]], "items", path[2:]
    if key in _STUBS and len(path) > 1 and isinstance(path[1], int):
        entries = target[key]
        old = entries[path[1]]
        old_id = old.get("id") if isinstance(old, Mapping) else None
        valid = isinstance(old_id, str) and ID_PATTERN.match(old_id)
        entries[path[1]] = _STUBS[key](old_id if valid else f"invalid-{path[1]}")
        return True
    if key in _REQUIRED_STUBS:
        target[key] = copy.deepcopy(_REQUIRED_STUBS[key])
        return True
    return target.pop(key, None) is not None


def _community_parts(raw: Any) -> d.CommunityDoc | None:
    """As much of one community as has the right shape (wrong parts stubbed out)."""
    if not isinstance(raw, Mapping):
        return None
    community = copy.deepcopy(dict(raw))
    for _ in range(_MAX_REPAIRS):
        try:
            return msgspec.convert(community, d.CommunityDoc, strict=True)
        except msgspec.ValidationError as exc:
            if not _repair(community, _msgspec_path(exc)):
                return None
        except (TypeError, KeyError, IndexError):
            return None
    return None


def semantic_issues(
    doc: Any, *, lottery_checks: Sequence[LotteryCheck] = ()
) -> tuple[Config | None, list[ConfigIssue]]:
    """The checks a schema cannot say, on as much of ``doc`` as has the right shape.

    For the CLI, which reports shape problems itself (every one, from the JSON
    Schema): when the whole document has the right shape, the result is the
    config and its semantic issues. Otherwise the config is ``None`` and the
    checks still run on every community, with each part that has the wrong shape
    (a channel, pool, item or job; a community key) replaced by a valid stand-in
    that keeps its id: a wrong type in one job does not hide an unknown pool in
    the next, and no reference to the replaced part is reported as unknown.

    ``lottery_checks`` run on every lottery whose crons and zone are valid (the
    CLI passes :func:`autopilot.lottery.schedule.lottery_schedule_issues`).
    """
    col = _Collector(lottery_checks)
    try:
        raw = d.load_document(doc)
    except msgspec.ValidationError:
        communities = doc.get("communities") if isinstance(doc, Mapping) else None
        for index, craw in enumerate(communities if isinstance(communities, list) else []):
            community = _community_parts(craw)
            if community is not None:
                _community(col, community, ("communities", index))
        if isinstance(communities, list):
            ids = [c.get("id") if isinstance(c, Mapping) else None for c in communities]
            _check_ids(
                col,
                [i if isinstance(i, str) else f"\0{n}" for n, i in enumerate(ids)],
                ("communities",),
                "community",
                "communities[{}]",
            )
        return None, col.issues
    config = _config(col, raw)
    if any(i.severity == "error" for i in col.issues):
        return None, col.issues
    return config, col.issues


def collect_issues(doc: Any) -> tuple[Config | None, list[ConfigIssue]]:
    """Parse ``doc`` and return the config (``None`` if any error) with the issues found.

    A shape problem (wrong type, unknown or missing key, value out of range) is
    reported alone: msgspec stops at the first one. Documents reach the functions
    only through ``autopilot config push``, which has already reported every
    problem; here one is enough to refuse the document.
    """
    if not isinstance(doc, Mapping):
        return None, [
            ConfigIssue((), "the config must be a mapping with 'version' and 'communities'")
        ]
    try:
        raw = d.load_document(doc)
    except msgspec.ValidationError as exc:
        return None, [_shape_issue(exc, doc)]
    col = _Collector()
    config = _config(col, raw)
    if any(i.severity == "error" for i in col.issues):
        return None, col.issues
    return config, col.issues


def parse_config(doc: Any, *, source: str = "<config>") -> Config:
    """Parse and validate ``doc``; raise ``ConfigError`` listing the errors found."""
    config, issues = collect_issues(doc)
    if config is None:
        raise ConfigError(issues=issues, source=source)
    return config
