"""HTTP API (API Gateway HTTP API, JWT authorizer): check-ins, a member's account,
redemptions, and the finance (ledger) and ops (members, adjustments) routes.

API Gateway has verified the token and the route's scopes before this runs;
``autopilot.api.auth`` decides roles, ``autopilot.api.requests`` parses strictly,
and every refusal is a ``RequestError`` mapped to its status in one place. See
docs/api.md.
"""

from __future__ import annotations

from typing import Any

from autopilot.api import requests as req
from autopilot.api.auth import FINANCE, MEMBER, OPS, Principal, principal_from_event
from autopilot.api.requests import MAX_ADJUSTMENT, Field
from autopilot.api.responses import entries_csv, install_error_answers, to_json
from autopilot.app import App
from autopilot.checkins.service import CheckinSource
from autopilot.clock import get_clock
from autopilot.config.model import Community
from autopilot.errors import BadRequest
from autopilot.ledger.service import MAX_PAGE, Adjustment, Redemption
from autopilot.members.service import MemberAnswer, MemberProfile
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
    key, request_id = req.header(event, "Idempotency-Key"), body.get("request_id")
    if key is not None:
        key = req.request_key("the Idempotency-Key header", key)
    if request_id is not None:
        request_id = req.request_key("request_id", request_id)
    if key and request_id and key != request_id:
        raise BadRequest("request_id and the Idempotency-Key header differ; send one")
    if not (key or request_id):
        raise BadRequest("send a request_id field or an Idempotency-Key header (retries are safe)")
    community = _community(who, body["community"])
    redemption = Redemption(
        member_id=who.member, reward_id=body["reward"], request_id=request_id or key
    )
    return app.ledger.redeem(community, redemption, get_clock().now()).to_json()


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
