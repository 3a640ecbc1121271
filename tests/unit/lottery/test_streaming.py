"""Memory of a draw is bounded by the number of winners, never by the entrants.

Two measurements, both on entrants made on the fly in member-id order (as Query
pages would yield them):

* ``tracemalloc``'s peak over a whole draw (tracing slows every allocation down
  about tenfold, so this one streams 50,000 entrants to stay fast);
* the interpreter's count of allocated memory blocks, sampled every 1,000 entrants
  while a draw streams 200,000 entrants: no tracing cost, and it would see any
  per-entrant object kept alive (a list of entrants is two blocks or more each).
"""

from __future__ import annotations

import sys
import tracemalloc
from collections.abc import Callable, Iterator

from autopilot.lottery.draw import PrizeTier, draw, entrants_hash

SEED = bytes(range(32))
PRIZES = (PrizeTier("first", 1), PrizeTier("second", 3), PrizeTier("third", 20))


def stream(count: int, probe: Callable[[], None] | None = None) -> Iterator[tuple[str, int]]:
    for i in range(count):
        if probe is not None and i % 1000 == 0:
            probe()
        yield f"member-{i:08d}", i % 7 + 1


def traced_peak(step: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        step()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_tracemalloc_peak_of_a_draw_is_far_below_the_entrant_list() -> None:
    count = 50_000
    frozen = entrants_hash(stream(count)).entrants_hash
    peak = traced_peak(lambda: draw(stream(count), seed=SEED, entrants_hash=frozen, prizes=PRIZES))
    held = traced_peak(lambda: list(stream(count)))
    assert held > 5_000_000  # what holding the list would cost
    assert peak < 100_000, f"draw peaked at {peak:,} bytes; the list takes {held:,}"


def test_live_blocks_stay_flat_while_200k_entrants_stream_through_a_draw() -> None:
    count = 200_000
    frozen = entrants_hash(stream(count)).entrants_hash
    samples: list[int] = []
    baseline = sys.getallocatedblocks()
    record = draw(
        stream(count, probe=lambda: samples.append(sys.getallocatedblocks())),
        seed=SEED,
        entrants_hash=frozen,
        prizes=PRIZES,
    )
    assert len(record.winners) == 24 and record.entrants_count == count
    assert len(samples) == count // 1000
    growth = max(samples) - baseline
    assert growth < 2_000, f"{growth:,} more blocks live while streaming {count:,} entrants"


def test_the_block_probe_sees_entrants_kept_alive() -> None:
    """The probe above can fail: keeping every entrant (as a list would) shows up."""
    samples: list[int] = []
    baseline = sys.getallocatedblocks()
    kept = list(stream(20_000, probe=lambda: samples.append(sys.getallocatedblocks())))
    assert len(kept) == 20_000
    assert max(samples) - baseline > 2_000
