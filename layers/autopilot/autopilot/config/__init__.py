"""The ops-edited community config: typed model, parsing and the published store.

The names below are loaded from :mod:`autopilot.config.model` on first use, not when
the package is imported: leaf rule modules (e.g. ``autopilot.lottery.prizes``) read
constants from :mod:`autopilot.config.document`, and the model imports them back, so
an eager import here would make their import order matter.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("autopilot.config.model"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
