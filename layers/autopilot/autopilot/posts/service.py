"""The ``post`` action: choose content, render it, publish to every channel, log it."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from pynamodb.exceptions import PutError

from autopilot.channels import Channel, ChannelEnvironment, Message, build_channel
from autopilot.channels.base import Deadline, Delivery
from autopilot.clock import Clock, get_clock
from autopilot.config.model import Community, Job, template_fields
from autopilot.posts.context import PostContext, build_fields
from autopilot.posts.rules import pick_next, render
from autopilot.posts.store import (
    POST_RETENTION,
    PostItem,
    PostRecord,
    PostStore,
    RotationConflict,
)
from autopilot.scheduler.rules import Occurrence
from autopilot.scheduler.service import ActionContext, ActionResult
from autopilot.secrets import redact
from autopilot.timeutil import iso_utc

logger = logging.getLogger(__name__)

MAX_ROTATION_RETRIES = 8
# Kept back from a chat channel's retries for recording its delivery and the outcome.
DELIVERY_RESERVE_MS = 5_000


class PostService:
    """Runs ``post`` occurrences."""

    def __init__(
        self,
        store: PostStore,
        channel_env: ChannelEnvironment,
        *,
        clock: Clock | None = None,
        channel_factory: Callable[[Any, ChannelEnvironment], Channel] = build_channel,
    ):
        self._store = store
        self._env = channel_env
        self._clock = clock
        self._channel_factory = channel_factory
        self._channels: dict[tuple[str, str], Channel] = {}

    def _now(self) -> datetime:
        return (self._clock or get_clock()).now()

    def channel(self, community: Community, channel_id: str) -> Channel:
        """The (cached) channel object for a community's channel."""
        key = (community.id, channel_id)
        spec = community.channel(channel_id)
        cached = self._channels.get(key)
        if cached is None or cached.spec != spec:
            cached = self._channels[key] = self._channel_factory(spec, self._env)
        return cached

    def run(self, ctx: ActionContext) -> ActionResult:
        """The ``post`` action for one occurrence (safe to rerun: see the store)."""
        record = self._prepare(ctx.community, ctx.job, ctx.occurrence)
        return self._deliver(ctx, record, ctx.job.params["channels"])

    def publish(
        self,
        ctx: ActionContext,
        text: str,
        title: str | None,
        channels: Sequence[str],
        *,
        source: str = "lottery",
    ) -> ActionResult:
        """Publish ``text`` to ``channels`` as *the* post of this occurrence (another
        action's post: a lottery's announcement, its winners).

        The post and its per-channel deliveries are recorded exactly like ``run``'s,
        keyed by the occurrence: a rerun sends only to the channels not yet
        delivered, and always the text recorded first (a rerun never re-renders).
        ``source`` is stored as the post's pool (the post log shows where it came from).
        """
        occ = ctx.occurrence
        pk, sk = self._store.post_key(occ)
        now = self._now()
        item = PostItem(
            pk,
            sk,
            community_id=ctx.community.id,
            job_id=ctx.job.id,
            occurrence_key=occ.key,
            occurrence_id=occ.id,
            due_utc=iso_utc(occ.due_utc),
            pool_id=source,
            content_id=ctx.job.id,
            text=text,
            title=title,
            created_at=iso_utc(now),
            deliveries={},
            expires_at=now + POST_RETENTION,
        )
        try:
            item.save(condition=PostItem.pk.does_not_exist())
            record: PostRecord | None = PostRecord(
                ctx.community.id,
                ctx.job.id,
                occ.key,
                iso_utc(occ.due_utc),
                source,
                ctx.job.id,
                text,
                title,
                {},
                occ.id,
            )
        except PutError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise
            record = self._store.get_post(occ)  # an earlier attempt's post
        assert record is not None
        return self._deliver(ctx, record, channels)

    def _deliver(
        self, ctx: ActionContext, record: PostRecord, channels: Sequence[str]
    ) -> ActionResult:
        """Send ``record`` to each channel not yet delivered, recording each delivery."""
        occ = ctx.occurrence
        deliveries = dict(record.deliveries)
        occurrence_ref = f"{ctx.community.id}:{ctx.job.id}:{occ.id}"
        message = Message(
            text=record.text,
            title=record.title,
            community_id=ctx.community.id,
            job_id=ctx.job.id,
            key=occurrence_ref,
            # The platforms that deduplicate (Discord nonce, Feishu uuid) get the
            # occurrence's identity: a rerun after a crash cannot post it twice.
            idempotency_key=occurrence_ref,
        )
        # Every channel of this run shares the invocation's remaining time: retries and
        # rate-limit waits stop early enough for the deliveries and outcome to be recorded.
        deadline = Deadline(ctx.remaining_ms, reserve_ms=DELIVERY_RESERVE_MS)
        for channel_id in channels:
            if deliveries.get(channel_id, {}).get("status") == "published":
                continue  # delivered by an earlier attempt of this occurrence
            if ctx.still_holds is not None and not ctx.still_holds():
                # Fencing: our claim was taken over (lease expired); the new holder
                # sends. Sending now could post twice. Nothing more is recorded.
                logger.warning("post %s: claim taken over; not sending", message.key)
                return ActionResult(ok=False, error="claim taken over by another worker")
            delivery = self._send(ctx.community, channel_id, message, deadline)
            if not delivery.ok:  # already redacted by the channel: safe to log
                logger.warning(
                    "post %s to channel %s failed after %d attempt(s): %s",
                    message.key,
                    channel_id,
                    delivery.attempts,
                    delivery.error,
                )
            deliveries[channel_id] = delivery.as_dict()
            self._store.record_delivery(occ, channel_id, deliveries[channel_id])
        failed = {
            c: d.get("error", "") for c, d in deliveries.items() if d.get("status") != "published"
        }
        detail = {
            "content_id": record.content_id,
            "pool": record.pool_id,
            "deliveries": {
                c: {k: d.get(k) for k in ("status", "message_id", "error")}
                for c, d in deliveries.items()
            },
        }
        error = "; ".join(f"{c}: {e}" for c, e in sorted(failed.items())) or None
        return ActionResult(ok=not failed, detail=detail, error=error)

    def _send(
        self, community: Community, channel_id: str, message: Message, deadline: Deadline
    ) -> Delivery:
        try:
            return self.channel(community, channel_id).send_to_community(
                message, now=self._now(), deadline=deadline
            )
        except Exception as exc:  # a broken channel must not lose the others' deliveries
            # Redacted, traceback included: an exception text may carry a webhook URL.
            logger.error(
                "channel %s of %s failed: %s",
                channel_id,
                community.id,
                redact(traceback.format_exc()),
            )
            return Delivery(
                channel_id,
                False,
                iso_utc(self._now()),
                error=redact(f"{type(exc).__name__}: {exc}"),
            )

    def _prepare(self, community: Community, job: Job, occ: Occurrence) -> PostRecord:
        """The post for this occurrence: the existing one, or a new one with fresh content."""
        due_utc = occ.due_utc
        pool = community.pool(job.params["pool"])
        for _ in range(MAX_ROTATION_RETRIES):
            state, version = self._store.read_rotation(community.id, pool.id)
            content_id, new_state = pick_next(
                [i.id for i in pool.items], state, seed=f"{community.id}/{pool.id}"
            )
            item = pool.item(content_id)
            assert item is not None
            needed = set(template_fields(job.params["template"]))
            if job.params.get("title"):
                needed |= set(template_fields(job.params["title"]))
            fields = build_fields(PostContext(community, job, pool, item, due_utc), needed)
            title_template = job.params.get("title")
            record = PostRecord(
                community.id,
                job.id,
                occ.key,
                iso_utc(due_utc),
                pool.id,
                content_id,
                render(job.params["template"], fields),
                render(title_template, fields) if title_template else item.title,
                {},
            )
            try:
                if self._store.create_post(record, occ, new_state, version, self._now()):
                    return record
            except RotationConflict:
                continue  # another job served this pool meanwhile: pick again
            existing = self._store.get_post(occ)
            if existing is not None:
                return existing
        raise RuntimeError(
            f"rotation of pool {pool.id!r} kept changing; gave up after "
            f"{MAX_ROTATION_RETRIES} attempts"
        )
