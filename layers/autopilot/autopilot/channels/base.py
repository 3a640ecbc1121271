"""The channel interface: send a message to a community, or to one member.

A channel reports every send as a :class:`Delivery` — the platform's message id
or answer on success, the error on failure — and raises
:class:`~autopilot.errors.ChannelError` only for misconfiguration it cannot
report per message. Channels never log secrets or full message bodies.

Sends that talk to a network take a :class:`Deadline`: the time the invocation
can still spend on them. It is a hard bound on the whole send — every socket
operation of every attempt, the retries, the rate-limit waits, an SNS publish —
so the caller always has its reserve left to record the outcome. A send cut off
by it reports an unknown outcome (the platform may have accepted the message).

A planned reminder (``autopilot.reminders.mentions.PlannedMessage``) goes out
with :meth:`Channel.send_planned`: a direct one through ``send_to_member``, a
group one as the planner's whole platform body where the channel posts bodies
(the chat platforms), as its text everywhere else.
"""

from __future__ import annotations

import math
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

from autopilot.config.model import Channel as ChannelSpec
from autopilot.timeutil import iso_utc

if TYPE_CHECKING:  # only for annotations: keeps urllib/http.client off the import path
    from autopilot.channels.http import HttpClient
    from autopilot.channels.ratelimit import RateLimiter
    from autopilot.reminders.mentions import PlannedMessage
    from autopilot.secrets import SecretStore


@dataclass(frozen=True)
class Message:
    """A message to send. ``key`` is stable across retries of the same send.

    ``idempotency_key`` identifies the *occurrence* the message posts (the
    dispatcher sets it to the occurrence's id): on platforms that deduplicate
    (Discord ``nonce``, Feishu/Lark ``uuid``) a stable key derived from it is sent
    with every part, so a rerun after a crash cannot post the message twice.
    ``None``: no platform deduplication (manual sends, ``channel test``).
    """

    text: str
    key: str
    community_id: str
    title: str | None = None
    job_id: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Delivery:
    """The result of one send (of all its parts, when a long message was split).

    ``unknown`` marks a failed send whose outcome nobody knows: the request may
    have reached the platform but no answer came back (a read timeout, a
    connection dropped mid-answer, the deadline reached mid-answer, an SNS
    publish whose answer was lost). It is recorded as ``"uncertain"`` rather than
    ``"failed"`` so that nothing re-posts it blindly and ops can look.
    """

    channel_id: str
    ok: bool
    at_utc: str
    message_id: str | None = None
    response: str = ""
    attempts: int = 1
    error: str | None = None
    parts: int = 1
    unknown: bool = False

    @property
    def status(self) -> str:
        """``published``, ``failed``, or ``uncertain`` (no answer: it may have gone out)."""
        if self.ok:
            return "published"
        return "uncertain" if self.unknown else "failed"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": self.status,
            "at_utc": self.at_utc,
            "message_id": self.message_id,
            "response": self.response[:1000],
            "attempts": self.attempts,
        }
        if self.parts != 1:
            out["parts"] = self.parts
        if self.error:
            out["error"] = self.error[:1000]
        if self.unknown and not self.ok:
            out["unknown"] = True
        return out


@dataclass(frozen=True)
class Deadline:
    """How long a send may still take.

    ``remaining_ms`` is the Lambda context's ``get_remaining_time_in_millis`` (or
    ``None`` outside Lambda: no invocation limit). ``reserve_ms`` is kept back for
    the caller to record deliveries and the occurrence's outcome after the send.
    """

    remaining_ms: Callable[[], int] | None = None
    reserve_ms: int = 5_000

    def remaining_s(self) -> float:
        """Seconds a send may still use (``inf`` without an invocation limit)."""
        if self.remaining_ms is None:
            return math.inf
        return max(0.0, (self.remaining_ms() - self.reserve_ms) / 1000.0)


UNLIMITED = Deadline()


@dataclass
class ChannelEnvironment:
    """What channels need from the runtime: clients, output locations, secrets, limits.

    ``secrets`` (SSM), ``rate_limiter`` (DynamoDB) and ``http`` are only used by
    the chat-platform channels; local channels ignore them.
    """

    region: str
    output_dir: str
    sns_topic_arn: str = ""
    stdout: TextIO | None = None  # None: whatever sys.stdout is at send time
    sns_client: Any = None
    secrets: SecretStore | None = None
    rate_limiter: RateLimiter | None = None
    http_client: HttpClient | None = None

    def out(self) -> TextIO:
        return self.stdout if self.stdout is not None else sys.stdout

    def sns(self) -> Any:
        if self.sns_client is None:
            from autopilot.aws import client

            self.sns_client = client("sns", self.region)
        return self.sns_client

    def http(self) -> HttpClient:
        """The HTTP client with its retry policy (created on first use)."""
        if self.http_client is None:
            from autopilot.channels.http import HttpClient

            self.http_client = HttpClient()
        return self.http_client


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
    def send_to_community(
        self, message: Message, *, now: datetime, deadline: Deadline = UNLIMITED
    ) -> Delivery:
        """Post ``message`` where the whole community sees it."""

    def send_to_member(
        self, address: str, message: Message, *, now: datetime, deadline: Deadline = UNLIMITED
    ) -> Delivery:
        """Send ``message`` to one member at ``address`` (a platform user or chat id).

        Channels that cannot reach one member answer with a failed delivery
        saying so (``supports_direct`` is False), never by raising.
        """
        return Delivery(
            self.id,
            False,
            iso_utc(now),
            error=f"channel type {self.type!r} cannot send direct messages",
        )

    def send_planned(
        self,
        planned: PlannedMessage,
        message: Message,
        *,
        now: datetime,
        deadline: Deadline = UNLIMITED,
    ) -> Delivery:
        """Send one message of a reminder's delivery plan (``plan_delivery``).

        ``message`` carries what the plan does not: the send's ``key``, the
        community, the title and the ``idempotency_key``; its text is replaced by
        the plan's. A "direct" plan is ``send_to_member`` to its address (a failed
        delivery where the channel has no DMs); a "group" plan is
        :meth:`send_group`. Never raises for a bad plan: it answers a failed
        delivery saying what is wrong, like any other send.
        """
        if planned.kind == "direct":
            if not planned.address:
                return self._refused(now, "a direct planned message without an address")
            return self.send_to_member(
                planned.address, replace(message, text=planned.text), now=now, deadline=deadline
            )
        if planned.kind == "group":
            return self.send_group(planned, message, now=now, deadline=deadline)
        return self._refused(now, f"unknown planned message kind {planned.kind!r}")

    def send_group(
        self,
        planned: PlannedMessage,
        message: Message,
        *,
        now: datetime,
        deadline: Deadline = UNLIMITED,
    ) -> Delivery:
        """Post a "group" planned message: here its text, as a community message.

        Right for channels without mention fields (console, file, SNS: the plan
        names members as ``@name`` in the text). Chat platforms override this to
        post the plan's ``payload`` as it is, as one platform message.
        """
        return self.send_to_community(
            replace(message, text=planned.text), now=now, deadline=deadline
        )

    def _refused(self, now: datetime, error: str) -> Delivery:
        """A send that was not attempted: nothing reached the platform."""
        return Delivery(self.id, False, iso_utc(now), attempts=0, error=error)
