"""`autopilot serve`: the dispatcher in real time and the HTTP API on localhost.

Everything runs in this process on moto, built from template.yaml: the dispatcher
is invoked at every minute like EventBridge Scheduler would, and HTTP requests go
through :class:`~autopilot_cli.local.gateway.LocalHttpApi`, which routes them and
verifies JWTs (``autopilot dev-token``) with the template's authorizers and scopes,
as API Gateway would.
Editing the config file re-validates and re-publishes it; an invalid edit is
reported and the last good config stays live.
"""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qs, urlsplit

from autopilot.clock import get_clock

from autopilot_cli.configfile import published_document, validate_file
from autopilot_cli.local.gateway import LocalHttpApi, Route, http_routes
from autopilot_cli.local.runtime import LocalRuntime, scheduled_event

__all__ = ["Route", "http_routes", "http_server", "serve"]

MAX_BODY_BYTES = 1024 * 1024
# Connections served at once; more wait in the listen backlog (queued, not refused).
MAX_CONNECTIONS = 32
LISTEN_BACKLOG = 128
# A client that sends nothing for this long is answered 408 and closed.
READ_TIMEOUT_S = 10.0
_DIGITS = re.compile(r"^[0-9]{1,12}$")


class LocalHttpServer(ThreadingHTTPServer):
    """A threading HTTP server with a bounded number of connections served at once.

    Each connection gets a thread, but at most ``max_connections`` at a time: the
    accept loop waits for a free slot, so further clients queue in the kernel's
    listen backlog (:data:`LISTEN_BACKLOG`) instead of being refused or reset.
    A slot is held at most for :data:`READ_TIMEOUT_S` of client silence.
    """

    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], handler: Any, max_connections: int):
        self._slots = threading.BoundedSemaphore(max_connections)
        self._stopping = threading.Event()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        while not self._slots.acquire(timeout=0.2):
            if self._stopping.is_set():
                self.shutdown_request(request)
                return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def shutdown(self) -> None:
        self._stopping.set()
        super().shutdown()


def http_server(
    gateway: LocalHttpApi,
    lock: Any,
    log: TextIO,
    port: int,
    *,
    host: str = "127.0.0.1",
    max_connections: int = MAX_CONNECTIONS,
    read_timeout_s: float = READ_TIMEOUT_S,
) -> LocalHttpServer:
    """The local HTTP API on ``host:port`` in front of ``gateway`` (not yet serving).

    What a browser or a careless client sends never breaks it: a malformed or
    negative ``Content-Length`` is a 400, a chunked body 411, a body over
    :data:`MAX_BODY_BYTES` 413, a client that stalls 408; ``HEAD`` answers like
    the gateway without a body, ``OPTIONS`` and unknown methods as API Gateway
    does (404 unless CORS is configured); every answer is JSON and closes the
    connection.
    """
    routes = gateway.routes

    class Handler(BaseHTTPRequestHandler):
        timeout = read_timeout_s  # socket timeout of every read and write
        # Garbage request lines are answered with a status line too (not HTTP/0.9).
        default_request_version = "HTTP/1.0"

        def _dispatch(self) -> None:
            self.close_connection = True  # one request per connection: no idle slots
            parts = urlsplit(self.path)
            body = self._body()
            if body is None:
                return
            if gateway.route(self.command, parts.path) is None and self.command != "OPTIONS":
                self._reply(
                    404,
                    {
                        "message": f"no route for {self.command} {parts.path}",
                        "routes": [f"{r.method} {r.path}" for r in routes],
                    },
                )
                return
            try:
                # Repeated keys are joined with commas, as API Gateway does.
                query = parse_qs(parts.query, keep_blank_values=True, errors="strict")
            except (UnicodeDecodeError, ValueError):
                self._reply(400, {"message": "the query string is not percent-encoded UTF-8"})
                return
            response = gateway.handle(
                self.command,
                parts.path,
                headers=dict(self.headers.items()),
                query=query,
                body=body or None,
                invoke_lock=lock,
            )
            self.send_response(response.status)
            for key, value in response.headers.items():
                if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)

        def _body(self) -> bytes | None:
            """The request body, or None once an error has been answered."""
            if self.headers.get("Transfer-Encoding"):
                self._reply(411, {"message": "send the body with a Content-Length (no chunks)"})
                return None
            lengths = self.headers.get_all("Content-Length") or []
            if not lengths:
                return b""
            if len(set(lengths)) != 1 or not _DIGITS.match(lengths[0].strip()):
                self._reply(400, {"message": "Content-Length must be one non-negative integer"})
                return None
            length = int(lengths[0])
            if length > MAX_BODY_BYTES:
                self._reply(413, {"message": f"body larger than {MAX_BODY_BYTES} bytes"})
                return None
            try:
                body = self.rfile.read(length) if length else b""
            except TimeoutError:
                self._reply(408, {"message": f"no data for {read_timeout_s:g} s"})
                return None
            if len(body) != length:
                self._reply(400, {"message": "the body is shorter than its Content-Length"})
                return None
            return body

        def _reply(self, status: int, document: Any) -> None:
            self.close_connection = True
            payload = json.dumps(document, ensure_ascii=False).encode("utf-8")
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Connection", "close")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)
            except (OSError, TimeoutError):
                pass  # the client is gone: nothing left to tell it

        def send_error(self, code: int, message: str | None = None, explain: str | None = None):
            # Malformed request lines, oversized headers, unsupported methods: JSON too.
            self.close_connection = True
            if code == 501:  # a method http.server knows nothing about: as API Gateway
                code, message = 404, "Not Found"
            self._reply(code, {"message": message or self.responses.get(code, ("",))[0]})

        def handle_one_request(self) -> None:
            try:
                super().handle_one_request()
            except (TimeoutError, ConnectionError):
                self.close_connection = True  # the client left mid-request

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _dispatch

        def log_message(self, format: str, *args: Any) -> None:
            log.write(f"http: {format % args}\n")

    return LocalHttpServer((host, port), Handler, max_connections)


def _publish(runtime: LocalRuntime, config_path: str, log: TextIO) -> bool:
    report = validate_file(config_path)
    for finding in report.warnings:
        log.write(f"{finding}\n")
    if not report.ok:
        for finding in report.errors:
            log.write(f"{finding}\n")
        log.write("config NOT published: keeping the last good config\n")
        return False
    from autopilot.aws import client

    env = runtime.function_env("DispatcherFunction")
    client("s3", runtime.region).put_object(
        Bucket=runtime.physical_id("ConfigBucket"),
        Key=env.get("CONFIG_KEY", "communities.json"),
        Body=published_document(report.loaded, published_at=get_clock().now()),
    )
    log.write(f"published {config_path}\n")
    return True


def serve(
    config_path: str,
    *,
    port: int,
    log: TextIO,
    template_path: str = "template.yaml",
    max_ticks: int | None = None,
) -> None:
    """Run until interrupted (or ``max_ticks`` dispatcher ticks, for tests)."""
    with LocalRuntime(template_path) as runtime:
        if not _publish(runtime, config_path, log):
            raise SystemExit(1)
        # One clock for ticks, publish time and token expiry: the real one (SystemClock)
        # unless a test installed a ManualClock.
        gateway = LocalHttpApi(runtime, now_s=lambda: get_clock().now().timestamp())
        routes = gateway.routes
        lock = threading.Lock()  # one invocation at a time: moto's backend is not thread-safe

        server = http_server(gateway, lock, log, port)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        log.write(
            f"HTTP API on http://127.0.0.1:{server.server_address[1]} "
            f"({len(routes)} route(s)); dispatcher ticks every minute. Ctrl-C stops.\n"
            "Tokens: autopilot dev-token --member ID [--role ops|finance] (local only).\n"
        )
        mtime = Path(config_path).stat().st_mtime
        ticks = 0
        try:
            while max_ticks is None or ticks < max_ticks:
                now = get_clock().now()
                next_minute = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
                if max_ticks is None:
                    time.sleep(max(0.0, (next_minute - now).total_seconds()))
                current = Path(config_path).stat().st_mtime
                if current != mtime:
                    mtime = current
                    with lock:
                        _publish(runtime, config_path, log)
                tick_at = get_clock().now()
                with lock:
                    result = runtime.invoke("DispatcherFunction", scheduled_event(tick_at))
                ticks += 1
                if result.get("occurrences"):
                    log.write(f"tick {tick_at:%H:%M:%S}Z: {json.dumps(result['counts'])}\n")
        except KeyboardInterrupt:
            log.write("stopped\n")
        finally:
            server.shutdown()
            server.server_close()
