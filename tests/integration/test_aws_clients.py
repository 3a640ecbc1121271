"""One botocore session per container, clients only for the services a request uses,
bounded timeouts and retries on every client (see ``autopilot.aws``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import botocore.session
import pytest
from autopilot import aws
from autopilot.aws import ClientLimits, reset_clients
from autopilot.ledger.store import AccountItem, EntryItem, RefItem
from autopilot.posts.store import PostItem, RotationItem
from autopilot.scheduler.store import OccurrenceItem

from autopilot_cli.local.cfn import load_template
from autopilot_cli.local.runtime import scheduled_event

from .api_support import make_api, token
from .conftest import make_config


@dataclass
class Created:
    """botocore sessions and clients constructed while watching."""

    sessions: int = 0
    clients: list[Any] = field(default_factory=list)

    @property
    def services(self) -> list[str]:
        return sorted(c.meta.service_model.service_name for c in self.clients)


@contextmanager
def watching() -> Iterator[Created]:
    """Count ``botocore.session.Session`` constructions and the clients they create."""
    seen = Created()
    init = botocore.session.Session.__init__
    create = botocore.session.Session.create_client

    def counting_init(self: Any, *args: Any, **kwargs: Any) -> None:
        seen.sessions += 1
        init(self, *args, **kwargs)

    def recording_create(self: Any, *args: Any, **kwargs: Any) -> Any:
        made = create(self, *args, **kwargs)
        seen.clients.append(made)
        return made

    # Start cold: a new container has no session and no client yet.
    reset_clients()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore.session.Session, "__init__", counting_init)
        patch.setattr(botocore.session.Session, "create_client", recording_create)
        yield seen


def assert_bounded(clients: list[Any]) -> None:
    limits = ClientLimits()
    for made in clients:
        config = made.meta.config
        name = made.meta.service_model.service_name
        assert config.connect_timeout == limits.connect_timeout_s, name
        assert config.read_timeout == limits.read_timeout_s, name
        assert config.retries == {"mode": "standard", "total_max_attempts": limits.max_attempts}, (
            name
        )


def test_check_in_on_a_cold_container_builds_one_session_and_only_dynamodb_and_s3(stack):
    api = make_api(stack)
    stack.runtime.reset_containers()
    with watching() as seen:
        answer = api.call("POST", "/checkins", auth=token("alice"), body={"community": "sunrise"})
        # A second request on the warm container creates nothing more.
        again = api.call("POST", "/checkins", auth=token("alice"), body={"community": "sunrise"})
    assert answer.status == 200, answer.body
    assert again.status == 200, again.body
    # The config (S3) and the ledger (DynamoDB): no SSM, SNS or SQS client.
    assert seen.sessions == 1
    assert seen.services == ["dynamodb", "s3"]
    assert_bounded(seen.clients)


def test_idle_dispatcher_tick_shares_the_session_between_s3_and_every_model(stack):
    stack.push(make_config())
    when = stack.clock.now() + timedelta(minutes=1)
    stack.clock.set(when)
    stack.runtime.reset_containers()
    with watching() as created:
        stack.runtime.invoke("DispatcherFunction", scheduled_event(when))
    assert created.sessions == 1
    assert created.services == ["dynamodb", "s3"]
    assert_bounded(created.clients)


def test_every_model_uses_the_shared_session_and_dynamodb_client(stack):
    with watching() as created:
        stack.app()  # the stores bind their models on construction
        dynamodb = aws.client("dynamodb", "us-east-1")
        for model in (AccountItem, RefItem, EntryItem, PostItem, RotationItem, OccurrenceItem):
            connection = model._get_connection().connection
            assert connection.client is dynamodb, model.__name__
            assert connection.session is aws.session(), model.__name__
    assert created.sessions == 1
    assert created.services == ["dynamodb"]


def test_every_functions_client_limits_fit_well_inside_its_timeout():
    template = load_template("template.yaml")
    assert ClientLimits().worst_case_s() == 7.0  # 2 x (1 s connect + 2 s read) + 1 s back-off
    checked = 0
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        properties = resource["Properties"]
        variables = (properties.get("Environment") or {}).get("Variables") or {}
        own = {k: str(v) for k, v in variables.items() if k.startswith("AUTOPILOT_AWS_")}
        worst = ClientLimits.from_env(own).worst_case_s()
        assert worst < properties["Timeout"] * 0.75, logical_id
        checked += 1
    assert checked >= 3


def test_limits_come_from_the_environment_and_bad_values_fail_loudly():
    limits = ClientLimits.from_env(
        {
            "AUTOPILOT_AWS_CONNECT_TIMEOUT_S": "3",
            "AUTOPILOT_AWS_READ_TIMEOUT_S": "30",
            "AUTOPILOT_AWS_MAX_ATTEMPTS": "5",
        }
    )
    assert limits == ClientLimits(connect_timeout_s=3, read_timeout_s=30, max_attempts=5)
    assert ClientLimits.from_env({}) == ClientLimits()
    with pytest.raises(RuntimeError, match="AUTOPILOT_AWS_READ_TIMEOUT_S='soon' is not a number"):
        ClientLimits.from_env({"AUTOPILOT_AWS_READ_TIMEOUT_S": "soon"})
    with pytest.raises(RuntimeError, match="AUTOPILOT_AWS_MAX_ATTEMPTS='0' must be positive"):
        ClientLimits.from_env({"AUTOPILOT_AWS_MAX_ATTEMPTS": "0"})
