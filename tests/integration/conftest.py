"""Fixtures for integration tests: a deployed stack on moto built from template.yaml."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from autopilot.app import App
from autopilot.aws import client, reset_clients
from autopilot.clock import ManualClock, set_clock
from autopilot.settings import Settings

BASE_COMMUNITY: dict[str, Any] = {
    "id": "sunrise",
    "name": "晨读社",
    "timezone": "Asia/Shanghai",
    "locale": "zh-CN",
    "quiet_hours": {"start": "00:00", "end": "07:00"},
    # No derived daily snapshot job here: scheduler tests count the occurrences of
    # the jobs they set up. The metrics tests turn it on (or snapshot directly).
    "metrics": {"daily_snapshot": False},
    "channels": [
        {"id": "group", "type": "file", "path": "group.jsonl"},
        {"id": "announce", "type": "sns"},
    ],
    "pools": [
        {"id": "morning", "items": [{"id": f"m{i:02d}", "text": f"早安 {i}"} for i in range(5)]}
    ],
    "jobs": [
        {
            "id": "morning-post",
            "cron": "30 7 * * *",
            "action": "post",
            "params": {
                "pool": "morning",
                "channels": ["group"],
                "template": "早安！今天是{date}，{weekday}。\n{content}",
            },
        }
    ],
}


def make_config(
    *,
    jobs: list[dict[str, Any]] | None = None,
    published_at: str = "2026-11-26T00:00:00Z",
    **community: Any,
) -> dict[str, Any]:
    """A published config document with one community (overrides by keyword)."""
    body = copy.deepcopy(BASE_COMMUNITY)
    if jobs is not None:
        body["jobs"] = jobs
    body.update(community)
    return {"version": 1, "published_at": published_at, "communities": [body]}


@dataclass
class Stack:
    """The template's resources on moto, plus helpers to drive the dispatcher."""

    runtime: Any
    output_dir: Path
    clock: ManualClock
    env: dict[str, str] = field(default_factory=dict)

    def push(self, document: dict[str, Any] | bytes) -> str:
        body = (
            document
            if isinstance(document, bytes)
            else json.dumps(document, ensure_ascii=False).encode()
        )
        response = client("s3", "us-east-1").put_object(
            Bucket=self.env["CONFIG_BUCKET"], Key=self.env["CONFIG_KEY"], Body=body
        )
        return str(response.get("VersionId"))

    def app(self) -> App:
        """A new container (cold start) of the dispatcher."""
        return App(Settings.from_env(self.env), clock=self.clock)

    def lines(self, name: str = "group.jsonl") -> list[dict[str, Any]]:
        path = self.output_dir / name
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]

    def history(self, app: App, job: str = "morning-post", community: str = "sunrise") -> list[Any]:
        return list(app.scheduler_store.history(community, job))


@pytest.fixture
def stack(local_runtime: Any, tmp_path: Path) -> Iterator[Stack]:
    reset_clients()
    clock = ManualClock(datetime(2026, 1, 1, 0, 0, tzinfo=UTC))
    previous = set_clock(clock)
    env = dict(local_runtime.function_env("DispatcherFunction"))
    env["AUTOPILOT_OUTPUT_DIR"] = str(tmp_path)
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    try:
        yield Stack(local_runtime, tmp_path, clock, env)
    finally:
        set_clock(previous)
        reset_clients()


@pytest.fixture
def at(stack: Stack) -> Callable[..., datetime]:
    """Move the stack's clock: ``at(2026, 11, 26, 23, 30)`` (UTC)."""

    def move(*args: int) -> datetime:
        when = datetime(*args, tzinfo=UTC)
        stack.clock.set(when)
        return when

    return move
