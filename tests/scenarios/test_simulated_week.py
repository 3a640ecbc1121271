"""A simulated week of the example config: exactly the posts the schedule says."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from autopilot_cli.configfile import validate_file
from autopilot_cli.preview import preview_rows
from autopilot_cli.simulate import Outage, run_simulation

START = datetime(2027, 3, 8, tzinfo=UTC)  # a week with New York's spring-forward (03-14)
CONFIG = "config/communities.yaml"


@pytest.fixture(scope="module")
def week(repo_root, tmp_path_factory):
    """One simulated week shared by the tests of this module (it is deterministic)."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
        }.items():
            patch.setenv(name, value)
        patch.chdir(repo_root)
        yield run_simulation(
            CONFIG,
            start=START,
            days=7,
            members=50,
            seed=3,
            out_dir=str(tmp_path_factory.mktemp("sim")),
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


def test_members_check_in_and_the_ledger_reconciles(week):
    summary = week.summary
    activity = summary["member_activity"]
    assert activity["checkins"] > 50 and activity["refused"] == 0
    by_day = summary["checkins_by_day"]
    assert set(by_day) == {"sunrise-readers", "daybreak-writers"}
    # Counts come from the sharded counters, and agree with what members were told.
    assert sum(sum(days.values()) for days in by_day.values()) == activity["checkins"]
    ledger = summary["ledger"]
    assert ledger["reconciled"] is True
    assert ledger["outstanding"] == ledger["awarded"] - ledger["redeemed"]
    rows = (week.out_dir / "ledger.csv").read_text(encoding="utf-8").splitlines()
    assert rows[0].startswith("entry_id,at_utc,community_id,member_id,reason,amount")
    assert len(rows) - 1 == ledger["entries"]


def test_evening_post_shows_live_check_in_counts(week):
    evening = [
        p
        for p in week.summary["posts"]
        if p["community"] == "sunrise-readers" and p["job"] == "evening-post"
    ]
    import csv

    rows = list(csv.DictReader((week.out_dir / "ledger.csv").open(encoding="utf-8")))
    shanghai = timezone(timedelta(hours=8))
    assert evening
    for post in evening:
        day = post["key"][:10]
        so_far = sum(
            1
            for r in rows
            if r["community_id"] == "sunrise-readers"
            and r["reason"] == "checkin"
            and r["at_utc"] <= post["at_utc"]
            and datetime.fromisoformat(r["at_utc"].replace("Z", "+00:00"))
            .astimezone(shanghai)
            .date()
            .isoformat()
            == day
        )
        assert f"今天有 {so_far} 位伙伴打卡" in post["text"]
