"""Wiring: builds the stores, services and dispatcher a function needs from its settings.

Handlers create one :class:`App` per container at import time (cheap: no AWS
client is created until first use) and call one method per event.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, TextIO

from autopilot.aws import client
from autopilot.channels import ChannelEnvironment
from autopilot.clock import Clock
from autopilot.config.model import Config
from autopilot.config.store import ConfigStore
from autopilot.posts.service import PostService
from autopilot.posts.store import PostStore
from autopilot.scheduler.service import Dispatcher, TickReport
from autopilot.scheduler.store import SchedulerStore
from autopilot.settings import Settings

logger = logging.getLogger(__name__)


class _LazyS3:
    """Creates the S3 client on first call, keeping it off the import path."""

    def __init__(self, region: str):
        self._region = region

    def __getattr__(self, name: str) -> Any:
        return getattr(client("s3", self._region), name)


class App:
    """The services of one container."""

    def __init__(
        self, settings: Settings, *, clock: Clock | None = None, stdout: TextIO | None = None
    ):
        self.settings = settings
        self.clock = clock
        self.config_store = ConfigStore(
            _LazyS3(settings.region),
            settings.config_bucket,
            settings.config_key,
            ttl=timedelta(seconds=settings.config_ttl_seconds),
            clock=clock,
        )
        self.channel_env = ChannelEnvironment(
            region=settings.region,
            output_dir=settings.output_dir,
            sns_topic_arn=settings.posts_topic_arn,
            stdout=stdout,
        )
        self.scheduler_store = SchedulerStore(settings.scheduler_table)
        self.post_store = PostStore(settings.posts_table, settings.region)
        self.posts = PostService(self.post_store, self.channel_env, clock=clock)
        self.dispatcher = Dispatcher(self.scheduler_store, {"post": self.posts.run}, clock=clock)

    def config(self) -> Config:
        """The current published config (cached; see ``ConfigStore``)."""
        return self.config_store.get()

    def tick(self, *, remaining_ms: Any = None) -> TickReport:
        """One dispatcher tick at the clock's current time."""
        return self.dispatcher.tick(self.config(), remaining_ms=remaining_ms)
