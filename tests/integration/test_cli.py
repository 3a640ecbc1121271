"""The `autopilot` command as people use it."""

from __future__ import annotations

import io
import json
import threading
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta, timezone

import pytest

from autopilot_cli.main import main
from autopilot_cli.serve import Route, serve
from autopilot_cli.simulate import default_start

CONFIG_FILE = "config/communities.yaml"


def test_preview_lists_local_and_utc_with_dst_and_quiet_notes(capsys, repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)
    code = main(["schedule", "preview", "--from", "2027-03-13T00:00:00Z", "--days", "2"])
    out = capsys.readouterr().out
    assert code == 0
    assert "07:30 CST" in out and "2027-03-13T23:30:00Z" in out and "morning-post" in out
    assert "DST gap: 02:30 does not exist that day; runs at 03:00 EDT" in out
    assert "quiet hours: deferred to 07:00" in out


def _preview_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if "Z" in line]


def test_now_option_and_env_set_the_clock_of_every_computing_command(
    capsys, repo_root, monkeypatch
):
    monkeypatch.chdir(repo_root)
    assert main(["schedule", "preview", "--from", "2027-03-13T00:00:00Z", "--days", "2"]) == 0
    reference = _preview_lines(capsys.readouterr().out)
    assert reference
    assert main(["--now", "2027-03-13T00:00:00Z", "schedule", "preview", "--days", "2"]) == 0
    assert _preview_lines(capsys.readouterr().out) == reference
    monkeypatch.setenv("AUTOPILOT_NOW", "2027-03-13T08:00:00+08:00")
    assert main(["schedule", "preview", "--days", "2"]) == 0
    assert _preview_lines(capsys.readouterr().out) == reference
    # --now wins over the environment.
    assert main(["--now", "2027-03-12T00:00:00Z", "schedule", "preview", "--days", "1"]) == 0
    assert "2027-03-12T23:30:00Z" in capsys.readouterr().out


def test_validate_looks_ahead_from_the_injected_now(capsys, repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)
    assert main(["--now", "2027-03-01T00:00:00Z", "config", "validate", CONFIG_FILE]) == 0
    assert "on Sun 2027-03-14 clocks go forward 1 h at 02:00" in capsys.readouterr().out
    assert main(["--now", "2027-03-20T00:00:00Z", "config", "validate", CONFIG_FILE]) == 0
    assert "on Sun 2028-03-12 clocks go forward 1 h at 02:00" in capsys.readouterr().out


def test_now_is_installed_for_the_command_only(capsys, repo_root, monkeypatch):
    from autopilot.clock import ManualClock, get_clock, set_clock

    monkeypatch.chdir(repo_root)
    mine = ManualClock(datetime(2026, 6, 1, tzinfo=UTC))
    previous = set_clock(mine)
    try:
        # Without --now the command uses the clock already installed (a test's, here).
        assert main(["schedule", "preview", "--days", "1"]) == 0
        assert "2026-06-01T23:30:00Z" in capsys.readouterr().out
        assert main(["--now", "2027-01-01T00:00:00Z", "schedule", "preview", "--days", "1"]) == 0
        assert "2027-01-01T23:30:00Z" in capsys.readouterr().out
        assert get_clock() is mine
    finally:
        set_clock(previous)


def test_dev_token_is_issued_at_the_injected_time(capsys, repo_root, monkeypatch):
    import base64

    monkeypatch.chdir(repo_root)
    monkeypatch.setenv("AUTOPILOT_DEV_JWT_SECRET", "test-secret-" + "x" * 32)
    assert main(["--now", "2027-03-08T00:00:00Z", "dev-token", "--member", "a", "--ttl", "1h"]) == 0
    payload = capsys.readouterr().out.strip().split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    start = int(datetime(2027, 3, 8, tzinfo=UTC).timestamp())
    assert (claims["iat"], claims["exp"]) == (start, start + 3600)


def test_simulate_default_start_is_the_monday_after_now():
    assert default_start(datetime(2027, 3, 10, 15, 0, tzinfo=UTC)) == datetime(
        2027, 3, 15, tzinfo=UTC
    )
    # A Monday is followed by the next one, not itself; Shanghai's Monday morning is
    # still Sunday in UTC.
    assert default_start(datetime(2027, 3, 8, 0, 0, tzinfo=UTC)) == datetime(
        2027, 3, 15, tzinfo=UTC
    )
    assert default_start(
        datetime(2027, 3, 8, 7, 0, tzinfo=timezone(timedelta(hours=8)))
    ) == datetime(2027, 3, 8, tzinfo=UTC)


@pytest.mark.parametrize(
    "argv",
    [
        ["serve"],
        ["config", "push", "--bucket", "b"],
        [
            "ledger",
            "adjust",
            "--table",
            "t",
            "--community",
            "c",
            "--member",
            "m",
            "--amount",
            "1",
            "--reason",
            "r",
            "--ref",
            "x",
        ],
        ["members", "add", "--table", "t", "--community", "c", "--member", "m"],
        ["members", "leave", "--table", "t", "--community", "c", "--member", "m"],
        ["channel", "test", "console"],
    ],
)
@pytest.mark.parametrize("how", ["option", "env"])
def test_commands_acting_on_a_live_system_refuse_a_made_up_time(
    capsys, monkeypatch, argv, how, request_counter
):
    if how == "option":
        argv = ["--now", "2027-03-08T00:00:00Z", *argv]
    else:
        monkeypatch.setenv("AUTOPILOT_NOW", "2027-03-08T00:00:00Z")
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "acts on a live system and runs on the real clock" in err
    assert request_counter.total == 0


def test_a_bad_now_is_a_usage_error(capsys, monkeypatch):
    with pytest.raises(SystemExit) as exited:
        main(["--now", "2027-03-08T00:00:00", "schedule", "preview"])
    assert exited.value.code == 2 and "--now" in capsys.readouterr().err
    monkeypatch.setenv("AUTOPILOT_NOW", "tomorrow")
    with pytest.raises(SystemExit) as exited:
        main(["schedule", "preview"])
    assert exited.value.code == 2
    assert "$AUTOPILOT_NOW: 'tomorrow' is not an ISO-8601 instant" in capsys.readouterr().err


def test_preview_refuses_an_invalid_config(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\ncommunities: []\n", encoding="utf-8")
    assert main(["schedule", "preview", "--config", str(bad)]) == 1
    assert "at least one community" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["simulate", "--start", "next monday"],
        ["simulate", "--days", "-1"],
        ["schedule", "preview", "--from", "2027-03-13T00:00:00"],
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(capsys, argv):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_bad_outage_is_a_usage_error(capsys):
    assert main(["simulate", "--outage", "soon"]) == 2
    assert "START/DURATION" in capsys.readouterr().err


def test_simulate_writes_summary(aws_env, repo_root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(repo_root)
    out = tmp_path / "sim"
    code = main(
        [
            "simulate",
            "--start",
            "2027-03-08T00:00:00Z",
            "--days",
            "1",
            "--members",
            "5",
            "--seed",
            "2",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["counts"] == {"fired": len(summary["occurrences"])}
    printed = capsys.readouterr().out
    assert "晨读社" in printed and "morning-post" in printed and "wrote" in printed
    assert (out / "console.log").read_text(encoding="utf-8").count("早安") >= 1


def test_route_matching():
    route = Route("Fn", "GET", "/members/{member_id}/streak")
    assert route.match("GET", "/members/m-1/streak") == {"member_id": "m-1"}
    assert route.match("POST", "/members/m-1/streak") is None
    assert route.match("GET", "/members/m-1") is None
    assert Route("Fn", "ANY", "/x").match("DELETE", "/x") == {}


def test_serve_publishes_ticks_and_answers_http(aws_env, repo_root, monkeypatch, tmp_path):
    from autopilot.clock import ManualClock, set_clock

    from autopilot_cli.commands.devtoken import dev_claims, template_audience
    from autopilot_cli.local import devjwt

    monkeypatch.chdir(repo_root)
    monkeypatch.setenv("AUTOPILOT_OUTPUT_DIR", str(tmp_path))
    monkeypatch.setenv("AUTOPILOT_DEV_JWT_SECRET", "serve-ticks-secret")
    # 07:29 in Shanghai on Monday 2027-03-08: the 07:30 morning post is one minute away.
    clock = ManualClock(datetime(2027, 3, 7, 23, 29, tzinfo=UTC))
    previous = set_clock(clock)
    log = io.StringIO()
    port: dict[str, int] = {}
    started, release = threading.Event(), threading.Event()

    class Log(io.StringIO):
        def write(self, text: str) -> int:
            log.write(text)
            if "HTTP API on" in text:
                port["port"] = int(text.split("127.0.0.1:")[1].split()[0])
                started.set()
                release.wait(timeout=60)  # serve ticks once the test has called it
            return len(text)

    thread = threading.Thread(
        target=serve,
        args=("config/communities.yaml",),
        kwargs={"port": 0, "log": Log(), "max_ticks": 3},
        daemon=True,
    )
    try:
        thread.start()
        assert started.wait(timeout=60)
        issuer, audience = template_audience()
        token = devjwt.encode(
            dev_claims("alice", [], issuer=issuer, audience=audience, ttl_s=600),
            b"serve-ticks-secret",
        )
        request = urllib.request.Request(
            f"http://127.0.0.1:{port['port']}/checkins",
            data=json.dumps({"community": "sunrise-readers"}).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=20) as answer:
            assert answer.status == 200
            body = json.loads(answer.read())
        assert (body["member"], body["day"], body["streak"]) == ("alice", "2027-03-08", 1)
        clock.set(datetime(2027, 3, 7, 23, 30, tzinfo=UTC))  # 07:30 in Shanghai
        release.set()
        thread.join(timeout=60)
        assert not thread.is_alive()
    finally:
        release.set()
        set_clock(previous)
    text = log.getvalue()
    assert "published config/communities.yaml" in text
    assert "18 route(s)" in text  # every HttpApi event of template.yaml
    assert 'http: "POST /checkins HTTP/1.1" 200' in text
    # Three ticks in the 07:30 minute: the morning post fires on the first, once.
    assert [line for line in text.splitlines() if line.startswith("tick ")] == [
        'tick 23:30:00Z: {"fired": 1}'
    ]
    posts = [
        json.loads(line)
        for line in (tmp_path / "sunrise" / "group.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert [(p["job"], p["key"].split(":", 2)[2][:16]) for p in posts] == [
        ("morning-post", "2027-03-08T07:30")
    ]
    assert posts[0]["text"].startswith("早安！今天是2027年3月8日，星期一。")


def test_serve_http_unknown_route_is_404(aws_env, repo_root, monkeypatch, tmp_path):
    monkeypatch.chdir(repo_root)
    monkeypatch.setenv("AUTOPILOT_OUTPUT_DIR", str(tmp_path))
    port_holder: dict[str, int] = {}
    started = threading.Event()
    release = threading.Event()

    class Log(io.StringIO):
        def write(self, text: str) -> int:
            if "HTTP API on" in text:
                port_holder["port"] = int(text.split("127.0.0.1:")[1].split()[0])
                started.set()
                release.wait(timeout=30)  # keep the server up while the test calls it
            return len(text)

    thread = threading.Thread(
        target=serve,
        args=("config/communities.yaml",),
        kwargs={"port": 0, "log": Log(), "max_ticks": 1},
        daemon=True,
    )
    thread.start()
    assert started.wait(timeout=60)
    try:
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(f"http://127.0.0.1:{port_holder['port']}/nothing", timeout=10)
        assert answer.value.code == 404
        assert "no route for GET /nothing" in answer.value.read().decode()
    finally:
        release.set()
        thread.join(timeout=30)
