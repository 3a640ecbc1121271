"""How AWS delivers events to the functions in a simulation: ticks, SQS, API clients.

:class:`Triggers` is the simulation's stand-in for EventBridge Scheduler, Lambda's
SQS pollers and the members' apps. Without faults it delivers each event once
and reports failures (as the simulation always did). With a
:class:`~autopilot_cli.local.faults.FaultInjector` it also does what each real
trigger does when a delivery fails, on the simulated clock:

* **Dispatcher ticks** (EventBridge Scheduler, ``rate(1 minute)``, the template's
  ``MaximumRetryAttempts: 0``): a failed or crashed tick is not retried; the next
  minutes' ticks are the retry, so the simulation delivers a tick each minute for
  :data:`RECOVERY_MINUTES` after a tick in which a fault was injected (idle ticks
  cost nothing). A tick may be delivered twice (at-least-once), after or
  overlapping the first.
* **SQS batches** (the worker and reminder queues): a crashed invocation deletes
  nothing; its messages, and the ones a function reported in
  ``batchItemFailures``, become visible again after the queue's visibility
  timeout and are redelivered (the queue's redrive policy moves them to the
  dead-letter queue after ``maxReceiveCount`` receives). A batch may be delivered
  twice.
* **API calls** (a member's app): an answer that never came (crash, API Gateway's
  30 s timeout during a frozen container) or a 5xx is retried with the same body
  (the same idempotency key) after a backoff, up to :data:`CLIENT_ATTEMPTS`.

Every invocation runs on its own clock (:class:`InvocationClock`: the world's time
when it started, moved on by its own waits), so a rate-limit wait inside one
invocation does not move the world's clock, as in AWS where other functions run
meanwhile.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import itertools
import json
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any, TextIO

from autopilot.clock import ManualClock, set_clock

from autopilot_cli.local.faults import FaultInjector, InvocationClock, SimulatedCrash
from autopilot_cli.local.runtime import LocalRuntime, SqsEventSource

DISPATCHER = "DispatcherFunction"
API_FUNCTION = "ApiFunction"
#: Minutes of per-minute ticks after a tick that met a fault (the schedule's own ticks).
RECOVERY_MINUTES = 15
#: Attempts of a member's app before it gives up (backoff 1, 2, 4 … 30 s).
CLIENT_ATTEMPTS = 8
#: API Gateway's integration timeout: a client waits this long for a frozen function.
API_TIMEOUT_S = 30
OVERLAP_SLOT = "overlap"
DUPLICATE_SLOT = "duplicate"


class Triggers:
    """Delivers ticks, SQS batches and API calls to the runtime's functions."""

    def __init__(
        self,
        runtime: LocalRuntime,
        world: ManualClock,
        *,
        injector: FaultInjector | None = None,
        log: TextIO | None = None,
    ) -> None:
        self.runtime = runtime
        self.world = world
        self.injector = injector
        self.log = log
        self.work = {"batches": 0, "errors": 0}
        #: What the triggers did about failures (summary.json ``faults.recovery``).
        self.recovery: Counter[str] = Counter()
        self._deferred: list[tuple[datetime, int, str, Callable[[], None]]] = []
        self._sequence = itertools.count()
        self._recovery_minutes: set[datetime] = set()
        self._visibility: dict[str, int] = {}
        self._sources: list[SqsEventSource] | None = None
        runtime.around_invoke = self._around_invoke
        if injector is not None:
            injector.on_freeze = self._freeze_elsewhere

    # ------------------------------------------------------------------ #
    # Invocation clocks
    # ------------------------------------------------------------------ #
    def _around_invoke(self, function_id: str, slot: str) -> contextlib.AbstractContextManager[Any]:
        if self.injector is not None and self.injector.enabled:
            return self.injector.around_invoke(function_id, slot)
        return self._plain_clock()

    @contextlib.contextmanager
    def _plain_clock(self) -> Iterator[None]:
        previous = set_clock(InvocationClock(self.world.now()))
        try:
            yield
        finally:
            set_clock(previous)

    def _note(self, text: str) -> None:
        if self.log is not None:
            print(text, file=self.log)

    def _faults_so_far(self) -> int:
        """Faults that can leave a tick's work unfinished (not duplicates or skews)."""
        if self.injector is None:
            return 0
        counts = self.injector.counts
        return sum(n for kind, n in counts.items() if kind not in ("duplicate", "skew"))

    # ------------------------------------------------------------------ #
    # Deferred deliveries (redeliveries, recovery ticks)
    # ------------------------------------------------------------------ #
    def schedule(self, at: datetime, label: str, action: Callable[[], None]) -> None:
        heapq.heappush(self._deferred, (at, next(self._sequence), label, action))

    def next_deferred(self) -> datetime | None:
        return self._deferred[0][0] if self._deferred else None

    def settle(self, end: datetime) -> None:
        """After the last event: let redeliveries already under way finish (SQS
        messages a crashed function left in flight), as AWS would; schedule ticks
        stop at ``end``."""
        while self._deferred:
            if self._deferred[0][0] >= end and self._deferred[0][2] == "tick":
                heapq.heappop(self._deferred)  # no more schedule ticks after the end
                continue
            self.run_deferred()

    def run_deferred(self) -> str:
        """Run the earliest deferred delivery (the world's clock moved to its time)."""
        at, _, label, action = heapq.heappop(self._deferred)
        self.world.set(max(at, self.world.now()))
        action()
        return label

    # ------------------------------------------------------------------ #
    # Dispatcher ticks
    # ------------------------------------------------------------------ #
    def tick(self, at: datetime) -> Any:
        """Deliver the schedule's tick of ``at`` (perhaps twice); the first's report."""
        event = self.runtime.scheduled_event(at)
        before = self._faults_so_far()
        injector = self.injector
        duplicate = overlapping = False
        if injector is not None and injector.enabled and injector.roll("duplicate"):
            duplicate = True
            overlapping = injector.rng.random() < 0.5
            injector.record("duplicate", "dispatcher tick", overlapping=overlapping)
        if overlapping:
            assert injector is not None
            injector.interrupt_next(
                DISPATCHER,
                lambda: self._invoke_tick(event, slot=OVERLAP_SLOT),
            )
        report = self._invoke_tick(event)
        if duplicate and not overlapping:
            self._invoke_tick(event, slot=DUPLICATE_SLOT)
        if self._faults_so_far() != before:
            self._schedule_recovery_ticks(at, RECOVERY_MINUTES)
        elif injector is not None and injector.enabled and injector.spec.rate("skew"):
            # A container whose clock runs behind saw this tick as early; in AWS the
            # next minute's tick runs what it left (the simulation skips idle ticks).
            self._schedule_recovery_ticks(at, 1)
        return report

    def _invoke_tick(self, event: dict[str, Any], slot: str = "") -> Any:
        try:
            return self.runtime.invoke(DISPATCHER, event, slot=slot)
        except SimulatedCrash as crash:
            self._crashed(DISPATCHER, slot, crash)
        except Exception as exc:  # the tick failed: the next minutes' ticks retry
            self.recovery["tick_errors"] += 1
            self._note(f"[{DISPATCHER}] tick failed: {exc!r}")
        return None

    def _schedule_recovery_ticks(self, at: datetime, minutes: int) -> None:
        minute = at.replace(second=0, microsecond=0)
        for n in range(1, minutes + 1):
            tick_at = minute + timedelta(minutes=n, seconds=2)
            if tick_at in self._recovery_minutes:
                continue
            self._recovery_minutes.add(tick_at)
            self.schedule(tick_at, "tick", functools.partial(self._recovery_tick, tick_at))

    def _recovery_tick(self, at: datetime) -> None:
        self.recovery["recovery_ticks"] += 1
        self.tick(at)
        self.deliver_work()

    def _crashed(self, function_id: str, slot: str, crash: SimulatedCrash) -> None:
        """The container died: the next invocation in its slot is a cold start."""
        self.recovery[f"crashed:{function_id}"] += 1
        self.runtime.discard_container(function_id, slot)
        if self.injector is not None:
            self.injector.container_died(function_id, slot)
        self._note(f"[{function_id}] {crash}")

    # ------------------------------------------------------------------ #
    # SQS
    # ------------------------------------------------------------------ #
    def deliver_work(self) -> None:
        """What Lambda's pollers do: deliver every visible message to its function."""
        if self.injector is None or not self.injector.enabled:

            def failed(source: SqsEventSource, exc: BaseException) -> None:
                # Lambda would retry after the visibility timeout, then dead-letter:
                # the simulation records the failure and goes on.
                self.work["errors"] += 1
                self._note(f"[{source.function_id}] failed on {source.queue_id}: {exc!r}")

            self.work["batches"] += self.runtime.deliver_pending_sqs(on_error=failed)
            return
        if self._sources is None:
            self._sources = self.runtime.sqs_event_sources()
        progressing = True
        rounds = 0
        while progressing:
            progressing = False
            rounds += 1
            if rounds > 1000:
                raise RuntimeError("SQS delivery did not settle after 1000 rounds")
            for source in self._sources:
                while self.runtime.has_visible_messages(source.queue_id):
                    self._deliver_batch(source)
                    progressing = True

    def _visibility_s(self, queue_id: str) -> int:
        if queue_id not in self._visibility:
            attributes = self.runtime.client("sqs").get_queue_attributes(
                QueueUrl=self.runtime.physical_id(queue_id), AttributeNames=["VisibilityTimeout"]
            )["Attributes"]
            self._visibility[queue_id] = int(attributes.get("VisibilityTimeout", "30"))
        return self._visibility[queue_id]

    def _deliver_batch(self, source: SqsEventSource) -> None:
        injector = self.injector
        assert injector is not None
        event = self.runtime.receive_sqs_event(source.queue_id, max_messages=source.batch_size)
        records = event["Records"]
        if not records:
            return
        self.work["batches"] += 1
        handles = {r["messageId"]: r["receiptHandle"] for r in records}
        duplicate = injector.roll("duplicate")
        overlapping = duplicate and injector.rng.random() < 0.5
        if duplicate:
            injector.record("duplicate", f"SQS batch of {source.queue_id}", overlapping=overlapping)
        if overlapping:
            injector.interrupt_next(
                source.function_id,
                lambda: self._invoke_batch(source, event, OVERLAP_SLOT, handles),
            )
        failed = self._invoke_batch(source, event, "", handles)
        if duplicate and not overlapping:
            self._invoke_batch(source, event, DUPLICATE_SLOT, handles)
        if failed:
            self._redeliver_later(source, [handles[m] for m in sorted(failed)])

    def _invoke_batch(
        self, source: SqsEventSource, event: dict[str, Any], slot: str, handles: dict[str, str]
    ) -> set[str]:
        """Invoke once; delete what succeeded; return the message ids to redeliver."""
        try:
            result = self.runtime.invoke(source.function_id, event, slot=slot)
        except SimulatedCrash as crash:
            self._crashed(source.function_id, slot, crash)
            return set(handles)
        except Exception as exc:
            self.work["errors"] += 1
            self._note(f"[{source.function_id}] failed on {source.queue_id}: {exc!r}")
            return set(handles)
        failed = self.runtime.failed_message_ids(
            source.function_id, source.queue_id, handles, result
        )
        sqs = self.runtime.client("sqs")
        for message_id, handle in handles.items():
            if message_id in failed:
                continue
            # Deleting twice (a duplicate delivery) is harmless in SQS.
            with contextlib.suppress(Exception):
                sqs.delete_message(
                    QueueUrl=self.runtime.physical_id(source.queue_id), ReceiptHandle=handle
                )
        if failed:
            self.recovery["sqs_item_failures"] += len(failed)
        return failed

    def _redeliver_later(self, source: SqsEventSource, receipt_handles: list[str]) -> None:
        """After the visibility timeout the messages are visible again (simulated time)."""
        at = self.world.now() + timedelta(seconds=self._visibility_s(source.queue_id))

        def redeliver() -> None:
            sqs = self.runtime.client("sqs")
            for handle in receipt_handles:
                with contextlib.suppress(Exception):  # deleted meanwhile by a duplicate
                    sqs.change_message_visibility(
                        QueueUrl=self.runtime.physical_id(source.queue_id),
                        ReceiptHandle=handle,
                        VisibilityTimeout=0,
                    )
            self.recovery["sqs_redeliveries"] += len(receipt_handles)
            self.deliver_work()

        self.schedule(at, "sqs", redeliver)

    # ------------------------------------------------------------------ #
    # API calls
    # ------------------------------------------------------------------ #
    def api(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        claims: dict[str, Any],
        *,
        query: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any] | None]:
        """A member's app calls the API; with faults it retries as apps do.

        Returns the answer the member finally saw: (status, body), status 0 when
        every attempt went unanswered.
        """
        injector = self.injector
        if injector is None or not injector.enabled:
            return self._api_once(method, path, body, claims, query, slot="")
        status, answer = 0, None
        for attempt in range(1, CLIENT_ATTEMPTS + 1):
            retried: list[tuple[int, dict[str, Any] | None]] = []

            def on_freeze(
                function_id: str,
                slot: str,
                minutes: int,
                retried: list[tuple[int, dict[str, Any] | None]] = retried,
            ) -> None:
                # The app gave up on the frozen call after API Gateway's timeout
                # and sent the same request again (another container answers it).
                if function_id != API_FUNCTION or retried:
                    return
                self.world.sleep(API_TIMEOUT_S + 1)
                self.recovery["api_retries"] += 1
                retried.append(self._api_once(method, path, body, claims, query, slot=OVERLAP_SLOT))

            injector.on_freeze = on_freeze
            try:
                status, answer = self._api_once(method, path, body, claims, query, slot="")
            finally:
                injector.on_freeze = self._freeze_elsewhere
            if retried:
                status, answer = retried[0]
            if status and status < 500:
                return status, answer
            if attempt < CLIENT_ATTEMPTS:
                self.recovery["api_retries"] += 1
                self.world.sleep(min(30.0, 2.0 ** (attempt - 1)))
        self.recovery["api_gave_up"] += 1
        return status, answer

    def _api_once(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        claims: dict[str, Any],
        query: dict[str, str] | None,
        *,
        slot: str,
    ) -> tuple[int, dict[str, Any] | None]:
        event = self.runtime.http_api_event(
            method,
            path,
            body=body,
            query=query,
            jwt_claims=claims,
            jwt_scopes=["autopilot/member"],
            time_utc=self.world.now(),
        )
        try:
            response = self.runtime.invoke(API_FUNCTION, event, slot=slot)
        except SimulatedCrash as crash:
            self._crashed(API_FUNCTION, slot, crash)
            return 0, None
        except Exception as exc:  # an unhandled error: API Gateway answers 500
            self._note(f"[{API_FUNCTION}] {method} {path} raised {exc!r}")
            return 500, None
        status = int(response.get("statusCode", 500))
        try:
            answer = json.loads(response.get("body") or "{}")
        except ValueError:
            answer = None
        return status, answer if isinstance(answer, dict) else None

    def _freeze_elsewhere(self, function_id: str, slot: str, minutes: int) -> None:
        """A frozen dispatcher: the world goes on, the next minute's tick arrives
        (in another container); other functions: the world's time passes."""
        self.world.sleep(minutes * 60)
        if function_id == DISPATCHER and slot != OVERLAP_SLOT:
            self.recovery["ticks_during_freeze"] += 1
            self._invoke_tick(self.runtime.scheduled_event(self.world.now()), slot=OVERLAP_SLOT)
