"""Typed environment of a function, parsed once per container."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    """Resource names and knobs the template passes to every function."""

    config_bucket: str
    config_key: str
    scheduler_table: str
    posts_table: str
    posts_topic_arn: str
    output_dir: str
    config_ttl_seconds: int
    region: str
    # SSM parameters of chat channels: <prefix>/<community>/<channel> (docs/channels.md).
    channel_secrets_prefix: str = "/community-autopilot/channels"
    ledger_table: str = ""
    export_bucket: str = ""
    # The worker's queue (long jobs: exports, reconciliation, audits).
    work_queue_url: str = ""
    # Lotteries: draws, entries, payouts, coupon pools; the seeds only the dispatcher reads.
    lottery_table: str = ""
    lottery_seed_table: str = ""
    # Reminders: the fan-out queue (dispatcher -> reminder function) and the
    # markers/counters table.
    reminder_queue_url: str = ""
    reminder_table: str = ""
    # Daily metric snapshots.
    metrics_table: str = ""
    # Dead-letter queues the dispatcher watches for ops alerts.
    work_dlq_url: str = ""
    reminder_dlq_url: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from ``env`` (default ``os.environ``); missing names fail loudly."""
        env = os.environ if env is None else env

        def need(name: str) -> str:
            value = env.get(name)
            if not value:
                raise RuntimeError(f"environment variable {name} is not set (see template.yaml)")
            return value

        return cls(
            config_bucket=need("CONFIG_BUCKET"),
            config_key=env.get("CONFIG_KEY", "communities.json"),
            # A function gets only the tables its template entry grants it.
            scheduler_table=env.get("SCHEDULER_TABLE", ""),
            posts_table=env.get("POSTS_TABLE", ""),
            posts_topic_arn=env.get("POSTS_TOPIC_ARN", ""),
            # Lambda can only write under /tmp; local runs point this at --out.
            output_dir=env.get("AUTOPILOT_OUTPUT_DIR", "/tmp/autopilot"),
            config_ttl_seconds=int(env.get("CONFIG_TTL_SECONDS", "60")),
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            channel_secrets_prefix=env.get(
                "CHANNEL_SECRETS_PREFIX", "/community-autopilot/channels"
            ),
            ledger_table=env.get("LEDGER_TABLE", ""),
            export_bucket=env.get("EXPORT_BUCKET", ""),
            work_queue_url=env.get("WORK_QUEUE_URL", ""),
            lottery_table=env.get("LOTTERY_TABLE", ""),
            lottery_seed_table=env.get("LOTTERY_SEED_TABLE", ""),
            reminder_queue_url=env.get("REMINDER_QUEUE_URL", ""),
            reminder_table=env.get("REMINDER_TABLE", ""),
            metrics_table=env.get("METRICS_TABLE", ""),
            work_dlq_url=env.get("WORK_DLQ_URL", ""),
            reminder_dlq_url=env.get("REMINDER_DLQ_URL", ""),
        )
