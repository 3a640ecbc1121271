"""The reminder table: at-most-once markers and per-job, per-day counters.

``ReminderTable`` (string key ``pk`` only, TTL on ``expires_at``):

* ``pk = rem#<community>#<member's day>#<job>#<member>``
  (:func:`autopilot.reminders.rules.reminder_key`) — one member's reminder of one
  job on one day. Written with ``attribute_not_exists(pk)`` *before* anything is
  sent (``status = claimed``) or instead of a send (``status = skipped``, with the
  reason). Just before the member's planned message goes to the channel, the
  send intent turns it ``claimed`` → ``sending`` (conditionally: of two
  deliveries racing for it, one wins and the other sends nothing), with the
  planned message's key; after the channel's answer it becomes ``sent``,
  ``failed`` or ``uncertain`` (the platform may have accepted it: no answer).
  A redelivered batch, a duplicated tick or a crashed worker therefore finds
  one of: ``claimed`` — nothing was sent to the member, who is sent now;
  ``sending`` — a send started and its outcome was never recorded, recorded
  ``uncertain`` and never re-sent (once the intent is older than a send can
  take: a younger one belongs to a duplicate delivery still sending); anything
  else — done, nothing happens. A member is reminded at most once per (job,
  day), and a claim whose send never started is never lost. A sent marker
  carries ``convert_until``; the member's next check-in before it sets
  ``converted_at`` (once, conditionally).
* ``pk = cnt#<community>#<community day>#<job>`` — the job's outcome counters for
  the day of its occurrence (``selected``, ``sent``, ``skipped_<reason>``,
  ``failed``, ``uncertain``, ``converted``:
  :data:`autopilot.reminders.rules.OUTCOME_COUNTERS`).
  Every count is written in the same transaction as the markers it counts, so
  counters and markers never disagree, whatever is retried. ``selected`` is added
  once per occurrence (``occurrences`` string set, conditional).

The table is reached with the low-level DynamoDB client (the container's shared
one, ``autopilot.aws``): transactions of up to 100 elements whose cancellation
reasons say which markers already existed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from autopilot.timeutil import iso_utc, parse_iso

logger = logging.getLogger(__name__)

#: Transactions hold at most 100 elements: 99 markers and the counter.
MAX_TRANSACT = 100
#: Markers expire (TTL) this long after their day: conversions and reports read
#: them within a day; the counters are kept.
MARKER_TTL = timedelta(days=35)

CLAIMED = "claimed"
#: The send intent: the member's planned message is going to the channel now.
SENDING = "sending"
SENT = "sent"
FAILED = "failed"
#: A send whose outcome nobody knows (no answer, or a crash after the intent).
UNCERTAIN = "uncertain"
SKIPPED = "skipped"


def counter_key(community: str, day: date, job_id: str) -> str:
    """Key of a job's counters for one community day."""
    return f"cnt#{community}#{day.isoformat()}#{job_id}"


@dataclass(frozen=True)
class Claim:
    """One marker to write before (``status`` claimed) or instead of (skipped) a send."""

    key: str
    member_id: str
    member_day: date
    status: str = CLAIMED
    reason: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What became of one claimed member: ``sent`` (``convert_until``), ``failed``,
    ``uncertain``, or ``skipped`` (``reason``: a claim whose send never started and
    that is no longer due).

    ``expect`` is the marker's status the outcome replaces (the condition of its
    write): ``sending`` for the answer of a send, ``claimed`` for a member whose
    send never started. A marker found in another status was settled by another
    delivery, and the outcome is dropped.
    """

    key: str
    status: str
    delivery: str = ""  # direct | group
    error: str | None = None
    convert_until: datetime | None = None
    expect: str = SENDING
    reason: str | None = None

    @property
    def counter(self) -> str:
        """The day counter this outcome adds 1 to."""
        return f"skipped_{self.reason}" if self.status == SKIPPED else self.status


@dataclass
class ClaimResult:
    """Which claims were written now and which found a marker already there.

    ``found``: each existing marker (by key), as the claim's cancellation
    returned it (``ReturnValuesOnConditionCheckFailure``: no read).
    """

    written: list[Claim] = field(default_factory=list)
    existing: list[Claim] = field(default_factory=list)
    found: dict[str, Marker] = field(default_factory=dict)


@dataclass(frozen=True)
class Marker:
    """A stored marker as the conversion path reads it (and as a claim finds it:
    ``intent_at``, when its send intent was written)."""

    key: str
    job_id: str
    run_day: date
    status: str
    sent_at: datetime | None
    convert_until: datetime | None
    converted_at: datetime | None
    intent_at: datetime | None = None


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(int(value))}


class ReminderStore:
    """Markers and counters of reminders (see the module docstring)."""

    def __init__(self, table_name: str, region: str, client: Any = None):
        self.table = table_name
        self._region = region
        self._client = client

    def _ddb(self) -> Any:
        if self._client is None:
            from autopilot import aws

            self._client = aws.client("dynamodb", self._region)
        return self._client

    # --- the dispatcher: selected --------------------------------------------------

    def add_selected(
        self, community: str, day: date, job_id: str, occurrence_id: str, count: int
    ) -> bool:
        """Count ``count`` selected members once per occurrence (False: counted already)."""
        try:
            self._ddb().update_item(
                TableName=self.table,
                Key={"pk": _s(counter_key(community, day, job_id))},
                UpdateExpression="ADD selected :n, occurrences :occ "
                "SET community_id = :c, job_id = :j, #d = :d",
                ConditionExpression="attribute_not_exists(occurrences) "
                "OR NOT contains(occurrences, :o)",
                ExpressionAttributeNames={"#d": "day"},
                ExpressionAttributeValues={
                    ":n": _n(count),
                    ":occ": {"SS": [occurrence_id]},
                    ":o": _s(occurrence_id),
                    ":c": _s(community),
                    ":j": _s(job_id),
                    ":d": _s(day.isoformat()),
                },
            )
        except self._ddb().exceptions.ConditionalCheckFailedException:
            return False
        return True

    # --- the worker: claims and outcomes ---------------------------------------------

    def claim(
        self,
        community: str,
        job_id: str,
        run_day: date,
        claims: Sequence[Claim],
        now: datetime,
        *,
        channel_id: str,
        occurrence_id: str,
    ) -> ClaimResult:
        """Write each claim's marker if absent, counting the skips with them.

        One transaction per 99 claims (plus the counter). A claim whose marker
        exists is reported in ``existing``, with the marker in ``found``
        (the cancellation returns the existing item: no read), and changes
        nothing; the transaction is repeated without it.
        """
        result = ClaimResult()
        for start in range(0, len(claims), MAX_TRANSACT - 1):
            pending = list(claims[start : start + MAX_TRANSACT - 1])
            while pending:
                items = [
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": self._marker_item(
                                c, community, job_id, run_day, now, channel_id, occurrence_id
                            ),
                            "ConditionExpression": "attribute_not_exists(pk)",
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                        }
                    }
                    for c in pending
                ]
                skips: dict[str, int] = {}
                for c in pending:
                    if c.status == SKIPPED and c.reason:
                        name = f"skipped_{c.reason}"
                        skips[name] = skips.get(name, 0) + 1
                if skips:
                    items.append(self._counter_update(community, run_day, job_id, skips))
                old: dict[int, dict[str, Any]] = {}
                failed = self._transact(items, old)
                if failed is None:
                    result.written.extend(pending)
                    break
                existing = [pending[i] for i in failed if i < len(pending)]
                for i in failed:
                    if i < len(pending) and i in old and "pk" in old[i]:
                        result.found[pending[i].key] = _marker(old[i])
                result.existing.extend(existing)
                gone = {id(c) for c in existing}
                pending = [c for c in pending if id(c) not in gone]
        return result

    def intend(self, keys: Sequence[str], now: datetime, message_key: str) -> set[str]:
        """Record the send intent of one planned message: its members' markers go
        ``claimed`` → ``sending`` (with ``message_key``), all or none.

        One conditional UpdateItem for a single member (a DM), one TransactWriteItems
        for a group message. Returns the keys whose marker was no longer ``claimed``
        (another delivery took or settled them): when any, nothing was written and
        the message must not be sent as planned.
        """
        unique = list(dict.fromkeys(keys))
        if not unique:
            return set()
        if len(unique) >= MAX_TRANSACT:
            raise ValueError(f"a planned message covers {len(unique)} members (max 99)")
        updates = [
            {
                "TableName": self.table,
                "Key": {"pk": _s(key)},
                "UpdateExpression": "SET #s = :sending, intent_at = :at, #m = :m",
                "ConditionExpression": "#s = :claimed",
                "ExpressionAttributeNames": {"#s": "status", "#m": "message"},
                "ExpressionAttributeValues": {
                    ":sending": _s(SENDING),
                    ":claimed": _s(CLAIMED),
                    ":at": _s(iso_utc(now)),
                    ":m": _s(message_key[:500]),
                },
            }
            for key in unique
        ]
        if len(updates) == 1:
            ddb = self._ddb()
            try:
                ddb.update_item(**updates[0])
            except ddb.exceptions.ConditionalCheckFailedException:
                return {unique[0]}
            return set()
        failed = self._transact([{"Update": u} for u in updates])
        return {unique[i] for i in failed or () if i < len(unique)}

    def record(
        self, community: str, job_id: str, run_day: date, outcomes: Sequence[Outcome], now: datetime
    ) -> list[Outcome]:
        """Settle markers (each from its ``expect`` status) and count them, in
        transactions of 99; returns the outcomes written (a marker found in another
        status was settled by another delivery: its outcome is dropped, uncounted)."""
        written: list[Outcome] = []
        for start in range(0, len(outcomes), MAX_TRANSACT - 1):
            chunk = list(outcomes[start : start + MAX_TRANSACT - 1])
            while chunk:
                items: list[dict[str, Any]] = []
                counts: dict[str, int] = {}
                for o in chunk:
                    names = {"#s": "status"}
                    values: dict[str, Any] = {
                        ":s": _s(o.status),
                        ":from": _s(o.expect),
                        ":at": _s(iso_utc(now)),
                        ":dl": _s(o.delivery or "-"),
                    }
                    update = "SET #s = :s, finished_at = :at, delivery = :dl"
                    if o.status == SENT and o.convert_until is not None:
                        update += ", sent_at = :at, convert_until = :cu"
                        values[":cu"] = _s(iso_utc(o.convert_until))
                    if o.error:
                        update += ", #e = :e"
                        names["#e"] = "error"
                        values[":e"] = _s(o.error[:500])
                    if o.reason:
                        update += ", #r = :r"
                        names["#r"] = "reason"
                        values[":r"] = _s(o.reason)
                    items.append(
                        {
                            "Update": {
                                "TableName": self.table,
                                "Key": {"pk": _s(o.key)},
                                "UpdateExpression": update,
                                "ConditionExpression": "#s = :from",
                                "ExpressionAttributeNames": names,
                                "ExpressionAttributeValues": values,
                            }
                        }
                    )
                    counts[o.counter] = counts.get(o.counter, 0) + 1
                items.append(self._counter_update(community, run_day, job_id, counts))
                failed = self._transact(items)
                if failed is None:
                    written.extend(chunk)
                    break
                # A marker no longer in the expected status was settled elsewhere.
                drop = set(failed)
                chunk = [o for i, o in enumerate(chunk) if i not in drop]
        return written

    def release(self, keys: Iterable[str]) -> None:
        """Delete claimed markers whose sends never started (out of time): the
        members are enqueued again and claimed afresh. A marker that is no longer
        ``claimed`` is left alone."""
        ddb = self._ddb()
        for key in keys:
            with contextlib.suppress(ddb.exceptions.ConditionalCheckFailedException):
                ddb.delete_item(
                    TableName=self.table,
                    Key={"pk": _s(key)},
                    ConditionExpression="#s = :claimed",
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={":claimed": _s(CLAIMED)},
                )

    # --- the check-in: conversions ----------------------------------------------------

    def markers(self, keys: Sequence[str]) -> list[Marker]:
        """The markers of ``keys`` that exist (one BatchGetItem per 100 keys)."""
        unique = list(dict.fromkeys(keys))
        found: list[Marker] = []
        for start in range(0, len(unique), 100):
            items = self._batch_get(
                unique[start : start + 100],
                ProjectionExpression="pk, job_id, run_day, #s, sent_at, "
                "convert_until, converted_at, intent_at",
                ExpressionAttributeNames={"#s": "status"},
            )
            found.extend(_marker(i) for i in items)
        return found

    def convert(self, community: str, marker: Marker, at: datetime) -> bool:
        """Record that the member checked in after ``marker``'s reminder (once)."""
        items = [
            {
                "Update": {
                    "TableName": self.table,
                    "Key": {"pk": _s(marker.key)},
                    "UpdateExpression": "SET converted_at = :at",
                    "ConditionExpression": "#s = :sent AND attribute_not_exists(converted_at)",
                    "ExpressionAttributeNames": {"#s": "status"},
                    "ExpressionAttributeValues": {":at": _s(iso_utc(at)), ":sent": _s(SENT)},
                }
            },
            self._counter_update(community, marker.run_day, marker.job_id, {"converted": 1}),
        ]
        return self._transact(items) is None

    # --- reports ----------------------------------------------------------------------

    def counters(
        self, community: str, day: date, job_ids: Sequence[str]
    ) -> dict[str, dict[str, int]]:
        """The counters of ``job_ids`` on ``day`` (missing jobs: absent)."""
        if not job_ids:
            return {}
        out: dict[str, dict[str, int]] = {}
        for item in self._batch_get([counter_key(community, day, j) for j in job_ids]):
            out[item["job_id"]["S"]] = {
                name: int(value["N"]) for name, value in item.items() if "N" in value
            }
        return out

    # --- plumbing ---------------------------------------------------------------------

    def _batch_get(self, keys: Sequence[str], **projection: Any) -> list[dict[str, Any]]:
        """The existing items of up to 100 ``keys`` (one BatchGetItem, plus retries of
        the keys DynamoDB left unprocessed)."""
        ddb = self._ddb()
        request: dict[str, Any] = {
            self.table: {"Keys": [{"pk": _s(k)} for k in keys], **projection}
        }
        items: list[dict[str, Any]] = []
        for _ in range(8):
            answer = ddb.batch_get_item(RequestItems=request)
            items.extend(answer.get("Responses", {}).get(self.table, []))
            request = answer.get("UnprocessedKeys") or {}
            if not request:
                break
        return items

    def _marker_item(
        self,
        claim: Claim,
        community: str,
        job_id: str,
        run_day: date,
        now: datetime,
        channel_id: str,
        occurrence_id: str,
    ) -> dict[str, Any]:
        expires = now + MARKER_TTL
        item = {
            "pk": _s(claim.key),
            "community_id": _s(community),
            "job_id": _s(job_id),
            "member_id": _s(claim.member_id),
            "day": _s(claim.member_day.isoformat()),
            "run_day": _s(run_day.isoformat()),
            "status": _s(claim.status),
            "channel_id": _s(channel_id),
            "occurrence": _s(occurrence_id),
            "claimed_at": _s(iso_utc(now)),
            "expires_at": _n(int(expires.timestamp())),
        }
        if claim.reason:
            item["reason"] = _s(claim.reason)
        return item

    def _counter_update(
        self, community: str, day: date, job_id: str, counts: Mapping[str, int]
    ) -> dict[str, Any]:
        names = {f"#c{i}": name for i, name in enumerate(sorted(counts))}
        values: dict[str, Any] = {
            f":c{i}": _n(counts[name]) for i, name in enumerate(sorted(counts))
        }
        adds = ", ".join(f"#c{i} :c{i}" for i in range(len(counts)))
        names["#d"] = "day"
        values.update({":cm": _s(community), ":j": _s(job_id), ":d": _s(day.isoformat())})
        return {
            "Update": {
                "TableName": self.table,
                "Key": {"pk": _s(counter_key(community, day, job_id))},
                "UpdateExpression": f"ADD {adds} SET community_id = :cm, job_id = :j, #d = :d",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }

    def _transact(
        self, items: list[dict[str, Any]], old: dict[int, dict[str, Any]] | None = None
    ) -> list[int] | None:
        """Run one transaction; ``None`` when applied, else the indexes of the
        elements whose condition failed (a cancellation for another reason raises).
        ``old`` receives, by index, the items those elements found (when they asked
        for them with ``ReturnValuesOnConditionCheckFailure``)."""
        ddb = self._ddb()
        try:
            ddb.transact_write_items(TransactItems=items)
        except ddb.exceptions.TransactionCanceledException as exc:
            reasons = exc.response.get("CancellationReasons") or []
            failed = [i for i, r in enumerate(reasons) if r.get("Code") == "ConditionalCheckFailed"]
            others = [
                r.get("Code")
                for r in reasons
                if r.get("Code") not in (None, "None", "ConditionalCheckFailed")
            ]
            if not failed or others:
                raise
            if old is not None:
                for i in failed:
                    if reasons[i].get("Item"):
                        old[i] = reasons[i]["Item"]
            return failed
        return None


def _marker(item: Mapping[str, Any]) -> Marker:
    def text(name: str) -> str | None:
        value = item.get(name)
        return value["S"] if value else None

    def instant(name: str) -> datetime | None:
        value = text(name)
        return parse_iso(value) if value else None

    return Marker(
        key=item["pk"]["S"],
        job_id=text("job_id") or "",
        run_day=date.fromisoformat(text("run_day") or "1970-01-01"),
        status=text("status") or "",
        sent_at=instant("sent_at"),
        convert_until=instant("convert_until"),
        converted_at=instant("converted_at"),
        intent_at=instant("intent_at"),
    )
