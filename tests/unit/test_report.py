"""`autopilot report`'s renderer (pure: snapshots in, text out) and the command on a
summary.json written here: table alignment with CJK, totals, hostile names, the
charts' embedded data, locale labels, empty input, bad dates."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from autopilot_cli.main import main
from autopilot_cli.report import (
    CHART_IDS,
    FONT_STACK,
    STREAK_BUCKETS,
    SnapshotError,
    display_width,
    render_html,
    render_table,
    report_filename,
    terminal_safe,
    write_report,
)

HOSTILE = '<script>alert("x")</script>&'


def snapshot(day: date, n: int, community: str = "sunrise-readers") -> dict[str, Any]:
    """A snapshot of docs/metrics.md whose figures depend on ``n`` (the day's index)."""
    return {
        "community": community,
        "day": day.isoformat(),
        "version": 1,
        "members": {"total": 200 + 2 * n, "joined": 3, "left": 1},
        "active": {"dau": 120 + n, "wau": 170 + n, "mau": 190 + n},
        "checkins": {"count": 120 + n, "rate": 0.7 + n / 100, "new_streaks": 10 + n, "makeups": 1},
        "streaks": {"1-2": 40 - n, "3-6": 50, "7-29": 30 + n, "30-99": 7, "100+": n // 3},
        "points": {
            "awarded": {"checkin": 1200, "streak_bonus": 200 + 10 * n},
            "redeemed": {"redemption": -300 - 5 * n},
            "adjusted": {"makeup": -30},
            "awarded_total": 1400 + 10 * n,
            "redeemed_total": -300 - 5 * n,
            "adjusted_total": -30,
            "net": 1070 + 5 * n,
            "outstanding": 25000 + 1000 * n,
        },
        "lottery": {"entries": 90 + n, "entrants": 88 + n, "participation": 0.5 + n / 100},
        "posts": {
            "published": {"console": 3, "group-log": 3 - n % 2},
            "failed": {"group-log": n % 2},
        },
        "reminders": {"sent": 20 + n, "converted": 9},
    }


def week(start: date = date(2027, 3, 8)) -> list[dict[str, Any]]:
    return [snapshot(start + timedelta(days=n), n) for n in range(7)]


def plotly_calls(page: str) -> dict[str, tuple[list[dict[str, Any]], dict[str, Any]]]:
    """``{div id: (data, layout)}`` of every ``Plotly.newPlot("id", data, layout, …)``."""
    decoder = json.JSONDecoder()
    calls = {}
    for match in re.finditer(r'Plotly\.newPlot\(\s*"([^"]+)",\s*', page):
        data, end = decoder.raw_decode(page, match.end())
        layout_start = re.compile(r",\s*").match(page, end)
        assert layout_start is not None
        layout, _ = decoder.raw_decode(page, layout_start.end())
        calls[match.group(1)] = (data, layout)
    return calls


def columns_of(line: str, spans: list[tuple[int, int]]) -> list[str]:
    """The cells of ``line`` at the display-column ``spans`` (wide characters count 2)."""
    cells, column, current = [""] * len(spans), 0, 0
    for char in line:
        while current < len(spans) and column >= spans[current][1]:
            current += 1
        if current < len(spans) and column >= spans[current][0]:
            cells[current] += char
        column += display_width(char)
    return [cell.strip() for cell in cells]


# --- the terminal table ----------------------------------------------------------------


def test_display_width_counts_cjk_twice_and_combining_marks_not_at_all() -> None:
    assert display_width("晨读社") == 6
    assert display_width("ａ") == 2  # fullwidth
    assert display_width("e\u0301") == 1
    assert display_width("Day 1") == 5


@pytest.mark.parametrize(
    ("locale", "first_header", "name"),
    [("zh-CN", "日期", "晨读社·早起的人们"), ("en", "Day", "Sunrise Readers")],
)
def test_table_columns_line_up_by_display_width(locale: str, first_header: str, name: str) -> None:
    text = render_table(week(), community_name=name, locale=locale)
    lines = text.splitlines()
    assert lines[0].startswith(name)
    header, rule = lines[2], lines[3]
    assert header.startswith(first_header)
    # The rule's dashes mark each column; every row fits them exactly.
    spans = [(m.start(), m.end()) for m in re.finditer(r"-+", rule)]
    assert len(spans) == 15
    rows = lines[4:11]
    assert len(rows) == 7
    for line in [header, *rows, lines[12]]:
        assert display_width(line) == len(rule), line
        cells = columns_of(line, spans)
        assert all(cells), line  # no cell spills into the gap between columns
    first = columns_of(rows[0], spans)
    assert first[:8] == ["2027-03-08", "200", "+3/-1", "120", "170", "190", "120", "70.0%"]
    assert first[8:] == ["10", "1400", "-300", "25000", "88 (50.0%)", "6/0", "20/9"]
    assert lines[11] == rule
    if locale == "zh-CN":
        assert "打卡率" in header and "积分余额" in header and "提醒发送/转化" in header
    else:
        assert "Check-ins" in header and "Outstanding" in header and "Reminders" in header


def test_totals_sum_flows_average_levels_and_take_stocks_at_the_end() -> None:
    lines = render_table(week(), community_name="x", locale="en").splitlines()
    spans = [(m.start(), m.end()) for m in re.finditer(r"-+", lines[3])]
    totals = columns_of(lines[12], spans)
    assert totals == [
        "Total/avg",
        "212",  # members at the end
        "+21/-7",
        "123.0",  # DAU 120..126 averaged
        "173.0",
        "193.0",
        "861",  # check-ins summed
        "73.0%",  # rates 70%..76% averaged
        "91",
        str(sum(1400 + 10 * n for n in range(7))),
        str(sum(-300 - 5 * n for n in range(7))),
        "31000",  # outstanding at the end
        f"{sum(88 + n for n in range(7))} (53.0%)",
        f"{sum(6 - n % 2 for n in range(7))}/3",
        f"{sum(20 + n for n in range(7))}/63",
    ]
    assert "flows summed" in lines[13]


def test_table_sorts_days_and_says_which_are_missing() -> None:
    days = week()
    text = render_table([days[6], days[0], days[3]], community_name="x", locale="en")
    rows = [line.split()[0] for line in text.splitlines()[4:7]]
    assert rows == ["2027-03-08", "2027-03-11", "2027-03-14"]
    assert "3 daily snapshots of 7 days (missing: 2027-03-09, 2027-03-10" in text


def test_terminal_output_shows_control_characters_escaped() -> None:
    text = render_table(week(), community_name="evil\x1b[2J\x07name", locale="en")
    assert "\x1b" not in text and "\x07" not in text
    assert text.startswith("evil\\x1b[2J\\x07name")
    assert terminal_safe("晨读社\n") == "晨读社\\n"


def test_empty_snapshots_give_a_clear_message() -> None:
    assert render_table([], community_name="晨读社", locale="zh-CN") == (
        "晨读社 没有每日数据快照：无可报告内容。\n"
    )
    assert render_table([], community_name="Sunrise", locale="en") == (
        "No daily metric snapshots for Sunrise: nothing to report.\n"
    )
    page = render_html([], community_name=HOSTILE, locale="en")
    assert 'id="empty"' in page and "nothing to report" in page
    assert "<script" not in page and "Plotly" not in page


def test_bad_snapshots_are_refused_naming_the_day_and_figure() -> None:
    bad = week()
    bad[2]["points"]["outstanding"] = "lots"
    with pytest.raises(SnapshotError, match=r"snapshot 2 \(2027-03-10\): points.outstanding"):
        render_table(bad, community_name="x", locale="en")
    with pytest.raises(SnapshotError, match="day is '2027/03/08', not YYYY-MM-DD"):
        render_table([{**week()[0], "day": "2027/03/08"}], community_name="x", locale="en")
    with pytest.raises(SnapshotError, match="two snapshots for 2027-03-08"):
        render_html([week()[0], week()[0]], community_name="x", locale="en")
    with pytest.raises(SnapshotError, match="snapshot 0 is list"):
        render_table([[]], community_name="x", locale="en")  # type: ignore[list-item]


def test_missing_figures_count_as_zero() -> None:
    bare = {"community": "c", "day": "2027-03-08", "checkins": {"count": 5}}
    row = render_table([bare], community_name="c", locale="en").splitlines()[4]
    assert row.split()[:8] == ["2027-03-08", "0", "+0/-0", "0", "0", "0", "5", "0.0%"]
    assert len(plotly_calls(render_html([bare], community_name="c", locale="en"))) == 6


# --- the HTML report -------------------------------------------------------------------


def test_every_chart_div_is_there_with_its_data_embedded() -> None:
    days = week()
    page = render_html(days, community_name="晨读社", locale="zh-CN")
    calls = plotly_calls(page)
    assert list(calls) == list(CHART_IDS)
    for chart_id in CHART_IDS:
        assert page.count(f'id="{chart_id}"') == 1
    x = [d["day"] for d in days]

    checkins, _ = calls["chart-checkins"]
    assert [t["type"] for t in checkins] == ["bar", "scatter"]
    assert checkins[0]["x"] == x and checkins[0]["y"] == [120 + n for n in range(7)]
    assert checkins[1]["y"] == [round((0.7 + n / 100) * 100, 1) for n in range(7)]

    active, _ = calls["chart-active"]
    assert [t["name"] for t in active] == ["日活", "周活", "月活"]
    assert active[2]["y"] == [190 + n for n in range(7)]

    streaks, layout = calls["chart-streaks"]
    assert layout["barmode"] == "stack"
    assert len(streaks) == len(STREAK_BUCKETS)
    assert streaks[0]["y"] == [40 - n for n in range(7)]

    points, _ = calls["chart-points"]
    assert [t["name"] for t in points] == ["发放", "兑换", "积分余额"]
    assert points[1]["y"][0] == -300 and points[2]["y"][-1] == 31000
    assert points[2]["yaxis"] == "y2"

    lottery, _ = calls["chart-lottery"]
    assert lottery[0]["y"] == [88 + n for n in range(7)]

    posts, _ = calls["chart-posts"]
    assert [t["name"] for t in posts] == [
        "console 成功",
        "console 失败",
        "group-log 成功",
        "group-log 失败",
    ]
    assert posts[3]["y"] == [n % 2 for n in range(7)]
    assert posts[3]["base"] == [3 - n % 2 for n in range(7)]  # failed stacked on published


def test_the_page_is_self_contained() -> None:
    page = render_html(week(), community_name="x", locale="en")
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"<script[^>]*\bsrc=", page)
    assert not re.search(r"<link[^>]*\bhref=", page)
    # plotly.js inline, exactly once
    assert page.count("plotly.js v") >= 1
    assert len(re.findall(r"<script type=\"text/javascript\">/\*\*", page)) <= 1
    assert len(page) > 1_000_000


@pytest.mark.parametrize(
    ("locale", "expected", "title", "absent"),
    [
        ("zh-CN", ["概览", "每日数据", "打卡率"], "每日打卡与打卡率", "Daily figures"),
        ("zh_TW", ["概览"], "每日打卡与打卡率", "Daily figures"),
        ("en-US", ["Summary", "Daily figures"], "Daily check-ins and check-in rate", "打卡率"),
    ],
)
def test_labels_follow_the_locale_and_fonts_include_cjk(
    locale: str, expected: list[str], title: str, absent: str
) -> None:
    page = render_html(week(), community_name="Sunrise", locale=locale)
    for text in expected:
        assert text in page
    assert absent not in page
    assert f"font-family: {FONT_STACK}" in page
    calls = plotly_calls(page)
    assert calls["chart-checkins"][1]["title"]["text"] == title
    for _data, layout in calls.values():
        assert layout["font"]["family"] == FONT_STACK
        assert "Noto Sans CJK SC" in layout["font"]["family"]
        assert absent not in json.dumps(layout, ensure_ascii=False)
    assert f'<html lang="{"zh-CN" if locale.startswith("zh") else "en"}">' in page


def test_hostile_names_are_escaped_everywhere() -> None:
    days = week()
    for d in days:
        d["posts"]["published"][HOSTILE] = 1
        d["posts"]["failed"]["<img src=x onerror=alert(1)>"] = 1
    page = render_html(days, community_name=HOSTILE, locale="en")
    assert '<script>alert("x")' not in page
    assert "<img src=x" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in page  # h1 and title
    assert "<title>&lt;script&gt;" in page
    # In the embedded JSON: no closing tag, and plotly gets entities, not markup.
    names = [t["name"] for t in plotly_calls(page)["chart-posts"][0]]
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp; published" in names
    assert all("<" not in name for name in names)
    # Every </script> closes a <script> the page opened: none came from data.
    assert page.count("</script>") == len(re.findall(r"<script[ >]", page))


def test_summary_and_data_table_hold_the_table_figures() -> None:
    page = render_html(week(), community_name="Sunrise", locale="en")
    summary = page[page.index('<section id="summary">') : page.index('<section id="charts">')]
    assert "2027-03-08 – 2027-03-14 · 7 daily snapshots" in summary
    assert "212 (+21 joined, -7 left)" in summary
    assert "861 (average rate 73.0%)" in summary
    assert "31000" in summary
    data = page[page.index('<section id="data">') :]
    assert data.count("<tr>") == 1 + 7
    assert '<tr class="totals"><td>Total/avg</td><td>212</td><td>+21/-7</td>' in data


def test_write_report_names_the_file_and_writes_nothing_without_snapshots(tmp_path: Path) -> None:
    path = write_report(week(), tmp_path / "out", community_name="晨读社", locale="zh-CN")
    assert path.name == "report-sunrise-readers-2027-03-08-2027-03-14.html"
    assert "晨读社" in path.read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="nothing to report"):
        write_report([], tmp_path / "empty", community_name="x", locale="en")
    assert not (tmp_path / "empty").exists()
    assert report_filename("../../etc/x y", "2027-03-01", "2027-03-31") == (
        "report-_.._etc_x_y-2027-03-01-2027-03-31.html"
    )


# --- the command -------------------------------------------------------------------------


def write_summary(directory: Path, snapshots: list[Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "summary.json").write_text(
        json.dumps({"posts": [], "snapshots": snapshots}, ensure_ascii=False), encoding="utf-8"
    )
    return directory


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "communities.yaml"
    path.write_text(
        "version: 1\ncommunities:\n"
        "  - id: sunrise-readers\n    name: 晨读社\n    locale: zh-CN\n"
        "  - id: daybreak\n    name: Daybreak Writers\n    locale: en\n",
        encoding="utf-8",
    )
    return path


def test_report_prints_the_table_and_writes_the_html(
    tmp_path: Path, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mixed = [*week(), snapshot(date(2027, 3, 9), 40, community="daybreak")]
    mixed.append(snapshot(date(2027, 4, 1), 50))  # outside the period
    source = write_summary(tmp_path / "sim", mixed)
    out = tmp_path / "reports"
    argv = ["report", "--community", "sunrise-readers", "--from", "2027-03-01"]
    argv += ["--to", "2027-03-31", "--local-dir", str(source), "--out", str(out)]
    assert main([*argv, "--config", str(config_file)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("晨读社 — 社群数据报告 2027-03-08 – 2027-03-14")
    assert "日期" in printed and printed.count("\n2027-03-") == 7
    html_path = out / "report-sunrise-readers-2027-03-01-2027-03-31.html"
    assert f"wrote {html_path}" in printed
    assert list(plotly_calls(html_path.read_text(encoding="utf-8"))) == list(CHART_IDS)

    # --locale wins over the config; the other community's snapshots are its own.
    assert main([*argv, "--config", str(config_file), "--locale", "en"]) == 0
    assert "Check-ins" in capsys.readouterr().out
    daybreak = ["report", "--community", "daybreak", "--from", "2027-03-09", "--to", "2027-03-09"]
    daybreak += ["--local-dir", str(source), "--out", str(out), "--config", str(config_file)]
    assert main(daybreak) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("Daybreak Writers — Community report 2027-03-09 (1 daily")
    assert (out / "report-daybreak-2027-03-09-2027-03-09.html").exists()


@pytest.mark.parametrize(
    ("first", "last", "message"),
    [
        ("2027-3-8", "2027-03-14", "argument --from: '2027-3-8' is not a day YYYY-MM-DD"),
        ("2027-03-08", "2027-02-30", "argument --to: '2027-02-30' is not a calendar day"),
        ("9999-01-01", "9999-01-02", "'9999-01-01' is out of range: a day from 1970-01-01"),
        ("2027-03-14", "2027-03-08", "--from 2027-03-14 is after --to 2027-03-08"),
        ("2026-01-01", "2027-01-02", "is 367 days: at most 366 in one report"),
    ],
)
def test_bad_dates_exit_2_with_the_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], first: str, last: str, message: str
) -> None:
    source = write_summary(tmp_path / "sim", week())
    argv = ["report", "--community", "sunrise-readers", "--from", first, "--to", last]
    argv += ["--local-dir", str(source), "--out", str(tmp_path / "out")]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_leap_year_of_366_days_is_one_report(tmp_path: Path) -> None:
    source = write_summary(tmp_path / "sim", week(date(2028, 12, 25)))
    argv = ["report", "--community", "sunrise-readers", "--from", "2028-01-01"]
    argv += ["--to", "2028-12-31", "--local-dir", str(source), "--out", str(tmp_path / "o")]
    assert main(argv) == 0
    assert (tmp_path / "o" / "report-sunrise-readers-2028-01-01-2028-12-31.html").exists()


@pytest.mark.parametrize(
    ("content", "code", "message"),
    [
        (None, 2, "cannot read"),
        ("{not json", 2, "is not JSON"),
        ('{"posts": []}', 2, 'has no "snapshots" list'),
        ('{"snapshots": {}}', 2, '"snapshots" is dict, not a list'),
        ('{"snapshots": []}', 1, "no snapshots of sunrise-readers from 2027-03-01 to 2027-03-31"),
        (
            json.dumps({"snapshots": [{**snapshot(date(2027, 3, 8), 0), "active": []}]}),
            2,
            "snapshot 0 (2027-03-08): active is list, not an object; nothing written",
        ),
    ],
)
def test_unusable_sources_say_why_and_write_nothing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str | None,
    code: int,
    message: str,
) -> None:
    source = tmp_path / "sim"
    source.mkdir()
    if content is not None:
        (source / "summary.json").write_text(content, encoding="utf-8")
    argv = ["report", "--community", "sunrise-readers", "--from", "2027-03-01"]
    argv += ["--to", "2027-03-31", "--local-dir", str(source), "--out", str(tmp_path / "out")]
    assert main(argv) == code
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_community_id_that_is_not_an_id_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["report", "--community", "../etc", "--from", "2027-03-01", "--to", "2027-03-02"]
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--local-dir", str(tmp_path)])
    assert exited.value.code == 2
    assert "'../etc' is not a community id" in capsys.readouterr().err


class FakeCloudFormation:
    def __init__(self, outputs: dict[str, str]) -> None:
        self.outputs = outputs

    def describe_stacks(self, StackName: str) -> dict[str, Any]:
        assert StackName == "community-autopilot"
        outputs = [{"OutputKey": k, "OutputValue": v} for k, v in self.outputs.items()]
        return {"Stacks": [{"Outputs": outputs}]}


@pytest.fixture
def fake_metrics_store(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """``autopilot.metrics.store.MetricsStore`` replaced: records its calls, returns a week
    of snapshots of two communities (the store is the integrator's; this is the hook)."""
    import sys
    import types

    calls: list[Any] = []

    class MetricsStore:
        def __init__(self, table: str, region: str) -> None:
            calls.append(("init", table, region))

        def snapshots(self, community: str, first: date, last: date) -> Any:
            calls.append(("snapshots", community, first, last))
            yield from week()
            yield snapshot(date(2027, 3, 9), 1, community="other")

    module = types.ModuleType("autopilot.metrics.store")
    module.MetricsStore = MetricsStore  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "autopilot.metrics.store", module)
    return calls


STACK_ARGV = [
    "report",
    "--community",
    "sunrise-readers",
    "--from",
    "2027-03-08",
    "--to",
    "2027-03-14",
    "--stack",
    "community-autopilot",
    "--region",
    "eu-west-1",
]


def test_stack_source_reads_the_metrics_table_named_by_the_stack(
    monkeypatch: pytest.MonkeyPatch,
    fake_metrics_store: list[Any],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    import boto3

    fake = FakeCloudFormation({"MetricsTableName": "metrics-t", "LedgerTableName": "l"})
    monkeypatch.setattr(boto3, "client", lambda *a, **k: fake)
    assert main([*STACK_ARGV, "--out", str(tmp_path / "out"), "--locale", "en"]) == 0
    assert fake_metrics_store == [
        ("init", "metrics-t", "eu-west-1"),
        ("snapshots", "sunrise-readers", date(2027, 3, 8), date(2027, 3, 14)),
    ]
    assert capsys.readouterr().out.count("\n2027-03-") == 7
    assert (tmp_path / "out" / "report-sunrise-readers-2027-03-08-2027-03-14.html").exists()


def test_stack_source_without_a_metrics_table_output_exits_1(
    monkeypatch: pytest.MonkeyPatch, fake_metrics_store: list[Any], tmp_path: Path
) -> None:
    import boto3

    monkeypatch.setattr(boto3, "client", lambda *a, **k: FakeCloudFormation({"X": "y"}))
    with pytest.raises(SystemExit) as exited:
        main([*STACK_ARGV, "--out", str(tmp_path / "out")])
    assert exited.value.code == "stack community-autopilot has no MetricsTableName output"
    assert not (tmp_path / "out").exists()
    assert fake_metrics_store == []


def test_stack_source_says_so_when_the_metrics_store_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "autopilot.metrics.store", None)  # import fails
    with pytest.raises(SystemExit) as exited:
        main([*STACK_ARGV, "--out", str(tmp_path / "out")])
    assert "this version has no metrics store" in str(exited.value.code)
    assert "use --local-dir DIR" in str(exited.value.code)
