"""Report jobs (``action: metrics_report``) through both paths that read the config:
``autopilot config validate`` (every problem at its file:line and path) and the
functions' loader (:func:`collect_issues`). Plus the normalized ``Job.params`` the
report action reads, its defaults per locale, and the schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import yaml
from autopilot.config.model import (
    ACTIONS,
    MESSAGE_ACTIONS,
    REPORT_ACTION,
    REPORT_FIELDS,
    REPORT_PERIODS,
    collect_issues,
    default_report_template,
)
from autopilot.config.schema import DEFAULT_PATH, main, render_schema

from autopilot_cli.configfile import ValidationReport, load_yaml_with_lines, validate_loaded

NOW = datetime(2026, 3, 1, tzinfo=UTC)

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
      - {id: finance, type: file, path: finance.jsonl}
    jobs:
      - id: weekly-report
        cron: "30 9 * * 1"
        action: metrics_report
        params:
          period: week
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
    return edit("          channels: [group]\n", "          channels: [group]\n" + extra, text)


def line_of(text: str, needle: str) -> int:
    lines = [n for n, line in enumerate(text.splitlines(), 1) if needle in line]
    assert len(lines) == 1, f"{needle!r} is on lines {lines}"
    return lines[0]


def errors(text: str) -> list[tuple[int | None, str, str]]:
    return [(f.line, f.location, f.message) for f in validate(text).errors]


def function_issues(text: str) -> list[tuple[str, str]]:
    """What the functions' loader (msgspec + semantic checks) reports for ``text``."""
    config, issues = collect_issues(yaml.safe_load(text))
    assert config is None
    return [(i.location(), i.message) for i in issues]


# --------------------------------------------------------------------------- valid jobs


def test_a_report_job_parses_with_the_default_text_of_its_period_and_locale() -> None:
    report = validate(BASE)

    assert report.findings == []
    assert report.config is not None
    job = report.config.communities[0].job("weekly-report")
    assert (job.action, job.quiet_hours, job.sends_messages) == (REPORT_ACTION, "defer", True)
    assert job.params == {
        "period": "week",
        "channels": ["group"],
        "template": default_report_template("zh-CN", "week"),
        "title": None,
    }
    assert job.params["template"].startswith(
        "📊 {community}本周数据（{period_start}–{period_end}）"
    )


def test_written_template_and_title_are_kept_and_english_defaults_follow_the_locale() -> None:
    text = edit("period: week", "period: month", with_params('          title: "{community}"\n'))
    text = edit("locale: zh-CN", "locale: en", text)
    job = validate(text).config.communities[0].job("weekly-report")  # type: ignore[union-attr]
    assert job.params["template"] == default_report_template("en", "month")
    assert job.params["template"].startswith("💰 {community} points report")
    assert job.params["title"] == "{community}"

    written = with_params('          template: "本周打卡 {checkins} 次，参与率 {checkin_rate}"\n')
    job = validate(written).config.communities[0].job("weekly-report")  # type: ignore[union-attr]
    assert job.params["template"] == "本周打卡 {checkins} 次，参与率 {checkin_rate}"


def test_every_field_is_accepted_in_a_template() -> None:
    every = " ".join(f"{{{name}}}" for name in sorted(REPORT_FIELDS))
    assert validate(with_params(f'          template: "{every}"\n')).findings == []


def test_report_jobs_obey_quiet_hours_like_every_message() -> None:
    assert REPORT_ACTION in ACTIONS and REPORT_ACTION in MESSAGE_ACTIONS
    assert REPORT_PERIODS == ("week", "month")
    # At 03:00, inside the quiet hours: deferred by default, with the usual warning.
    report = validate(edit('cron: "30 9 * * 1"', 'cron: "0 3 * * 1"'))
    assert report.errors == []
    assert [w.location for w in report.warnings] == [f"{J}.cron"]
    assert "inside quiet hours" in report.warnings[0].message


# --------------------------------------------------------------------------- errors at paths


@pytest.mark.parametrize(
    ("old", "new", "needle", "location", "message"),
    [
        (
            "period: week",
            "period: day",
            "period: day",
            f"{P}.period",
            "unknown report period 'day' (known: month, week)",
        ),
        (
            "channels: [group]",
            "channels: [group, nowhere]",
            "          channels:",
            f"{P}.channels[1]",
            "unknown channel 'nowhere' (channels: finance, group)",
        ),
        (
            "channels: [group]",
            "channels: []",
            "          channels:",
            f"{P}.channels",
            "a post needs at least one channel",
        ),
        (
            "channels: [group]",
            "channels: group",
            "          channels:",
            f"{P}.channels",
            "expected a list, got the string 'group'",
        ),
        (
            "channels: [group]",
            'channels: [group]\n          template: "{checkins} {date}"',
            "template:",
            f"{P}.template",
            "unknown template field {date} in a report post (known: active_dau_avg, ",
        ),
        (
            "channels: [group]",
            'channels: [group]\n          title: "{content}"',
            "title:",
            f"{P}.title",
            "unknown template field {content} in a report post",
        ),
        (
            "channels: [group]",
            'channels: [group]\n          template: "{checkins"',
            "template:",
            f"{P}.template",
            "bad template: expected '}' before end of string",
        ),
        (
            "channels: [group]",
            'channels: [group]\n          template: "{checkins:>5}"',
            "template:",
            f"{P}.template",
            "bad template: placeholder {checkins} may not have a format spec",
        ),
        (
            "channels: [group]",
            "channels: [group]\n          pool: morning",
            "pool: morning",
            f"{P}.pool",
            "unknown key 'pool'; allowed: channels, period, template, title",
        ),
        (
            "channels: [group]",
            'channels: [group]\n          template: ""',
            "template:",
            f"{P}.template",
            "",
        ),
    ],
)
def test_each_mistake_is_reported_at_its_line_and_path(old, new, needle, location, message):
    text = edit(old, new)
    found = errors(text)
    assert len(found) == 1, found
    line, where, said = found[0]
    assert (line, where) == (line_of(text, needle), location)
    assert said.startswith(message), said


def test_a_missing_period_is_reported_at_the_params() -> None:
    text = edit("          period: week\n", "")
    assert errors(text) == [
        (line_of(text, "params:"), f"{P}.period", "required key 'period' is missing")
    ]


def test_a_channel_listed_twice_is_an_error() -> None:
    text = edit("channels: [group]", "channels: [group, group]")
    assert {(loc, msg) for _, loc, msg in errors(text)} >= {
        (f"{P}.channels", "a channel is listed twice")
    }


def test_the_functions_loader_reports_the_same_mistakes_at_the_same_paths() -> None:
    assert function_issues(edit("period: week", "period: quarter")) == [
        (f"{P}.period", "unknown report period 'quarter'")
    ]
    assert function_issues(edit("channels: [group]", "channels: [finance, nowhere]")) == [
        (f"{P}.channels[1]", "unknown channel 'nowhere' (channels: finance, group)")
    ]
    issues = function_issues(with_params('          template: "{streak}"\n'))
    assert [loc for loc, _ in issues] == [f"{P}.template"]
    assert issues[0][1].startswith("unknown template field {streak} in a report post")


def test_every_problem_of_a_report_job_is_reported_at_once() -> None:
    text = with_params('          template: "{x}"\n          title: "{y}"\n')
    text = edit("channels: [group]", "channels: [nowhere, finance]", text)
    assert sorted(loc for _, loc, _ in errors(text)) == sorted(
        [f"{P}.channels[0]", f"{P}.template", f"{P}.title"]
    )


# --------------------------------------------------------------------------- schema


def test_the_committed_schema_is_current_and_describes_report_jobs() -> None:
    assert main(["--check", str(DEFAULT_PATH)]) == 0
    schema = json.loads(render_schema())
    job = schema["$defs"]["MetricsReportJob"]
    assert job["properties"]["quiet_hours"]["default"] == "defer"
    params = schema["$defs"]["MetricsReportParams"]
    assert params["additionalProperties"] is False
    assert params["required"] == ["period", "channels"]
    assert sorted(params["properties"]["period"]["enum"]) == ["month", "week"]
    assert set(params["properties"]) == {"period", "channels", "template", "title"}
