"""A noon burst to one WeCom robot in `autopilot simulate` waits on the simulated clock.

Eight post jobs are due at 12:00 local to one ``type: wecom`` channel. The rate
limiter lets the robot's burst through at once and then one post per interval;
its waits move the simulated clock, so each is counted from the moved clock and
every post is delivered — none is refused as "next slot … after the deadline",
as it was while the limiter slept in real time on a clock that stood still.

The robot is a real HTTP server on 127.0.0.1 (the test's own), reached through
``autopilot simulate --secrets FILE`` from the CLI entry point.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from autopilot.channels.webhooks import WeComChannel
from autopilot.timeutil import parse_iso

from autopilot_cli.main import main

POSTS = 8
ROBOT_KEY = "burst-test-key"


def burst_config() -> str:
    jobs = "".join(
        f"""      - id: noon-{n}
        cron: "0 12 * * *"
        action: post
        params: {{pool: noon, channels: [wecom-group], template: "午间第{n}条：{{content}}"}}
"""
        for n in range(1, POSTS + 1)
    )
    return f"""\
version: 1
communities:
  - id: sunrise
    name: 晨读社
    timezone: Asia/Shanghai
    locale: zh-CN
    channels:
      - {{id: wecom-group, type: wecom}}
    pools:
      - id: noon
        items:
          - {{id: n1, text: 读书使人充实。}}
          - {{id: n2, text: 每天进步一点点。}}
    jobs:
{jobs}"""


class Robot:
    """A WeCom group robot: answers every send ``{"errcode":0,"errmsg":"ok"}``."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []  # in arrival order
        lock = threading.Lock()
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lock:
                    received.append({"path": self.path, "body": json.loads(body)})
                answer = json.dumps({"errcode": 0, "errmsg": "ok"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = (
            f"http://127.0.0.1:{self.server.server_address[1]}/cgi-bin/webhook/send?key={ROBOT_KEY}"
        )
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def robot() -> Iterator[Robot]:
    server = Robot()
    yield server
    server.close()


def test_a_noon_burst_to_one_robot_is_delivered_at_the_rate_in_simulated_time(
    aws_env, repo_root, tmp_path, monkeypatch, robot, capsys
):
    monkeypatch.chdir(repo_root)
    config = tmp_path / "communities.yaml"
    config.write_text(burst_config(), encoding="utf-8")
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps({"sunrise/wecom-group": {"webhook_url": robot.url}}))
    out = tmp_path / "sim"
    code = main(
        [
            "simulate",
            "--config",
            str(config),
            "--start",
            "2027-03-08T00:00:00Z",  # 08:00 in Shanghai: the burst is at 04:00Z
            "--days",
            "1",
            "--members",
            "5",
            "--seed",
            "3",
            "--out",
            str(out),
            "--secrets",
            str(secrets),
            "--quiet",
        ]
    )
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    posts = [p for p in summary["posts"] if p["channel"] == "wecom-group"]
    assert len(posts) == POSTS
    assert [p["status"] for p in posts] == ["published"] * POSTS, [
        (o["job"], o["status"], o["reason"]) for o in summary["occurrences"]
    ]
    assert len(robot.received) == POSTS
    assert all(r["path"].endswith(f"key={ROBOT_KEY}") for r in robot.received)
    assert sorted(r["body"]["text"]["content"][:5] for r in robot.received) == sorted(
        f"午间第{n}条" for n in range(1, POSTS + 1)
    )

    # The robot's rate: a burst at once, then one post per interval (GCRA).
    rate = WeComChannel.community_rate
    interval = timedelta(seconds=rate.interval_s)
    at = sorted(parse_iso(p["at_utc"]) for p in posts)
    assert at[0] >= parse_iso("2027-03-08T04:00:00Z")
    paced = at[rate.burst - 1 :]  # the burst's last post, then every post that waited
    gaps = [later - earlier for earlier, later in itertools.pairwise(paced)]
    assert all(gap >= interval for gap in gaps), gaps
    # Each wait counted from the moved clock: one interval apart, not 2, 3, 4 intervals.
    assert all(gap < interval + timedelta(seconds=1) for gap in gaps), gaps
    span = at[-1] - at[0]
    expected = (POSTS - rate.burst) * interval
    assert expected <= span < expected + timedelta(seconds=2), span
    # Never more in a window than the robot's rate allows.
    for i, first in enumerate(at):
        for j in range(i, len(at)):
            window = (at[j] - first).total_seconds()
            assert j - i + 1 <= rate.max_in(window + 1), (at, i, j)
