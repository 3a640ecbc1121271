"""Counting AWS requests, the unit AWS bills by.

The product's efficiency targets ("a check-in costs one DynamoDB request",
"an idle tick writes nothing") are measured in AWS requests per unit of
work, machine-independently. This module owns that measurement:
:class:`RequestCounter` counts every HTTP request any botocore client sends,
keyed by (service, operation).

How it sees every request
-------------------------
botocore emits ``before-send.<service>.<Operation>`` once per HTTP attempt
(retries included, as AWS bills them) just before the request goes on the
wire. moto answers requests from a ``before-send`` handler too, and botocore
stops at the first handler that returns a response, so a counting hook
registered after moto's would never run. Ours is registered *first*:

* for sessions created after this module is imported, through botocore's
  ``BUILTIN_HANDLERS`` with ``REGISTER_FIRST`` (the list every new
  ``botocore.session.Session`` copies its handlers from - this is how moto
  itself gets into every session). That covers boto3 sessions and the
  private botocore session PynamoDB creates per connection and thread;
* for boto3's default session if it already exists at import time, and for
  any session or client passed to :func:`instrument`.

A client copies its session's handlers when it is created, so a client
created before this module was imported is only counted once passed to
:func:`instrument`. Import this module early (the test ``conftest`` does).
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

import botocore.handlers
import botocore.session

__all__ = ["RequestCounter", "instrument", "record"]

_EVENT = "before-send"
_UNIQUE_ID = "autopilot-metering-request-counter"
# Marks a request object as counted, so a session that ends up with the hook
# twice (BUILTIN_HANDLERS and an explicit instrument()) still counts once.
# botocore builds a new request object for every retry attempt.
_COUNTED_ATTRIBUTE = "_autopilot_metered"

_active_lock = threading.Lock()
_active_counters: list[RequestCounter] = []


def _on_before_send(event_name: str = "", request: Any = None, **kwargs: Any) -> None:
    """botocore hook: attribute one HTTP request to every active counter.

    Returns None so that the next ``before-send`` handler (moto's stubber, or
    botocore's real HTTP send) still runs.
    """
    if request is not None:
        if getattr(request, _COUNTED_ATTRIBUTE, False):
            return
        with contextlib.suppress(AttributeError):  # botocore requests accept attributes
            setattr(request, _COUNTED_ATTRIBUTE, True)
    # event_name is "before-send.<service-id>.<OperationName>".
    _, _, rest = event_name.partition(".")
    service, _, operation = rest.partition(".")
    record(service, operation)


def record(service: str, operation: str) -> None:
    """Count one request that is answered without reaching ``before-send``.

    The local runtime's fast paths (``autopilot_cli.local.fast_dynamodb``)
    answer some calls from ``before-call``, as botocore's ``Stubber`` does;
    they call this so that every request is still counted exactly once.
    """
    with _active_lock:
        counters = list(_active_counters)
    for counter in counters:
        counter._record(service, operation)


def _register_builtin() -> None:
    spec = (_EVENT, _on_before_send, botocore.handlers.REGISTER_FIRST)
    if spec not in botocore.handlers.BUILTIN_HANDLERS:
        botocore.handlers.BUILTIN_HANDLERS.append(spec)


def instrument(target: Any) -> None:
    """Make requests of an already existing session or client countable.

    ``target`` may be a ``botocore.session.Session``, a ``boto3.Session``, a
    botocore/boto3 client or a boto3 resource. Sessions and clients created
    after this module was imported need no call.
    """
    events = None
    if isinstance(target, botocore.session.Session):
        events = target.get_component("event_emitter")
    elif hasattr(target, "_session") and isinstance(target._session, botocore.session.Session):
        events = target._session.get_component("event_emitter")  # a boto3.Session
    elif hasattr(target, "meta") and hasattr(target.meta, "events"):
        events = target.meta.events  # a botocore client
    elif hasattr(target, "meta") and hasattr(target.meta, "client"):
        events = target.meta.client.meta.events  # a boto3 resource
    if events is None:
        raise TypeError(f"cannot instrument {target!r}: not a botocore/boto3 session or client")
    events.register_first(_EVENT, _on_before_send, unique_id=_UNIQUE_ID)


def _instrument_existing_sessions() -> None:
    # boto3 is optional for this module (PynamoDB needs only botocore).
    try:
        import boto3
    except ImportError:  # pragma: no cover
        return
    if boto3.DEFAULT_SESSION is not None:
        instrument(boto3.DEFAULT_SESSION)


class RequestCounter:
    """Counts AWS requests made while it is active, by (service, operation).

    Use as a context manager (or :meth:`start`/:meth:`stop`). Counters nest
    and overlap freely; each counts every request made in the process, from
    any thread, while it is active. Services are botocore service ids
    (``dynamodb``, ``s3``, ``sns``, ``sqs``...), operations are API names
    (``PutItem``, ``TransactWriteItems``...).

    >>> with RequestCounter() as requests:  # doctest: +SKIP
    ...     table.put_item(Item=...)
    >>> requests.count("dynamodb", "PutItem")  # doctest: +SKIP
    1
    """

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._active = False

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> Self:
        """Start counting (idempotent)."""
        with _active_lock:
            if not self._active:
                _active_counters.append(self)
                self._active = True
        return self

    def stop(self) -> None:
        """Stop counting; the counts stay readable."""
        with _active_lock:
            if self._active:
                _active_counters.remove(self)
                self._active = False

    def reset(self) -> None:
        """Forget the counts so far (keeps counting if active)."""
        with self._lock:
            self._counts.clear()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _record(self, service: str, operation: str) -> None:
        with self._lock:
            self._counts[(service, operation)] += 1

    # -- reading ------------------------------------------------------------

    @property
    def active(self) -> bool:
        """Whether the counter is currently counting."""
        return self._active

    @property
    def total(self) -> int:
        """Number of requests counted, all services together."""
        with self._lock:
            return sum(self._counts.values())

    def by_operation(self) -> dict[tuple[str, str], int]:
        """Counts keyed by ``(service, operation)``, e.g. ``("dynamodb", "PutItem")``."""
        with self._lock:
            return dict(self._counts)

    def by_service(self) -> dict[str, int]:
        """Counts keyed by service id."""
        totals: Counter[str] = Counter()
        for (service, _), n in self.by_operation().items():
            totals[service] += n
        return dict(totals)

    def count(self, service: str | None = None, operation: str | None = None) -> int:
        """Requests to ``service`` (any if None) of ``operation`` (any if None)."""
        return sum(
            n
            for (s, o), n in self.by_operation().items()
            if (service is None or s == service) and (operation is None or o == operation)
        )

    def summary(self) -> Mapping[str, int]:
        """``{"dynamodb.PutItem": 3, ...}``, sorted, for reports and assertion messages."""
        return {f"{s}.{o}": n for (s, o), n in sorted(self.by_operation().items())}

    def __repr__(self) -> str:
        return f"RequestCounter(total={self.total}, {dict(self.summary())})"


_register_builtin()
_instrument_existing_sessions()
