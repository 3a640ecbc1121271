"""A simulated week of the example config: exactly the posts the schedule says."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from autopilot_cli.configfile import validate_file
from autopilot_cli.preview import preview_rows
from autopilot_cli.simulate import Outage, run_simulation

START = datetime(2027, 3, 8, tzinfo=UTC)  # a week with New York's spring-forward (03-14)
CONFIG = "config/communities.yaml"


@pytest.fixture
def week(aws_env, repo_root, tmp_path, monkeypatch):
    monkeypatch.chdir(repo_root)
    return run_simulation(
        CONFIG,
        start=START,
        days=7,
        members=50,
        seed=3,
        out_dir=str(tmp_path / "sim"),
        template_path=str(repo_root / "template.yaml"),
    )


def test_every_scheduled_occurrence_runs_exactly_once(week, repo_root):
    config = validate_file(str(repo_root / CONFIG)).config
    expected = {
        (r.community.id, r.job.id, r.occurrence.key)
        for r in preview_rows(config, START, 7)
        if r.occurrence.due_utc <= START + timedelta(days=7)
    }
    ran = [(o["community"], o["job"], o["key"]) for o in week.summary["occurrences"]]
    assert sorted(ran) == sorted(expected)
    assert {o["status"] for o in week.summary["occurrences"]} <= {"fired", "deferred"}


def test_posts_match_the_schedule_channel_by_channel(week, repo_root):
    config = validate_file(str(repo_root / CONFIG)).config
    expected = []
    for occ in week.summary["occurrences"]:
        job = config.community(occ["community"]).job(occ["job"])
        if job.action == "post":
            expected += [
                (occ["community"], occ["job"], occ["key"], c) for c in job.params["channels"]
            ]
    posted = [(p["community"], p["job"], p["key"], p["channel"]) for p in week.summary["posts"]]
    assert sorted(posted) == sorted(expected)
    assert all(p["status"] == "published" and p["message_id"] for p in week.summary["posts"])


def test_summary_json_has_the_documented_shape(week):
    summary = json.loads((week.out_dir / "summary.json").read_text(encoding="utf-8"))
    occ = summary["occurrences"][0]
    assert {"community", "job", "scheduled_utc", "scheduled_local", "status", "ran_at_utc"} <= set(
        occ
    )
    post = summary["posts"][0]
    assert {"community", "job", "channel", "at_utc", "content_id", "text"} <= set(post)
    assert summary["members"] == 50 and summary["seed"] == 3


def test_dst_gap_job_runs_once_after_quiet_hours(week):
    digest = [o for o in week.summary["occurrences"] if o["job"] == "weekly-digest"]
    assert [(o["key"], o["status"], o["dst"]) for o in digest] == [
        ("2027-03-14T02:30", "deferred", "gap")
    ]
    # 02:30 does not exist on 2027-03-14; quiet hours end at 07:00 EDT = 11:00Z.
    assert digest[0]["due_utc"] == "2027-03-14T11:00:00Z"


def test_group_log_file_holds_each_post_once(week):
    lines = []
    for path in week.out_dir.rglob("*.jsonl"):
        lines += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    keys = [line["key"] for line in lines]
    assert len(keys) == len(set(keys))
    file_posts = [p for p in week.summary["posts"] if p["channel"] == "group-log"]
    assert len(lines) == len(file_posts)


def test_same_seed_same_week(week, aws_env, repo_root, tmp_path):
    again = run_simulation(
        CONFIG,
        start=START,
        days=7,
        members=50,
        seed=3,
        out_dir=str(tmp_path / "again"),
        template_path=str(repo_root / "template.yaml"),
    )

    def stable(summary):
        posts = [{k: v for k, v in p.items() if k != "message_id"} for p in summary["posts"]]
        return summary["occurrences"], posts

    assert stable(again.summary) == stable(week.summary)


def test_outage_shows_the_misfire_policy(aws_env, repo_root, tmp_path, monkeypatch):
    monkeypatch.chdir(repo_root)
    # Down from 06:00 to 09:00 Shanghai on 03-10: the 07:30 post is missed (grace 30m),
    # never posted late as a stale "good morning".
    result = run_simulation(
        CONFIG,
        start=START,
        days=3,
        members=10,
        seed=1,
        out_dir=str(tmp_path / "outage"),
        outages=[Outage.parse("2027-03-09T22:00Z/3h")],
        template_path=str(repo_root / "template.yaml"),
    )
    morning = {
        o["key"]: o
        for o in result.summary["occurrences"]
        if o["community"] == "sunrise-readers" and o["job"] == "morning-post"
    }
    assert morning["2027-03-10T07:30"]["status"] == "missed"
    assert "grace" in morning["2027-03-10T07:30"]["reason"]
    assert not [p for p in result.summary["posts"] if p["key"] == "2027-03-10T07:30"]
    assert morning["2027-03-11T07:30"]["status"] == "fired"


def test_bad_outage_is_rejected():
    with pytest.raises(ValueError, match="START/DURATION"):
        Outage.parse("yesterday")
