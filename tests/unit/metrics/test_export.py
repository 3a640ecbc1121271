"""Snapshots as CSV: a stable header, the channels of every row, inert text, the gaps."""

from __future__ import annotations

import copy
import csv
import io
from datetime import date
from typing import Any

import pytest
from autopilot.metrics.export import FORMULA_PREFIXES, missing_days, safe_text, snapshots_csv
from autopilot.metrics.rules import build_snapshot

FIXED_HEADER = [
    "day",
    "members_total",
    "members_joined",
    "members_left",
    "active_dau",
    "active_wau",
    "active_mau",
    "checkins_count",
    "checkins_rate",
    "checkins_new_streaks",
    "checkins_makeups",
    "streaks_1-2",
    "streaks_3-6",
    "streaks_7-29",
    "streaks_30-99",
    "streaks_100+",
    "points_awarded_checkin",
    "points_awarded_streak_bonus",
    "points_awarded_lottery_prize",
    "points_awarded_referral",
    "points_awarded_lottery_refund",
    "points_awarded_total",
    "points_redeemed_redemption",
    "points_redeemed_lottery_entry",
    "points_redeemed_total",
    "points_adjusted_adjustment",
    "points_adjusted_makeup",
    "points_adjusted_expiry",
    "points_adjusted_total",
    "points_net",
    "points_outstanding",
    "lottery_entries",
    "lottery_entrants",
    "lottery_participation",
]
TAIL = ["reminders_sent", "reminders_converted"]


def snapshot(
    day: str, *, posts: dict[str, dict[str, int]] | None = None, **counters: int
) -> dict[str, Any]:
    """A snapshot as the job builds it (docs/metrics.md), from a few counters."""
    d = date.fromisoformat(day)
    return build_snapshot(
        "sunrise",
        d,
        {"checkins": 3, "gmore": 3, "s1_2": 2, "s3_6": 1, "new_streaks": 1, **counters},
        {d: {"gmore": 3}},
        previous=None,
        members_baseline=10,
        outstanding_baseline=500,
        lottery={"entries": 4, "entrants": 3},
        posts=posts,
        reminders={"sent": 5, "converted": 2},
    )


def table(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_empty_list_is_the_header_alone():
    assert table(snapshots_csv([])) == [[*FIXED_HEADER, *TAIL]]


def test_header_order_and_one_row_per_day_with_the_figures():
    days = [
        snapshot("2027-03-08", r_checkin=30, r_redemption=-25, net=5, joined=3),
        snapshot("2027-03-09", r_checkin=20, r_makeup=-15, net=5, left=1),
    ]
    rows = table(snapshots_csv(days))
    assert rows[0] == [*FIXED_HEADER, *TAIL]
    assert [r[0] for r in rows[1:]] == ["2027-03-08", "2027-03-09"]
    first = dict(zip(rows[0], rows[1], strict=True))
    assert first["members_total"] == "13" and first["members_joined"] == "3"
    assert (first["active_dau"], first["active_wau"], first["active_mau"]) == ("3", "3", "3")
    assert first["checkins_rate"] == "1.0" and first["checkins_new_streaks"] == "1"
    assert (first["streaks_1-2"], first["streaks_3-6"], first["streaks_100+"]) == ("2", "1", "0")
    assert first["points_awarded_checkin"] == "30" and first["points_awarded_total"] == "30"
    # Negative amounts stay numbers: the formula guard is for text only.
    assert first["points_redeemed_redemption"] == "-25" and first["points_redeemed_total"] == "-25"
    assert (first["points_net"], first["points_outstanding"]) == ("5", "505")
    assert first["lottery_entries"] == "4" and first["lottery_participation"] == "1.0"
    assert (first["reminders_sent"], first["reminders_converted"]) == ("5", "2")
    second = dict(zip(rows[0], rows[2], strict=True))
    assert second["points_adjusted_makeup"] == "-15" and second["members_left"] == "1"


def test_channels_are_the_union_of_every_row_sorted_absent_ones_zero():
    days = [
        snapshot("2027-03-08", posts={"published": {"wecom": 2}, "failed": {"wecom": 1}}),
        snapshot("2027-03-09"),
        snapshot("2027-03-10", posts={"published": {"console": 1, "group-log": 3}, "failed": {}}),
        snapshot("2027-03-11", posts={"published": {}, "failed": {"slack": 2}}),
    ]
    rows = table(snapshots_csv(days))
    assert rows[0] == [
        *FIXED_HEADER,
        "posts_published_console",
        "posts_failed_console",
        "posts_published_group-log",
        "posts_failed_group-log",
        "posts_published_slack",
        "posts_failed_slack",
        "posts_published_wecom",
        "posts_failed_wecom",
        *TAIL,
    ]
    posts = [r[len(FIXED_HEADER) : -len(TAIL)] for r in rows[1:]]
    assert posts == [
        ["0", "0", "0", "0", "0", "0", "2", "1"],
        ["0"] * 8,
        ["1", "0", "3", "0", "0", "0", "0", "0"],
        ["0", "0", "0", "0", "0", "2", "0", "0"],
    ]
    assert all(len(r) == len(rows[0]) for r in rows)


def test_the_header_does_not_depend_on_the_order_of_the_channels_in_a_row():
    a = snapshot("2027-03-08", posts={"published": {"b": 1, "a": 2}})
    b = copy.deepcopy(a)
    b["posts"]["published"] = {"a": 2, "b": 1}
    assert snapshots_csv([a]) == snapshots_csv([b])


@pytest.mark.parametrize("prefix", ["=", "+", "-", "@", "\t", "\r"])
def test_formula_prefixes_are_made_inert(prefix):
    assert safe_text(prefix + "HYPERLINK(1)") == "'" + prefix + "HYPERLINK(1)"
    assert safe_text("wecom") == "wecom"


def test_hostile_channel_names_leave_no_formula_cell_and_no_broken_row():
    hostile = ["=cmd|' /C calc'!A0", "+1", "-2", "@SUM(1)", 'a,"b"\nc']
    day = snapshot("2027-03-08", posts={"published": dict.fromkeys(hostile, 1), "failed": {}})
    day["day"] = "=1+1"  # a stored text cell, however it got there
    rows = table(snapshots_csv([day]))
    assert len(rows) == 2 and len(rows[0]) == len(rows[1])
    for row in rows:
        for cell in row:
            if cell.startswith(FORMULA_PREFIXES):
                float(cell)  # only numbers may start with '-' (ValueError otherwise)
    assert rows[1][0] == "'=1+1"
    assert 'posts_published_a,"b"\nc' in rows[0]  # quoted by the CSV writer, one cell


def test_a_reason_of_a_later_version_gets_its_column_after_the_known_ones():
    day = snapshot("2027-03-08")
    day["points"]["awarded"]["birthday"] = 7
    header = table(snapshots_csv([day]))[0]
    at = header.index("points_awarded_birthday")
    assert header[at - 1] == "points_awarded_lottery_refund"
    assert header[at + 1] == "points_awarded_total"


def test_a_figure_a_snapshot_lacks_is_an_empty_cell():
    day = snapshot("2027-03-08")
    del day["reminders"]
    row = table(snapshots_csv([day]))[1]
    assert row[-2:] == ["", ""]


def test_missing_days_are_the_days_of_the_period_without_a_snapshot():
    days = [snapshot("2027-03-08"), snapshot("2027-03-10")]
    assert missing_days(days, date(2027, 3, 7), date(2027, 3, 11)) == [
        "2027-03-07",
        "2027-03-09",
        "2027-03-11",
    ]
    assert missing_days([], date(2027, 3, 8), date(2027, 3, 8)) == ["2027-03-08"]
    assert missing_days(days, date(2027, 3, 8), date(2027, 3, 8)) == []
