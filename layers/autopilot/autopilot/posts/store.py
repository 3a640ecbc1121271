"""Rotation state and the post log in the posts table (PynamoDB).

* ``pk = POOL#<community>#<pool>``, ``sk = ROTATION`` — the pool's rotation state
  with an optimistic ``version``.
* ``pk = POSTLOG#<community>``, ``sk = <scheduled UTC>#<job>#<occurrence id>`` —
  one item per post occurrence: the content chosen, the rendered text and, per
  channel, the delivery (platform message id or answer, or the error). Created
  together with the rotation update in one transaction, keyed by the occurrence's
  identity (never by its due time: eight hourly posts deferred to the end of quiet
  hours share a due time but are eight posts), so a rerun of the same occurrence
  reuses the same content and never consumes the pool twice.

A channel's delivery goes through two writes: before the send, the *intent*
(``status: sending`` with the attempt, the time and the run's token: one
conditional ``UpdateItem`` that fails if the channel already has a delivery),
then the outcome (``published``, ``failed`` or ``uncertain``). A rerun that finds
``sending`` with no outcome knows an earlier attempt crashed mid-send: the post
may have reached the group, so it is recorded ``uncertain`` and not sent again
(see ``autopilot.posts.service``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pynamodb.attributes import (
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
)
from pynamodb.exceptions import TransactWriteError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.models import Model

from autopilot.dynamo import bind_table, transaction
from autopilot.posts.rules import RotationState
from autopilot.scheduler.rules import Occurrence
from autopilot.timeutil import iso_utc

POST_RETENTION = timedelta(days=400)

# Delivery statuses of one channel of a post.
SENDING = "sending"  # the intent: a send began, its outcome is not recorded (yet)
PUBLISHED = "published"
FAILED = "failed"  # the platform refused it, or it never left: nothing was posted
UNCERTAIN = "uncertain"  # it may or may not have been posted: never re-sent


class RotationItem(Model):
    """A pool's rotation state."""

    class Meta:
        table_name = "PostsTable"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default="ROTATION")
    cycle = NumberAttribute(default=0)
    served = ListAttribute(of=UnicodeAttribute, default=list)
    last = UnicodeAttribute(null=True)
    version = NumberAttribute(default=0)


class PostItem(Model):
    """One post occurrence and its deliveries."""

    class Meta:
        table_name = "PostsTable"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    community_id = UnicodeAttribute()
    job_id = UnicodeAttribute()
    occurrence_key = UnicodeAttribute()
    occurrence_id = UnicodeAttribute(null=True)
    due_utc = UnicodeAttribute(null=True)
    pool_id = UnicodeAttribute()
    content_id = UnicodeAttribute()
    text = UnicodeAttribute()
    title = UnicodeAttribute(null=True)
    created_at = UnicodeAttribute()
    deliveries: MapAttribute[str, Any] = MapAttribute(default=dict)
    expires_at = TTLAttribute(null=True)


@dataclass(frozen=True)
class PostRecord:
    """A post as the service sees it."""

    community_id: str
    job_id: str
    occurrence_key: str
    due_utc: str
    pool_id: str
    content_id: str
    text: str
    title: str | None
    deliveries: dict[str, dict[str, Any]]
    occurrence_id: str = ""


class RotationConflict(Exception):
    """Another writer moved the pool's rotation between our read and our write."""


def _record(item: PostItem) -> PostRecord:
    return PostRecord(
        item.community_id,
        item.job_id,
        item.occurrence_key,
        item.due_utc or item.sk.split("#", 1)[0],
        item.pool_id,
        item.content_id,
        item.text,
        item.title,
        dict(item.deliveries.as_dict() if item.deliveries else {}),
        item.occurrence_id or "",
    )


class PostStore:
    """DynamoDB access for posts."""

    def __init__(self, table_name: str, region: str):
        bind_table(table_name, RotationItem, PostItem, region=region)

    @staticmethod
    def post_key(occ: Occurrence) -> tuple[str, str]:
        """(pk, sk) of a post occurrence: its scheduled instant, job and identity."""
        return (
            f"POSTLOG#{occ.community_id}",
            f"{iso_utc(occ.scheduled_utc)}#{occ.job_id}#{occ.id}",
        )

    def get_post(self, occ: Occurrence) -> PostRecord | None:
        """The post recorded for an occurrence, if any."""
        pk, sk = self.post_key(occ)
        try:
            return _record(PostItem.get(pk, sk, consistent_read=True))
        except PostItem.DoesNotExist:
            return None

    def read_rotation(self, community_id: str, pool_id: str) -> tuple[RotationState, int | None]:
        """A pool's rotation state and its version (``None`` if it has none yet)."""
        try:
            item = RotationItem.get(
                f"POOL#{community_id}#{pool_id}", "ROTATION", consistent_read=True
            )
        except RotationItem.DoesNotExist:
            return RotationState(), None
        served = [str(content_id) for content_id in item.served or []]
        return RotationState(int(item.cycle), tuple(served), item.last), int(item.version)

    def create_post(
        self,
        record: PostRecord,
        occ: Occurrence,
        rotation: RotationState,
        expected_version: int | None,
        now: datetime,
    ) -> bool:
        """Write the post and advance the rotation atomically.

        Returns False if the occurrence already has a post (a rerun); raises
        ``RotationConflict`` if the rotation moved since it was read.
        """
        pk, sk = self.post_key(occ)
        post = PostItem(
            pk,
            sk,
            community_id=record.community_id,
            job_id=record.job_id,
            occurrence_key=record.occurrence_key,
            occurrence_id=occ.id,
            due_utc=record.due_utc,
            pool_id=record.pool_id,
            content_id=record.content_id,
            text=record.text,
            title=record.title,
            created_at=iso_utc(now),
            deliveries={},
            expires_at=now + POST_RETENTION,
        )
        rot_pk = f"POOL#{record.community_id}#{record.pool_id}"
        version = 0 if expected_version is None else expected_version
        rotation_item = RotationItem(
            rot_pk,
            "ROTATION",
            cycle=rotation.cycle,
            served=list(rotation.served),
            last=rotation.last,
            version=version + 1,
        )
        rotation_condition = (
            RotationItem.pk.does_not_exist()
            if expected_version is None
            else RotationItem.version == expected_version
        )
        try:
            with transaction(PostItem) as tx:
                tx.save(post, condition=PostItem.pk.does_not_exist())
                tx.save(rotation_item, condition=rotation_condition)
        except TransactWriteError as exc:
            reasons = exc.cancellation_reasons
            if reasons and reasons[0] is not None and reasons[0].code == "ConditionalCheckFailed":
                return False
            if (
                len(reasons) > 1
                and reasons[1] is not None
                and reasons[1].code == "ConditionalCheckFailed"
            ):
                raise RotationConflict(rot_pk) from exc
            raise
        return True

    def begin_delivery(
        self,
        occ: Occurrence,
        channel_id: str,
        intent: dict[str, Any],
        *,
        replaces: str | None = None,
    ) -> bool:
        """Record the intent to send to ``channel_id`` (``status: sending``) before the send.

        One conditional ``UpdateItem``: it succeeds only if the channel has no
        delivery yet — or, with ``replaces``, only if its delivery is still the
        ``sending`` intent with that token (a deduplicated re-send takes it over).
        The intent's own ``token`` also passes, so the SDK retrying this very
        request after a lost answer is not refused by its own first write.
        False: another writer recorded this channel's delivery first; the caller
        must not send.
        """
        pk, sk = self.post_key(occ)
        path = PostItem.deliveries[channel_id]
        if replaces is None:
            condition = path.does_not_exist()
        else:
            condition = (path["status"] == SENDING) & (path["token"] == replaces)
        condition = condition | (path["token"] == intent["token"])
        try:
            PostItem(pk, sk).update(actions=[path.set(intent)], condition=condition)
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def record_delivery(
        self,
        occ: Occurrence,
        channel_id: str,
        delivery: dict[str, Any],
        *,
        if_token: str | None = None,
    ) -> bool:
        """Store one channel's delivery (its outcome) on the post.

        With ``if_token`` only over the ``sending`` intent with that token (False,
        nothing written, if the channel's delivery is something else by now).
        """
        pk, sk = self.post_key(occ)
        path = PostItem.deliveries[channel_id]
        condition = None
        if if_token is not None:
            condition = (path["status"] == SENDING) & (path["token"] == if_token)
        try:
            PostItem(pk, sk).update(actions=[path.set(delivery)], condition=condition)
        except UpdateError as exc:
            if condition is not None and exc.cause_response_code == (
                "ConditionalCheckFailedException"
            ):
                return False
            raise
        return True

    def posts(
        self,
        community_id: str,
        since_utc: datetime | None = None,
        until_utc: datetime | None = None,
    ) -> Iterator[PostRecord]:
        """The post log of a community in order of the occurrences' scheduled instants."""
        condition: Condition | None = None
        if since_utc and until_utc:
            condition = PostItem.sk.between(iso_utc(since_utc), iso_utc(until_utc) + "~")
        elif since_utc:
            condition = PostItem.sk >= iso_utc(since_utc)
        for item in PostItem.query(f"POSTLOG#{community_id}", condition):
            yield _record(item)
