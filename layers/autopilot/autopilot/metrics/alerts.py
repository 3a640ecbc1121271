"""Ops alerts: incidents posted to a community's ``alerts.channel``, once per incident.

Incidents:

* an occurrence the dispatcher records as ``failed`` (a post nobody received, a
  reminder selection, a snapshot, a lottery step, a finance job that could not be
  enqueued): posted right after the tick that failed it;
* an occurrence recorded as ``uncertain`` (a post whose channel answer was lost,
  or whose earlier attempt crashed mid-send): it may or may not have reached the
  group and was deliberately not sent again, so someone must look at the group
  before posting it by hand;
* a reconciliation that finds a mismatch: the worker writes the incident to an
  outbox (``pk = ALERT#outbox`` in the scheduler table) and the dispatcher posts it
  (it reads the outbox for :data:`OUTBOX_WATCH` after a finance job fired, so idle
  ticks cost no DynamoDB request);
* a dead-letter queue with messages in it (the work queue's or the reminders'):
  the dispatcher looks at both queues' depth every :data:`CHECK_EVERY` and posts
  once per queue and UTC day while it holds messages.

"Once per incident" is a conditional write in the scheduler table
(``pk = ALERT#<incident key>``, ``attribute_not_exists``) before the post: a
duplicated tick, a retried occurrence or two dispatchers find it and post
nothing. Communities without an ``alerts`` channel get log lines only (every
incident is also logged at error level, and the CloudWatch alarms fire anyway).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from autopilot.aws import is_transient
from autopilot.channels.base import ChannelEnvironment, Deadline, Message
from autopilot.config.model import Community, Config
from autopilot.scheduler.service import UNCERTAIN, OccurrenceReport, TickReport, uncertain_channels
from autopilot.timeutil import iso_utc

logger = logging.getLogger(__name__)

#: How often the dispatcher looks at the dead-letter queues and the outbox.
CHECK_EVERY = timedelta(minutes=15)
#: The outbox is read only this long after a finance job fired in the container (the
#: worker reconciles minutes after): idle ticks make no DynamoDB request.
OUTBOX_WATCH = timedelta(hours=2)
# Tries at recording an incident when DynamoDB fails transiently.
OPEN_TRIES = 3
FINANCE_ACTIONS = frozenset({"ledger_export", "ledger_reconcile", "ledger_audit"})
#: Incident records expire (TTL) after this long.
INCIDENT_TTL = timedelta(days=30)
OUTBOX = "ALERT#outbox"


class AlertStore:
    """Incident records and the outbox in the scheduler table (low-level client)."""

    def __init__(self, table_name: str, region: str, client: Any = None):
        self.table = table_name
        self._region = region
        self._client = client

    def _ddb(self) -> Any:
        if self._client is None:
            from autopilot import aws

            self._client = aws.client("dynamodb", self._region)
        return self._client

    def open(self, key: str, now: datetime) -> bool:
        """Record the incident ``key``; False when it is already recorded (open)."""
        ddb = self._ddb()
        try:
            ddb.put_item(
                TableName=self.table,
                Item={
                    "pk": {"S": f"ALERT#{key}"},
                    "sk": {"S": "INCIDENT"},
                    "opened_at": {"S": iso_utc(now)},
                    "expires_at": {"N": str(int((now + INCIDENT_TTL).timestamp()))},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ddb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def close(self, key: str) -> None:
        """Forget the incident ``key`` (its next occurrence is a new incident)."""
        self._ddb().delete_item(
            TableName=self.table, Key={"pk": {"S": f"ALERT#{key}"}, "sk": {"S": "INCIDENT"}}
        )

    def enqueue(self, key: str, community_id: str, text: str, now: datetime) -> None:
        """Put an incident in the outbox (the worker's way to alert; UpdateItem)."""
        self._ddb().update_item(
            TableName=self.table,
            Key={"pk": {"S": OUTBOX}, "sk": {"S": key}},
            UpdateExpression="SET community_id = :c, #t = :t, queued_at = :at, expires_at = :x",
            ExpressionAttributeNames={"#t": "text"},
            ExpressionAttributeValues={
                ":c": {"S": community_id},
                ":t": {"S": text[:3000]},
                ":at": {"S": iso_utc(now)},
                ":x": {"N": str(int((now + INCIDENT_TTL).timestamp()))},
            },
        )

    def outbox(self) -> list[tuple[str, str, str]]:
        """The queued incidents: (key, community id, text)."""
        answer = self._ddb().query(
            TableName=self.table,
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": OUTBOX}},
        )
        return [
            (i["sk"]["S"], i["community_id"]["S"], i["text"]["S"]) for i in answer.get("Items", [])
        ]

    def done(self, key: str) -> None:
        """Remove a posted incident from the outbox."""
        self._ddb().delete_item(TableName=self.table, Key={"pk": {"S": OUTBOX}, "sk": {"S": key}})


def occurrence_alert(community: Community, occ: OccurrenceReport) -> str:
    """The alert text of a ``failed`` or ``uncertain`` occurrence (pure)."""
    if occ.status != UNCERTAIN:
        return f"⚠️ {community.name}: {occ.job_id} ({occ.key}) failed" + (
            f": {occ.reason}" if occ.reason else ""
        )
    channels = ", ".join(uncertain_channels(occ.detail)) or "a channel"
    return (
        f"⚠️ {community.name}: {occ.job_id} ({occ.key}): the post to {channels} may or may "
        "not have reached the group (the platform's answer was lost, or an attempt crashed "
        "mid-send). It was deliberately not sent again, to avoid a duplicate: check the "
        "group before posting it again." + (f" Details: {occ.reason}" if occ.reason else "")
    )


class AlertService:
    """Posts incidents to the communities' alert channels (see the module docstring)."""

    def __init__(
        self,
        store: AlertStore,
        channel_env: ChannelEnvironment,
        *,
        dead_letter_queues: Sequence[tuple[str, str]] = (),
        region: str = "us-east-1",
        sqs: Any = None,
    ):
        self.store = store
        self.channel_env = channel_env
        self.queues = [(name, url) for name, url in dead_letter_queues if url]
        self._region = region
        self._sqs = sqs
        self._last_check: datetime | None = None
        self._watch_outbox_until: datetime | None = None
        self._last_outbox_check: datetime | None = None

    # --------------------------------------------------------------------- incidents

    def after_tick(self, config: Config, report: TickReport) -> int:
        """Alert on the tick's failed occurrences; every CHECK_EVERY, on the queues
        and the outbox too. Returns how many alerts were posted. Never raises."""
        posted = 0
        try:
            by_id = {c.id: c for c in config.communities}
            now = report.now_utc
            for occ in report.occurrences:
                community = by_id.get(occ.community_id)
                if community is not None and occ.status == "fired":
                    job = next((j for j in community.jobs if j.id == occ.job_id), None)
                    if job is not None and job.action in FINANCE_ACTIONS:
                        self._watch_outbox_until = now + OUTBOX_WATCH
            for occ in report.occurrences:
                if occ.status not in ("failed", UNCERTAIN):
                    continue
                community = by_id.get(occ.community_id)
                if community is None:
                    continue
                text = occurrence_alert(community, occ)
                key = f"occ#{occ.community_id}#{occ.job_id}#{occ.occurrence_id or occ.key}"
                try:  # one alert's trouble must not silence the others
                    posted += self.alert(community, key, text, report.now_utc)
                except Exception:
                    logger.exception("ops alert %s could not be posted", key)
            watching = self._watch_outbox_until is not None and now <= self._watch_outbox_until
            if watching and (
                self._last_outbox_check is None or now - self._last_outbox_check >= CHECK_EVERY
            ):
                self._last_outbox_check = now
                posted += self._check_outbox(by_id, now)
            if self._last_check is None:
                # A new container looks at the queues 15 minutes from now: an idle
                # cold tick creates no SQS client.
                self._last_check = now
            elif now - self._last_check >= CHECK_EVERY:
                self._last_check = now
                posted += self._check_queues(config.communities, now)
        except Exception:
            logger.exception("ops alerts failed after the tick")
        return posted

    def alert(self, community: Community, key: str, text: str, now: datetime) -> int:
        """Post ``text`` once for incident ``key`` to the community's alert channel."""
        return self.broadcast([community], key, text, now)

    def broadcast(
        self, communities: Sequence[Community], key: str, text: str, now: datetime
    ) -> int:
        """Post ``text`` once for incident ``key`` to each community's alert channel."""
        logger.error("OPS ALERT %s: %s", key, text)
        targets = [c for c in communities if c.alerts_channel is not None]
        if not targets or not self.store.table or not self._open(key, now):
            return 0
        from autopilot.channels.registry import build_channel

        posted = 0
        for community in targets:
            assert community.alerts_channel is not None
            try:
                channel = build_channel(
                    community.channel(community.alerts_channel), self.channel_env
                )
                delivery = channel.send_to_community(
                    Message(text=text, key=f"alert#{key}", community_id=community.id, title="ops"),
                    now=now,
                    deadline=Deadline(None),
                )
                # An alert whose answer was lost may well have been read: keep the
                # incident (posting it again could repeat it); only a refusal frees it.
                posted += int(delivery.ok or delivery.unknown)
                if not delivery.ok:
                    logger.error("ops alert %s not delivered: %s", key, delivery.error)
            except Exception:
                logger.exception("ops alert %s could not be sent", key)
        if posted == 0:
            # Nobody heard it: forget the incident so a later check can post it again.
            self.store.close(key)
        return posted

    def _open(self, key: str, now: datetime) -> bool:
        """Open the incident, retrying transient DynamoDB errors. If DynamoDB keeps
        failing, the alert is posted anyway: told twice beats never told (nothing
        else would ever post this incident)."""
        for _ in range(OPEN_TRIES):
            try:
                return self.store.open(key, now)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                logger.warning("opening incident %s: %s", key, exc)
        return True

    def _check_outbox(self, by_id: dict[str, Community], now: datetime) -> int:
        posted = 0
        for key, community_id, text in self.store.outbox():
            community = by_id.get(community_id)
            if community is not None:
                posted += self.alert(community, key, text, now)
            self.store.done(key)
        return posted

    def _check_queues(self, communities: Iterable[Community], now: datetime) -> int:
        posted = 0
        for name, url in self.queues:
            depth = self._depth(url)
            if depth == 0:
                continue
            # One incident per queue and UTC day while it holds messages: a reminder
            # a day, never one per check (and an empty queue costs no write).
            key = f"dlq#{name}#{now.date().isoformat()}"
            text = (
                f"⚠️ {depth} message(s) in the {name} dead-letter queue: they failed three "
                "times. Inspect them and the function's logs, then redrive."
            )
            posted += self.broadcast(list(communities), key, text, now)
        return posted

    def _depth(self, url: str) -> int:
        if self._sqs is None:
            from autopilot.aws import client

            self._sqs = client("sqs", self._region)
        answer = self._sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        return int(answer.get("Attributes", {}).get("ApproximateNumberOfMessages", 0))
