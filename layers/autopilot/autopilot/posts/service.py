"""The ``post`` action: choose content, render it, publish to every channel, log it.

Each channel is posted to at most once per occurrence, across crashes and
retries: before a send the channel's *intent* is recorded (``sending``, one
conditional write), after it the outcome. A rerun of the occurrence (after a
crash, or a transient AWS error) sends only to channels with no delivery at all:

* ``published`` or ``failed``: already decided, never sent again;
* ``uncertain`` (the platform's answer was lost, ``Delivery.unknown``): it may
  have been posted; never sent again;
* ``sending`` with no outcome: the earlier attempt crashed mid-send, so the post
  may have reached the group. It is recorded ``uncertain`` ("not re-sent to avoid
  a duplicate") — unless the channel's route deduplicates every part on the
  occurrence's key and the platform's window still covers the earlier send
  (:data:`DEDUPLICATION_WINDOWS`): then sending again cannot post twice.

An occurrence with an ``uncertain`` delivery ends ``uncertain`` (see
``autopilot.scheduler.service.outcome_status``) and ops are alerted.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from pynamodb.exceptions import PutError

from autopilot.aws import is_transient
from autopilot.channels import Channel, ChannelEnvironment, Message, build_channel
from autopilot.channels.base import Deadline, Delivery
from autopilot.clock import Clock, get_clock
from autopilot.config.model import Community, Job, template_fields
from autopilot.posts.context import PostContext, build_fields
from autopilot.posts.rules import pick_next, render
from autopilot.posts.store import (
    POST_RETENTION,
    PUBLISHED,
    SENDING,
    UNCERTAIN,
    PostItem,
    PostRecord,
    PostStore,
    RotationConflict,
)
from autopilot.scheduler.rules import Occurrence
from autopilot.scheduler.service import ActionContext, ActionResult
from autopilot.secrets import redact
from autopilot.timeutil import iso_utc, parse_iso

logger = logging.getLogger(__name__)

MAX_ROTATION_RETRIES = 8
# Kept back from a chat channel's retries for recording its delivery and the outcome.
DELIVERY_RESERVE_MS = 5_000
# How long after a send its platform still deduplicates a re-send with the same key,
# per channel type (only the routes whose every part carries the occurrence's key:
# ``Step.idempotent``). Feishu/Lark's app API posts at most one message per ``uuid``
# an hour (kept 50 minutes: clock differences). Discord's ``enforce_nonce`` only
# looks back "a few minutes", no longer than a rerun's earliest start (the lease
# runs 2 minutes): a Discord rerun never relies on it. No other platform dedupes.
DEDUPLICATION_WINDOWS: Mapping[str, timedelta] = {"feishu": timedelta(minutes=50)}


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
        keyed by the occurrence: a rerun sends only to the channels with no
        delivery yet (never twice: see the module docstring), and always the text
        recorded first (a rerun never re-renders).
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
        """Send ``record`` to each channel with no delivery yet, recording each delivery
        (intent before the send, outcome after: see the module docstring)."""
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
        # This run's token on its intents: the SDK retrying an intent write whose
        # answer was lost finds its own write, not another run's.
        token = uuid.uuid4().hex[:16]
        for channel_id in channels:
            previous = deliveries.get(channel_id)
            status = previous.get("status") if previous else None
            if status is not None and status != SENDING:
                continue  # decided by an earlier attempt: published, failed or uncertain
            if ctx.still_holds is not None and not ctx.still_holds():
                # Fencing: our claim was taken over (lease expired); the new holder
                # sends. Sending now could post twice. Nothing more is recorded.
                logger.warning("post %s: claim taken over; not sending", message.key)
                return ActionResult(ok=False, error="claim taken over by another worker")
            replaces = None
            if previous is not None:  # an earlier attempt began this send, no outcome
                if not self._resend_is_deduplicated(ctx.community, channel_id, message, previous):
                    deliveries[channel_id] = self._mark_uncertain(occ, channel_id, previous)
                    continue
                replaces = str(previous.get("token") or "")
            intent = {
                "status": SENDING,
                "attempt": ctx.attempt,
                "at_utc": iso_utc(self._now()),
                "token": token,
            }
            begin = partial(self._store.begin_delivery, occ, channel_id, intent, replaces=replaces)
            if not _again_if_transient(begin):
                # Another writer recorded this channel first: never send over it.
                deliveries[channel_id] = self._current(occ, channel_id)
                continue
            delivery = self._send(ctx.community, channel_id, message, deadline)
            if not delivery.ok:  # already redacted by the channel: safe to log
                logger.warning(
                    "post %s to channel %s %s after %d attempt(s): %s",
                    message.key,
                    channel_id,
                    "has an unknown outcome" if getattr(delivery, "unknown", False) else "failed",
                    delivery.attempts,
                    delivery.error,
                )
            outcome = deliveries[channel_id] = {**delivery.as_dict(), "attempt": ctx.attempt}
            # Sent: losing the outcome now would leave "sending" (uncertain on a rerun).
            _again_if_transient(partial(self._store.record_delivery, occ, channel_id, outcome))
        return _result(record, deliveries)

    def _resend_is_deduplicated(
        self,
        community: Community,
        channel_id: str,
        message: Message,
        intent: Mapping[str, Any],
    ) -> bool:
        """Whether sending again after a crashed send cannot post twice.

        Only when the platform deduplicates on the occurrence's key on this
        channel's route (every message part of its requests carries the key:
        ``Step.idempotent``; Feishu's app API, not its custom bots) and the earlier
        send began within the platform's window (:data:`DEDUPLICATION_WINDOWS`).
        Anything unknown answers False: the delivery is then recorded uncertain.
        """
        try:
            channel = self.channel(community, channel_id)
            window = DEDUPLICATION_WINDOWS.get(channel.type)
            began = intent.get("at_utc")
            if window is None or not message.idempotency_key or not began:
                return False
            if self._now() - parse_iso(str(began)) > window:
                return False
            steps_of = getattr(channel, "community_steps", None)
            secrets = channel.env.secrets
            if steps_of is None or secrets is None:
                return False
            steps = steps_of(secrets.get(community.id, channel.id), message)
            parts = [step for step in steps if getattr(step, "part", True)]
            return bool(parts) and all(getattr(step, "idempotent", False) for step in parts)
        except Exception:  # e.g. the secret cannot be read: do not risk a duplicate
            logger.exception("post to %s: cannot tell whether a re-send dedupes", channel_id)
            return False

    def _mark_uncertain(
        self, occ: Occurrence, channel_id: str, intent: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Record a send an earlier attempt began and never finished as ``uncertain``."""
        began = intent.get("at_utc") or "?"
        attempt = intent.get("attempt") or "?"
        reason = (
            f"attempt {attempt} crashed mid-send (sending since {began}) and left no "
            "outcome; not re-sent to avoid a duplicate: check the group before posting again"
        )
        delivery: dict[str, Any] = {
            "status": UNCERTAIN,
            "at_utc": began,
            "marked_at_utc": iso_utc(self._now()),
            "message_id": None,
            "attempt": intent.get("attempt"),
            "error": reason,
            "unknown": True,
        }
        logger.error("post %s to channel %s is uncertain: %s", occ.id, channel_id, reason)
        token = str(intent.get("token") or "")
        if self._store.record_delivery(occ, channel_id, delivery, if_token=token):
            return delivery
        # The earlier attempt was still alive and recorded its outcome meanwhile.
        return self._current(occ, channel_id)

    def _current(self, occ: Occurrence, channel_id: str) -> dict[str, Any]:
        """The channel's delivery as stored now (a consistent read)."""
        current = self._store.get_post(occ)
        stored = current.deliveries.get(channel_id) if current is not None else None
        return dict(stored) if stored else {"status": UNCERTAIN, "error": "delivery not found"}

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


def _again_if_transient(write: Callable[[], bool]) -> bool:
    """``write()``, tried once more if it raises a transient AWS error.

    For the delivery writes around a send, which are idempotent (the intent passes
    its own token, the outcome is a plain set): a lost answer or a throttle that
    outlasted the SDK's retries should not turn a clean send into an uncertain one.
    A second failure propagates (the dispatcher then releases the claim).
    """
    try:
        return write()
    except Exception as exc:
        if not is_transient(exc):
            raise
        logger.warning("delivery write failed (%s); trying once more", type(exc).__name__)
        return write()


def _result(record: PostRecord, deliveries: Mapping[str, Mapping[str, Any]]) -> ActionResult:
    """The action's result from the post's deliveries.

    A ``sending`` delivery (another writer's send in flight when this run looked)
    counts as ``uncertain``, like a lost answer: the occurrence ends ``uncertain``.
    """
    failed: dict[str, str] = {}
    uncertain: dict[str, str] = {}
    for channel, delivery in deliveries.items():
        status = delivery.get("status")
        if status in (UNCERTAIN, SENDING):
            uncertain[channel] = str(delivery.get("error") or "outcome unknown")
        elif status != PUBLISHED:
            failed[channel] = str(delivery.get("error") or "")
    detail = {
        "content_id": record.content_id,
        "pool": record.pool_id,
        "deliveries": {
            c: {
                "status": UNCERTAIN if d.get("status") == SENDING else d.get("status"),
                "message_id": d.get("message_id"),
                "error": d.get("error"),
            }
            for c, d in deliveries.items()
        },
    }
    errors = [f"{c}: {e}" for c, e in sorted(failed.items())]
    errors += [
        f"{c}: {e} (uncertain: may or may not have been posted; not re-sent)"
        for c, e in sorted(uncertain.items())
    ]
    return ActionResult(
        ok=not failed and not uncertain,
        detail=detail,
        error="; ".join(errors) or None,
        uncertain=bool(uncertain),
    )
