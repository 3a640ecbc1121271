"""Pure rules of posts: rotate content without repeats, render templates.

Rotation: each pool is served in *cycles*. Within a cycle every item is served
once, in an order that is a deterministic shuffle of the pool keyed by
``(seed, cycle)``; when every item has been served a new cycle starts with a new
order, never opening with the item that closed the previous cycle. Items added to
the pool mid-cycle join the current cycle; removed items are simply skipped.
"""

from __future__ import annotations

import hashlib
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RotationState:
    """Where a pool's rotation stands: the current cycle and what it has served."""

    cycle: int = 0
    served: tuple[str, ...] = ()
    last: str | None = None


def cycle_order(item_ids: Sequence[str], seed: str, cycle: int) -> list[str]:
    """The serving order of one cycle: a shuffle determined by ``seed`` and ``cycle``."""
    return sorted(
        item_ids,
        key=lambda item_id: hashlib.sha256(f"{seed}\x1f{cycle}\x1f{item_id}".encode()).hexdigest(),
    )


def pick_next(
    item_ids: Sequence[str], state: RotationState, seed: str
) -> tuple[str, RotationState]:
    """Choose the next item to serve and return it with the new rotation state."""
    if not item_ids:
        raise ValueError("cannot rotate an empty pool")
    served = set(state.served)
    order = cycle_order(item_ids, seed, state.cycle)
    remaining = [i for i in order if i not in served]
    if remaining:
        chosen = remaining[0]
        return chosen, RotationState(state.cycle, (*state.served, chosen), chosen)
    cycle = state.cycle + 1
    order = cycle_order(item_ids, seed, cycle)
    if len(order) > 1 and order[0] == state.last:
        order.append(order.pop(0))  # never the same item twice in a row across cycles
    chosen = order[0]
    return chosen, RotationState(cycle, (chosen,), chosen)


class _Fields(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        raise KeyError(f"template field {{{key}}} has no value")


def render(template: str, fields: Mapping[str, Any]) -> str:
    """Fill a ``{field}`` template; an unknown field raises ``KeyError`` naming it."""
    return string.Formatter().vformat(template, (), _Fields(fields))
