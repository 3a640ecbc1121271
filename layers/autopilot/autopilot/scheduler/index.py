"""Per-container index of when each job may next have work, and shard assignment.

The dispatcher keeps, for every job of one config version (and one shard), the
earliest instant at which the job's work can be non-empty (its *wake*): before
it no occurrence is scheduled after the job's cached watermark, no cached
pending occurrence is due, and the 7-day look-back is not exceeded. Wakes live
in a heap, so an idle tick looks at the heap's top only (constant work whatever
the number of jobs) and a busy tick touches only the jobs whose wake has come.

A wake may be *early* (computed from an older state, an older config epoch, or a
job that turned out to have nothing to do): the tick then computes that job's
work exactly and finds nothing, and recomputes the wake. It is never *late*:
that is what makes the index give exactly the occurrences of a full scan.
"""

from __future__ import annotations

import hashlib
import heapq
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from autopilot.config.model import Community, Job


@dataclass(frozen=True)
class Shard:
    """Which part of the communities one dispatcher invocation ticks: ``index`` of ``count``."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not (isinstance(self.count, int) and self.count >= 1):
            raise ValueError(f"shards must be an integer >= 1, got {self.count!r}")
        if not (isinstance(self.index, int) and 0 <= self.index < self.count):
            raise ValueError(f"shard must be an integer in [0, {self.count}), got {self.index!r}")

    def owns(self, community_id: str) -> bool:
        """Whether this shard ticks ``community_id``."""
        return self.count == 1 or shard_of(community_id, self.count) == self.index


ALL = Shard()


def shard_of(community_id: str, count: int) -> int:
    """The shard of a community among ``count``: a stable hash of its id, modulo ``count``.

    SHA-256, not ``hash()``: Python salts string hashes per process, and every
    container must agree on the assignment.
    """
    digest = hashlib.sha256(community_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


@dataclass
class IndexedJob:
    """One job of the indexed config: its position (config order) and identity."""

    position: int
    community: Community
    job: Job
    pk: str


@dataclass
class DueIndex:
    """Wakes of one config version's jobs (one shard), in a heap with lazy deletion."""

    config: Any  # the Config object this index was built for (compared by identity)
    shard: Shard
    jobs: dict[str, IndexedJob] = field(default_factory=dict)
    # pk -> (wake, signature); the heap holds (wake, seq, pk) and an entry is live
    # only while ``_live[pk]`` is its seq.
    wakes: dict[str, tuple[datetime | None, Any]] = field(default_factory=dict)
    unread: set[str] = field(default_factory=set)
    _heap: list[tuple[datetime, int, str]] = field(default_factory=list)
    _live: dict[str, int] = field(default_factory=dict)
    _seq: int = 0

    def set_wake(self, pk: str, wake: datetime | None, signature: Any) -> None:
        """Record ``pk``'s wake (None: never, under this config) and schedule it."""
        self.wakes[pk] = (wake, signature)
        self._seq += 1
        if wake is None:
            self._live.pop(pk, None)
            return
        self._live[pk] = self._seq
        heapq.heappush(self._heap, (wake, self._seq, pk))

    def forget(self, pk: str) -> None:
        """Drop ``pk``'s wake (its state must be read again before it is known)."""
        self.wakes.pop(pk, None)
        self._live.pop(pk, None)

    def next_wake(self) -> datetime | None:
        """The earliest live wake (amortised O(1): stale heap entries are popped once)."""
        heap = self._heap
        while heap and self._live.get(heap[0][2]) != heap[0][1]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, now: datetime) -> list[str]:
        """Remove and return the jobs whose wake is at or before ``now``.

        The caller must give each of them a new wake (``set_wake``) or ``forget`` it.
        """
        out: list[str] = []
        while True:
            wake = self.next_wake()
            if wake is None or wake > now:
                return out
            _, _, pk = heapq.heappop(self._heap)
            self._live.pop(pk, None)
            out.append(pk)
