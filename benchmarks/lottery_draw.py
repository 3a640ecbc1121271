"""Benchmark: the pure lottery draw at 10,000 and 1,000,000 entrants.

For each size, entrants are generated on the fly (a generator in member-id order,
never a list: as a Query paginator would yield them), and two streaming passes run
as in production:

* **hash** — the entrant-list hash and count, as frozen at close
  (:func:`autopilot.lottery.draw.entrants_hash`);
* **draw** — the draw of 24 winners (1 + 3 + 20 prizes), which re-hashes the
  entrants, derives every key and keeps a heap of 24
  (:func:`autopilot.lottery.draw.draw`);
* **verify** — the verifier recomputing the record from the entrant stream.

Prints CPU seconds (``time.process_time``), peak Python memory of the pass
(``tracemalloc``, measured in a separate run because tracing slows the code down),
and entrants per second, as a Markdown table. Figures only, no assertions: the unit
tests bound memory instead (tests/unit/lottery/test_streaming.py).

    python benchmarks/lottery_draw.py [--sizes 10000,1000000] [--winners 1,3,20]
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "layers" / "autopilot")]

from autopilot.lottery.draw import (  # noqa: E402
    PrizeTier,
    draw,
    entrants_hash,
    verify,
)

SEED = bytes(range(32))
EXTERNAL_VALUE = "benchmark beacon round 1"


def entrants(count: int) -> Iterator[tuple[str, int]]:
    """``count`` entrants in member-id order, weights 1..10 (tickets bought)."""
    for i in range(count):
        yield f"member-{i:08d}", i * 7919 % 10 + 1


def measure(step: Callable[[], Any], memory: bool = True) -> tuple[float, int, Any]:
    """CPU seconds of ``step`` (untraced) and its peak traced memory (second run;
    -1 when ``memory`` is off)."""
    started = time.process_time()
    result = step()
    cpu = time.process_time() - started
    if not memory:
        return cpu, -1, result
    tracemalloc.start()
    step()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return cpu, peak, result


def _kib(peak: int) -> str:
    return "not measured" if peak < 0 else f"{peak / 1024:,.0f} KiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--winners", default="1,3,20", help="prize counts per tier")
    parser.add_argument(
        "--no-memory",
        action="store_true",
        help="skip the traced runs (tracemalloc makes each pass about ten times slower)",
    )
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    prizes = [PrizeTier(f"tier{i + 1}", int(c)) for i, c in enumerate(args.winners.split(","))]
    winners = sum(p.count for p in prizes)
    memory = not args.no_memory

    print(f"Lottery draw, {winners} winners, Python {sys.version.split()[0]}")
    print()
    print("| entrants | pass | CPU s | peak memory (traced) | entrants/s |")
    print("| ---: | --- | ---: | ---: | ---: |")
    for size in sizes:
        hash_cpu, hash_peak, digest = measure(
            lambda size=size: entrants_hash(entrants(size)), memory
        )

        def run_draw(size: int = size, frozen: str = digest.entrants_hash) -> Any:
            return draw(
                entrants(size),
                seed=SEED,
                entrants_hash=frozen,
                prizes=prizes,
                external_value=EXTERNAL_VALUE,
            )

        draw_cpu, draw_peak, record = measure(run_draw, memory)
        verify_cpu, verify_peak, result = measure(
            lambda size=size, record=record: verify(record, entrants(size)), memory
        )
        for name, cpu, peak in (
            ("hash", hash_cpu, hash_peak),
            (f"draw {winners}", draw_cpu, draw_peak),
            ("verify", verify_cpu, verify_peak),
        ):
            print(f"| {size:,} | {name} | {cpu:.2f} | {_kib(peak)} | {size / cpu:,.0f} |")
        print(f"<!-- {size:,} entrants: verify says {result.summary().splitlines()[0]} -->")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
