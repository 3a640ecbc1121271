"""Fixtures for channel tests: fake platforms on 127.0.0.1 and a channel factory."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from autopilot.channels.base import ChannelEnvironment
from autopilot.channels.http import HttpClient, RetryPolicy
from autopilot.channels.registry import build_channel
from autopilot.config.model import Channel as ChannelSpec
from autopilot.secrets import SecretStore

from .platforms import PLATFORMS, FakePlatform

FAST = RetryPolicy(
    max_attempts=4,
    timeout_s=0.5,
    base_delay_s=0.01,
    max_delay_s=0.05,
    max_retry_after_s=5.0,
    min_attempt_s=0.05,
)


class StaticSsm:
    """Stands in for boto3's SSM client: the parameters a test put there."""

    def __init__(self) -> None:
        self.parameters: dict[str, str] = {}
        self.calls = 0

    def get_parameter(self, Name: str, WithDecryption: bool) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        self.calls += 1
        if Name not in self.parameters:
            raise ClientError(
                {"Error": {"Code": "ParameterNotFound", "Message": ""}}, "GetParameter"
            )
        return {"Parameter": {"Name": Name, "Value": self.parameters[Name]}}


class Sleeps(list[float]):
    """Records backoff sleeps instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def platforms() -> Iterator[Callable[[str], FakePlatform]]:
    started: list[FakePlatform] = []

    def start(platform_type: str) -> FakePlatform:
        fake = FakePlatform(PLATFORMS[platform_type].check)
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.close()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make_channel(tmp_path, sleeps) -> Callable[..., Any]:
    """``make_channel("wecom", fake, msgtype="markdown")`` → a channel wired to ``fake``.

    ``secret`` adds keys to the channel's SSM parameter (e.g. Discord's ``channel_id``).
    """

    def make(
        platform_type: str,
        fake: FakePlatform | None,
        policy: RetryPolicy = FAST,
        secret: dict[str, str] | None = None,
        **options,
    ):
        ssm = StaticSsm()
        if fake is not None:
            ssm.parameters[f"/community-autopilot/channels/club/{platform_type}-ch"] = json.dumps(
                {**PLATFORMS[platform_type].secret(fake.base), **(secret or {})}
            )
        env = ChannelEnvironment(
            region="us-east-1",
            output_dir=str(tmp_path),
            secrets=SecretStore("/community-autopilot/channels", "us-east-1", client=ssm),
            http_client=HttpClient(policy, sleep=sleeps, rand=lambda: 1.0),
        )
        spec = ChannelSpec(id=f"{platform_type}-ch", type=platform_type, options=options)
        return build_channel(spec, env)

    return make
