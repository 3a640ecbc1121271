"""Reminder jobs (``action: reminder`` in a community's ``jobs:``) through both paths
that read the config: ``autopilot config validate`` (YAML with lines, JSON Schema,
semantic checks: every problem at its file:line) and the functions' loader
(:func:`collect_issues`, msgspec). Plus the normalized ``Job.params`` the reminder
service reads, and the pins between the config and :mod:`autopilot.reminders.rules`."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml
from autopilot.config import document
from autopilot.config.fields import template_fields
from autopilot.config.model import (
    ACTIONS,
    MESSAGE_ACTIONS,
    REMINDER_FIELDS,
    REMINDER_GROUP_FIELDS,
    REMINDER_LOTTERY_FIELDS,
    collect_issues,
    default_reminder_group_template,
    reminder_jobs,
)
from autopilot.config.schema import DEFAULT_PATH, main, render_schema
from autopilot.reminders import rules
from autopilot.reminders.mentions import PLACEHOLDER

from autopilot_cli.configfile import (
    ValidationReport,
    load_yaml_with_lines,
    validate_file,
    validate_loaded,
)

NOW = datetime(2026, 3, 1, tzinfo=UTC)
EXAMPLE = Path(__file__).resolve().parents[3] / "config" / "communities.yaml"

BASE = """\
version: 1
communities:
  - id: readers
    name: 晨读社
    timezone: Asia/Shanghai
    locale: zh-CN
    quiet_hours: {start: "00:00", end: "07:00"}
    channels:
      - {id: group, type: console}
      - {id: log, type: file, path: log.jsonl}
    jobs:
      - id: evening-nudge
        cron: "0 20 * * *"
        action: reminder
        params:
          kind: not_checked_in
          channel: group
          template: "{name}，今天还没打卡哦，{community}等你～"
        misfire: {policy: latest, grace: 30m}
    lotteries:
      - id: weekly
        title: 周五抽奖
        schedule:
          opens: "0 8 * * 1"
          closes: "55 19 * * 5"
          draws: "0 20 * * 5"
        prizes:
          - {id: first, title: 一等奖, count: 1, points: 200}
        posts:
          channels: [group]
"""

J = "communities[0].jobs[0]"
P = f"{J}.params"


def validate(text: str) -> ValidationReport:
    return validate_loaded(load_yaml_with_lines(text, source="c.yaml"), now=NOW)


def edit(old: str, new: str, text: str = BASE) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def with_params(extra: str, text: str = BASE) -> str:
    """BASE with ``extra`` (lines at the params' indentation) added to the params."""
    return edit(
        "          kind: not_checked_in\n", "          kind: not_checked_in\n" + extra, text
    )


def line_of(text: str, needle: str) -> int:
    lines = [n for n, line in enumerate(text.splitlines(), 1) if needle in line]
    assert len(lines) == 1, f"{needle!r} is on lines {lines}"
    return lines[0]


def only_error(text: str) -> tuple[int | None, str, str]:
    report = validate(text)
    assert len(report.errors) == 1, "\n".join(str(f) for f in report.findings)
    finding = report.errors[0]
    return finding.line, finding.location, finding.message


def function_issues(text: str) -> list[tuple[str, str]]:
    """What the functions' loader (msgspec + semantic checks) reports for ``text``."""
    config, issues = collect_issues(yaml.safe_load(text))
    assert config is None
    return [(i.location(), i.message) for i in issues]


# --------------------------------------------------------------------------- valid jobs


def test_a_reminder_job_parses_to_the_normalized_params_with_defaults_filled() -> None:
    report = validate(BASE)

    assert report.findings == []
    assert report.config is not None
    community = report.config.communities[0]
    job = community.job("evening-nudge")
    assert (job.action, job.quiet_hours, job.sends_messages) == ("reminder", "defer", True)
    assert job.params == {
        "kind": "not_checked_in",
        "spec": {"active_days": 7},
        "channel": "group",
        "template": "{name}，今天还没打卡哦，{community}等你～",
        "group_template": "{mentions} 今天还没打卡哦，别忘了～",
        "conversion_window_s": 4 * 3600,
        "max_mentions": None,
    }
    assert reminder_jobs(community) == (job,)


def test_every_key_written_is_carried_over() -> None:
    text = edit(
        "          kind: not_checked_in\n",
        "          kind: streak_at_risk\n"
        "          min_streak: 5\n"
        '          group_template: "{mentions} 今晚就要断签了！{community}"\n'
        "          conversion_window: 90m\n"
        "          max_mentions: 20\n",
    )
    text = edit("          channel: group\n", "          channel: log\n", text)
    text = edit(
        "        misfire: {policy: latest, grace: 30m}\n",
        "        misfire: {policy: latest, grace: 30m}\n        quiet_hours: drop\n",
        text,
    )
    report = validate(text)

    assert report.findings == []
    assert report.config is not None
    job = report.config.communities[0].job("evening-nudge")
    assert job.quiet_hours == "drop"
    assert job.params == {
        "kind": "streak_at_risk",
        "spec": {"min_streak": 5},
        "channel": "log",
        "template": "{name}，今天还没打卡哦，{community}等你～",
        "group_template": "{mentions} 今晚就要断签了！{community}",
        "conversion_window_s": 90 * 60,
        "max_mentions": 20,
    }


def test_a_lottery_reminder_names_its_lottery_as_lottery_id() -> None:
    text = edit(
        "          kind: not_checked_in\n",
        "          kind: lottery\n          lottery: weekly\n          audience: entrants\n",
    )
    text = edit("{community}等你～", "「{lottery}」{draw_time} 开奖", text)
    report = validate(text)

    assert report.findings == []
    assert report.config is not None
    params = report.config.communities[0].job("evening-nudge").params
    assert params["spec"] == {"lottery_id": "weekly", "audience": "entrants", "active_days": 7}
    assert params["group_template"] == default_reminder_group_template(
        "zh-CN", "lottery", "entrants"
    )
    spec = rules.parse_spec(params["kind"], params["spec"])
    assert spec == rules.LotterySpec("weekly", rules.LotteryAudience.ENTRANTS, 7)


@pytest.mark.parametrize(
    ("locale", "kind", "expected"),
    [
        ("zh-CN", "not_checked_in", "{mentions} 今天还没打卡哦，别忘了～"),
        ("zh-CN", "streak_at_risk", "{mentions} 你们的连续打卡今晚就要断了，快来打卡！"),
        ("en", "not_checked_in", "{mentions} you haven't checked in today — there's still time!"),
    ],
)
def test_the_default_group_text_follows_the_locale(locale: str, kind: str, expected: str) -> None:
    text = edit("locale: zh-CN", f"locale: {locale}")
    text = edit("kind: not_checked_in", f"kind: {kind}", text)
    report = validate(text)

    assert report.config is not None, report.findings
    assert report.config.communities[0].job("evening-nudge").params["group_template"] == expected


def test_default_group_texts_use_only_group_fields_and_mention_once() -> None:
    for locale in ("zh-CN", "en"):
        for kind in document.REMINDER_KINDS:
            for audience in (None, "entrants", "eligible_non_entrants"):
                names = template_fields(default_reminder_group_template(locale, kind, audience))
                assert names.count("mentions") == 1
                allowed = REMINDER_GROUP_FIELDS
                if kind != "lottery":
                    allowed = allowed - REMINDER_LOTTERY_FIELDS
                assert set(names) <= allowed, (locale, kind, names)
    assert default_reminder_group_template("zh-TW", "inactive").startswith("{mentions} 好久")
    assert PLACEHOLDER == "{mentions}"  # the placeholder the delivery planner replaces
    assert REMINDER_FIELDS >= REMINDER_LOTTERY_FIELDS


def test_reminder_jobs_lists_only_enabled_reminders() -> None:
    text = edit(
        "    lotteries:\n",
        "      - id: paused\n"
        '        cron: "30 21 * * *"\n'
        "        action: reminder\n"
        "        enabled: false\n"
        '        params: {kind: inactive, days: 14, channel: group, template: "回来吧 {name}"}\n'
        "      - id: ledger\n"
        '        cron: "0 3 * * *"\n'
        "        action: ledger_reconcile\n"
        "    lotteries:\n",
    )
    report = validate(text)

    assert report.findings == []
    assert report.config is not None
    community = report.config.communities[0]
    assert [j.id for j in reminder_jobs(community)] == ["evening-nudge"]
    assert community.job("paused").params["spec"] == {"days": 14}


def test_reminder_is_an_action_that_talks_to_members() -> None:
    assert "reminder" in ACTIONS and "reminder" in MESSAGE_ACTIONS
    # Job ids are part of reminder keys joined with '#': the id pattern forbids it.
    report = validate(edit("id: evening-nudge", "id: 'evening#nudge'"))
    assert [(f.location, f.message.split(" is not")[0]) for f in report.errors] == [
        (f"{J}.id", "'evening#nudge'")
    ]


# --------------------------------------------------------------------------- pins to the rules


def test_the_kinds_and_their_keys_are_the_rules_own() -> None:
    assert tuple(k.value for k in rules.ReminderKind) == document.REMINDER_KINDS
    for kind, keys in document.REMINDER_SPEC_KEYS.items():
        spec_cls, allowed = rules._SPEC_FIELDS[rules.ReminderKind(kind)]
        assert {"lottery_id" if k == "lottery" else k for k in keys} == set(allowed)
        # The document's defaults are the spec's (the lottery id has none in either).
        doc_cls = next(c for c in document._REMINDER_PARAMS if document.tag_of(c) == kind)
        doc_defaults = {
            f.name: f.default for f in msgspec.structs.fields(doc_cls) if f.name in keys
        }
        spec_defaults = {
            "lottery" if f.name == "lottery_id" else f.name: f.default
            for f in dataclasses.fields(spec_cls)
            if f.init
        }
        for key in keys:
            doc_default = doc_defaults[key]
            expected = spec_defaults[key]
            if expected is dataclasses.MISSING:
                assert doc_default is msgspec.NODEFAULT, (kind, key)
            else:
                assert doc_default == expected, (kind, key)


@pytest.mark.parametrize(
    "params",
    [
        "kind: not_checked_in",
        "kind: not_checked_in\n          active_days: 30",
        "kind: streak_at_risk\n          min_streak: 1",
        "kind: inactive\n          days: 14",
        "kind: lottery\n          lottery: weekly",
        "kind: lottery\n          lottery: weekly\n          audience: eligible_non_entrants"
        "\n          active_days: 3",
    ],
)
def test_every_valid_spec_is_one_parse_spec_accepts(params: str) -> None:
    report = validate(edit("kind: not_checked_in", params))

    assert report.config is not None, report.findings
    job = report.config.communities[0].job("evening-nudge")
    spec = rules.parse_spec(job.params["kind"], job.params["spec"])
    assert spec.kind.value == job.params["kind"]
    assert {k: getattr(spec, k) for k in job.params["spec"]} == job.params["spec"]


# ------------------------------------------------------------------ errors, each at its path


ERROR_CASES: list[tuple[str, str, str, str, str]] = [
    # (id, old text of BASE, new text, path, message fragment); the error's line is
    # the line of the new text's last line.
    (
        "unknown kind",
        "kind: not_checked_in",
        "kind: forgot_to_check_in",
        f"{P}.kind",
        "unknown reminder kind 'forgot_to_check_in' (known: not_checked_in, streak_at_risk, "
        "inactive, lottery)",
    ),
    (
        "parameter of another kind",
        "kind: not_checked_in\n",
        "kind: not_checked_in\n          min_streak: 3\n",
        f"{P}.min_streak",
        "unknown key 'min_streak'",
    ),
    (
        "wrong type",
        "kind: not_checked_in\n",
        'kind: not_checked_in\n          active_days: "7"\n',
        f"{P}.active_days",
        "expected an integer, got the string '7'",
    ),
    (
        "below 1",
        "kind: not_checked_in\n",
        "kind: streak_at_risk\n          min_streak: 0\n",
        f"{P}.min_streak",
        "must be at least 1, got 0",
    ),
    (
        "unknown audience",
        "kind: not_checked_in\n",
        "kind: lottery\n          lottery: weekly\n          audience: everyone\n",
        f"{P}.audience",
        "unknown lottery audience 'everyone' (known: eligible_non_entrants, entrants)",
    ),
    (
        "lottery kind without its lottery",
        "kind: not_checked_in",
        "kind: lottery",
        f"{P}.lottery",
        "required key 'lottery' is missing",
    ),
    (
        "unknown channel",
        "channel: group",
        "channel: wechat",
        f"{P}.channel",
        "unknown channel 'wechat' (channels: group, log)",
    ),
    (
        "a list of channels",
        "channel: group",
        "channel: [group, log]",
        f"{P}.channel",
        "expected a string, got a list",
    ),
    (
        "unknown lottery",
        "kind: not_checked_in\n",
        "kind: lottery\n          lottery: monthly\n",
        f"{P}.lottery",
        "unknown lottery 'monthly' (lotteries: weekly)",
    ),
    (
        "unknown template field",
        "{community}等你～",
        "{communty}等你～",
        f"{P}.template",
        "unknown template field {communty} in a reminder's template (known: community, date, "
        "days_since, freeze_note, freezes, name, streak, weekday)",
    ),
    (
        "mentions in the DM",
        "{name}，今天",
        "{mentions}，今天",
        f"{P}.template",
        "({mentions} belongs in group_template; a DM names one member: {name})",
    ),
    (
        "lottery field outside kind lottery",
        "{community}等你～",
        "{lottery}等你～",
        f"{P}.template",
        "template field {lottery} is only for reminders of kind lottery (this one is "
        "not_checked_in)",
    ),
    (
        "bad template syntax",
        "{community}等你～",
        "{community等你～",
        f"{P}.template",
        "bad template: ",
    ),
    (
        "mentions twice",
        "kind: not_checked_in\n",
        'kind: not_checked_in\n          group_template: "{mentions} 打卡啦 {mentions}"\n',
        f"{P}.group_template",
        "{mentions} appears 2 times",
    ),
    (
        "a DM field in the group text",
        "kind: not_checked_in\n",
        'kind: not_checked_in\n          group_template: "{mentions} 你已连续 {streak} 天"\n',
        f"{P}.group_template",
        "unknown template field {streak} in a reminder's group_template (known: community, "
        "date, mentions, weekday)",
    ),
    (
        "draw_time in a group text outside kind lottery",
        "kind: not_checked_in\n",
        'kind: inactive\n          group_template: "{mentions} {draw_time}"\n',
        f"{P}.group_template",
        "template field {draw_time} is only for reminders of kind lottery",
    ),
    (
        "quiet hours ignored",
        "        misfire: {policy: latest, grace: 30m}\n",
        "        misfire: {policy: latest, grace: 30m}\n        quiet_hours: ignore\n",
        f"{J}.quiet_hours",
        "quiet_hours 'ignore' is not allowed for a reminder: reminders are never sent during "
        "quiet hours (use defer, the default, or drop)",
    ),
    (
        "conversion window too short",
        "kind: not_checked_in\n",
        "kind: not_checked_in\n          conversion_window: 5m\n",
        f"{P}.conversion_window",
        "conversion_window '5m' is out of range: use 10m to 24h",
    ),
    (
        "conversion window too long",
        "kind: not_checked_in\n",
        "kind: not_checked_in\n          conversion_window: 2d\n",
        f"{P}.conversion_window",
        "conversion_window '2d' is out of range: use 10m to 24h",
    ),
    (
        "conversion window not a duration",
        "kind: not_checked_in\n",
        "kind: not_checked_in\n          conversion_window: 4 hours\n",
        f"{P}.conversion_window",
        "'4 hours' is not a valid duration",
    ),
    (
        "max_mentions 0",
        "kind: not_checked_in\n",
        "kind: not_checked_in\n          max_mentions: 0\n",
        f"{P}.max_mentions",
        "must be at least 1, got 0",
    ),
    (
        "empty template",
        'template: "{name}，今天还没打卡哦，{community}等你～"',
        'template: ""',
        f"{P}.template",
        "must not be empty",
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "path", "fragment"),
    [case[1:] for case in ERROR_CASES],
    ids=[case[0] for case in ERROR_CASES],
)
def test_each_mistake_is_one_error_at_its_line(
    old: str, new: str, path: str, fragment: str
) -> None:
    text = edit(old, new)
    line, location, message = only_error(text)

    assert location == path
    assert fragment in message, message
    if "is missing" in message:  # reported at the mapping the key belongs in
        assert line == line_of(text, "        params:")
    else:
        assert line == line_of(text, new.strip().splitlines()[-1].strip())


@pytest.mark.parametrize(
    ("old", "new", "path", "fragment"),
    [
        case[1:]
        for case in ERROR_CASES
        if case[0]
        in {
            "unknown kind",
            "unknown channel",
            "unknown lottery",
            "mentions twice",
            "quiet hours ignored",
            "conversion window too short",
            "lottery field outside kind lottery",
        }
    ],
)
def test_the_functions_loader_reports_the_same_path(
    old: str, new: str, path: str, fragment: str
) -> None:
    issues = function_issues(edit(old, new))

    assert [p for p, _ in issues] == [path]
    assert fragment in issues[0][1]


def test_channels_instead_of_channel_says_both_what_is_missing_and_what_is_unknown() -> None:
    text = edit("channel: group", "channels: group")
    report = validate(text)

    assert [(f.line, f.location, f.message.split(";")[0]) for f in report.errors] == [
        (line_of(text, "        params:"), f"{P}.channel", "required key 'channel' is missing"),
        (
            line_of(text, "channels: group"),
            f"{P}.channels",
            "unknown key 'channels' (did you mean 'channel'?)",
        ),
    ]


def test_every_mistake_of_a_file_is_reported() -> None:
    text = edit("channel: group", "channel: wechat")
    text = edit("{community}等你～", "{lottery}等你～", text)
    text = edit(
        "        misfire: {policy: latest, grace: 30m}\n",
        "        misfire: {policy: latest, grace: 30m}\n        quiet_hours: ignore\n",
        text,
    )
    report = validate(text)

    assert sorted(f.location for f in report.errors) == [
        f"{P}.channel",
        f"{P}.template",
        f"{J}.quiet_hours",
    ]
    assert str(report.errors[0]).startswith(f"c.yaml:{line_of(text, 'channel: wechat')}:")


def test_a_shape_error_in_one_reminder_does_not_hide_a_mistake_in_the_next() -> None:
    text = edit(
        "    lotteries:\n",
        "      - id: second\n"
        '        cron: "30 21 * * *"\n'
        "        action: reminder\n"
        "        params: {kind: inactive, channel: nowhere, template: 回来吧}\n"
        "    lotteries:\n",
    )
    text = edit("kind: not_checked_in", "kind: nope", text)
    report = validate(text)

    assert [(f.location, f.message.split(" (")[0]) for f in report.errors] == [
        (f"{P}.kind", "unknown reminder kind 'nope'"),
        ("communities[0].jobs[1].params.channel", "unknown channel 'nowhere'"),
    ]


# --------------------------------------------------------------------------- schema and example


def test_the_committed_schema_is_current_and_describes_reminders() -> None:
    assert main(["--check", str(DEFAULT_PATH)]) == 0
    schema = json.loads(render_schema())
    job = schema["$defs"]["ReminderJob"]
    params = job["properties"]["params"]
    assert params["properties"]["kind"]["enum"] == list(document.REMINDER_KINDS)
    assert params["required"] == ["kind", "channel", "template"]
    assert job["properties"]["quiet_hours"]["default"] == "defer"
    lottery = schema["$defs"]["LotteryReminderParams"]
    assert lottery["additionalProperties"] is False
    assert set(lottery["properties"]) == {
        "kind",
        "channel",
        "template",
        "group_template",
        "conversion_window",
        "max_mentions",
        "lottery",
        "audience",
        "active_days",
    }


def test_the_example_config_validates_with_its_reminders() -> None:
    report = validate_file(EXAMPLE, now=NOW)

    assert report.errors == []
    assert report.config is not None
    by_community: dict[str, list[tuple[str, str, Any]]] = {
        c.id: [(j.cron, j.params["kind"], j.params["spec"]) for j in reminder_jobs(c)]
        for c in report.config.communities
    }
    assert by_community == {
        "sunrise-readers": [
            ("0 20 * * *", "not_checked_in", {"active_days": 7}),
            ("30 21 * * *", "streak_at_risk", {"min_streak": 3}),
        ],
        "daybreak-writers": [
            ("0 20 * * *", "not_checked_in", {"active_days": 7}),
            ("30 21 * * *", "streak_at_risk", {"min_streak": 3}),
        ],
    }
    for community in report.config.communities:
        post_channels = {
            c for j in community.jobs if j.action == "post" for c in j.params["channels"]
        }
        for job in reminder_jobs(community):
            assert job.params["channel"] in post_channels  # a channel the posts already use
            chinese = any("\u4e00" <= ch <= "\u9fff" for ch in job.params["template"])
            assert chinese == (community.locale == "zh-CN"), job.params["template"]
            assert chinese == any("\u4e00" <= ch <= "\u9fff" for ch in job.params["group_template"])
