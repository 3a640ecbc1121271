"""A simulated week posting to a file channel and to chat webhooks on a local server.

The webhook channels' secrets are SSM parameters in the simulation's moto account;
the fake platforms check every payload and signature. The week ends with exactly
the posts the schedule says, each once, at both the file and the platforms.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from autopilot_cli.configfile import validate_file
from autopilot_cli.preview import preview_rows
from autopilot_cli.simulate import run_simulation

from ..unit.channels.platforms import PLATFORMS, FakePlatform, texts_of

START = datetime(2027, 3, 8, tzinfo=UTC)

CONFIG = """\
version: 1
communities:
  - id: sunrise
    name: 晨读社
    timezone: Asia/Shanghai
    locale: zh-CN
    quiet_hours: {start: "00:00", end: "07:00"}
    channels:
      - {id: group-log, type: file, path: sunrise/group.jsonl}
      - {id: wecom-group, type: wecom, mention_all: true}
      - {id: dingtalk-group, type: dingtalk, msgtype: markdown}
    pools:
      - id: morning
        items:
          - {id: m1, text: 读书使人充实。}
          - {id: m2, text: 每天进步一点点。}
          - {id: m3, text: 早起的鸟儿有虫吃。}
    jobs:
      - id: morning-post
        cron: "30 7 * * *"
        action: post
        params:
          pool: morning
          channels: [group-log, wecom-group, dingtalk-group]
          template: "早安！今天是{date}，{weekday}。\\n\\n{content}"
          title: 晨读社 早安
      - id: weekly
        cron: "0 9 * * 1"
        action: post
        params:
          pool: morning
          channels: [wecom-group]
          template: "本周预告：{content}"
"""


@pytest.fixture
def fakes():
    started = {t: FakePlatform(PLATFORMS[t].check) for t in ("wecom", "dingtalk")}
    yield started
    for fake in started.values():
        fake.close()


def test_a_week_of_webhook_posts_matches_the_schedule(aws_env, repo_root, tmp_path, fakes):
    config_path = tmp_path / "communities.yaml"
    config_path.write_text(CONFIG, encoding="utf-8")
    result = run_simulation(
        str(config_path),
        start=START,
        days=7,
        members=10,
        seed=5,
        out_dir=str(tmp_path / "sim"),
        template_path=str(repo_root / "template.yaml"),
        secrets={
            "sunrise/wecom-group": PLATFORMS["wecom"].secret(fakes["wecom"].base),
            "sunrise/dingtalk-group": PLATFORMS["dingtalk"].secret(fakes["dingtalk"].base),
        },
    )
    config = validate_file(str(config_path)).config
    expected = [
        r
        for r in preview_rows(config, START, 7)
        if r.occurrence.due_utc <= START + timedelta(days=7) and r.job.action == "post"
    ]
    assert len(expected) == 7 + 1  # the posts (the daily metric snapshots post nothing)
    assert {o["status"] for o in result.summary["occurrences"]} == {"fired"}
    posts = result.summary["posts"]
    assert all(p["status"] == "published" for p in posts)

    def posted_texts(channel: str) -> list[str]:
        return [p["text"] for p in posts if p["channel"] == channel]

    # Exactly the schedule's posts, once each, in order, at every destination.
    assert len(posted_texts("wecom-group")) == 8 and len(posted_texts("dingtalk-group")) == 7
    wecom = [texts_of("wecom", r) for r in fakes["wecom"].received]
    assert wecom == [
        f"晨读社 早安\n\n{t}" if t.startswith("早安") else t for t in posted_texts("wecom-group")
    ]
    dingtalk = [texts_of("dingtalk", r) for r in fakes["dingtalk"].received]
    assert dingtalk == posted_texts("dingtalk-group")
    assert all(r.json()["text"]["mentioned_list"] == ["@all"] for r in fakes["wecom"].received)
    lines = (result.out_dir / "sunrise" / "group.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 7
