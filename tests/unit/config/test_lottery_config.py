"""The ``lotteries:`` config section through the path ``autopilot config validate``
takes (YAML with lines, JSON Schema, semantic checks, lottery schedule checks):
every problem at its file:line, the typed Lottery, the derived dispatcher jobs."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from autopilot.config import parse_config
from autopilot.config.document import MAX_PRIZE_POINTS, MAX_WEIGHT_CAP
from autopilot.config.fields import LOTTERY_FIELDS, LOTTERY_TEMPLATE_FIELDS, TEMPLATE_FIELDS
from autopilot.config.model import default_lottery_template
from autopilot.ledger.rules import MAX_POINTS
from autopilot.lottery.draw import MAX_WEIGHT
from autopilot.lottery.eligibility import MinCheckins, NotLeft, WeightMode
from autopilot.lottery.prizes import PointsPrize, RewardPrize

from autopilot_cli.configfile import (
    ValidationReport,
    cmd_validate,
    load_yaml_with_lines,
    validate_loaded,
)
from autopilot_cli.preview import preview_rows

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
      - {id: log, type: file, path: log.jsonl}
    jobs: []
    checkins:
      tiers:
        - {id: bronze, name: 铜, min_lifetime_points: 0}
        - {id: silver, name: 银, min_lifetime_points: 100}
    rewards:
      - {id: mug, name: 杯子, cost_points: 100, stock: 5}
    lotteries:
      - id: weekly
        title: 周五抽奖
        schedule:
          opens: "0 8 * * 1"
          closes: "55 19 * * 5"
          draws: "0 20 * * 5"
        entry:
          mode: enter
          keywords: ["抽奖"]
        eligibility:
          min_checkins: 3
        prizes:
          - {id: first, title: 一等奖, count: 1, points: 200}
          - {id: second, title: 二等奖, count: 3, reward: mug}
        posts:
          channels: [group]
"""

SECOND = """\
      - id: monthly
        title: 月度抽奖
        schedule:
          opens: "0 8 1 * *"
          closes: "0 20 25 * *"
          draws: "0 21 25 * *"
        prizes:
          - {id: top, title: 大奖, count: 1, points: 1000}
        posts:
          channels: [log]
"""


def validate(text: str) -> ValidationReport:
    return validate_loaded(load_yaml_with_lines(text, source="c.yaml"), now=NOW)


def line_of(text: str, needle: str) -> int:
    lines = [n for n, line in enumerate(text.splitlines(), 1) if needle in line]
    assert len(lines) == 1, f"{needle!r} is on lines {lines}"
    return lines[0]


def edit(old: str, new: str, text: str = BASE) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def errors(report: ValidationReport) -> list[tuple[int | None, str, str]]:
    return [(f.line, f.location, f.message) for f in report.errors]


def only_error(text: str) -> tuple[int | None, str, str]:
    report = validate(text)
    assert len(report.errors) == 1, "\n".join(str(f) for f in report.findings)
    return errors(report)[0]


L = "communities[0].lotteries[0]"


# --------------------------------------------------------------------------- a good lottery


def test_the_base_lottery_validates_and_is_typed() -> None:
    report = validate(BASE)

    assert report.findings == []
    assert report.config is not None
    community = report.config.communities[0]
    lottery = community.lottery("weekly")
    assert (lottery.opens, lottery.closes, lottery.draws) == (
        "0 8 * * 1",
        "55 19 * * 5",
        "0 20 * * 5",
    )
    assert (lottery.entry, lottery.cost_points, lottery.max_tickets) == ("enter", 0, 1)
    assert lottery.keywords == ("抽奖",) and lottery.claim_keywords == ()
    assert lottery.rules.rules == (MinCheckins(3), NotLeft())  # not_left defaults on
    assert lottery.weighting.mode is WeightMode.EQUAL
    assert lottery.plan is not None
    assert [(t.tier_id, t.count, t.prize) for t in lottery.plan.tiers] == [
        ("first", 1, PointsPrize(200)),
        ("second", 3, RewardPrize("mug")),
    ]
    assert lottery.posts is not None and lottery.posts.channels == ("group",)
    assert lottery.claim_window is None and lottery.posts.claim_dm is None
    assert [j.id for j in community.jobs] == [
        "lottery.weekly.open",
        "lottery.weekly.close",
        "lottery.weekly.draw",
        "metrics.daily",  # every community's daily snapshot
    ]
    assert report.summary() == "c.yaml: OK (1 community, 0 jobs, 1 lottery)"


def test_default_templates_follow_the_locale_and_the_entry_mode() -> None:
    zh = validate(BASE).config
    assert zh is not None
    posts = zh.communities[0].lottery("weekly").posts
    assert posts is not None
    assert posts.announce == default_lottery_template("zh-CN", "announce_enter")
    assert "发送「{keyword}」参与" in posts.announce and "{commitment}" in posts.announce
    assert "{entrants_hash}" in posts.closed and "{winners}" in posts.winners

    en_text = edit("locale: zh-CN", "locale: en")
    en_text = edit("          mode: enter\n", "          mode: auto\n", en_text)
    en_text = edit('          keywords: ["抽奖"]\n', "", en_text)
    en_text = edit(
        "          channels: [group]\n",
        "          channels: [group]\n        claim: {window: 2d}\n",
        en_text,
    )
    en = validate(en_text)
    assert en.findings == []
    assert en.config is not None
    lottery = en.config.communities[0].lottery("weekly")
    assert lottery.posts is not None
    assert lottery.posts.announce.startswith("🎁 {lottery} is open")
    assert "automatically" in lottery.posts.announce
    assert lottery.keywords == ()  # auto: nothing to send
    # A claim window brings the default claim DM and claim keywords.
    assert lottery.claim_window == timedelta(days=2)
    assert lottery.claim_keywords == ("领奖", "/claim")
    assert lottery.posts.claim_dm == default_lottery_template("en", "claim_dm")
    assert [j.id for j in en.config.communities[0].jobs][-2:] == [
        "lottery.weekly.expire",
        "metrics.daily",
    ]
    expire = en.config.communities[0].job("lottery.weekly.expire")
    assert (expire.cron, expire.action, expire.params) == (
        "*/15 * * * *",
        "lottery_expire",
        {"lottery": "weekly"},
    )


def test_every_default_template_uses_only_lottery_fields() -> None:
    from autopilot.config.fields import template_fields

    for locale in ("zh-CN", "en"):
        for name in (
            "announce_auto",
            "announce_enter",
            "announce_cost",
            "closed",
            "winners",
            "claim_dm",
        ):
            assert set(template_fields(default_lottery_template(locale, name))) <= (
                LOTTERY_TEMPLATE_FIELDS
            )


def test_a_disabled_lottery_derives_no_job() -> None:
    config = validate(
        edit("        title: 周五抽奖\n", "        title: 周五抽奖\n        enabled: false\n")
    ).config
    assert config is not None
    assert config.communities[0].lottery("weekly").enabled is False
    assert [j.id for j in config.communities[0].jobs] == ["metrics.daily"]


def test_preview_lists_the_lottery_steps() -> None:
    config = validate(BASE).config
    assert config is not None
    rows = preview_rows(config, datetime(2026, 3, 1, tzinfo=UTC), 7)
    rows = [r for r in rows if r.job.id.startswith("lottery.")]
    assert [(r.job.id, r.occurrence.key) for r in rows] == [
        ("lottery.weekly.open", "2026-03-02T08:00"),
        ("lottery.weekly.close", "2026-03-06T19:55"),
        ("lottery.weekly.draw", "2026-03-06T20:00"),
    ]


def test_preview_columns_fit_the_lottery_job_ids() -> None:
    """lottery.<id>.<step> is longer than ops' job ids: the columns widen for it."""
    import io

    from autopilot_cli.preview import print_preview

    config = validate(BASE).config
    assert config is not None
    out = io.StringIO()
    print_preview(preview_rows(config, datetime(2026, 3, 1, tzinfo=UTC), 7), out)
    lines = [line for line in out.getvalue().splitlines() if line.startswith("  ")]
    lines = [line for line in lines if "lottery_" in line]
    assert len(lines) == 3
    assert len({line.index("lottery_") for line in lines}) == 1  # the action column aligns
    assert all(line == line.rstrip() for line in lines)


def test_the_published_document_parses_to_the_same_lotteries() -> None:
    """Functions read the pushed JSON with parse_config: the same typed lotteries."""
    loaded = load_yaml_with_lines(BASE)
    config = parse_config(loaded.doc)
    assert config.communities[0].lotteries == validate(BASE).config.communities[0].lotteries  # type: ignore[union-attr]
    assert config.communities[0].jobs == validate(BASE).config.communities[0].jobs  # type: ignore[union-attr]


# --------------------------------------------------------------------------- every problem


def test_unknown_reward() -> None:
    text = edit("count: 3, reward: mug}", "count: 3, reward: vase}")
    line, where, message = only_error(text)
    assert (line, where) == (line_of(text, "reward: vase"), f"{L}.prizes[1].reward")
    assert "unknown reward 'vase'" in message


def test_prize_count_beyond_stock() -> None:
    text = edit("count: 3, reward: mug}", "count: 6, reward: mug}")
    line, where, message = only_error(text)
    assert (line, where) == (line_of(text, "count: 6"), f"{L}.prizes[1].count")
    assert "prize count beyond stock" in message and "its stock is 5" in message


def test_a_prize_tier_with_two_kinds() -> None:
    text = edit("count: 1, points: 200}", "count: 1, points: 200, reward: mug}")
    line, where, message = only_error(text)
    assert (line, where) == (line_of(text, "points: 200, reward: mug"), f"{L}.prizes[0]")
    assert "exactly one of 'points', 'reward' or 'coupon_pool'" in message


def test_close_after_draw() -> None:
    text = edit('draws: "0 20 * * 5"', 'draws: "0 19 * * 5"')
    report = validate(text)
    found = {where: (line, message) for line, where, message in errors(report)}
    assert set(found) == {f"{L}.schedule.draws", f"{L}.schedule.opens"}
    line, message = found[f"{L}.schedule.draws"]
    assert line == line_of(text, 'draws: "0 19 * * 5"')
    assert message.startswith(
        "draws at Fri 2026-01-09 19:00, before the lottery closes at Fri 2026-01-09 19:55"
    )  # 2026-01-01 is a Thursday: the first cycle opens Monday the 5th
    assert found[f"{L}.schedule.opens"][0] == line_of(text, "opens:")


def test_next_open_before_the_draw() -> None:
    text = edit('draws: "0 20 * * 5"', 'draws: "0 20 * * 2"')  # the Tuesday after
    report = validate(text)
    found = {where: (line, message) for line, where, message in errors(report)}
    # A weekly Tuesday draw also falls inside the next cycle's window: both are said.
    assert set(found) == {f"{L}.schedule.opens", f"{L}.schedule.draws"}
    assert found[f"{L}.schedule.opens"] == (
        line_of(text, "opens:"),
        "the next cycle opens at Mon 2026-01-12 08:00, before this cycle draws at "
        "Tue 2026-01-13 20:00 (it closed at Fri 2026-01-09 19:55): the next open must not "
        "come before the draw",
    )


def test_opening_again_before_the_close() -> None:
    text = edit('opens: "0 8 * * 1"', 'opens: "0 8 * * *"')
    report = validate(text)
    assert f"{L}.schedule.closes" in {where for _, where, _ in errors(report)}


def test_impossible_eligibility() -> None:
    text = edit("min_checkins: 3", "min_checkins: 6")
    line, where, message = only_error(text)
    assert (line, where) == (line_of(text, "min_checkins: 6"), f"{L}.eligibility.min_checkins")
    assert "6 check-ins needed, but the window" in message and "5 days" in message


def test_the_window_counts_check_in_days_with_the_day_boundary() -> None:
    # Opens Monday 08:00, closes Friday 03:55: with a 04:00 day boundary the close
    # falls on Thursday's check-in day, so the window has 4 days.
    text = edit('closes: "55 19 * * 5"', 'closes: "55 3 * * 5"')
    text = edit('draws: "0 20 * * 5"', 'draws: "0 20 * * 5"', text)
    text = edit("    jobs: []\n", '    jobs: []\n    day_boundary: "04:00"\n', text)
    text = edit("min_checkins: 3", "min_checkins: 5", text)
    report = validate(text)
    assert [w for _, w, _ in errors(report)] == [f"{L}.eligibility.min_checkins"]
    assert "only 4 days" in report.errors[0].message


def test_unknown_tier() -> None:
    text = edit("min_checkins: 3", "min_checkins: 3\n          min_tier: gold")
    line, where, message = only_error(text)
    assert (line, where) == (line_of(text, "min_tier: gold"), f"{L}.eligibility.min_tier")
    assert "gold" in message


def test_unknown_channel() -> None:
    text = edit("channels: [group]\n", "channels: [group, chat]\n")
    line, where, message = only_error(text)
    assert (line, where) == (line_of(text, "channels: [group, chat]"), f"{L}.posts.channels[1]")
    assert message == "unknown channel 'chat' (channels: group, log)"


def test_unknown_template_field() -> None:
    text = edit(
        "          channels: [group]\n",
        '          channels: [group]\n          announce: "{lottery} {content}"\n',
    )
    line, where, message = only_error(text)
    assert (line, where) == (line_of(text, "announce:"), f"{L}.posts.announce")
    assert message.startswith("unknown template field {content} for a lottery post")


def test_lottery_fields_in_a_template_are_accepted() -> None:
    text = edit(
        "          channels: [group]\n",
        "          channels: [group]\n"
        '          winners: "{date} {lottery} {draw_id}: {winners} ({winner_count}) {seed} '
        '{external_value} {record} {entrants} {entrants_hash} {commitment}"\n'
        '          claim_dm: "{prize} {claim_by} {claim_keyword}"\n',
    )
    assert validate(text).findings == []


def test_bad_cron() -> None:
    text = edit('opens: "0 8 * * 1"', 'opens: "61 8 * * 1"')
    line, where, message = only_error(text)
    assert (line, where) == (line_of(text, "opens:"), f"{L}.schedule.opens")
    assert message == "invalid cron expression '61 8 * * 1'"


def test_max_tickets_without_ticket_weight() -> None:
    text = edit("          mode: enter\n", "          mode: enter\n          max_tickets: 5\n")
    line, where, message = only_error(text)
    assert (line, where) == (line_of(text, "max_tickets: 5"), f"{L}.entry.max_tickets")
    assert "needs weight: tickets" in message
    fixed = edit("        eligibility:\n", "        weight: tickets\n        eligibility:\n", text)
    assert validate(fixed).errors == []


def test_cost_with_auto_mode() -> None:
    text = edit("          mode: enter\n", "          mode: auto\n          cost_points: 10\n")
    text = edit('          keywords: ["抽奖"]\n', "", text)
    line, where, message = only_error(text)
    assert (line, where) == (line_of(text, "  cost_points: 10"), f"{L}.entry.cost_points")
    assert "automatic entries cost nothing" in message


def test_keyword_clash_with_check_in() -> None:
    text = edit('keywords: ["抽奖"]', 'keywords: ["抽奖", "Checkin"]')
    line, where, message = only_error(text)
    assert (line, where) == (line_of(text, "Checkin"), f"{L}.entry.keywords[1]")
    assert message == (
        "entry keyword 'Checkin' is already a check-in keyword: a chat message must mean one thing"
    )


def test_keyword_clash_between_lotteries_with_defaults() -> None:
    second = SECOND.replace("        prizes:\n", "        entry: {mode: enter}\n        prizes:\n")
    text = edit('keywords: ["抽奖"]', 'keywords: ["抽奖", "/lottery"]') + second
    report = validate(text)
    assert errors(report) == [
        (
            line_of(text, "entry: {mode: enter}"),
            "communities[0].lotteries[1].entry",
            "entry keyword '抽奖' (a default: set keywords to other words) is already the "
            "entry keyword of lottery 'weekly': a chat message must mean one thing",
        ),
        (
            line_of(text, "entry: {mode: enter}"),
            "communities[0].lotteries[1].entry",
            "entry keyword '/lottery' (a default: set keywords to other words) is already the "
            "entry keyword of lottery 'weekly': a chat message must mean one thing",
        ),
    ]


def test_claim_keyword_clash() -> None:
    text = edit(
        "          channels: [group]\n",
        '          channels: [group]\n        claim: {window: 2d, keywords: ["抽奖"]}\n',
    )
    line, where, message = only_error(text)
    assert (line, where) == (line_of(text, "claim:"), f"{L}.claim.keywords[0]")
    assert "claim keyword '抽奖' is already the entry keyword of lottery 'weekly'" in message


def test_duplicate_lottery_id() -> None:
    text = BASE + SECOND.replace("id: monthly", "id: weekly")
    line, where, message = only_error(text)
    assert (line, where) == (line_of(text, "title: 月度抽奖") - 1, "communities[0].lotteries[1].id")
    assert message == "duplicate lottery id 'weekly' (also lotteries[0])"


def test_a_lottery_time_inside_quiet_hours_is_a_warning() -> None:
    text = edit('opens: "0 8 * * 1"', 'opens: "0 0 * * 1"')
    report = validate(text)
    assert report.ok and report.errors == []
    assert [(w.line, w.location, w.message) for w in report.warnings] == [
        (
            line_of(text, "opens:"),
            f"{L}.schedule.opens",
            "opens fires at 00:00 local (Mon 2026-01-05), inside quiet hours 00:00–07:00: "
            "lottery steps ignore quiet hours, so the lottery's post goes out then",
        )
    ]


def test_a_disabled_lottery_in_quiet_hours_does_not_warn_but_is_still_checked() -> None:
    text = edit('opens: "0 8 * * 1"', 'opens: "0 0 * * 1"')
    text = edit(
        "        title: 周五抽奖\n", "        title: 周五抽奖\n        enabled: false\n", text
    )
    assert validate(text).findings == []
    broken = edit("min_checkins: 3", "min_checkins: 6", text)
    assert [w for _, w, _ in errors(validate(broken))] == [f"{L}.eligibility.min_checkins"]


def test_a_lottery_cron_in_a_dst_gap_warns_at_its_schedule_key() -> None:
    text = edit("timezone: Asia/Shanghai", "timezone: America/New_York")
    text = edit('    quiet_hours: {start: "00:00", end: "07:00"}\n', "", text)
    text = edit('opens: "0 8 * * 1"', 'opens: "30 2 * * 0"', text)
    report = validate(text)
    assert report.errors == []
    assert [(w.line, w.location) for w in report.warnings] == [
        (line_of(text, "opens:"), f"{L}.schedule.opens")
    ]
    assert report.warnings[0].message.startswith(
        "on Sun 2026-03-08 clocks go forward 1 h at 02:00, so 02:30 does not exist that day"
    )


def test_a_shape_error_in_one_lottery_hides_no_problem_of_another() -> None:
    broken = edit("count: 1, points: 200}", 'count: "one", points: 200}')
    text = broken + SECOND.replace("channels: [log]", "channels: [nowhere]")
    report = validate(text)
    assert [(line, where) for line, where, _ in errors(report)] == [
        (line_of(text, 'count: "one"'), f"{L}.prizes[0].count"),
        (line_of(text, "channels: [nowhere]"), "communities[0].lotteries[1].posts.channels[0]"),
    ]


def test_unknown_key_in_a_lottery() -> None:
    text = edit("        title: 周五抽奖\n", "        title: 周五抽奖\n        weights: tickets\n")
    line, where, message = only_error(text)
    assert (line, where) == (line_of(text, "weights:"), f"{L}.weights")
    assert message.startswith("unknown key 'weights' (did you mean 'weight'?)")


def test_cmd_validate_prints_lottery_problems_compiler_style(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(edit("min_checkins: 3", "min_checkins: 9"), encoding="utf-8")
    out = io.StringIO()
    assert cmd_validate([path], out=out, now=NOW) == 1
    line = line_of(path.read_text(encoding="utf-8"), "min_checkins: 9")
    assert out.getvalue().startswith(
        f"{path}:{line}:25: error: {L}.eligibility.min_checkins: 9 check-ins needed"
    )


# --------------------------------------------------------------------------- constants


def test_document_bounds_are_the_libraries_bounds() -> None:
    assert MAX_WEIGHT_CAP == MAX_WEIGHT
    assert MAX_PRIZE_POINTS == MAX_POINTS


def test_lottery_fields_are_the_specified_ones_and_apart_from_post_fields() -> None:
    assert {"lottery", "draw_id", "commitment", "winners", "record", "claim_by"} <= LOTTERY_FIELDS
    assert len(LOTTERY_FIELDS) == 19
    # Job post templates cannot name them: no provider renders them there.
    assert not LOTTERY_FIELDS & TEMPLATE_FIELDS


@pytest.mark.parametrize("step", ["open", "close", "draw"])
def test_derived_job_ids_cannot_clash_with_ops_jobs(step: str) -> None:
    config = validate(BASE).config
    assert config is not None
    job = config.communities[0].job(f"lottery.weekly.{step}")
    assert "." in job.id  # ops' job ids match [a-z0-9][a-z0-9_-]*: never a dot
