"""Channel types by name, and construction from a config channel."""

from __future__ import annotations

from autopilot.channels.base import Channel, ChannelEnvironment
from autopilot.channels.local import ConsoleChannel, FileChannel
from autopilot.channels.sns import SnsChannel
from autopilot.config.model import Channel as ChannelSpec

_TYPES: dict[str, type[Channel]] = {
    ConsoleChannel.type: ConsoleChannel,
    FileChannel.type: FileChannel,
    SnsChannel.type: SnsChannel,
}


def channel_types() -> list[str]:
    """Names of the channel types this release ships."""
    return sorted(_TYPES)


def build_channel(spec: ChannelSpec, env: ChannelEnvironment) -> Channel:
    """The channel object for a config entry."""
    try:
        return _TYPES[spec.type](spec, env)
    except KeyError:
        raise ValueError(f"unknown channel type {spec.type!r}") from None
