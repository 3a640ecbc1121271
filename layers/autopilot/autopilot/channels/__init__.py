"""Channels: where messages go, behind one small interface (see ``base``)."""

from autopilot.channels.base import Channel, ChannelEnvironment, Delivery, Message
from autopilot.channels.registry import build_channel, channel_types

__all__ = ["Channel", "ChannelEnvironment", "Delivery", "Message", "build_channel", "channel_types"]
