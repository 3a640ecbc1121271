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
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qsl, urlsplit

from autopilot.clock import get_clock

from autopilot_cli.configfile import published_document, validate_file
from autopilot_cli.local.gateway import LocalHttpApi, Route, http_routes
from autopilot_cli.local.runtime import LocalRuntime, scheduled_event

__all__ = ["Route", "http_routes", "serve"]

MAX_BODY_BYTES = 1024 * 1024


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

        class Handler(BaseHTTPRequestHandler):
            def _dispatch(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY_BYTES:
                    self._reply(413, {"message": f"body larger than {MAX_BODY_BYTES} bytes"})
                    return
                body = self.rfile.read(length) if length else None
                if gateway.route(self.command, parts.path) is None:
                    self._reply(
                        404,
                        {
                            "message": f"no route for {self.command} {parts.path}",
                            "routes": [f"{r.method} {r.path}" for r in routes],
                        },
                    )
                    return
                response = gateway.handle(
                    self.command,
                    parts.path,
                    headers=dict(self.headers.items()),
                    query=dict(parse_qsl(parts.query)),
                    body=body,
                    invoke_lock=lock,
                )
                self.send_response(response.status)
                for key, value in response.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                self.wfile.write(response.body)

            def _reply(self, status: int, document: Any) -> None:
                payload = json.dumps(document, ensure_ascii=False).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch

            def log_message(self, format: str, *args: Any) -> None:
                log.write(f"http: {format % args}\n")

        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
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
