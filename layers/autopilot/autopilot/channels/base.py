"""The channel interface: send a message to a community, or to one member.

A channel reports every send as a :class:`Delivery` — the platform's message id
or answer on success, the error on failure — and raises
:class:`~autopilot.errors.ChannelError` only for misconfiguration it cannot
report per message. Channels never log secrets or full message bodies.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

from autopilot.config.model import Channel as ChannelSpec
from autopilot.timeutil import iso_utc


@dataclass(frozen=True)
class Message:
    """A message to send. ``key`` is stable across retries of the same send."""

    text: str
    key: str
    community_id: str
    title: str | None = None
    job_id: str | None = None


@dataclass(frozen=True)
class Delivery:
    """The result of one send."""

    channel_id: str
    ok: bool
    at_utc: str
    message_id: str | None = None
    response: str = ""
    attempts: int = 1
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {
            "status": "published" if self.ok else "failed",
            "at_utc": self.at_utc,
            "message_id": self.message_id,
            "response": self.response[:1000],
            "attempts": self.attempts,
        }
        if self.error:
            out["error"] = self.error[:1000]
        return out


@dataclass
class ChannelEnvironment:
    """What channels need from the runtime: clients, output locations, the time."""

    region: str
    output_dir: str
    sns_topic_arn: str = ""
    stdout: TextIO | None = None  # None: whatever sys.stdout is at send time
    sns_client: Any = None

    def out(self) -> TextIO:
        return self.stdout if self.stdout is not None else sys.stdout

    def sns(self) -> Any:
        if self.sns_client is None:
            from autopilot.aws import client

            self.sns_client = client("sns", self.region)
        return self.sns_client


class Channel(ABC):
    """A configured destination."""

    type: str = ""
    supports_direct: bool = False

    def __init__(self, spec: ChannelSpec, env: ChannelEnvironment):
        self.spec = spec
        self.env = env

    @property
    def id(self) -> str:
        return self.spec.id

    @abstractmethod
    def send_to_community(self, message: Message, *, now: datetime) -> Delivery:
        """Post ``message`` where the whole community sees it."""

    def send_to_member(self, address: str, message: Message, *, now: datetime) -> Delivery:
        """Send ``message`` to one member at ``address`` (a platform user or chat id)."""
        return Delivery(
            self.id,
            False,
            iso_utc(now),
            error=f"channel type {self.type!r} cannot send direct messages",
        )
