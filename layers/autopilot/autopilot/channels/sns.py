"""Amazon SNS: fan-out to anything that subscribes (email, SQS, HTTPS, other bots)."""

from __future__ import annotations

from datetime import datetime

from autopilot.channels.base import UNLIMITED, Channel, Deadline, Delivery, Message
from autopilot.timeutil import iso_utc

# SNS accepts 256 KiB per message; we stay well below to leave room for attributes.
MAX_MESSAGE_BYTES = 200 * 1024


class SnsChannel(Channel):
    """Publishes to the template's posts topic with community/channel attributes."""

    type = "sns"
    supports_direct = True

    def _publish(self, message: Message, now: datetime, member: str | None) -> Delivery:
        if not self.env.sns_topic_arn:
            return Delivery(
                self.id,
                False,
                iso_utc(now),
                error="POSTS_TOPIC_ARN is not set: no SNS topic to publish to",
            )
        from botocore.exceptions import BotoCoreError, ClientError

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
        try:
            response = self.env.sns().publish(**kwargs)
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
        return self._publish(message, now, None)

    def send_to_member(
        self, address: str, message: Message, *, now: datetime, deadline: Deadline = UNLIMITED
    ) -> Delivery:
        return self._publish(message, now, address)
