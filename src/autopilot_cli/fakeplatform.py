"""A local chat platform for fault campaigns and tests: WeCom-style robots on 127.0.0.1.

:class:`FakePlatform` is a real HTTP server (a thread of this process) that
accepts WeCom group-robot webhooks (``POST /<robot>`` with ``{"msgtype": "text",
"text": {"content", "mentioned_list"}}`` or ``markdown``), answers
``{"errcode": 0, "errmsg": "ok"}`` and appends every message it accepted to
``<output folder>/platform/<robot>.jsonl`` (text, mentions, the simulated time it arrived).
That log is what reached the group: the invariants count duplicates in it.

:meth:`FakePlatform.secrets` gives ``autopilot simulate --secrets`` the webhook of
every chat channel of a config, pointing at this server (one robot per channel).
"""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from autopilot.clock import get_clock
from autopilot.config.model import Config
from autopilot.timeutil import iso_utc

# The chat platforms this server speaks for (their webhook shape is WeCom's).
PLATFORM_TYPES = ("wecom",)
MAX_BODY = 1 << 20


class FakePlatform:
    """WeCom robots on 127.0.0.1 that log what they accepted under ``log_dir``."""

    def __init__(self, log_dir: str | Path | None = None):
        # None: the running simulation's output folder (AUTOPILOT_OUTPUT_DIR)/platform,
        # so a faulted run and its fault-free reference each log their own.
        self._log_dir = Path(log_dir) if log_dir is not None else None
        self._lock = threading.Lock()
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(min(length, MAX_BODY))
                status, answer = platform._accept(self.path, body)
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        host_text = host.decode() if isinstance(host, bytes) else str(host)
        return f"http://{host_text}:{port}"

    def __enter__(self) -> FakePlatform:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def secrets(self, config: Config) -> dict[str, dict[str, str]]:
        """``--secrets`` for every chat channel of ``config``: one robot each."""
        found: dict[str, dict[str, str]] = {}
        for community in config.communities:
            for channel in community.channels:
                if channel.type in PLATFORM_TYPES:
                    robot = f"{community.id}.{channel.id}"
                    found[f"{community.id}/{channel.id}"] = {"webhook_url": f"{self.url}/{robot}"}
        return found

    def _accept(self, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        robot = path.strip("/").split("?")[0]
        try:
            message = json.loads(body)
        except ValueError:
            return 400, {"errcode": 40001, "errmsg": "invalid json"}
        if not robot or "/" in robot or not isinstance(message, dict):
            return 404, {"errcode": 93000, "errmsg": "invalid webhook url"}
        kind = message.get("msgtype")
        part = message.get(kind) if isinstance(kind, str) else None
        if not isinstance(part, dict):
            return 400, {"errcode": 40008, "errmsg": "invalid message type"}
        record = {
            "at_utc": iso_utc(get_clock().now()),
            "text": part.get("content"),
            "mentions": sorted(str(m) for m in part.get("mentioned_list") or []),
        }
        log_dir = self._log_dir or Path(os.environ.get("AUTOPILOT_OUTPUT_DIR", ".")) / "platform"
        with self._lock:
            log_dir.mkdir(parents=True, exist_ok=True)
            with open(log_dir / f"{robot}.jsonl", "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        return 200, {"errcode": 0, "errmsg": "ok"}
