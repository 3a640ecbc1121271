"""Daily metric snapshots as a terminal table and a self-contained HTML report.

A pure renderer: it takes the snapshot dicts of docs/metrics.md (one community,
any order) and returns text; where they come from (``autopilot simulate``'s
``summary.json``, the stack's MetricsTable) is the ``autopilot report``
command's business (:mod:`autopilot_cli.commands.report`). Nothing here reads
the clock, the network or a file, so the same snapshots always give the same
bytes, and the tests can check them without AWS.

The HTML file needs no network to open: plotly.js is embedded inline once, each
chart is one ``<div>`` with a stable id (:data:`CHART_IDS`), and every text that
comes from data (community and channel names) is escaped — for HTML in the page,
and for plotly's own pseudo-HTML in trace names. Chinese and English text: the
labels follow the community's locale (``zh*`` is Chinese) and the page and the
charts use a font stack with CJK fonts (:data:`FONT_STACK`). See docs/reports.md.

Plotly is a CLI/dev dependency (requirements-dev.txt), never in the Lambda layer,
and is imported only when an HTML report is rendered.
"""

from __future__ import annotations

import html
import itertools
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

FONT_STACK = '"Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", sans-serif'
CHART_IDS: tuple[str, ...] = (
    "chart-checkins",
    "chart-active",
    "chart-streaks",
    "chart-points",
    "chart-lottery",
    "chart-posts",
)
STREAK_BUCKETS: tuple[str, ...] = ("1-2", "3-6", "7-29", "30-99", "100+")
_DAY_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
# Plotly's own colour sequence: a channel's published bars (its failures are hatched red).
CHANNEL_COLOURS: tuple[str, ...] = (
    "#636efa",
    "#00cc96",
    "#ab63fa",
    "#ffa15a",
    "#19d3f3",
    "#ff6692",
    "#b6e880",
    "#ff97ff",
    "#fecb52",
)


class SnapshotError(ValueError):
    """A snapshot that does not have the shape of docs/metrics.md (says which and where)."""


# Column keys of the table, in order; the labels are per language below.
COLUMNS: tuple[str, ...] = (
    "day",
    "members",
    "joined_left",
    "dau",
    "wau",
    "mau",
    "checkins",
    "rate",
    "new_streaks",
    "awarded",
    "redeemed",
    "outstanding",
    "lottery",
    "posts",
    "reminders",
)

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "day": "Day",
        "members": "Members",
        "joined_left": "Joined/left",
        "dau": "DAU",
        "wau": "WAU",
        "mau": "MAU",
        "checkins": "Check-ins",
        "rate": "Rate",
        "new_streaks": "New streaks",
        "awarded": "Awarded",
        "redeemed": "Redeemed",
        "outstanding": "Outstanding",
        "lottery": "Lottery",
        "posts": "Posts ok/fail",
        "reminders": "Reminders sent/conv",
        "totals": "Total/avg",
        "totals_note": (
            "Total/avg: flows summed; DAU, WAU, MAU, rates averaged; "
            "members and outstanding points at the end of the period. Points as in the ledger: "
            "redeemed is negative."
        ),
        "report": "Community report",
        "empty": "No daily metric snapshots for {name}: nothing to report.",
        "period": "Period",
        "days": "{count} daily snapshots",
        "days_missing": "{count} daily snapshots of {span} days (missing: {missing})",
        "members_end": "Members at the end",
        "joined_total": "joined",
        "left_total": "left",
        "checkins_total": "Check-ins",
        "rate_avg": "average rate",
        "points_total": "Points awarded / redeemed",
        "outstanding_end": "Points outstanding at the end",
        "lottery_total": "Lottery entries",
        "participation_avg": "average participation",
        "posts_total": "Posts published / failed",
        "reminders_total": "Reminders sent / converted",
        "summary": "Summary",
        "charts": "Charts",
        "data": "Daily figures",
        "chart-checkins": "Daily check-ins and check-in rate",
        "chart-active": "Active members (DAU / WAU / MAU)",
        "chart-streaks": "Streak lengths of the day's check-ins",
        "chart-points": "Points awarded vs redeemed, and the outstanding liability",
        "chart-lottery": "Lottery participation",
        "chart-posts": "Post delivery by channel (published vs failed)",
        "note-checkins": "Bars: check-ins counted on the day (make-ups included). "
        "Line: check-ins / WAU.",
        "note-active": "Distinct members who checked in on the day, the last 7 days, "
        "the last 30 days.",
        "note-streaks": "Members who checked in on the day, by the length of their streak "
        "after it.",
        "note-points": "Bars: points moved on the day (redeemed is negative, as in the "
        "ledger). Line: the sum of every balance at the end of the day.",
        "note-lottery": "Bars: distinct entrants of the draws that closed on the day. "
        "Line: entrants / WAU.",
        "note-posts": "Deliveries on the day, per channel.",
        "axis-day": "Day",
        "axis-count": "Check-ins",
        "axis-rate": "Rate (%)",
        "axis-members": "Members",
        "axis-points": "Points",
        "axis-outstanding": "Outstanding",
        "axis-entrants": "Entrants",
        "axis-participation": "Participation (%)",
        "axis-posts": "Posts",
        "trace-checkins": "Check-ins",
        "trace-rate": "Check-in rate",
        "trace-awarded": "Awarded",
        "trace-redeemed": "Redeemed",
        "trace-outstanding": "Outstanding",
        "trace-entrants": "Entrants",
        "trace-participation": "Participation",
        "trace-streak": "streak {bucket}",
        "trace-published": "{channel} published",
        "trace-failed": "{channel} failed",
        "no-posts": "no posts",
        "footer": "Generated by autopilot report from {count} daily snapshots "
        "(docs/metrics.md). Days are the community's check-in days.",
    },
    "zh": {
        "day": "日期",
        "members": "成员",
        "joined_left": "加入/退出",
        "dau": "日活",
        "wau": "周活",
        "mau": "月活",
        "checkins": "打卡",
        "rate": "打卡率",
        "new_streaks": "新连续",
        "awarded": "发放积分",
        "redeemed": "兑换积分",
        "outstanding": "积分余额",
        "lottery": "抽奖参与",
        "posts": "推送成功/失败",
        "reminders": "提醒发送/转化",
        "totals": "合计/平均",
        "totals_note": (
            "合计/平均：流量按天求和；日活、周活、月活和比率取平均；"
            "成员数和积分余额取期末值。积分与账本一致：兑换为负数。"
        ),
        "report": "社群数据报告",
        "empty": "{name} 没有每日数据快照：无可报告内容。",
        "period": "统计期间",
        "days": "共 {count} 天数据",
        "days_missing": "{span} 天中有 {count} 天数据（缺少：{missing}）",
        "members_end": "期末成员",
        "joined_total": "加入",
        "left_total": "退出",
        "checkins_total": "打卡次数",
        "rate_avg": "平均打卡率",
        "points_total": "积分发放 / 兑换",
        "outstanding_end": "期末积分余额",
        "lottery_total": "抽奖报名",
        "participation_avg": "平均参与率",
        "posts_total": "推送成功 / 失败",
        "reminders_total": "提醒发送 / 转化",
        "summary": "概览",
        "charts": "图表",
        "data": "每日数据",
        "chart-checkins": "每日打卡与打卡率",
        "chart-active": "活跃成员（日活 / 周活 / 月活）",
        "chart-streaks": "当日打卡成员的连续天数分布",
        "chart-points": "积分发放与兑换，以及积分余额",
        "chart-lottery": "抽奖参与",
        "chart-posts": "各渠道推送情况（成功 / 失败）",
        "note-checkins": "柱：当天计入的打卡（含补签）。线：打卡次数 / 周活。",
        "note-active": "当天、最近 7 天、最近 30 天内打过卡的不同成员数。",
        "note-streaks": "当天打卡的成员，按打卡后的连续天数分组。",
        "note-points": "柱：当天变动的积分（兑换为负数，与账本一致）。线：当天结束时所有余额之和。",
        "note-lottery": "柱：当天开奖的抽奖的不同参与者。线：参与者 / 周活。",
        "note-posts": "当天各渠道的推送结果。",
        "axis-day": "日期",
        "axis-count": "打卡次数",
        "axis-rate": "打卡率（%）",
        "axis-members": "成员",
        "axis-points": "积分",
        "axis-outstanding": "积分余额",
        "axis-entrants": "参与人数",
        "axis-participation": "参与率（%）",
        "axis-posts": "推送",
        "trace-checkins": "打卡次数",
        "trace-rate": "打卡率",
        "trace-awarded": "发放",
        "trace-redeemed": "兑换",
        "trace-outstanding": "积分余额",
        "trace-entrants": "参与人数",
        "trace-participation": "参与率",
        "trace-streak": "连续 {bucket} 天",
        "trace-published": "{channel} 成功",
        "trace-failed": "{channel} 失败",
        "no-posts": "无推送",
        "footer": "由 autopilot report 根据 {count} 个每日数据快照生成（docs/metrics.md）。"
        "日期为社群的打卡日。",
    },
}


def language(locale: str) -> str:
    """``"zh"`` for Chinese locales (``zh``, ``zh-CN``, ``zh_TW``…), else ``"en"``."""
    return "zh" if locale.strip().lower().startswith("zh") else "en"


@dataclass(frozen=True)
class DayFigures:
    """The figures of one snapshot that the report shows (missing figures are 0)."""

    day: str
    members: int
    joined: int
    left: int
    dau: int
    wau: int
    mau: int
    checkins: int
    rate: float
    new_streaks: int
    makeups: int
    streaks: dict[str, int]
    awarded: int
    redeemed: int
    adjusted: int
    outstanding: int
    lottery_entries: int
    lottery_entrants: int
    participation: float
    published: dict[str, int]
    failed: dict[str, int]
    reminders_sent: int
    reminders_converted: int

    @property
    def posts_ok(self) -> int:
        return sum(self.published.values())

    @property
    def posts_failed(self) -> int:
        return sum(self.failed.values())


def _section(snapshot: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = snapshot.get(key, {})
    if not isinstance(value, Mapping):
        raise SnapshotError(f"{where}: {key} is {type(value).__name__}, not an object")
    return value


def _number(section: Mapping[str, Any], key: str, where: str, path: str) -> float:
    value = section.get(key, 0)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SnapshotError(f"{where}: {path}.{key} is {value!r:.40}, not a number")
    if value != value or value in (float("inf"), float("-inf")):
        raise SnapshotError(f"{where}: {path}.{key} is {value}, not a finite number")
    return value


def _int(section: Mapping[str, Any], key: str, where: str, path: str) -> int:
    return int(_number(section, key, where, path))


def _counts(section: Mapping[str, Any], key: str, where: str, path: str) -> dict[str, int]:
    """A ``{name: count}`` object (posts by channel), names as strings."""
    value = section.get(key, {})
    if not isinstance(value, Mapping):
        raise SnapshotError(f"{where}: {path}.{key} is {type(value).__name__}, not an object")
    return {str(name): _int(value, name, where, f"{path}.{key}") for name in value}


def day_figures(snapshot: Any, index: int = 0) -> DayFigures:
    """Read one snapshot (docs/metrics.md); :class:`SnapshotError` names what is wrong.

    A figure that is missing counts as 0 (a capability a community does not use);
    a figure that is there but not a number, or a day that is not ``YYYY-MM-DD``,
    is refused rather than drawn wrong.
    """
    where = f"snapshot {index}"
    if not isinstance(snapshot, Mapping):
        raise SnapshotError(f"{where} is {type(snapshot).__name__}, not an object")
    day = snapshot.get("day")
    if not isinstance(day, str) or not _DAY_RE.fullmatch(day):
        raise SnapshotError(f"{where}: day is {day!r:.40}, not YYYY-MM-DD")
    try:
        date.fromisoformat(day)
    except ValueError:
        raise SnapshotError(f"{where}: day {day!r} is not a calendar day") from None
    where = f"snapshot {index} ({day})"
    members = _section(snapshot, "members", where)
    active = _section(snapshot, "active", where)
    checkins = _section(snapshot, "checkins", where)
    streaks = _section(snapshot, "streaks", where)
    points = _section(snapshot, "points", where)
    lottery = _section(snapshot, "lottery", where)
    posts = _section(snapshot, "posts", where)
    reminders = _section(snapshot, "reminders", where)
    return DayFigures(
        day=day,
        members=_int(members, "total", where, "members"),
        joined=_int(members, "joined", where, "members"),
        left=_int(members, "left", where, "members"),
        dau=_int(active, "dau", where, "active"),
        wau=_int(active, "wau", where, "active"),
        mau=_int(active, "mau", where, "active"),
        checkins=_int(checkins, "count", where, "checkins"),
        rate=float(_number(checkins, "rate", where, "checkins")),
        new_streaks=_int(checkins, "new_streaks", where, "checkins"),
        makeups=_int(checkins, "makeups", where, "checkins"),
        streaks={b: _int(streaks, b, where, "streaks") for b in STREAK_BUCKETS},
        awarded=_int(points, "awarded_total", where, "points"),
        redeemed=_int(points, "redeemed_total", where, "points"),
        adjusted=_int(points, "adjusted_total", where, "points"),
        outstanding=_int(points, "outstanding", where, "points"),
        lottery_entries=_int(lottery, "entries", where, "lottery"),
        lottery_entrants=_int(lottery, "entrants", where, "lottery"),
        participation=float(_number(lottery, "participation", where, "lottery")),
        published=_counts(posts, "published", where, "posts"),
        failed=_counts(posts, "failed", where, "posts"),
        reminders_sent=_int(reminders, "sent", where, "reminders"),
        reminders_converted=_int(reminders, "converted", where, "reminders"),
    )


def figures(snapshots: Iterable[Any]) -> list[DayFigures]:
    """Every snapshot read and sorted by day; two snapshots of one day are refused."""
    days = sorted(
        (day_figures(s, i) for i, s in enumerate(snapshots)), key=lambda figure: figure.day
    )
    for before, after in itertools.pairwise(days):
        if before.day == after.day:
            raise SnapshotError(f"two snapshots for {after.day}: one per day is expected")
    return days


# --- the table (terminal and HTML) -------------------------------------------------


def _percent(value: float) -> str:
    return f"{value * 100:.1f}%"


def _cells(f: DayFigures) -> dict[str, str]:
    return {
        "day": f.day,
        "members": str(f.members),
        "joined_left": f"+{f.joined}/-{f.left}",
        "dau": str(f.dau),
        "wau": str(f.wau),
        "mau": str(f.mau),
        "checkins": str(f.checkins),
        "rate": _percent(f.rate),
        "new_streaks": str(f.new_streaks),
        "awarded": str(f.awarded),
        "redeemed": str(f.redeemed),
        "outstanding": str(f.outstanding),
        "lottery": f"{f.lottery_entrants} ({_percent(f.participation)})",
        "posts": f"{f.posts_ok}/{f.posts_failed}",
        "reminders": f"{f.reminders_sent}/{f.reminders_converted}",
    }


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _totals(days: Sequence[DayFigures], label: str) -> dict[str, str]:
    """Flows summed, levels (DAU…, rates) averaged, stocks at the end of the period."""
    last = days[-1]

    def avg(values: Iterable[float]) -> str:
        return f"{_mean(list(values)):.1f}"

    return {
        "day": label,
        "members": str(last.members),
        "joined_left": f"+{sum(f.joined for f in days)}/-{sum(f.left for f in days)}",
        "dau": avg(f.dau for f in days),
        "wau": avg(f.wau for f in days),
        "mau": avg(f.mau for f in days),
        "checkins": str(sum(f.checkins for f in days)),
        "rate": _percent(_mean([f.rate for f in days])),
        "new_streaks": str(sum(f.new_streaks for f in days)),
        "awarded": str(sum(f.awarded for f in days)),
        "redeemed": str(sum(f.redeemed for f in days)),
        "outstanding": str(last.outstanding),
        "lottery": (
            f"{sum(f.lottery_entrants for f in days)} "
            f"({_percent(_mean([f.participation for f in days]))})"
        ),
        "posts": f"{sum(f.posts_ok for f in days)}/{sum(f.posts_failed for f in days)}",
        "reminders": (
            f"{sum(f.reminders_sent for f in days)}/{sum(f.reminders_converted for f in days)}"
        ),
    }


def display_width(text: str) -> int:
    """Columns ``text`` takes on a terminal: CJK wide/fullwidth 2, combining marks 0."""
    width = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def _pad(text: str, width: int, *, right: bool) -> str:
    gap = " " * max(0, width - display_width(text))
    return gap + text if right else text + gap


def terminal_safe(text: str) -> str:
    """``text`` with control and format characters shown escaped (``\\x1b``), never sent
    to the terminal: a community name cannot move the cursor or recolour the screen."""
    return "".join(
        char.encode("unicode_escape").decode("ascii")
        if unicodedata.category(char).startswith("C")
        else char
        for char in text
    )


def _period(days: Sequence[DayFigures]) -> str:
    first, last = days[0].day, days[-1].day
    return first if first == last else f"{first} – {last}"


def _missing_days(days: Sequence[DayFigures]) -> tuple[int, list[str]]:
    """The span of the period in days and the days in it without a snapshot."""
    first, last = date.fromisoformat(days[0].day), date.fromisoformat(days[-1].day)
    span = (last - first).days + 1
    present = {f.day for f in days}
    missing = [
        day
        for day in (date.fromordinal(first.toordinal() + n).isoformat() for n in range(span))
        if day not in present
    ]
    return span, missing


def _days_text(days: Sequence[DayFigures], labels: Mapping[str, str]) -> str:
    span, missing = _missing_days(days)
    if not missing:
        return labels["days"].format(count=len(days))
    shown = ", ".join(missing[:10]) + (", …" if len(missing) > 10 else "")
    return labels["days_missing"].format(count=len(days), span=span, missing=shown)


def render_table(snapshots: list[dict[str, Any]], *, community_name: str, locale: str) -> str:
    """A terminal table, one row per day, plus a totals/averages line.

    Headers are Chinese for ``zh*`` locales, English otherwise; columns are aligned
    by display width, so CJK names and headers line up. No snapshots: one line
    saying so.
    """
    labels = LABELS[language(locale)]
    name = terminal_safe(community_name)
    days = figures(snapshots)
    if not days:
        return labels["empty"].format(name=name) + "\n"
    header = {key: labels[key] for key in COLUMNS}
    rows = [_cells(f) for f in days]
    totals = _totals(days, labels["totals"])
    widths = {key: max(display_width(r[key]) for r in [header, *rows, totals]) for key in COLUMNS}

    def line(row: Mapping[str, str]) -> str:
        cells = [_pad(row[key], widths[key], right=key != "day") for key in COLUMNS]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * widths[key] for key in COLUMNS)
    title = f"{name} — {labels['report']} {_period(days)} ({_days_text(days, labels)})"
    out = [title, "", line(header), rule, *(line(r) for r in rows), rule, line(totals)]
    out.append(labels["totals_note"])
    return "\n".join(out) + "\n"


# --- the HTML report ------------------------------------------------------------------

_CSS = """
body { font-family: FONTS; margin: 24px auto; max-width: 1300px; color: #1f2933;
       background: #ffffff; padding: 0 16px; }
h1 { font-size: 26px; margin-bottom: 4px; }
h2 { font-size: 20px; margin-top: 32px; border-bottom: 1px solid #d9e2ec; padding-bottom: 4px; }
.period { color: #52606d; margin-top: 0; }
#summary dl { display: grid; grid-template-columns: repeat(auto-fill, minmax(240px, 1fr));
              gap: 12px; margin: 0; }
#summary dl div { background: #f5f7fa; border-radius: 6px; padding: 10px 14px; }
#summary dt { color: #52606d; font-size: 13px; }
#summary dd { margin: 4px 0 0; font-size: 20px; font-weight: 600; }
.chart { margin: 24px 0 8px; }
.chart .note { color: #52606d; font-size: 13px; margin: 0 0 4px; }
table { border-collapse: collapse; font-size: 13px; width: 100%; }
th, td { border-bottom: 1px solid #e4e7eb; padding: 4px 8px; white-space: nowrap; }
th { background: #f5f7fa; text-align: right; }
td { text-align: right; font-variant-numeric: tabular-nums; }
th:first-child, td:first-child { text-align: left; }
tr.totals td { font-weight: 600; border-top: 2px solid #9aa5b1; }
.table-note, footer { color: #52606d; font-size: 12px; margin-top: 8px; }
.empty { font-size: 18px; padding: 24px; background: #f5f7fa; border-radius: 6px; }
""".replace("FONTS", FONT_STACK)


def _plot_text(text: str) -> str:
    """Text from data for plotly, which reads trace names as pseudo-HTML: escaped, so a
    channel called ``<b>x</b>`` shows as written and can never become a link."""
    return html.escape(text, quote=True)


def _layout(title: str, labels: Mapping[str, str], days: Sequence[DayFigures]) -> dict[str, Any]:
    span = (date.fromisoformat(days[-1].day) - date.fromisoformat(days[0].day)).days + 1
    xaxis: dict[str, Any] = {
        "type": "date",
        "title": {"text": labels["axis-day"]},
        "tickformat": "%m-%d" if span <= 62 else "%Y-%m-%d",
        "hoverformat": "%Y-%m-%d",
    }
    if span <= 31:
        xaxis["dtick"] = 86_400_000  # one tick a day
    return {
        "title": {"text": title, "x": 0.0, "xanchor": "left"},
        "font": {"family": FONT_STACK, "size": 13},
        "template": "plotly_white",
        "xaxis": xaxis,
        "legend": {"orientation": "h", "y": -0.2},
        "margin": {"l": 60, "r": 60, "t": 50, "b": 40},
        "hovermode": "x unified",
    }


def _percent_axis(title: str, values: Iterable[float]) -> dict[str, Any]:
    """A right-hand axis of percentages from 0 to 100 (further if a value is above)."""
    top = max([100.0, *(v * 105 for v in values)])
    return {
        "title": {"text": title},
        "overlaying": "y",
        "side": "right",
        "range": [0, top],
        "showgrid": False,
        "tickmode": "auto",
    }


def _figures_by_chart(
    days: Sequence[DayFigures], labels: Mapping[str, str]
) -> dict[str, Any]:  # chart id -> plotly Figure
    import plotly.graph_objects as go

    x = [f.day for f in days]
    charts: dict[str, Any] = {}

    fig = go.Figure(layout=_layout(labels["chart-checkins"], labels, days))
    fig.add_bar(x=x, y=[f.checkins for f in days], name=labels["trace-checkins"])
    fig.add_scatter(
        x=x,
        y=[round(f.rate * 100, 1) for f in days],
        name=labels["trace-rate"],
        mode="lines+markers",
        yaxis="y2",
    )
    fig.update_layout(
        yaxis={"title": {"text": labels["axis-count"]}, "rangemode": "tozero"},
        yaxis2=_percent_axis(labels["axis-rate"], (f.rate for f in days)),
    )
    charts["chart-checkins"] = fig

    fig = go.Figure(layout=_layout(labels["chart-active"], labels, days))
    for key in ("dau", "wau", "mau"):
        fig.add_scatter(
            x=x, y=[getattr(f, key) for f in days], name=labels[key], mode="lines+markers"
        )
    fig.update_layout(yaxis={"title": {"text": labels["axis-members"]}, "rangemode": "tozero"})
    charts["chart-active"] = fig

    fig = go.Figure(layout=_layout(labels["chart-streaks"], labels, days))
    for bucket in STREAK_BUCKETS:
        fig.add_bar(
            x=x,
            y=[f.streaks[bucket] for f in days],
            name=labels["trace-streak"].format(bucket=bucket),
        )
    fig.update_layout(barmode="stack", yaxis={"title": {"text": labels["axis-members"]}})
    charts["chart-streaks"] = fig

    fig = go.Figure(layout=_layout(labels["chart-points"], labels, days))
    fig.add_bar(x=x, y=[f.awarded for f in days], name=labels["trace-awarded"])
    fig.add_bar(x=x, y=[f.redeemed for f in days], name=labels["trace-redeemed"])
    fig.add_scatter(
        x=x,
        y=[f.outstanding for f in days],
        name=labels["trace-outstanding"],
        mode="lines+markers",
        yaxis="y2",
    )
    fig.update_layout(
        barmode="relative",
        yaxis={"title": {"text": labels["axis-points"]}},
        yaxis2={
            "title": {"text": labels["axis-outstanding"]},
            "overlaying": "y",
            "side": "right",
            # explicit, with headroom: the line's last point is not drawn on the frame
            "range": [
                min(0, *(f.outstanding for f in days)) * 1.1,
                max(1, *(f.outstanding for f in days)) * 1.1,
            ],
            "showgrid": False,
            "tickmode": "auto",
        },
    )
    charts["chart-points"] = fig

    fig = go.Figure(layout=_layout(labels["chart-lottery"], labels, days))
    fig.add_bar(x=x, y=[f.lottery_entrants for f in days], name=labels["trace-entrants"])
    fig.add_scatter(
        x=x,
        y=[round(f.participation * 100, 1) for f in days],
        name=labels["trace-participation"],
        mode="lines+markers",
        yaxis="y2",
    )
    fig.update_layout(
        yaxis={"title": {"text": labels["axis-entrants"]}, "rangemode": "tozero"},
        yaxis2=_percent_axis(labels["axis-participation"], (f.participation for f in days)),
    )
    charts["chart-lottery"] = fig

    fig = go.Figure(layout=_layout(labels["chart-posts"], labels, days))
    channels = sorted({name for f in days for name in (*f.published, *f.failed)})
    for position, channel in enumerate(channels):
        shown = _plot_text(channel)
        colour = CHANNEL_COLOURS[position % len(CHANNEL_COLOURS)]
        fig.add_bar(
            x=x,
            y=[f.published.get(channel, 0) for f in days],
            name=labels["trace-published"].format(channel=shown),
            offsetgroup=channel,
            marker={"color": colour},
        )
        # The channel's failures on top of its deliveries, same colour, hatched.
        fig.add_bar(
            x=x,
            y=[f.failed.get(channel, 0) for f in days],
            name=labels["trace-failed"].format(channel=shown),
            offsetgroup=channel,
            base=[f.published.get(channel, 0) for f in days],
            marker={
                "color": "#ffffff",
                # no outline on a day without failures (a bar of height 0)
                "line": {
                    "color": "#d64545",
                    "width": [1.5 if f.failed.get(channel, 0) else 0 for f in days],
                },
                "pattern": {"shape": "x", "fgcolor": "#d64545"},
            },
        )
    if not channels:
        fig.add_annotation(
            text=labels["no-posts"], showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5
        )
    fig.update_layout(
        barmode="group", yaxis={"title": {"text": labels["axis-posts"]}, "rangemode": "tozero"}
    )
    charts["chart-posts"] = fig
    return charts


def _summary(days: Sequence[DayFigures], labels: Mapping[str, str]) -> list[tuple[str, str]]:
    """``(label, value)`` pairs of the summary block."""
    last = days[-1]
    sent = sum(f.reminders_sent for f in days)
    converted = sum(f.reminders_converted for f in days)
    return [
        (labels["period"], f"{_period(days)} · {_days_text(days, labels)}"),
        (
            labels["members_end"],
            f"{last.members} (+{sum(f.joined for f in days)} {labels['joined_total']}, "
            f"-{sum(f.left for f in days)} {labels['left_total']})",
        ),
        (
            labels["checkins_total"],
            f"{sum(f.checkins for f in days)} ({labels['rate_avg']} "
            f"{_percent(_mean([f.rate for f in days]))})",
        ),
        (
            labels["points_total"],
            f"{sum(f.awarded for f in days)} / {sum(f.redeemed for f in days)}",
        ),
        (labels["outstanding_end"], str(last.outstanding)),
        (
            labels["lottery_total"],
            f"{sum(f.lottery_entries for f in days)} ({labels['participation_avg']} "
            f"{_percent(_mean([f.participation for f in days]))})",
        ),
        (
            labels["posts_total"],
            f"{sum(f.posts_ok for f in days)} / {sum(f.posts_failed for f in days)}",
        ),
        (
            labels["reminders_total"],
            f"{sent} / {converted}" + (f" ({_percent(converted / sent)})" if sent else ""),
        ),
    ]


def _html_table(days: Sequence[DayFigures], labels: Mapping[str, str]) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(labels[key])}</th>" for key in COLUMNS)
    body = [
        "<tr>" + "".join(f"<td>{esc(row[key])}</td>" for key in COLUMNS) + "</tr>"
        for row in (_cells(f) for f in days)
    ]
    totals = _totals(days, labels["totals"])
    body.append(
        '<tr class="totals">' + "".join(f"<td>{esc(totals[key])}</td>" for key in COLUMNS) + "</tr>"
    )
    return (
        f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n"
        + "\n".join(body)
        + f'\n</tbody>\n</table>\n<p class="table-note">{esc(labels["totals_note"])}</p>'
    )


def _page(lang: str, title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{"zh-CN" if lang == "zh" else "en"}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )


def render_html(
    snapshots: list[dict[str, Any]],
    *,
    community_name: str,
    locale: str,
    title: str | None = None,
) -> str:
    """One self-contained HTML page: summary, six charts, the daily table.

    plotly.js is inlined once (``include_plotlyjs=True`` on the first chart), so
    the file opens without a network. No snapshots: a page saying so, no charts.
    """
    from plotly.io import to_html

    lang = language(locale)
    labels = LABELS[lang]
    days = figures(snapshots)
    esc = html.escape
    if not days:
        message = labels["empty"].format(name=community_name)
        page_title = title or f"{community_name} — {labels['report']}"
        return _page(
            lang,
            page_title,
            f'<h1>{esc(page_title)}</h1>\n<p class="empty" id="empty">{esc(message)}</p>',
        )
    page_title = title or f"{community_name} — {labels['report']} {_period(days)}"
    summary = "\n".join(
        f"<div><dt>{esc(label)}</dt><dd>{esc(value)}</dd></div>"
        for label, value in _summary(days, labels)
    )
    parts = [
        f"<h1>{esc(page_title)}</h1>",
        f'<p class="period">{esc(_period(days))}</p>',
        f'<section id="summary">\n<h2>{esc(labels["summary"])}</h2>\n<dl>\n{summary}\n</dl>\n'
        "</section>",
        f'<section id="charts">\n<h2>{esc(labels["charts"])}</h2>',
    ]
    charts = _figures_by_chart(days, labels)
    for position, chart_id in enumerate(CHART_IDS):
        plot = to_html(
            charts[chart_id],
            include_plotlyjs=position == 0,  # inline, once: the file needs no network
            full_html=False,
            div_id=chart_id,
            default_height="420px",
            default_width="100%",
            config={"displaylogo": False, "responsive": True},
        )
        note = esc(labels[f"note-{chart_id.removeprefix('chart-')}"])
        parts.append(f'<div class="chart">\n{plot}\n<p class="note">{note}</p>\n</div>')
    parts.append("</section>")
    parts.append(
        f'<section id="data">\n<h2>{esc(labels["data"])}</h2>\n{_html_table(days, labels)}\n'
        "</section>"
    )
    parts.append(f"<footer>{esc(labels['footer'].format(count=len(days)))}</footer>")
    return _page(lang, page_title, "\n".join(parts))


_FILE_PART_RE = re.compile(r"[^A-Za-z0-9_.-]+")


def report_filename(community: str, first: str, last: str) -> str:
    """``report-<community>-<from>-<to>.html``; anything but ``[A-Za-z0-9_.-]`` in a part
    becomes ``_``, so a name can never leave the output directory."""
    safe = [_FILE_PART_RE.sub("_", part).strip(".") or "_" for part in (community, first, last)]
    return "report-{}-{}-{}.html".format(*safe)


def write_report(
    snapshots: list[dict[str, Any]],
    out_dir: str | Path,
    *,
    community_name: str,
    locale: str,
    community_id: str | None = None,
    period: tuple[str, str] | None = None,
) -> Path:
    """Write :func:`render_html` to ``out_dir/report-<community>-<from>-<to>.html``.

    ``<community>`` is ``community_id`` when given (the CLI's ``--community``),
    else the snapshots' ``community`` field, else the name; ``<from>``/``<to>``
    are ``period`` when given (the days asked for), else the first and last days
    with a snapshot. No snapshots: ``ValueError``, nothing written.
    """
    days = figures(snapshots)
    if not days:
        raise ValueError(LABELS["en"]["empty"].format(name=community_name))
    community = community_id or str(snapshots[0].get("community") or community_name)
    text = render_html(snapshots, community_name=community_name, locale=locale)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    first, last = period or (days[0].day, days[-1].day)
    path = out / report_filename(community, first, last)
    path.write_text(text, encoding="utf-8")
    return path
