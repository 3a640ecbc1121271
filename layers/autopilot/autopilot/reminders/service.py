"""Reminders: selection in the dispatcher, sending in the reminder function, conversion at check-in.

**Selection** (:meth:`ReminderService.select`, the dispatcher's ``reminder``
action): the job's spec becomes a :class:`~autopilot.reminders.rules.SelectionPlan`;
each shard of the sparse last-check-in-day index (``gsi2`` of the ledger table) is
read with one Query (pages of 1 MB) over the plan's day range, with the streak
filter where the kind has one. The members found are enqueued on the reminder
queue, :data:`RECIPIENTS_PER_MESSAGE` per message and ten messages per
``SendMessageBatch``; the ``selected`` counter is added once per occurrence. No
Scan, no read per member.

**Sending** (:meth:`ReminderService.process`, one queue message): the members'
current accounts are read (one ``BatchGetItem`` per 100) and each is rechecked
(:func:`~autopilot.reminders.rules.still_due`): checked in since the selection,
opted out, left, quiet hours... Then one transaction per 99 members writes each
member's marker before anything is sent, ``claimed`` for those to remind and
``skipped`` (with the reason, counted in the same transaction) for the others.
The claimed members are planned (:func:`~autopilot.reminders.mentions.plan_delivery`:
a DM where the channel supports it and the member has an address, otherwise group
messages with @mentions). Just before each planned message goes to the channel
(its shared rate limit applies) its **send intent** is written: its members'
markers go ``claimed`` → ``sending``, conditionally (one UpdateItem for a DM, one
TransactWriteItems for a group message); a delivery that finds any of them no
longer ``claimed`` does not send that message and plans the rest again without
them. One more transaction per 99 records ``sent``/``failed``/``uncertain`` with
the counts: ``uncertain`` when the channel had no answer (``Delivery.unknown``: it
may have gone out).

A marker found already there (a redelivered message after a crash, a duplicate
delivery running at the same time in another container, a retried selection)
comes back with the claim's cancellation (``ReturnValuesOnConditionCheckFailure``:
no read, no extra request) and tells what the earlier attempt did:

* ``claimed`` — its send never started (the worker died after the claim, or has
  not reached that message yet): the member is sent now (or recorded ``skipped``
  if no longer due); of two deliveries, the intent's condition lets one send;
* ``sending`` — a send started and its outcome was never recorded: recorded
  ``uncertain`` (counted next to ``sent`` and ``failed``), never re-sent. An
  intent younger than :data:`IN_FLIGHT` is a duplicate delivery sending right now
  (a redelivery after a crash comes only after the 720 s visibility timeout): it
  is left to that delivery, and this one, once done with everything else, fails
  (:class:`SendsInFlight`) so that the message comes back later;
* ``sent``/``failed``/``uncertain``/``skipped`` — settled: nothing happens.

So a member is reminded at most once per (job, day), a claim whose send never
started is never lost, and what nobody knows is counted as ``uncertain``. A send
that fails is recorded ``failed`` and never retried. A store error mid-run fails
the message after recording the answers already known (its unsent members stay
``claimed`` for the redelivery). Members deferred by quiet hours go back on the
queue with ``not_before``; a message running out of time releases its claims
whose sends never started and enqueues them again.

**Conversion** (:meth:`ReminderService.on_checkin`): a check-in reads the member's
markers of the day for the community's reminder jobs (one ``BatchGetItem``) and
marks a reminder sent within its conversion window as converted, once.
"""

from __future__ import annotations

import json
import logging
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from autopilot.channels.base import ChannelEnvironment, Deadline, Delivery, Message
from autopilot.clock import Clock, get_clock
from autopilot.config.model import Community, Config, Job, reminder_jobs
from autopilot.ledger.store import LAST_DAY_SHARDS, Account, LedgerStore
from autopilot.lottery.schedule import Cycle, cycle_at
from autopilot.lottery.store import LotteryStore
from autopilot.posts.context import date_words
from autopilot.posts.rules import render
from autopilot.reminders import rules
from autopilot.reminders.mentions import MentionPlanError, Recipient, plan_delivery
from autopilot.reminders.store import (
    CLAIMED,
    FAILED,
    SENDING,
    SENT,
    SKIPPED,
    UNCERTAIN,
    Claim,
    Marker,
    Outcome,
    ReminderStore,
)
from autopilot.scheduler.rules import occurrences_scheduled_between
from autopilot.scheduler.service import ActionContext, ActionResult
from autopilot.secrets import redact
from autopilot.timeutil import iso_utc, local_wall, parse_iso, zone

logger = logging.getLogger(__name__)

#: Members per queue message: one transaction of 99 markers plus the counter.
RECIPIENTS_PER_MESSAGE = 99
#: SendMessageBatch takes at most 10 messages.
MESSAGES_PER_BATCH = 10
#: SQS delays a message at most 15 minutes; a longer deferral is re-delayed.
MAX_DELAY_S = 900
#: Stop sending this long before the function's timeout, release and re-enqueue.
RESERVE_MS = 15_000
#: A send intent younger than this may belong to a delivery still running (a
#: duplicate of the message in another container): the function's timeout is 120 s,
#: and SQS redelivers a message only after its 720 s visibility timeout, so a
#: redelivery after a crash always finds its intents older than this.
IN_FLIGHT = timedelta(seconds=300)
MESSAGE_VERSION = 1


class BadReminderMessage(ValueError):
    """A queue message that is not a reminder batch (it goes to the dead-letter queue)."""


class SendsInFlight(RuntimeError):
    """Another delivery of this message is sending some of its members right now:
    everything else is done; the message fails so that SQS brings it back after
    its visibility timeout, when those sends are recorded (or, if that delivery
    died, found old and recorded ``uncertain``)."""


@dataclass(frozen=True)
class Batch:
    """One queue message: members of one job occurrence to remind.

    ``recipients``: (member id, the member's day) pairs; the day is fixed at the
    selection (the occurrence's scheduled instant), so every redelivery uses the
    same marker keys. ``not_before``: a quiet-hours deferral.
    """

    community: str
    job: str
    occurrence: str
    run_day: date
    scheduled: datetime
    recipients: tuple[tuple[str, date], ...]
    not_before: datetime | None = None
    # Lottery reminders: the cycle they are about (draw id, close and draw instants).
    lottery: tuple[str, datetime, datetime] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "v": MESSAGE_VERSION,
            "community": self.community,
            "job": self.job,
            "occurrence": self.occurrence,
            "run_day": self.run_day.isoformat(),
            "scheduled": iso_utc(self.scheduled),
            "recipients": [[m, d.isoformat()] for m, d in self.recipients],
        }
        if self.not_before is not None:
            out["not_before"] = iso_utc(self.not_before)
        if self.lottery is not None:
            draw_id, closes, draws = self.lottery
            out["lottery"] = [draw_id, iso_utc(closes), iso_utc(draws)]
        return out

    @staticmethod
    def parse(body: str) -> Batch:
        """Parse a message body; :class:`BadReminderMessage` says what is wrong."""
        try:
            raw = json.loads(body)
        except (ValueError, RecursionError):
            raise BadReminderMessage("message body is not JSON") from None
        if not isinstance(raw, dict) or raw.get("v") != MESSAGE_VERSION:
            raise BadReminderMessage(f"not a version {MESSAGE_VERSION} reminder batch")
        try:
            recipients = tuple(
                (str(m), date.fromisoformat(d))
                for m, d in raw["recipients"]
                if isinstance(m, str) and m and isinstance(d, str)
            )
            for name in ("community", "job", "occurrence"):
                if not isinstance(raw[name], str) or not raw[name]:
                    raise ValueError(name)
            lottery = None
            if raw.get("lottery") is not None:
                draw_id, closes, draws = raw["lottery"]
                lottery = (str(draw_id), parse_iso(closes), parse_iso(draws))
            return Batch(
                raw["community"],
                raw["job"],
                raw["occurrence"],
                date.fromisoformat(raw["run_day"]),
                parse_iso(raw["scheduled"]),
                recipients,
                parse_iso(raw["not_before"]) if raw.get("not_before") else None,
                lottery,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BadReminderMessage(f"malformed reminder batch ({exc})") from None


class ReminderQueue:
    """Sends reminder batches to the reminder queue (the SQS client is created lazily)."""

    def __init__(self, queue_url: str, region: str, sqs: Any = None):
        self.url = queue_url
        self._region = region
        self._sqs = sqs

    def _client(self) -> Any:
        if self._sqs is None:
            from autopilot.aws import client

            self._sqs = client("sqs", self._region)
        return self._sqs

    def send_all(self, batches: Sequence[Batch]) -> int:
        """Enqueue ``batches``, ten per ``SendMessageBatch``; returns the requests made.

        Entries SQS refuses are sent once more; still refused, the call raises
        (the occurrence fails and its retry enqueues again: markers keep members
        from being reminded twice).
        """
        requests = 0
        sqs = self._client()
        for start in range(0, len(batches), MESSAGES_PER_BATCH):
            entries = [
                {"Id": str(i), "MessageBody": json.dumps(b.to_json(), separators=(",", ":"))}
                for i, b in enumerate(batches[start : start + MESSAGES_PER_BATCH])
            ]
            for _ in range(2):
                answer = sqs.send_message_batch(QueueUrl=self.url, Entries=entries)
                requests += 1
                failed = {f["Id"] for f in answer.get("Failed") or []}
                entries = [e for e in entries if e["Id"] in failed]
                if not entries:
                    break
            if entries:
                raise RuntimeError(f"SQS refused {len(entries)} reminder batch(es)")
        return requests

    def send_later(self, batch: Batch, delay_s: int) -> None:
        """Enqueue one batch to be delivered after ``delay_s`` seconds (at most 900)."""
        self._client().send_message(
            QueueUrl=self.url,
            MessageBody=json.dumps(batch.to_json(), separators=(",", ":")),
            DelaySeconds=max(0, min(MAX_DELAY_S, int(delay_s))),
        )


@dataclass
class BatchReport:
    """What processing one message did (logged; tests read it)."""

    sent: int = 0
    failed: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    uncertain: int = 0  # sent with no answer, or found mid-send after a crash
    already: int = 0  # found settled (or taken) by another delivery
    recovered: int = 0  # claimed by an earlier attempt that never sent them: sent now
    in_flight: int = 0  # being sent by another delivery right now (the message fails)
    deferred: int = 0
    requeued: int = 0
    waiting: bool = False  # not_before still ahead: re-delayed untouched


def spec_of(job: Job) -> rules.ReminderSpec:
    """The typed spec of a reminder job's normalized params."""
    return rules.parse_spec(job.params["kind"], dict(job.params.get("spec") or {}))


def _platform_id(member_id: str, channel_type: str) -> str | None:
    """A chat member's platform user id on ``channel_type`` (ids ``<platform>:<user>``)."""
    prefix = f"{channel_type}:"
    return member_id[len(prefix) :] or None if member_id.startswith(prefix) else None


def _freeze_note(risk: rules.StreakRisk, locale: str) -> str:
    if not risk.freeze_covers:
        return ""
    if locale.startswith("zh"):
        return "（你有补签卡，今晚错过也不会断签）"
    return " (a streak freeze would cover tonight)"


class ReminderService:
    """Selects, sends and converts reminders (see the module docstring)."""

    def __init__(
        self,
        store: ReminderStore,
        ledger: LedgerStore,
        queue: ReminderQueue,
        channel_env: ChannelEnvironment,
        config: Callable[[], Config],
        *,
        lotteries: LotteryStore | None = None,
        clock: Clock | None = None,
        shards: int = LAST_DAY_SHARDS,
    ):
        self.lotteries = lotteries
        self.store = store
        self.ledger = ledger
        self.queue = queue
        self.channel_env = channel_env
        self._config = config
        self._clock = clock
        self.shards = shards

    def _now(self) -> datetime:
        return (self._clock or get_clock()).now()

    # ------------------------------------------------------------------ selection

    def select(self, ctx: ActionContext) -> ActionResult:
        """The dispatcher's ``reminder`` action: select the recipients and enqueue them."""
        if not self.queue.url or not self.store.table:
            return ActionResult(ok=False, error="REMINDER_QUEUE_URL/REMINDER_TABLE are not set")
        community, job = ctx.community, ctx.job
        spec = spec_of(job)
        tz = zone(community.timezone)
        at = ctx.occurrence.scheduled_utc
        plan = rules.plan_selection(spec, at, tz, community.day_boundary)
        lottery_info: tuple[str, datetime, datetime] | None = None
        entrants: set[str] = set()
        if isinstance(spec, rules.LotterySpec):
            cycle = self._cycle_drawing_today(community, spec, at)
            if cycle is None:
                self.store.add_selected(community.id, plan.today, job.id, ctx.occurrence.id, 0)
                return ActionResult(
                    ok=True,
                    detail={"kind": spec.kind.value, "selected": 0, "reason": "no draw today"},
                )
            lottery_info = (cycle.draw_id, cycle.closes_utc, cycle.draws_utc)
            assert self.lotteries is not None
            entrants = {e.member_id for e in self.lotteries.entries(community.id, cycle.draw_id)}
        recipients: list[tuple[str, date]] = []
        if plan.source is rules.SelectionSource.LOTTERY_ENTRIES:
            # Entrants: the cycle's entries partition, read by Query pages. Their day is
            # the community's (the draw is tonight in the community's time).
            recipients = [(m, plan.today) for m in sorted(entrants)]
        else:
            lo, hi = plan.sort_key_range()
            min_streak = (
                plan.threshold if plan.post_filter is rules.PostFilter.STREAK_AT_LEAST else None
            )
            for shard in range(self.shards):
                for item in self.ledger.members_by_last_day(
                    community.id, shard, lo, hi, min_streak
                ):
                    if item.member_id in entrants:
                        continue
                    day = rules.member_today(at, item.timezone, tz, community.day_boundary)
                    recipients.append((item.member_id, day))
        batches = [
            Batch(
                community.id,
                job.id,
                ctx.occurrence.id,
                plan.today,
                at,
                tuple(recipients[i : i + RECIPIENTS_PER_MESSAGE]),
                lottery=lottery_info,
            )
            for i in range(0, len(recipients), RECIPIENTS_PER_MESSAGE)
        ]
        self.queue.send_all(batches)
        self.store.add_selected(
            community.id, plan.today, job.id, ctx.occurrence.id, len(recipients)
        )
        return ActionResult(
            ok=True,
            detail={
                "kind": spec.kind.value,
                "day": plan.today.isoformat(),
                "selected": len(recipients),
                "messages": len(batches),
            },
        )

    # ------------------------------------------------------------------ sending

    def process(self, body: str, remaining_ms: Callable[[], int] | None = None) -> BatchReport:
        """Handle one queue message (safe to receive any number of times)."""
        batch = Batch.parse(body)
        now = self._now()
        report = BatchReport()
        if batch.not_before is not None and batch.not_before > now + timedelta(seconds=1):
            self.queue.send_later(batch, int((batch.not_before - now).total_seconds()) + 1)
            report.waiting = True
            return report
        community, job = self._find(batch)
        if community is None or job is None:
            logger.warning(
                "reminder batch for %s/%s: the job is no longer configured; dropped",
                batch.community,
                batch.job,
            )
            return report
        spec = spec_of(job)
        params = job.params
        channel_spec = community.channel(params["channel"])
        from autopilot.channels.registry import build_channel

        channel = build_channel(channel_spec, self.channel_env)
        tz = zone(community.timezone)
        accounts = self.ledger.accounts_of(community.id, [m for m, _ in batch.recipients])
        cycle = None
        entered: set[str] = set()
        if batch.lottery is not None:
            draw_id, closes, draws = batch.lottery
            cycle = rules.LotteryCycle(closes_at_utc=closes, draw_at_utc=draws)
            if self.lotteries is not None:
                entered = self.lotteries.entered(
                    community.id, draw_id, [m for m, _ in batch.recipients]
                )
        claims: list[Claim] = []
        deferred: dict[datetime, list[tuple[str, date]]] = {}
        due: dict[str, Account] = {}
        for member_id, day in batch.recipients:
            key = rules.reminder_key(community.id, job.id, member_id, day)
            account = accounts.get(member_id)
            if account is None:
                claims.append(Claim(key, member_id, day, SKIPPED, rules.SkipReason.LEFT.value))
                continue
            direct = bool(channel.supports_direct and account.dm_address)
            verdict = rules.still_due(
                spec.kind,
                spec,
                _facts(account, member_id in entered if cycle is not None else None),
                now,
                reminder_day=day,
                community_zone=tz,
                boundary=community.day_boundary,
                quiet=community.quiet_hours,
                quiet_policy=job.quiet_hours if job.quiet_hours in ("defer", "drop") else "defer",
                direct=direct,
                lottery=cycle,
            )
            if verdict.due:
                claims.append(Claim(key, member_id, day))
                due[member_id] = account
            elif verdict.action is rules.QuietAction.DEFER and verdict.until_utc is not None:
                deferred.setdefault(verdict.until_utc, []).append((member_id, day))
            else:
                assert verdict.reason is not None
                claims.append(Claim(key, member_id, day, SKIPPED, verdict.reason.value))
        for until, members in sorted(deferred.items()):
            later = replace(batch, recipients=tuple(members), not_before=until)
            self.queue.send_later(later, int((until - now).total_seconds()) + 1)
            report.deferred += len(members)
        claimed = self.store.claim(
            community.id,
            job.id,
            batch.run_day,
            claims,
            now,
            channel_id=channel_spec.id,
            occurrence_id=batch.occurrence,
        )
        to_send: list[Claim] = []
        for claim in claimed.written:
            if claim.status == SKIPPED:
                report.skipped[claim.reason or ""] = report.skipped.get(claim.reason or "", 0) + 1
            else:
                to_send.append(claim)
        settle: list[Outcome] = []
        if claimed.existing:
            recovered, settle = self._recover(claimed.existing, claimed.found, report)
            to_send += recovered
        outcomes = list(settle)
        if to_send:
            try:
                self._send(
                    batch,
                    community,
                    job,
                    spec,
                    channel,
                    to_send,
                    due,
                    now,
                    remaining_ms,
                    report,
                    outcomes,
                )
            except Exception:
                # A store error mid-run (the message fails and comes back): keep the
                # answers already known, so the redelivery finds them settled rather
                # than ``sending`` (uncertain); its unsent members stay ``claimed``.
                if outcomes:
                    self.store.record(community.id, job.id, batch.run_day, outcomes, self._now())
                raise
        if outcomes:
            written = self.store.record(community.id, job.id, batch.run_day, outcomes, self._now())
            for o in written:
                if o.status == SENT:
                    report.sent += 1
                elif o.status == UNCERTAIN:
                    report.uncertain += 1
                elif o.status == SKIPPED:
                    report.skipped[o.reason or ""] = report.skipped.get(o.reason or "", 0) + 1
                else:
                    report.failed += 1
        logger.info(
            "reminders %s/%s %s: sent %d failed %d uncertain %d skipped %s already %d "
            "recovered %d deferred %d requeued %d",
            community.id,
            job.id,
            batch.run_day,
            report.sent,
            report.failed,
            report.uncertain,
            report.skipped,
            report.already,
            report.recovered,
            report.deferred,
            report.requeued,
        )
        if report.in_flight:
            raise SendsInFlight(
                f"{report.in_flight} member(s) of this message are being sent by another "
                "delivery right now; the message comes back after its visibility timeout"
            )
        return report

    def _recover(
        self, existing: Sequence[Claim], found: Mapping[str, Marker], report: BatchReport
    ) -> tuple[list[Claim], list[Outcome]]:
        """What to do for members whose marker an earlier delivery wrote.

        ``existing`` carries this delivery's own verdict for each member (claimed:
        due now, or skipped with the reason); ``found`` each marker, as the
        claim's cancellation returned it (markers it did not return are read: one
        BatchGetItem per 100). ``claimed`` means the earlier attempt never started
        the member's send (it crashed, or it is still running and has not reached
        that message) — the member is sent now, or skipped if no longer due;
        ``sending`` means a send started and its outcome was never recorded —
        ``uncertain``, never re-sent, unless its intent is younger than
        :data:`IN_FLIGHT` (a duplicate delivery is sending it right now: left to it,
        ``report.in_flight``). Any other status is a settled reminder: nothing
        happens. Every change is conditional on the status read, so a racing
        delivery settles each member once.
        """
        markers = dict(found)
        unread = [c.key for c in existing if c.key not in markers]
        if unread:
            markers.update((m.key, m) for m in self.store.markers(unread))
        now = self._now()
        status = {key: m.status for key, m in markers.items()}
        to_send: list[Claim] = []
        settle: list[Outcome] = []
        for claim in existing:
            found_status = status.get(claim.key)
            intent_at = markers[claim.key].intent_at if claim.key in markers else None
            if found_status == CLAIMED and claim.status == CLAIMED:
                to_send.append(claim)
                report.recovered += 1
            elif found_status == CLAIMED:
                settle.append(Outcome(claim.key, SKIPPED, expect=CLAIMED, reason=claim.reason))
            elif found_status == SENDING and intent_at is not None and now - intent_at < IN_FLIGHT:
                report.in_flight += 1
            elif found_status == SENDING:
                settle.append(
                    Outcome(
                        claim.key,
                        UNCERTAIN,
                        error="a send started and its outcome was never recorded "
                        "(the worker stopped): it may have reached the member",
                    )
                )
            else:  # settled, or released by an attempt out of time (enqueued again)
                report.already += 1
        return to_send, settle

    def _cycle_drawing_today(
        self, community: Community, spec: rules.LotterySpec, at: datetime
    ) -> Cycle | None:
        """The lottery's current cycle when it draws later on the community's day of ``at``."""
        try:
            lottery = community.lottery(spec.lottery_id)
        except KeyError:
            return None
        if not lottery.enabled:
            return None
        tz = zone(community.timezone)
        cycle = cycle_at(lottery, tz, at)
        if cycle is None or not rules.draws_today(cycle.draws_utc, at, tz, community.day_boundary):
            return None
        return cycle

    def _find(self, batch: Batch) -> tuple[Community | None, Job | None]:
        for community in self._config().communities:
            if community.id == batch.community:
                for job in reminder_jobs(community):
                    if job.id == batch.job:
                        return community, job
                return community, None
        return None, None

    def _send(
        self,
        batch: Batch,
        community: Community,
        job: Job,
        spec: rules.ReminderSpec,
        channel: Any,
        to_send: Sequence[Claim],
        accounts: Mapping[str, Account],
        now: datetime,
        remaining_ms: Callable[[], int] | None,
        report: BatchReport,
        outcomes: list[Outcome],
    ) -> None:
        """Plan and send the claimed members, appending their outcomes to
        ``outcomes`` as they come (recorded by the caller in one transaction per 99).

        Before each planned message goes to the channel its members' send intent is
        written (:meth:`ReminderStore.intend`, conditional on ``claimed``). If another
        delivery took any of them first, this message is not sent: the members
        still ours (its others and the rest of the plan) are planned again without
        them, so nobody is mentioned twice and nobody is dropped.
        """
        params = job.params
        claim_of = {c.member_id: c for c in to_send}
        lottery_fields = self._lottery_fields(community, spec, batch)
        recipient_of = {
            c.member_id: self._recipient(
                community,
                params,
                accounts[c.member_id],
                c.member_day,
                channel,
                lottery_fields,
            )
            for c in to_send
        }
        date_text, weekday = date_words(batch.run_day, community.locale)
        group_template = string.Formatter().vformat(
            params["group_template"],
            (),
            _Keep(
                {
                    "community": community.name,
                    "date": date_text,
                    "weekday": weekday,
                    **lottery_fields,
                }
            ),
        )
        window = timedelta(seconds=int(params.get("conversion_window_s") or 4 * 3600))

        def plan(claims: Sequence[Claim]) -> list[Any]:
            """The messages for ``claims`` (deterministic: the same members in the
            same order give the same messages and keys); a plan the platform cannot
            take fails its members, whose sends never started."""
            try:
                return list(
                    plan_delivery(
                        channel.type,
                        [recipient_of[c.member_id] for c in claims],
                        group_template,
                        options=channel.spec.options,
                        max_mentions=params.get("max_mentions"),
                    )
                )
            except MentionPlanError as exc:
                outcomes.extend(
                    Outcome(c.key, FAILED, error=str(exc), expect=CLAIMED) for c in claims
                )
                return []

        planned = plan(to_send)
        deadline = Deadline(remaining_ms, reserve_ms=RESERVE_MS)
        index = 0
        while index < len(planned):
            message = planned[index]
            if remaining_ms is not None and remaining_ms() < 2 * RESERVE_MS:
                # Out of time before this send: give its members (and the rest) back.
                rest = [claim_of[m] for p in planned[index:] for m in p.member_ids]
                self.store.release(c.key for c in rest)
                later = replace(batch, recipients=tuple((c.member_id, c.member_day) for c in rest))
                self.queue.send_later(later, 0)
                report.requeued += len(rest)
                break
            send_at = self._now()
            first = message.member_ids[0]
            text_message = Message(
                text=message.text,
                key=f"reminder#{batch.community}#{batch.job}#{batch.run_day}#{first}",
                community_id=community.id,
                job_id=job.id,
                idempotency_key=f"{batch.occurrence}#{first}",
            )
            keys = [claim_of[m].key for m in message.member_ids]
            lost = self.store.intend(keys, send_at, text_message.key)
            if lost:
                # Another delivery took (or settled) some of them: not ours to send.
                report.already += len(lost)
                rest = [
                    claim_of[m]
                    for p in planned[index:]
                    for m in p.member_ids
                    if claim_of[m].key not in lost
                ]
                planned = planned[:index] + (plan(rest) if rest else [])
                continue
            try:
                delivery: Delivery = channel.send_planned(
                    message, text_message, now=send_at, deadline=deadline
                )
            except Exception as exc:  # misconfiguration: recorded, never retried
                logger.exception("reminder send on %s failed", channel.id)
                delivery = Delivery(channel.id, False, iso_utc(send_at), error=redact(repr(exc)))
            for member_id in message.member_ids:
                key = claim_of[member_id].key
                if delivery.ok:
                    outcomes.append(
                        Outcome(key, SENT, message.kind, convert_until=send_at + window)
                    )
                elif delivery.unknown:
                    outcomes.append(Outcome(key, UNCERTAIN, message.kind, error=delivery.error))
                else:
                    outcomes.append(Outcome(key, FAILED, message.kind, error=delivery.error))
            index += 1

    @staticmethod
    def _lottery_fields(
        community: Community, spec: rules.ReminderSpec, batch: Batch
    ) -> dict[str, str]:
        """``{lottery}`` (its title) and ``{draw_time}`` (local HH:MM) of a lottery reminder."""
        if not isinstance(spec, rules.LotterySpec) or batch.lottery is None:
            return {"lottery": "", "draw_time": ""}
        try:
            title = community.lottery(spec.lottery_id).title
        except KeyError:
            title = spec.lottery_id
        draws = local_wall(batch.lottery[2], zone(community.timezone))
        return {"lottery": title, "draw_time": f"{draws:%H:%M}"}

    def _recipient(
        self,
        community: Community,
        params: Mapping[str, Any],
        account: Account,
        day: date,
        channel: Any,
        lottery_fields: Mapping[str, str],
    ) -> Recipient:
        state = account.state
        name = account.display_name or account.member_id
        risk = rules.streak_risk(state.last_day, state.streak, state.freezes, day)
        date_text, weekday = date_words(day, community.locale)
        fields = {
            "community": community.name,
            "date": date_text,
            "weekday": weekday,
            "name": name,
            "streak": state.streak,
            "freezes": state.freezes,
            "freeze_note": _freeze_note(risk, community.locale),
            "days_since": (day - state.last_day).days if state.last_day else 0,
            **lottery_fields,
        }
        direct_text = None
        address = account.dm_address if channel.supports_direct else None
        if address:
            direct_text = render(params["template"], fields)
        return Recipient(
            member_id=account.member_id,
            display_name=name,
            platform_user_id=_platform_id(account.member_id, channel.type),
            dm_address=address,
            direct_text=direct_text,
        )

    # ------------------------------------------------------------------ conversion

    def on_checkin(
        self,
        community: Community,
        member_id: str,
        day: date,
        at: datetime,
        zone_name: str | None = None,
    ) -> list[str]:
        """Mark today's reminders of the member converted (returns the job ids converted).

        Only jobs that fired earlier on the member's day ``day`` (their own zone
        ``zone_name`` when set) can have reminded them today: a morning check-in
        before the evening's reminders costs no request. Never raises: a failure
        here must not fail the check-in (it is logged).
        """
        jobs = [
            j for j in reminder_jobs(community) if self._fired_on(community, j, day, at, zone_name)
        ]
        if not jobs or not self.store.table:
            return []
        try:
            keys = [rules.reminder_key(community.id, j.id, member_id, day) for j in jobs]
            converted = []
            for marker in self.store.markers(keys):
                if marker.status != SENT or marker.converted_at is not None:
                    continue
                if marker.sent_at is None or marker.convert_until is None:
                    continue
                if not marker.sent_at <= at < marker.convert_until:
                    continue
                if self.store.convert(community.id, marker, at):
                    converted.append(marker.job_id)
            return converted
        except Exception:
            logger.exception("reminder conversion of %s/%s failed", community.id, member_id)
            return []

    @staticmethod
    def _fired_on(
        community: Community, job: Job, day: date, at: datetime, zone_name: str | None
    ) -> bool:
        """Whether ``job`` had an occurrence at or before ``at`` on the member's ``day``
        (pure: the cron's firings of the last 36 hours)."""
        tz = zone(community.timezone)
        fired = occurrences_scheduled_between(
            community.id, job, tz, None, at - timedelta(hours=36), at
        )
        return any(
            rules.member_today(o.scheduled_utc, zone_name, tz, community.day_boundary) == day
            for o in fired
        )


class _Keep(dict[str, Any]):
    """Template fields that leave ``{mentions}`` in place for the planner."""

    def __missing__(self, key: str) -> str:
        if key == "mentions":
            return "{mentions}"
        raise KeyError(f"template field {{{key}}} has no value")


def _facts(account: Account, lottery_entered: bool | None = None) -> rules.MemberFacts:
    kinds = {k.value for k in rules.ReminderKind} if account.reminders_opt_out else set()
    kinds.update(account.reminder_opt_outs)
    state = account.state
    return rules.MemberFacts(
        member_id=account.member_id,
        last_day=state.last_day,
        streak=state.streak,
        freezes=state.freezes,
        zone=account.timezone,
        opted_out=frozenset(kinds),
        left=account.left_at is not None,
        lottery_entered=lottery_entered,
    )


def counters_of(
    store: ReminderStore, community: Community, days: Iterable[date]
) -> dict[str, dict[str, dict[str, int]]]:
    """``{job: {day: counters}}`` for the community's reminder jobs (reports, simulate)."""
    jobs = [j.id for j in reminder_jobs(community)]
    out: dict[str, dict[str, dict[str, int]]] = {}
    for day in days:
        for job_id, counts in store.counters(community.id, day, jobs).items():
            out.setdefault(job_id, {})[day.isoformat()] = counts
    return out


__all__ = [
    "BadReminderMessage",
    "Batch",
    "BatchReport",
    "ReminderQueue",
    "ReminderService",
    "SendsInFlight",
    "counters_of",
    "reminder_jobs",
    "spec_of",
]
