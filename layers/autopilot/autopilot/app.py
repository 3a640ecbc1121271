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
from autopilot.channels.ratelimit import RateLimiter
from autopilot.checkins.fields import CHECKIN_FIELDS
from autopilot.checkins.rules import checkin_day
from autopilot.checkins.service import CheckinService
from autopilot.clock import Clock, get_clock
from autopilot.config.model import METRICS_ACTION, REPORT_ACTION, Config
from autopilot.config.store import ConfigStore
from autopilot.ledger.jobs import Worker, WorkQueue, ledger_actions
from autopilot.ledger.service import LedgerService
from autopilot.ledger.store import LedgerStore
from autopilot.lottery.service import LotteryService
from autopilot.lottery.store import LotteryStore
from autopilot.members.service import MemberService
from autopilot.metrics.alerts import AlertService, AlertStore
from autopilot.metrics.reports import ReportPoster
from autopilot.metrics.service import MetricsService, publish_tick_metrics
from autopilot.metrics.store import MetricsStore
from autopilot.posts.context import PostContext, register_provider
from autopilot.posts.service import PostService
from autopilot.posts.store import PostStore
from autopilot.reminders.service import ReminderQueue, ReminderService
from autopilot.reminders.store import ReminderStore
from autopilot.scheduler.index import ALL, Shard
from autopilot.scheduler.service import Dispatcher, TickReport
from autopilot.scheduler.store import SchedulerStore
from autopilot.secrets import SecretStore
from autopilot.settings import Settings
from autopilot.timeutil import zone

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
            # Chat channels: secrets from SSM, one shared token bucket per channel in
            # the posts table (both lazy: no client until a chat channel sends).
            secrets=SecretStore(settings.channel_secrets_prefix, settings.region),
            rate_limiter=RateLimiter(settings.posts_table, settings.region)
            if settings.posts_table
            else None,
        )
        self.scheduler_store = SchedulerStore(settings.scheduler_table)
        # Ops alerts: incidents once each, to the communities' alert channels.
        self.alert_store = AlertStore(settings.scheduler_table, settings.region)
        self.post_store = PostStore(settings.posts_table, settings.region)
        self.posts = PostService(self.post_store, self.channel_env, clock=clock)
        self.ledger_store = LedgerStore(settings.ledger_table, settings.region)
        self.members = MemberService(self.ledger_store)
        self.checkins = CheckinService(self.ledger_store, self.members)
        self.ledger = LedgerService(self.ledger_store, cache=self.checkins.cache)
        register_provider(CHECKIN_FIELDS, self._checkin_fields, name="checkins")
        # Long work (ledger exports, reconciliation) goes to the worker's queue.
        self.work_queue = WorkQueue(settings.work_queue_url, settings.region)
        self.worker = Worker(
            self.ledger_store,
            self.ledger,
            self.scheduler_store,
            self.config,
            self.work_queue,
            _LazyS3(settings.region),
            settings.export_bucket,
            now=lambda: (clock or get_clock()).now(),
            alerts=self.alert_store,
        )
        # Lotteries: the seed table is configured for the dispatcher only (its role
        # alone may read seeds); entries, status and claims need just the lottery table.
        self.lottery_store = LotteryStore(
            settings.lottery_table, settings.region, seed_table=settings.lottery_seed_table
        )
        self.lotteries = LotteryService(
            self.lottery_store,
            self.ledger_store,
            self.ledger,
            self.members,
            self.posts,
            _LazyS3(settings.region),
            settings.export_bucket,
            clock=clock,
        )
        # Reminders: selected by the dispatcher, sent by the reminder function,
        # converted at check-in.
        self.reminder_store = ReminderStore(settings.reminder_table, settings.region)
        self.reminder_queue = ReminderQueue(settings.reminder_queue_url, settings.region)
        self.reminders = ReminderService(
            self.reminder_store,
            self.ledger_store,
            self.reminder_queue,
            self.channel_env,
            self.config,
            lotteries=self.lottery_store,
            clock=clock,
        )
        self.checkins.on_checked_in = self.reminders.on_checkin
        self.alerts = AlertService(
            self.alert_store,
            self.channel_env,
            dead_letter_queues=[
                ("work", settings.work_dlq_url),
                ("reminder", settings.reminder_dlq_url),
            ],
            region=settings.region,
        )
        # Daily metric snapshots (the derived metrics.daily job of every community).
        self.metrics = MetricsService(
            MetricsStore(settings.metrics_table, settings.region),
            posts=self.post_store,
            reminders=self.reminder_store,
            lotteries=self.lottery_store,
            clock=clock,
        )
        actions = {
            "post": self.posts.run,
            METRICS_ACTION: self.metrics.snapshot_action,
            REPORT_ACTION: ReportPoster(self.metrics.store, self.posts).run,
            "reminder": self.reminders.select,
            **ledger_actions(self.work_queue),
            "lottery_open": self.lotteries.open,
            "lottery_close": self.lotteries.close,
            "lottery_draw": self.lotteries.draw,
            "lottery_expire": self.lotteries.expire,
        }
        self.dispatcher = Dispatcher(self.scheduler_store, actions, clock=clock)

    def _checkin_fields(self, ctx: PostContext) -> dict[str, Any]:
        """Live check-in counts for post templates (read from the sharded counters).

        "Today" is the community's current check-in day (after the day boundary),
        the day the counters count check-ins on.
        """
        community = ctx.community
        today = checkin_day(ctx.at_utc, zone(community.timezone), community.day_boundary)

        return {
            "checkins_today": self.ledger_store.checkins_on(ctx.community.id, today),
            "checkins_yesterday": self.ledger_store.checkins_on(
                ctx.community.id, today - timedelta(days=1)
            ),
        }

    def config(self) -> Config:
        """The current published config (cached; see ``ConfigStore``)."""
        return self.config_store.get()

    def tick(self, *, remaining_ms: Any = None, shard: Shard = ALL) -> TickReport:
        """One dispatcher tick at the clock's current time (for one shard's communities)."""
        report = self.dispatcher.tick(
            self.config(),
            remaining_ms=remaining_ms,
            refresh=self.config_store.revalidate,
            shard=shard,
        )
        if not report.idle:
            # Occurrences by outcome as CloudWatch metrics (the failed-occurrence alarm).
            publish_tick_metrics(report.summary()["counts"], report.now_utc)
        self.alerts.after_tick(self.config(), report)
        return report
