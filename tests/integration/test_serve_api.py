"""`autopilot serve` over a real socket with a token from `autopilot dev-token`."""

from __future__ import annotations

import io
import json
import threading
import urllib.error
import urllib.request

import pytest

from autopilot_cli.main import main
from autopilot_cli.serve import serve


def test_dev_token_and_serve_check_in_over_http(aws_env, repo_root, monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(repo_root)
    monkeypatch.setenv("AUTOPILOT_OUTPUT_DIR", str(tmp_path))
    monkeypatch.setenv("AUTOPILOT_DEV_JWT_SECRET", "serve-test-secret")
    assert main(["dev-token", "--member", "alice", "--ttl", "10m"]) == 0
    member_token = capsys.readouterr().out.strip()
    assert member_token.count(".") == 2

    port: dict[str, int] = {}
    started, release = threading.Event(), threading.Event()

    class Log(io.StringIO):
        def write(self, text: str) -> int:
            if "HTTP API on" in text:
                port["port"] = int(text.split("127.0.0.1:")[1].split()[0])
                started.set()
                release.wait(timeout=60)
            return len(text)

    thread = threading.Thread(
        target=serve,
        args=("config/communities.yaml",),
        kwargs={"port": 0, "log": Log(), "max_ticks": 1},
        daemon=True,
    )
    thread.start()
    assert started.wait(timeout=60)

    def request(path: str, body: dict | None, token: str | None) -> tuple[int, dict]:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"http://127.0.0.1:{port['port']}{path}",
            data=data,
            headers=headers,
            method="POST" if data else "GET",
        )
        try:
            with urllib.request.urlopen(req, timeout=20) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    try:
        status, body = request("/checkins", {"community": "sunrise-readers"}, member_token)
        assert status == 200 and body["member"] == "alice" and body["streak"] == 1
        assert request("/checkins", {"community": "sunrise-readers"}, None)[0] == 401
        assert request("/checkins", {"community": "sunrise-readers"}, member_token + "x")[0] == 401
        status, body = request(
            "/ledger/summary?community=sunrise-readers&since=2020-01-01&until=2020-01-02",
            None,
            member_token,
        )
        assert (status, body) == (403, {"message": "Forbidden"})
    finally:
        release.set()
        thread.join(timeout=30)


def test_dev_token_refuses_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        main(["dev-token", "--member", "a", "--role", "admin"])
    with pytest.raises(SystemExit):
        main(["dev-token", "--member", "a", "--ttl", "30d"])
