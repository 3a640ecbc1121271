"""Shared pieces of the HTTP API tests: a community with rules and rewards, tokens,
and the template's API Gateway in front of the local runtime (``LocalHttpApi``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from autopilot.aws import client
from autopilot.clock import get_clock

from autopilot_cli.commands.devtoken import dev_claims, template_audience
from autopilot_cli.local import devjwt
from autopilot_cli.local.gateway import HttpResponse, LocalHttpApi

from .conftest import Stack, make_config

T0 = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
SECRET = b"test-only-dev-secret"
RULES = {
    "base_points": 10,
    "milestones": [{"days": 3, "bonus": 20}],
    "freezes": {"every_days": 3, "max_held": 1},
    "makeup_cost": 15,
    "tiers": [
        {"id": "bronze", "name": "铜", "min_lifetime_points": 0},
        {"id": "silver", "name": "银", "min_lifetime_points": 40},
    ],
}
REWARDS = [
    {"id": "mug", "name": "马克杯", "cost_points": 25, "stock": 1},
    {"id": "badge", "name": "徽章", "cost_points": 5},
]
LEDGER_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


def api_config() -> dict[str, Any]:
    """Two communities: ``sunrise`` (zh-CN, rules and rewards) and ``other``."""
    doc = make_config(
        day_boundary="04:00",
        jobs=[],
        checkins=RULES,
        rewards=REWARDS,
        chat_keywords=["打卡", "/checkin", "checkin"],
    )
    other = json.loads(json.dumps(doc["communities"][0]))
    other.update(id="other", name="Other", locale="en", timezone="America/New_York")
    doc["communities"].append(other)
    return doc


def token(
    member: str,
    *roles: str,
    community: str | None = None,
    ttl_s: int = 3600,
    now: datetime | None = None,
    **overrides: Any,
) -> str:
    """A dev token as ``autopilot dev-token`` mints it now (signed with the test secret)."""
    issuer, audience = template_audience()
    when = now or get_clock().now()
    claims = dev_claims(
        member,
        list(roles),
        issuer=issuer,
        audience=audience,
        ttl_s=ttl_s,
        community=community,
        now_s=when.timestamp(),
    )
    claims.update(overrides)
    return devjwt.encode(claims, SECRET)


@dataclass
class Api:
    """The stack's HTTP API as a client sees it."""

    stack: Stack
    gateway: LocalHttpApi

    def call(
        self,
        method: str,
        path: str,
        *,
        auth: str | None = None,
        body: Any = None,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> HttpResponse:
        all_headers = dict(headers or {})
        if auth is not None:
            all_headers["Authorization"] = f"Bearer {auth}"
        raw: bytes | None
        if body is None or isinstance(body, bytes):
            raw = body
        elif isinstance(body, str):
            raw = body.encode()
        else:
            raw = json.dumps(body, ensure_ascii=False).encode()
            all_headers.setdefault("Content-Type", "application/json")
        return self.gateway.handle(method, path, headers=all_headers, query=query, body=raw)

    def ledger_items(self) -> list[dict[str, Any]]:
        """Every item of the ledger table (to compare before/after)."""
        table = self.stack.runtime.physical_id("LedgerTable")
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": table}
        while True:
            page = client("dynamodb", "us-east-1").scan(**kwargs)
            items += page["Items"]
            if "LastEvaluatedKey" not in page:
                return sorted(items, key=lambda i: (i["pk"]["S"], i["sk"]["S"]))
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def make_api(stack: Stack) -> Api:
    stack.push(api_config())
    stack.clock.set(T0)
    gateway = LocalHttpApi(
        stack.runtime, secret=SECRET, now_s=lambda: stack.clock.now().timestamp()
    )
    return Api(stack, gateway)
