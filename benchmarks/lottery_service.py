"""Benchmark: a lottery in the product — AWS requests per entry, and the draw step of
the dispatcher at 10,000 and 1,000,000 entrants.

**Entries** go through the real ApiFunction handler on the local stack (the example
config, Shanghai's weekly lottery opened by a real dispatcher tick). Requests are
counted with botocore's event hooks (``autopilot_cli.metering``).

**The draw** runs as in production: a dispatcher tick at the draw's minute claims
the ``lottery.weekly.draw`` occurrence and :meth:`LotteryService.draw` reads the seed,
streams the entrant list by Query pages into the draw, uploads the record to S3,
creates the prize slots, pays the winners through the ledger and posts. Entrant
generation bypasses the API (the issue allows it): the draw is put in the state the
close leaves it in (``closed``, with the entrant list's hash and count), and the
entrants' Query pages are generated on the fly by a ``before-call`` hook, in the
same wire format moto would answer, because moto keeps every item in memory and
walks a whole partition per page (a million moto items would take gigabytes and
hours). Every other request — seed, state, slots, ledger, S3, posts — goes to moto.
The winners' accounts exist (they checked in), as a draw's winners always do.

Prints requests by operation, CPU seconds of the draw tick, and the tick's peak
Python memory (``tracemalloc``, a second run on a fresh stack: tracing slows the
code down). Figures only, no assertions.

    python benchmarks/lottery_service.py [--sizes 10000,1000000]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "layers" / "autopilot")]

from autopilot_cli import metering  # noqa: E402  (before any botocore session exists)

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_LOG_LEVEL": "ERROR",
    }
)

from autopilot.clock import ManualClock, set_clock  # noqa: E402

from autopilot_cli.local.runtime import LocalRuntime, scheduled_event  # noqa: E402

COMMUNITY = "sunrise-readers"
LOTTERY = "weekly"
# Shanghai: opens Monday 09:00 (01:00Z), closes Friday 19:55, draws Friday 20:00 (12:00Z).
PUBLISHED = datetime(2027, 3, 8, 0, 59, tzinfo=UTC)
OPENS = datetime(2027, 3, 8, 1, 0, tzinfo=UTC)
DRAWS = datetime(2027, 3, 12, 12, 0, tzinfo=UTC)
DRAW_ID = "weekly-20270308T0900"
SECTION = "Lottery"


def member_id(i: int) -> str:
    return f"wx:m{i:08d}"


def entrants(count: int) -> Iterator[tuple[str, int]]:
    """The synthetic entrant list, in member-id byte order, weight 1 (equal weights)."""
    for i in range(count):
        yield member_id(i), 1


def _claims(member: str) -> dict[str, Any]:
    return {"sub": member, "roles": "member", "scope": "autopilot/member"}


class _Stack:
    """The local stack with the example config published and the lottery open."""

    def __init__(self, runtime: LocalRuntime, clock: ManualClock):
        from autopilot.aws import client

        from autopilot_cli.configfile import published_document, validate_file

        self.runtime, self.clock = runtime, clock
        report = validate_file(str(ROOT / "config" / "communities.yaml"), now=PUBLISHED)
        assert report.loaded is not None
        client("s3", "us-east-1").put_object(
            Bucket=runtime.physical_id("ConfigBucket"),
            Key="communities.json",
            Body=published_document(report.loaded, published_at=PUBLISHED),
        )
        self.tick(OPENS + timedelta(seconds=5))

    def tick(self, at: datetime) -> dict[str, Any]:
        self.clock.set(at)
        with contextlib.redirect_stdout(io.StringIO()):  # the console channel's posts
            return dict(self.runtime.invoke("DispatcherFunction", scheduled_event(at)))

    def api(
        self, method: str, path: str, member: str, body: Any = None, query: Any = None
    ) -> dict[str, Any]:
        event = self.runtime.http_api_event(
            method,
            path,
            body=body,
            query=query,
            jwt_claims=_claims(member),
            time_utc=self.clock.now(),
        )
        response = self.runtime.invoke("ApiFunction", event)
        assert int(response["statusCode"]) < 300, response
        return dict(json.loads(response["body"]))


def _ops(counter: metering.RequestCounter) -> str:
    return ", ".join(f"{k.split('.', 1)[1]} {v}" for k, v in counter.summary().items())


def entry_requests() -> list[tuple[str, int, str]]:
    """(step, requests, by operation) of members entering through the API."""
    from autopilot.aws import reset_clients

    rows = []
    with LocalRuntime(ROOT / "template.yaml", parameters={"LogLevel": "ERROR"}) as runtime:
        reset_clients()
        clock = ManualClock(PUBLISHED)
        previous = set_clock(clock)
        try:
            stack = _Stack(runtime, clock)
            clock.set(OPENS + timedelta(hours=1))
            for i in range(3):
                stack.api("POST", "/checkins", member_id(i), {"community": COMMUNITY})
            runtime.reset_containers()
            path = f"/lotteries/{LOTTERY}/entries"

            def enter(label: str, member: str, request_id: str) -> None:
                body = {"community": COMMUNITY, "request_id": request_id}
                with metering.RequestCounter() as counter:
                    stack.api("POST", path, member, body)
                rows.append((label, counter.total, _ops(counter)))

            enter("entry (cold container)", member_id(0), "r0")
            enter("entry (warm container)", member_id(1), "r1")
            enter("entry retried (same request id)", member_id(1), "r1")
            with metering.RequestCounter() as counter:
                stack.api(
                    "GET", f"/lotteries/{LOTTERY}", member_id(1), query={"community": COMMUNITY}
                )
            rows.append(("GET /lotteries/{id} (status, my entry)", counter.total, _ops(counter)))
        finally:
            set_clock(previous)
    return rows


class _SyntheticEntrants:
    """Answers the Query of this draw's entrant rows with generated pages."""

    def __init__(self, table: str, count: int):
        from autopilot.lottery.store import draw_pk

        self.table, self.count = table, count
        self.pk = draw_pk(COMMUNITY, DRAW_ID)
        self.pages = 0
        self.active = False

    def __call__(self, model: Any = None, params: Any = None, **_: Any) -> Any:
        from botocore.awsrequest import AWSResponse
        from moto.core.botocore_stubber import MockRawResponse

        if not self.active or model is None or model.name != "Query":
            return None
        body = json.loads(params["body"])
        values = body.get("ExpressionAttributeValues", {})
        if body.get("TableName") != self.table or {"S": self.pk} not in values.values():
            return None
        if not any(v.get("S") == "E#" for v in values.values()):
            return None  # not the entrant rows (slots, meta...)
        limit = int(body.get("Limit", 5000))
        start = body.get("ExclusiveStartKey")
        first = int(start["sk"]["S"].removeprefix("E#wx:m")) + 1 if start else 0
        last = min(first + limit, self.count)
        items = [
            {
                "pk": {"S": self.pk},
                "sk": {"S": f"E#{member_id(i)}"},
                "member_id": {"S": member_id(i)},
                "weight": {"N": "1"},
                "excluded": {"BOOL": False},
            }
            for i in range(first, last)
        ]
        parsed: dict[str, Any] = {
            "Items": items,
            "Count": len(items),
            "ScannedCount": len(items),
            "ResponseMetadata": {"HTTPStatusCode": 200, "RetryAttempts": 0},
        }
        if last < self.count:
            parsed["LastEvaluatedKey"] = {
                "pk": {"S": self.pk},
                "sk": {"S": f"E#{member_id(last - 1)}"},
            }
        self.pages += 1
        metering.record("dynamodb", "Query")
        return AWSResponse(params["url"], 200, {}, MockRawResponse(b"{}")), parsed


def draw_run(count: int, *, trace: bool) -> dict[str, Any]:
    """One draw of ``count`` synthetic entrants through a dispatcher tick."""
    from autopilot.aws import reset_clients, session
    from autopilot.lottery import draw as drawlib
    from autopilot.lottery.store import LotteryStore, MetaItem

    with LocalRuntime(ROOT / "template.yaml", parameters={"LogLevel": "ERROR"}) as runtime:
        reset_clients()
        env = runtime.function_env("DispatcherFunction")
        synthetic = _SyntheticEntrants(env["LOTTERY_TABLE"], count)
        # Before any client exists: clients copy the session's handlers when created.
        events = session().get_component("event_emitter")
        events.register_first("before-call.dynamodb.Query", synthetic)
        clock = ManualClock(PUBLISHED)
        previous = set_clock(clock)
        try:
            stack = _Stack(runtime, clock)
            store = LotteryStore(
                env["LOTTERY_TABLE"], runtime.region, seed_table=env["LOTTERY_SEED_TABLE"]
            )
            meta = store.meta(COMMUNITY, DRAW_ID)
            seed = store.seed(COMMUNITY, DRAW_ID)
            assert meta is not None and seed is not None, "the open tick did not open the draw"
            # The state the close leaves: the entrant list frozen with its hash and count.
            digest = drawlib.entrants_hash(entrants(count))
            from autopilot.lottery.prizes import PrizePlan

            plan = PrizePlan.from_dict(json.loads(meta.plan))
            expected = drawlib.draw(
                entrants(count),
                seed=bytes.fromhex(seed),
                entrants_hash=digest.entrants_hash,
                prizes=plan.draw_prizes(),
                external_value="",
                commitment=meta.commitment,
            )
            meta.update(
                actions=[
                    MetaItem.state.set("closed"),
                    MetaItem.entrants_hash.set(digest.entrants_hash),
                    MetaItem.entrants_count.set(count),
                ]
            )
            # The winners are members with accounts (they checked in this week).
            clock.set(OPENS + timedelta(hours=2))
            for holder in expected.holders():
                stack.api("POST", "/checkins", holder.member_id, {"community": COMMUNITY})
            stack.tick(DRAWS - timedelta(minutes=5, seconds=-5))  # the close: already closed
            synthetic.active = True
            try:
                if trace:
                    tracemalloc.start()
                cpu = time.process_time()
                with metering.RequestCounter() as counter:
                    stack.tick(DRAWS + timedelta(seconds=5))
                cpu = time.process_time() - cpu
                peak = tracemalloc.get_traced_memory()[1] if trace else -1
                if trace:
                    tracemalloc.stop()
            finally:
                synthetic.active = False
            after = store.meta(COMMUNITY, DRAW_ID)
            assert after is not None and after.state == "paid", after and after.state
            paid = sorted(p.member_id for p in store.pay_items(COMMUNITY, DRAW_ID))
            assert paid == sorted(h.member_id for h in expected.holders()), paid
            return {
                "count": count,
                "requests": counter.total,
                "ops": _ops(counter),
                "pages": synthetic.pages,
                "cpu": cpu,
                "peak": peak,
                "winners": len(paid),
            }
        finally:
            events.unregister("before-call.dynamodb.Query", synthetic)
            set_clock(previous)


def report(sizes: list[int]) -> str:
    lines = [
        f"## {SECTION}: requests per entry, and the draw at scale",
        "",
        "`python benchmarks/lottery_service.py` (in `make bench`). Entries go through the",
        "real ApiFunction handler on the local stack (the example config's Shanghai lottery,",
        "opened by a dispatcher tick). The draw is a real dispatcher tick running",
        "`LotteryService.draw`: seed, state, entrant Query pages, record to S3, prize",
        "slots, ledger payouts of 1 + 3 prizes, winners post. The entrants' Query pages",
        "are generated on the fly in DynamoDB's wire format (entrant generation bypasses",
        "the API; moto cannot hold a million items); every other request goes to moto.",
        "",
        "| operation | AWS requests | by operation |",
        "| --- | ---: | --- |",
    ]
    for label, total, ops in entry_requests():
        lines.append(f"| {label} | {total} | {ops} |")
    lines += [
        "",
        "| entrants | AWS requests in the draw tick | entrant Query pages | CPU s "
        "(draw tick) | peak traced memory | winners paid |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    details = []
    for size in sizes:
        run = draw_run(size, trace=False)
        traced = draw_run(size, trace=True)
        lines.append(
            f"| {size:,} | {run['requests']} | {run['pages']} | {run['cpu']:.1f} | "
            f"{traced['peak'] / 2**20:.1f} MiB | {run['winners']} |"
        )
        details.append(f"- {size:,} entrants: {run['ops']}")
        print(f"lottery draw: {size:,} entrants: {run}", file=sys.stderr)
    lines += [
        "",
        "Requests of the draw tick by operation (the dispatcher's claim and outcome included):",
        "",
        *details,
        "",
        "The requests grow only with the entrant pages (5,000 entrants a page, one Query",
        "each, at most 1 MB: DynamoDB's page limit applies too); memory is one page of",
        "entrants plus a heap of the winners, whatever the number of entrants.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,1000000")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    print(report(sizes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
