"""A slow, independent reference of the draw's order, written from docs/lottery.md.

It sorts the whole entrant list with an exact big-integer comparison of the keys
(no floats, no heap), so the streaming implementation can be checked against it.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Callable, Sequence


def reference_n(randomness: bytes, member_id: str) -> int:
    """n = first 8 bytes, big-endian, of HMAC-SHA256(key=R, msg=member id UTF-8)."""
    digest = hmac.new(randomness, member_id.encode("utf-8"), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big")


def key_greater(n_a: int, w_a: int, n_b: int, w_b: int) -> int:
    """+1 if u_a^(1/w_a) > u_b^(1/w_b), -1 if smaller, 0 if equal; u = (2n+1)/2^65.

    u_a^(1/w_a) > u_b^(1/w_b)  <=>  u_a^(w_b) > u_b^(w_a)
    <=>  (2n_a+1)^(w_b) * 2^(65 w_a) > (2n_b+1)^(w_a) * 2^(65 w_b)."""
    left = (2 * n_a + 1) ** w_b * 2 ** (65 * w_a)
    right = (2 * n_b + 1) ** w_a * 2 ** (65 * w_b)
    return (left > right) - (left < right)


def reference_order(
    entrants: Sequence[tuple[str, int]],
    randomness: bytes,
    n_of: Callable[[bytes, str], int] = reference_n,
) -> list[str]:
    """Every member id, best rank first: larger key first, equal keys by smaller id bytes."""
    keyed = [(member_id, weight, n_of(randomness, member_id)) for member_id, weight in entrants]

    def compare(x: tuple[str, int, int], y: tuple[str, int, int]) -> int:
        greater = key_greater(x[2], x[1], y[2], y[1])
        if greater:
            return -greater  # larger key sorts first
        ix, iy = x[0].encode("utf-8"), y[0].encode("utf-8")
        return (ix > iy) - (ix < iy)

    return [member_id for member_id, _, _ in sorted(keyed, key=functools.cmp_to_key(compare))]
