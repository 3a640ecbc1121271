"""Channel types by name, and construction from a config channel.

Chat-platform channels are imported on first use: a function whose config only
has console/file/SNS channels never pays for ``http.client``/``ssl`` at cold start.
"""

from __future__ import annotations

import importlib

from autopilot.channels.base import Channel, ChannelEnvironment
from autopilot.config.model import Channel as ChannelSpec

_TYPES: dict[str, tuple[str, str]] = {
    "console": ("autopilot.channels.local", "ConsoleChannel"),
    "file": ("autopilot.channels.local", "FileChannel"),
    "sns": ("autopilot.channels.sns", "SnsChannel"),
    "wecom": ("autopilot.channels.webhooks", "WeComChannel"),
    "dingtalk": ("autopilot.channels.webhooks", "DingTalkChannel"),
    "feishu": ("autopilot.channels.webhooks", "FeishuChannel"),
    "slack": ("autopilot.channels.webhooks", "SlackChannel"),
    "discord": ("autopilot.channels.webhooks", "DiscordChannel"),
    "telegram": ("autopilot.channels.webhooks", "TelegramChannel"),
}


def channel_types() -> list[str]:
    """Names of the channel types this release ships."""
    return sorted(_TYPES)


def channel_class(type_name: str) -> type[Channel]:
    """The class implementing a channel type."""
    try:
        module_name, class_name = _TYPES[type_name]
    except KeyError:
        raise ValueError(f"unknown channel type {type_name!r}") from None
    cls: type[Channel] = getattr(importlib.import_module(module_name), class_name)
    return cls


def build_channel(spec: ChannelSpec, env: ChannelEnvironment) -> Channel:
    """The channel object for a config entry."""
    return channel_class(spec.type)(spec, env)
