"""HTTP API (API Gateway HTTP API, JWT authorizer): check-ins, a member's account
and preferences, redemptions, lotteries, the finance (ledger) and ops (members, adjustments,
lottery changes) routes, and the daily metric snapshots (ops or finance).

API Gateway has verified the token and the route's scopes before this runs;
``autopilot.api.auth`` decides roles, ``autopilot.api.requests`` parses strictly,
and every refusal is a ``RequestError`` mapped to its status in one place. See
docs/api.md.
"""

from __future__ import annotations

from typing import Any

from autopilot.api import requests as req
from autopilot.api.auth import FINANCE, MEMBER, OPS, Forbidden, Principal, principal_from_event
from autopilot.api.requests import MAX_ADJUSTMENT, MAX_EXTERNAL_VALUE_BYTES, Field
from autopilot.api.responses import entries_csv, install_error_answers, to_json
from autopilot.app import App
from autopilot.checkins.service import CheckinSource
from autopilot.clock import get_clock
from autopilot.config.model import Community
from autopilot.errors import BadRequest
from autopilot.ledger.service import MAX_PAGE, Adjustment, Redemption
from autopilot.members.service import MemberAnswer, MemberProfile
from autopilot.metrics.export import missing_days, snapshots_csv
from autopilot.settings import Settings
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
copy_config_to_registered_loggers(source_logger=logger, include={"autopilot"})
app = App(Settings.from_env())
api = APIGatewayHttpResolver(serializer=to_json)


def _caller(role: str) -> Principal:
    principal = principal_from_event(api.current_event.raw_event)
    principal.require(role)  # before parsing: a member gets 403, not a hint about the body
    return principal


def _caller_any(*roles: str) -> Principal:
    """The caller, who must have one of ``roles`` (403 naming them otherwise)."""
    principal = principal_from_event(api.current_event.raw_event)
    if not principal.roles & set(roles):
        needed = " or ".join(repr(role) for role in roles)
        raise Forbidden(f"this route needs the {needed} role", code="Forbidden")
    return principal


def _community(principal: Principal, community_id: str) -> Community:
    principal.check_community(community_id)
    return req.community_of(app.config(), community_id)


@api.post("/checkins")
def check_in() -> dict[str, Any]:
    who = _caller(MEMBER)
    body = req.fields(
        req.json_object(api.current_event.raw_event),
        {"community": Field(str, required=True), "makeup": Field(bool)},
    )
    community = _community(who, body["community"])
    result = app.checkins.check_in(
        community,
        who.member,
        get_clock().now(),
        source=CheckinSource.API,
        makeup=body.get("makeup", False),
    )
    return result.to_json()


@api.get("/me")
def me() -> dict[str, Any]:
    who = _caller(MEMBER)
    query = req.query(api.current_event.raw_event, {"community"}, {"community"})
    return app.checkins.me(_community(who, query["community"]), who.member).to_json()


@api.put("/me/preferences")
def put_preferences() -> dict[str, Any]:
    who = _caller(MEMBER)
    body = req.fields(
        req.json_object(api.current_event.raw_event),
        {"community": Field(str, required=True)},
        allow_extra=True,  # reminders, timezone, dm_address: MemberService validates them
    )
    community = _community(who, body.pop("community"))
    return app.members.set_preferences(community, who.member, body, get_clock().now()).to_json()


@api.post("/redemptions")
def redeem() -> dict[str, Any]:
    who = _caller(MEMBER)
    event = api.current_event.raw_event
    body = req.fields(
        req.json_object(event),
        {
            "community": Field(str, required=True),
            "reward": Field(str, required=True),
            "request_id": Field(str),
        },
    )
    request_id = req.idempotency_key(event, body.get("request_id"))
    community = _community(who, body["community"])
    redemption = Redemption(member_id=who.member, reward_id=body["reward"], request_id=request_id)
    return app.ledger.redeem(community, redemption, get_clock().now()).to_json()


def _lottery(who: Principal, community_id: str, raw_lottery_id: str) -> tuple[Community, str]:
    """The community and the lottery of the path (400 malformed, 403 pinned, 404 unknown)."""
    lottery_id = req.config_id("the lottery id", req.path_parameter("lottery_id", raw_lottery_id))
    community = _community(who, community_id)
    return community, req.lottery_of(community, lottery_id).id


def _draw(query: dict[str, str]) -> str | None:
    return req.draw_id("draw", query["draw"]) if "draw" in query else None


@api.post("/lotteries/<lottery_id>/entries")
def enter_lottery(lottery_id: str) -> Response[Any]:
    who = _caller(MEMBER)
    event = api.current_event.raw_event
    body = req.fields(
        req.json_object(event),
        {
            "community": Field(str, required=True),
            "tickets": Field(int, low=1),
            "request_id": Field(str),
        },
    )
    request_id = req.idempotency_key(event, body.get("request_id"))
    community, lottery = _lottery(who, body["community"], lottery_id)
    result = app.lotteries.enter(
        community,
        lottery,
        who.member,
        tickets=body.get("tickets", 1),
        request_id=request_id,
        at_utc=get_clock().now(),
    )
    return Response(200 if result.repeat else 201, "application/json", result.to_json())


@api.get("/lotteries/<lottery_id>")
def lottery_status(lottery_id: str) -> dict[str, Any]:
    who = _caller(MEMBER)
    query = req.query(api.current_event.raw_event, {"community", "draw"}, {"community"})
    draw = _draw(query)
    community, lottery = _lottery(who, query["community"], lottery_id)
    return app.lotteries.status(community, lottery, who.member, draw_id=draw)


@api.get("/lotteries/<lottery_id>/record")
def lottery_record(lottery_id: str) -> dict[str, Any]:
    who = _caller(MEMBER)
    query = req.query(api.current_event.raw_event, {"community", "draw"}, {"community"})
    draw = _draw(query)
    community, lottery = _lottery(who, query["community"], lottery_id)
    return app.lotteries.record(community, lottery, draw_id=draw)


@api.post("/lotteries/<lottery_id>/claim")
def claim_prize(lottery_id: str) -> dict[str, Any]:
    who = _caller(MEMBER)
    body = req.fields(
        req.json_object(api.current_event.raw_event), {"community": Field(str, required=True)}
    )
    community, lottery = _lottery(who, body["community"], lottery_id)
    return app.lotteries.claim(community, lottery, who.member, at_utc=get_clock().now())


@api.post("/lotteries/<lottery_id>/disqualify")
def disqualify_winner(lottery_id: str) -> dict[str, Any]:
    who = _caller(OPS)
    body = req.fields(
        req.json_object(api.current_event.raw_event),
        {
            "community": Field(str, required=True),
            "member": Field(str, required=True),
            "reason": Field(str, required=True),
            "draw": Field(str),
        },
    )
    member = req.member_id("member", body["member"])
    draw = req.draw_id("draw", body["draw"]) if "draw" in body else None
    community, lottery = _lottery(who, body["community"], lottery_id)
    return app.lotteries.disqualify(
        community,
        lottery,
        member,
        reason=body["reason"],
        actor=f"ops:{who.member}",
        at_utc=get_clock().now(),
        draw_id=draw,
    )


@api.put("/lotteries/<lottery_id>/external-value")
def set_external_value(lottery_id: str) -> dict[str, Any]:
    who = _caller(OPS)
    body = req.fields(
        req.json_object(api.current_event.raw_event),
        {
            "community": Field(str, required=True),
            "value": Field(str, required=True, max_chars=MAX_EXTERNAL_VALUE_BYTES),
        },
    )
    value = req.external_value("value", body["value"])
    community, lottery = _lottery(who, body["community"], lottery_id)
    return app.lotteries.set_external_value(
        community, lottery, value, actor=f"ops:{who.member}", at_utc=get_clock().now()
    )


@api.post("/lotteries/<lottery_id>/cancel")
def cancel_draw(lottery_id: str) -> dict[str, Any]:
    who = _caller(OPS)
    body = req.fields(
        req.json_object(api.current_event.raw_event),
        {"community": Field(str, required=True), "reason": Field(str, required=True)},
    )
    community, lottery = _lottery(who, body["community"], lottery_id)
    return app.lotteries.cancel(
        community,
        lottery,
        reason=body["reason"],
        actor=f"ops:{who.member}",
        at_utc=get_clock().now(),
    )


@api.get("/ledger")
def ledger() -> Response[str] | dict[str, Any]:
    who = _caller(FINANCE)
    event = api.current_event.raw_event
    allowed = {"community", "since", "until", "member", "reason", "limit", "cursor"}
    query = req.query(event, allowed, {"community", "since", "until"})
    since, until = req.day("since", query["since"]), req.day("until", query["until"])
    limit = req.integer("limit", query.get("limit", "100"), 1, MAX_PAGE)
    member = req.member_id("member", query["member"]) if "member" in query else None
    community = _community(who, query["community"])
    page = app.ledger.entries(
        community,
        since=since,
        until=until,
        member_id=member,
        reason=query.get("reason"),
        limit=limit,
        cursor=query.get("cursor"),
    )
    if "text/csv" in (req.header(event, "Accept") or ""):
        cursor = page.next_cursor
        return Response(
            200,
            "text/csv; charset=utf-8",
            entries_csv(page.entries),
            headers={"X-Next-Cursor": cursor} if cursor else None,
        )
    return page.to_json()


@api.get("/ledger/summary")
def ledger_summary() -> dict[str, Any]:
    who = _caller(FINANCE)
    query = req.query(
        api.current_event.raw_event,
        {"community", "since", "until", "by"},
        {"community", "since", "until"},
    )
    since, until = req.day("since", query["since"]), req.day("until", query["until"])
    by = req.choice("by", query.get("by", "day"), ("day", "month"))
    community = _community(who, query["community"])
    return app.ledger.summary(community, since=since, until=until, by=by).to_json()


# One request reads at most a year of snapshots (a leap year included): one Query
# page of a few hundred kB, an answer far below Lambda's 6 MB.
MAX_METRICS_DAYS = 366


@api.get("/metrics")
def metrics() -> Response[str] | dict[str, Any]:
    who = _caller_any(OPS, FINANCE)
    event = api.current_event.raw_event
    query = req.query(event, {"community", "from", "to", "format"}, {"community", "from", "to"})
    first, last = req.day("from", query["from"]), req.day("to", query["to"])
    if first > last:
        raise BadRequest(f"from ({first}) must not be after to ({last})")
    if (last - first).days + 1 > MAX_METRICS_DAYS:
        raise BadRequest(
            f"to must be within {MAX_METRICS_DAYS} days of from (both included): "
            f"{first}..{last} is {(last - first).days + 1} days"
        )
    wants_csv = "text/csv" in (req.header(event, "Accept") or "")
    if "format" in query:
        wants_csv = req.choice("format", query["format"], ("json", "csv")) == "csv"
    community = _community(who, query["community"])
    snapshots = list(app.metrics.store.snapshots(community.id, first, last))
    if wants_csv:
        filename = f"metrics-{community.id}-{first}-{last}.csv"  # ids are [a-z0-9_-]
        return Response(
            200,
            "text/csv; charset=utf-8",
            snapshots_csv(snapshots),
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    return {
        "community": community.id,
        "from": first.isoformat(),
        "to": last.isoformat(),
        "snapshots": snapshots,
        "missing_days": missing_days(snapshots, first, last),
    }


@api.put("/members/<member_id>")
def put_member(member_id: str) -> dict[str, Any]:
    who = _caller(OPS)
    member = req.member_id("member_id", req.path_parameter("member_id", member_id))
    body = req.fields(
        req.json_object(api.current_event.raw_event),
        {"community": Field(str, required=True)},
        allow_extra=True,  # profile fields: MemberService validates and names them
    )
    community = _community(who, body.pop("community"))
    account = app.members.upsert(
        community, member, body, get_clock().now(), via=f"ops:{who.member}"
    )
    return MemberAnswer(community.id, member, MemberProfile.of(account)).to_json()


@api.delete("/members/<member_id>")
def delete_member(member_id: str) -> dict[str, Any]:
    who = _caller(OPS)
    member = req.member_id("member_id", req.path_parameter("member_id", member_id))
    query = req.query(api.current_event.raw_event, {"community"}, {"community"})
    community = _community(who, query["community"])
    account = app.members.leave(community, member, get_clock().now())
    return MemberAnswer(community.id, member, MemberProfile.of(account)).to_json()


@api.post("/ledger/adjustments")
def adjust() -> dict[str, Any]:
    who = _caller(OPS)
    body = req.fields(
        req.json_object(api.current_event.raw_event),
        {
            "community": Field(str, required=True),
            "member": Field(str, required=True),
            "amount": Field(int, required=True, low=-MAX_ADJUSTMENT, high=MAX_ADJUSTMENT),
            "reason": Field(str, required=True),
            "ref": Field(str, required=True),
        },
    )
    member = req.member_id("member", body["member"])
    req.request_key("ref", body["ref"])
    community = _community(who, body["community"])
    adjustment = Adjustment(
        member_id=member,
        amount=body["amount"],
        reason=body["reason"],
        ref=body["ref"],
        actor=f"ops:{who.member}",
    )
    return app.ledger.adjust(community, adjustment, get_clock().now()).to_json()


install_error_answers(api, logger, "request")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Route one HTTP API (payload 2.0) request."""
    return api.resolve(event, context)
