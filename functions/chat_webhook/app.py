"""Chat-bot check-ins and lottery entries: ``POST /webhooks/{platform}?community=<id>``
(no JWT: each platform signs its requests; see autopilot.webhooks and docs/api.md).

Slack slash commands, Telegram bot updates, and any other platform through the
generic HMAC scheme. A message that is one of the community's ``chat_keywords``
checks the member in; a lottery's entry keyword enters it, its claim keyword
claims a prize; anything else gets a short help answer and writes nothing.
"""

from __future__ import annotations

from typing import Any

from autopilot.api import requests as req
from autopilot.api.responses import install_error_answers, to_json
from autopilot.app import App
from autopilot.clock import get_clock
from autopilot.secrets import SecretStore
from autopilot.settings import Settings
from autopilot.webhooks.secrets import WebhookSecrets
from autopilot.webhooks.service import WebhookService
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
copy_config_to_registered_loggers(source_logger=logger, include={"autopilot"})
settings = Settings.from_env()
app = App(settings)
# Each (community, platform) has its own signing secrets in SSM (docs/api.md).
webhooks = WebhookService(
    app.checkins,
    WebhookSecrets(SecretStore(settings.channel_secrets_prefix, settings.region)),
    lotteries=app.lotteries,
    members=app.members,
)
api = APIGatewayHttpResolver(serializer=to_json)


@api.post("/webhooks/<platform>")
def webhook(platform: str) -> Response[Any]:
    event = api.current_event.raw_event
    query = req.query(event, {"community"}, {"community"})
    community = req.community_of(app.config(), query["community"])
    reply = webhooks.handle(
        community,
        platform,
        headers=event.get("headers") or {},
        body=req.raw_body(event),
        now=get_clock().now(),
    )
    return Response(reply.status, "application/json", reply.body if reply.body is not None else "")


install_error_answers(api, logger, "webhook")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Answer one webhook request (payload 2.0)."""
    return api.resolve(event, context)
