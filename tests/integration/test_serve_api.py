"""`autopilot serve` over a real socket with a token from `autopilot dev-token`."""

from __future__ import annotations

import base64
import http.client
import io
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from autopilot_cli.local.gateway import Cors
from autopilot_cli.main import main
from autopilot_cli.serve import http_server, serve

from .api_support import make_api, token


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


# -- what a browser or a careless client sends ---------------------------------------------


@pytest.fixture
def served(stack):
    """The serve HTTP server on 127.0.0.1 in front of the test stack's gateway."""
    api = make_api(stack)
    joined = api.call("POST", "/checkins", auth=token("alice"), body={"community": "sunrise"})
    assert joined.status == 200, joined.body
    server = http_server(api.gateway, threading.Lock(), io.StringIO(), 0, read_timeout_s=0.5)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def raw(port: int, data: bytes, *, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes; read the whole answer until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(data)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def call(port: int, method: str, path: str, *, token_: str | None = None, **kwargs: Any):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    headers = dict(kwargs.pop("headers", {}))
    if token_:
        headers["Authorization"] = f"Bearer {token_}"
    conn.request(method, path, headers=headers, **kwargs)
    answer = conn.getresponse()
    body = answer.read()
    conn.close()
    return answer.status, dict(answer.getheaders()), body


@pytest.mark.parametrize(
    ("length_headers", "status", "text"),
    [
        (b"Content-Length: -1\r\n", 400, b"Content-Length"),
        (b"Content-Length: abc\r\n", 400, b"Content-Length"),
        (b"Content-Length: 1e3\r\n", 400, b"Content-Length"),
        (b"Content-Length: 5\r\nContent-Length: 6\r\n", 400, b"Content-Length"),
        (b"Content-Length: 99999999999999999999\r\n", 400, b"Content-Length"),
        (b"Content-Length: 2000000\r\n", 413, b"larger than"),
        (b"Transfer-Encoding: chunked\r\n", 411, b"Content-Length"),
    ],
)
def test_bad_content_lengths_get_a_clear_answer(served, length_headers, status, text):
    _api, port = served
    request = (
        b"POST /checkins HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + token("alice").encode()
        + b"\r\n"
        + length_headers
        + b"\r\n"
        + b'{"community": "sunrise"}'
    )
    got, headers, body = raw(port, request)
    assert got == status and text in body, body
    assert headers["content-type"] == "application/json" and json.loads(body)["message"]


def test_a_slow_client_gets_408_and_a_silent_one_is_closed(served):
    _api, port = served
    start = time.monotonic()
    got, _, body = raw(port, b'POST /checkins HTTP/1.1\r\nContent-Length: 50\r\n\r\n{"comm')
    assert got == 408 and b"no data" in body
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        assert conn.recv(1024) == b""  # closed after the read timeout, never a hang
    assert time.monotonic() - start < 8


def nested_token(claims_part: str | None = None) -> str:
    deep = base64.urlsafe_b64encode(("[" * 5000 + "]" * 5000).encode()).rstrip(b"=").decode()
    good = token("alice").split(".")
    return f"{deep}.{claims_part or good[1]}.{good[2]}"


def test_hostile_tokens_are_401_never_a_crash(served):
    api, port = served
    before = api.ledger_items()
    body = json.dumps({"community": "sunrise"})
    hostile = [
        nested_token(),  # header nested 5,000 levels
        token("alice").split(".")[0] + "." + nested_token().split(".")[0] + ".x",  # payload
        token("alice", aud=[{"x": 1}]),  # unhashable audience
        token("alice", exp=float("nan")),  # never expires if NaN compares false
        token("alice", exp=True),
        "a" * 10000 + ".b.c",
        "é.é.é",
    ]
    for value in hostile:
        status, _, answer = call(port, "POST", "/checkins", token_=value, body=body)
        assert (status, json.loads(answer)) == (401, {"message": "Unauthorized"}), value[:40]
    # Bytes that are not ASCII in the header itself.
    got, _, answer = raw(
        port,
        b"POST /checkins HTTP/1.1\r\nAuthorization: Bearer \xff\xfe.\xc3\xa9.x\r\n"
        b"Content-Length: 2\r\n\r\n{}",
    )
    assert (got, json.loads(answer)) == (401, {"message": "Unauthorized"})
    assert api.ledger_items() == before


def test_head_and_options_are_answered_as_api_gateway_would(served):
    _api, port = served
    status, headers, body = call(port, "HEAD", "/me?community=sunrise", token_=token("alice"))
    assert status == 404 and body == b"" and int(headers["Content-Length"]) > 0
    status, headers, body = call(
        port,
        "OPTIONS",
        "/checkins",
        headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"},
    )
    # The template configures no CORS, so API Gateway has no answer for a preflight.
    assert (status, json.loads(body)) == (404, {"message": "Not Found"})
    assert "Access-Control-Allow-Origin" not in headers
    status, _, body = call(port, "FOO", "/me")
    assert status == 404 and json.loads(body)["message"]
    got, _, body = raw(port, b"GARBAGE\r\n\r\n")
    assert got == 400


def test_cors_preflight_when_the_api_configures_cors(served):
    api, port = served
    cors = Cors.from_template(
        {"AllowOrigins": ["http://localhost:3000"], "AllowMethods": ["GET", "POST"], "MaxAge": 600}
    )
    for route in api.gateway.routes:
        route.cors = cors
    preflight = {"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"}
    status, headers, body = call(port, "OPTIONS", "/checkins", headers=preflight)
    assert status == 204 and body == b""
    assert headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert headers["Access-Control-Allow-Methods"] == "GET,POST"
    assert headers["Access-Control-Max-Age"] == "600"
    other = {**preflight, "Origin": "https://evil.example"}
    status, headers, _ = call(port, "OPTIONS", "/checkins", headers=other)
    assert status == 204 and "Access-Control-Allow-Origin" not in headers
    status, headers, _ = call(
        port,
        "GET",
        "/me?community=sunrise",
        token_=token("alice"),
        headers={"Origin": "http://localhost:3000"},
    )
    assert (
        status in (200, 404) and headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    )


def test_odd_query_strings(served):
    _api, port = served
    status, _, body = call(port, "GET", "/me?community=%FF", token_=token("alice"))
    assert status == 400 and b"UTF-8" in body
    status, _, body = call(port, "GET", "/me?community=sunrise&community=other", token_=token("a"))
    assert status == 404 and "sunrise,other" in json.loads(body)["message"]


def test_a_hundred_connections_at_once_are_all_answered(served):
    _api, port = served
    member = token("alice")
    results: list[Any] = []
    lock = threading.Lock()
    barrier = threading.Barrier(100)

    def client() -> None:
        try:
            barrier.wait(timeout=30)
            answer = call(port, "GET", "/me?community=sunrise", token_=member)
            outcome: Any = answer[0]
        except Exception as exc:  # a reset or a hang would show here
            outcome = repr(exc)
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=client) for _ in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(results) == 100 and set(results) == {200}, results[:5]
