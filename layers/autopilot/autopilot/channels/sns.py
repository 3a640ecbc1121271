"""Amazon SNS: fan-out to anything that subscribes (email, SQS, HTTPS, other bots).

A publish is bounded by the invocation's :class:`~autopilot.channels.base.Deadline`
like every other send: botocore's own timeouts and retries are per request and
can add up to minutes, so the call runs in a worker thread that the send stops
waiting for at the deadline (the outcome is then unknown: SNS may have accepted
it). With less than ``MIN_PUBLISH_S`` left it is not attempted at all.

A publish that went out but whose answer was lost — the deadline, a read timeout
(``ReadTimeoutError``) or a connection closed mid-answer
(``ConnectionClosedError``) — is an *uncertain* delivery (``Delivery.unknown``):
SNS may have fanned it out. An error SNS answered (a throttle, an access error)
or a connection never opened is a plain failure: nothing was published. The
deadline itself is the invocation's remaining time (the injected clock); the
worker thread is waited for in real time, like a socket.
"""

from __future__ import annotations

import math
import threading
from datetime import datetime
from typing import Any

from autopilot.channels.base import UNLIMITED, Channel, Deadline, Delivery, Message
from autopilot.timeutil import iso_utc

# SNS accepts 256 KiB per message; we stay well below to leave room for attributes.
MAX_MESSAGE_BYTES = 200 * 1024
# A publish takes tens of milliseconds; with less time than this left it is not started.
MIN_PUBLISH_S = 1.0


class SnsChannel(Channel):
    """Publishes to the template's posts topic with community/channel attributes."""

    type = "sns"
    supports_direct = True

    def _publish(
        self, message: Message, now: datetime, member: str | None, deadline: Deadline
    ) -> Delivery:
        if not self.env.sns_topic_arn:
            return Delivery(
                self.id,
                False,
                iso_utc(now),
                error="POSTS_TOPIC_ARN is not set: no SNS topic to publish to",
            )
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectionClosedError,
            ReadTimeoutError,
        )

        body = message.text.encode("utf-8")
        if len(body) > MAX_MESSAGE_BYTES:
            body = body[:MAX_MESSAGE_BYTES].decode("utf-8", errors="ignore").encode("utf-8")
        attributes = {
            "community": {"DataType": "String", "StringValue": message.community_id},
            "channel": {"DataType": "String", "StringValue": self.id},
            "key": {"DataType": "String", "StringValue": message.key},
        }
        if message.job_id:
            attributes["job"] = {"DataType": "String", "StringValue": message.job_id}
        if member:
            attributes["member"] = {"DataType": "String", "StringValue": member}
        kwargs = {
            "TopicArn": self.env.sns_topic_arn,
            "Message": body.decode("utf-8"),
            "MessageAttributes": attributes,
        }
        subject = message.title or self.spec.options.get("subject")
        if subject:
            # SNS subjects: ASCII-or-not, no line breaks, at most 100 characters.
            kwargs["Subject"] = " ".join(str(subject).split())[:100]
        left = deadline.remaining_s()
        if left < MIN_PUBLISH_S:
            return Delivery(
                self.id,
                False,
                iso_utc(now),
                attempts=0,
                error=f"out of time: {left:.1f}s left in the invocation, not published",
            )
        try:
            response = _bounded(lambda: self.env.sns().publish(**kwargs), left)
        except TimeoutError:
            return Delivery(
                self.id,
                False,
                iso_utc(now),
                error=(
                    f"SNS publish: deadline reached after {left:.1f}s without an answer; "
                    "outcome unknown: SNS may have accepted it"
                ),
                unknown=True,
            )
        except (ReadTimeoutError, ConnectionClosedError) as exc:
            return Delivery(
                self.id,
                False,
                iso_utc(now),
                error=f"SNS publish: no answer ({exc}); outcome unknown: SNS may have accepted it",
                unknown=True,
            )
        except (ClientError, BotoCoreError) as exc:
            return Delivery(self.id, False, iso_utc(now), error=f"SNS publish failed: {exc}")
        return Delivery(
            self.id,
            True,
            iso_utc(now),
            message_id=response["MessageId"],
            response="published to SNS",
        )

    def send_to_community(
        self, message: Message, *, now: datetime, deadline: Deadline = UNLIMITED
    ) -> Delivery:
        return self._publish(message, now, None, deadline)

    def send_to_member(
        self, address: str, message: Message, *, now: datetime, deadline: Deadline = UNLIMITED
    ) -> Delivery:
        return self._publish(message, now, address, deadline)


def _bounded(call: Any, timeout_s: float) -> Any:
    """``call()``'s result or exception, or ``TimeoutError`` after ``timeout_s`` seconds.

    Without a limit (``inf``: outside Lambda) it simply runs here. Otherwise a
    daemon thread runs it; at the deadline we stop waiting (a thread cannot be
    killed: the request may still complete, which is why the outcome is unknown).
    """
    if math.isinf(timeout_s):
        return call()
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = call()
        except BaseException as exc:  # handed to the caller below
            outcome["error"] = exc

    worker = threading.Thread(target=run, name="sns-publish", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise TimeoutError(f"no answer within {timeout_s:.1f}s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
