"""The ops-edited community config: typed model, parsing and the published store."""

from autopilot.config.model import (
    Channel,
    Community,
    Config,
    ContentItem,
    Job,
    MisfirePolicy,
    Pool,
    QuietHours,
    parse_config,
)

__all__ = [
    "Channel",
    "Community",
    "Config",
    "ContentItem",
    "Job",
    "MisfirePolicy",
    "Pool",
    "QuietHours",
    "parse_config",
]
