"""The verifiable lottery draw (algorithm version 1): pure, AWS-free, streaming.

This module owns the mathematics of a draw and nothing else: the seed commitment,
the canonical entrant list and its hash, the draw randomness, each entrant's key,
the exact order of entrants, the winners and rerolls, and the public draw record
with its verifier. ``docs/lottery.md`` specifies every step precisely enough for a
verifier in another language; this module is the reference implementation.

* **Commitment.** ``commitment = hex(SHA-256(seed))``, published when the lottery
  opens; the seed (16..64 bytes, 32 from :func:`new_seed`) is revealed in the record.
* **Entrant list.** ``(member_id, weight)`` pairs, sorted by the member id's UTF-8
  bytes, serialised one line each as ``member_id TAB weight LF`` (weight in decimal).
  Its SHA-256 is the *entrant-list hash*, computed streaming by :class:`EntrantsHasher`.
* **Randomness.** ``R = SHA-256(lp("autopilot-lottery/1") | lp(seed) |
  lp(entrant-list hash, 32 raw bytes) | lp(external value, UTF-8))`` where ``lp(x)``
  is ``x``'s length as 4 bytes big-endian followed by ``x``.
* **Keys.** ``n = first 8 bytes (big-endian) of HMAC-SHA256(key=R, msg=member id)``,
  ``u = (2n + 1) / 2^65`` (the midpoint of one of 2^64 equal cells of (0, 1): no
  bias, never 0 or 1) and ``key = u^(1/weight)`` (Efraimidis-Spirakis A-Res).
* **Order.** Entrants rank by key, largest first, with equal keys (which happen
  only for equal weights and equal ``n``) ranked by member id bytes, smallest
  first. The order is defined on the exact real numbers; the implementation
  compares floats when they are far apart and decides near-ties exactly (big
  integers or correctly rounded decimal logarithms), so it never depends on how a
  platform's ``log`` rounds.
* **Winners and rerolls.** Ranks ``1..k`` win and are assigned to prize tiers in the
  order given; the *j*-th reroll takes rank ``k + j``, so a reroll is never an
  earlier winner. Selection streams with a heap of the ``k`` best: memory
  O(winners), never O(entrants).
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import json
import math
import re
import secrets as _secrets  # the standard library's, not autopilot.secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, localcontext
from enum import StrEnum
from typing import Any

from autopilot.errors import AutopilotError

ALGORITHM = "autopilot-lottery/1"
"""The algorithm name and version, in the record and in the randomness' domain."""
ALGORITHM_VERSION = 1

MAX_WEIGHT = 1_000_000
"""Largest weight of one entrant: far above any ticket count, and it keeps an exact
comparison of two keys affordable (see :func:`_exact_ranks_before`)."""
MAX_MEMBER_ID_BYTES = 256
MAX_WINNERS = 10_000
"""Largest number of prizes in one draw (winners and the heap are O(this))."""
MAX_EXTERNAL_VALUE_BYTES = 1024
MAX_TIER_NAME_CHARS = 64
SEED_BYTES = 32
MIN_SEED_BYTES = 16
MAX_SEED_BYTES = 64
U_BITS = 64
"""Bits of the HMAC taken for ``n``; ``u = (2n + 1) / 2^(U_BITS + 1)``."""
KEY_DISPLAY_DIGITS = 12

_U_DENOMINATOR_BITS = U_BITS + 1
_HALF_N = 1 << (U_BITS - 1)
_SCALE = 2.0**-_U_DENOMINATOR_BITS  # exact power of two: scaling by it never rounds
# Two float sort values closer than this (relative) are compared exactly. The float
# value -ln(u)/w is within ~3 ulp (2^-51) of the real one for any libm with a
# faithful log and log1p; the margin leaves a factor of 2^11 on top.
_FLOAT_MARGIN = 2.0**-40
# Up to this reduced exponent, near-ties are decided with big integers directly.
_BIGINT_EXPONENT_LIMIT = 512
_DECIMAL_START_PRECISION = 50
_DECIMAL_MAX_PRECISION = 6400
# C0 controls, DEL and C1 controls: Unicode category Cc. Tab and newline are the
# serialisation's separators; the others make ids unreadable or ambiguous.
_CONTROL_CHARS = re.compile("[\x00-\x1f\x7f-\x9f]")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX16 = re.compile(r"[0-9a-f]{16}")
_HEX_SEED = re.compile(r"(?:[0-9a-f]{2}){16,64}")
_WEIGHT_TEXT = re.compile(r"[1-9][0-9]{0,6}")


class DrawInputError(AutopilotError, ValueError):
    """Input the draw refuses (an entrant, the seed, the prizes, a reroll): the
    message says what is wrong and where. Nothing was drawn."""


class EntrantsOutOfOrder(DrawInputError):
    """The entrant list is not strictly sorted by member id bytes (or repeats one)."""


class EntrantsChanged(DrawInputError):
    """The entrants read for the draw are not the list frozen at close (its hash differs)."""


class NoEntrantsLeft(DrawInputError):
    """A reroll was asked for, but every entrant already holds or held a prize."""


class InvalidRecord(DrawInputError):
    """A draw record is malformed (a field missing, of the wrong type or form)."""


class RerollReason(StrEnum):
    """Why a prize went to the next entrant (the values appear in the record)."""

    UNCLAIMED = "unclaimed"
    DISQUALIFIED = "disqualified"


# -- commitment and seed -------------------------------------------------------------


def new_seed() -> bytes:
    """A fresh secret seed of :data:`SEED_BYTES` bytes from the OS' CSPRNG (``secrets``)."""
    return _secrets.token_bytes(SEED_BYTES)


def commit(seed: bytes) -> str:
    """The public commitment to ``seed``: lowercase hex SHA-256 of its bytes."""
    _check_seed(seed)
    return hashlib.sha256(seed).hexdigest()


def _check_seed(seed: bytes) -> None:
    if not isinstance(seed, bytes | bytearray):
        raise DrawInputError(f"seed must be bytes, got {type(seed).__name__}")
    if not MIN_SEED_BYTES <= len(seed) <= MAX_SEED_BYTES:
        raise DrawInputError(
            f"seed must be {MIN_SEED_BYTES}..{MAX_SEED_BYTES} bytes, got {len(seed)}"
        )


# -- the canonical entrant list --------------------------------------------------------


def check_member_id(member_id: object, *, where: str = "entrant") -> bytes:
    """``member_id``'s UTF-8 bytes, or :class:`DrawInputError` saying why it cannot
    be an entrant (empty, too long, a control character, not text)."""
    if not isinstance(member_id, str):
        raise DrawInputError(f"{where}: member id must be a string, got {member_id!r}")
    if not member_id:
        raise DrawInputError(f"{where}: member id is empty")
    bad = _CONTROL_CHARS.search(member_id)
    if bad:
        raise DrawInputError(
            f"{where}: member id {member_id!r} contains control character "
            f"U+{ord(bad.group()):04X} at position {bad.start()}"
        )
    try:
        encoded = member_id.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise DrawInputError(
            f"{where}: member id {member_id!r} is not valid Unicode text ({exc.reason})"
        ) from None
    if len(encoded) > MAX_MEMBER_ID_BYTES:
        raise DrawInputError(
            f"{where}: member id {member_id[:40]!r}... is {len(encoded)} bytes of UTF-8, "
            f"at most {MAX_MEMBER_ID_BYTES} allowed"
        )
    return encoded


def check_weight(weight: object, *, where: str = "entrant") -> int:
    """``weight`` if it is an int in ``1..MAX_WEIGHT``, else :class:`DrawInputError`."""
    if isinstance(weight, bool) or not isinstance(weight, int):
        raise DrawInputError(f"{where}: weight must be an integer, got {weight!r}")
    if not 1 <= weight <= MAX_WEIGHT:
        raise DrawInputError(f"{where}: weight {weight} is outside 1..{MAX_WEIGHT}")
    return weight


def entrant_line(member_id: str, weight: int) -> bytes:
    """One entrant's line of the canonical serialisation: ``id TAB weight LF``, UTF-8."""
    encoded = check_member_id(member_id)
    return b"%s\t%d\n" % (encoded, check_weight(weight))


class EntrantsHasher:
    """The entrant-list hash, fed one entrant at a time in member-id order.

    Validates each entrant and the order as it goes (:class:`EntrantsOutOfOrder`
    names the first offending pair), so a list of any length is hashed in O(1)
    memory. ``count`` is the number of entrants added so far.
    """

    __slots__ = ("_hash", "_previous", "_previous_id", "_update", "count")

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._update = self._hash.update
        self._previous = b""
        self._previous_id = ""
        self.count = 0

    def add(self, member_id: str, weight: int) -> bytes:
        """Add the next entrant; returns its member id's UTF-8 bytes."""
        # The fast path checks exactly what check_member_id/check_weight check, without
        # building messages; any failure is re-checked by them for the precise error.
        try:
            if (
                type(member_id) is not str
                or not member_id
                or _CONTROL_CHARS.search(member_id)
                or type(weight) is not int
                or not 1 <= weight <= MAX_WEIGHT
            ):
                raise ValueError
            encoded = member_id.encode("utf-8")
            if len(encoded) > MAX_MEMBER_ID_BYTES:
                raise ValueError
        except ValueError:  # UnicodeEncodeError included
            # The precise checks raise with the message, or accept subclasses of
            # str and int, which the fast path leaves to them.
            where = f"entrant #{self.count + 1}"
            encoded = check_member_id(member_id, where=where)
            weight = int(check_weight(weight, where=f"{where} ({member_id!r})"))
        if encoded <= self._previous and self.count:
            relation = "repeats" if encoded == self._previous else "sorts before"
            raise EntrantsOutOfOrder(
                f"entrant #{self.count + 1}: member id {member_id!r} {relation} the previous "
                f"entrant {self._previous_id!r}; entrants must be strictly sorted by the "
                "UTF-8 bytes of their member id, each member once"
            )
        self._update(b"%s\t%d\n" % (encoded, weight))
        self._previous = encoded
        self._previous_id = member_id
        self.count += 1
        return encoded

    def hexdigest(self) -> str:
        """The hash of the entrants added so far (lowercase hex)."""
        return self._hash.hexdigest()


@dataclass(frozen=True)
class EntrantsDigest:
    """What is published when the entrant list is frozen."""

    entrants_hash: str
    entrants_count: int


def entrants_hash(entrants: Iterable[tuple[str, int]]) -> EntrantsDigest:
    """Hash and count an entrant list streamed in member-id order (O(1) memory)."""
    hasher = EntrantsHasher()
    for member_id, weight in entrants:
        hasher.add(member_id, weight)
    return EntrantsDigest(hasher.hexdigest(), hasher.count)


def serialize_entrants(entrants: Iterable[tuple[str, int]]) -> Iterator[bytes]:
    """The canonical serialisation, line by line (validated, in order): write these
    bytes to a file and its SHA-256 is the entrant-list hash."""
    hasher = EntrantsHasher()
    for member_id, weight in entrants:
        encoded = hasher.add(member_id, weight)
        yield b"%s\t%d\n" % (encoded, weight)


def parse_entrants(lines: Iterable[bytes]) -> Iterator[tuple[str, int]]:
    """Read a canonical entrant file (an iterable of its lines, as bytes, such as an
    open binary file) back into ``(member_id, weight)`` pairs, strictly: anything
    that would not serialise to the same bytes is an error naming the line.
    Order is checked by whoever consumes the pairs (the hasher, the draw)."""
    for number, line in enumerate(lines, start=1):
        where = f"entrant file line {number}"
        if not line.endswith(b"\n"):
            raise DrawInputError(f"{where}: missing the final newline (LF)")
        raw_id, tab, raw_weight = line[:-1].partition(b"\t")
        if not tab:
            raise DrawInputError(f"{where}: expected 'member_id<TAB>weight', found no tab")
        try:
            member_id = raw_id.decode("utf-8")
            weight_text = raw_weight.decode("ascii")
        except UnicodeDecodeError:
            raise DrawInputError(f"{where}: not valid UTF-8") from None
        if not _WEIGHT_TEXT.fullmatch(weight_text):
            raise DrawInputError(
                f"{where}: weight {weight_text!r} is not a decimal integer in "
                f"1..{MAX_WEIGHT} without sign or leading zeros"
            )
        check_member_id(member_id, where=where)
        yield member_id, check_weight(int(weight_text), where=where)


# -- randomness and keys ---------------------------------------------------------------


def _length_prefixed(value: bytes) -> bytes:
    return len(value).to_bytes(4, "big") + value


def draw_randomness(seed: bytes, entrants_hash_hex: str, external_value: str = "") -> bytes:
    """R, the draw's 32 random bytes: SHA-256 over the length-prefixed algorithm name,
    seed, entrant-list hash (raw bytes) and external value (UTF-8; "" when none)."""
    _check_seed(seed)
    if not isinstance(entrants_hash_hex, str) or not _HEX64.fullmatch(entrants_hash_hex):
        raise DrawInputError("entrants hash must be 64 lowercase hex characters")
    external = _external_bytes(external_value)
    message = b"".join(
        _length_prefixed(part)
        for part in (
            ALGORITHM.encode("ascii"),
            bytes(seed),
            bytes.fromhex(entrants_hash_hex),
            external,
        )
    )
    return hashlib.sha256(message).digest()


def _external_bytes(external_value: str) -> bytes:
    if not isinstance(external_value, str):
        raise DrawInputError(f"external value must be a string, got {external_value!r}")
    try:
        external = external_value.encode("utf-8")
    except UnicodeEncodeError:
        raise DrawInputError("external value is not valid Unicode text") from None
    if len(external) > MAX_EXTERNAL_VALUE_BYTES:
        raise DrawInputError(
            f"external value is {len(external)} bytes, at most {MAX_EXTERNAL_VALUE_BYTES}"
        )
    return external


def u_numerator(randomness: bytes, member_id: str) -> int:
    """``n`` of one entrant: the first 8 bytes, big-endian, of HMAC-SHA256(R, id)."""
    digest = hmac.digest(randomness, member_id.encode("utf-8"), "sha256")
    return int.from_bytes(digest[:8], "big")


def _hmac_sha256_of(key: bytes) -> Callable[[bytes], bytes]:
    """HMAC-SHA256 under ``key`` (RFC 2104) as a function of the message. The draw
    computes one HMAC per entrant under the same key, so the two padded key blocks
    are hashed once and copied: 2.5 times faster than ``hmac.digest`` per call."""
    block = key if len(key) <= 64 else hashlib.sha256(key).digest()
    block = block.ljust(64, b"\0")
    inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in block))
    outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in block))

    def mac(message: bytes) -> bytes:
        inner_hash = inner.copy()
        inner_hash.update(message)
        outer_hash = outer.copy()
        outer_hash.update(inner_hash.digest())
        return outer_hash.digest()

    return mac


def _sort_value(n: int, weight: int) -> float:
    """-ln(u)/weight as a float with relative error below 2^-50: smaller ranks first.

    For u < 1/2, ``ln`` of the (exactly scaled) u; for u >= 1/2, ``log1p`` of
    ``-(1 - u)`` with ``1 - u`` computed exactly, which avoids the cancellation of
    ``ln`` near 1. Both are well conditioned (factor <= 1/ln 2) on their halves."""
    if n < _HALF_N:
        return -math.log((2 * n + 1) * _SCALE) / weight
    remainder = (1 << _U_DENOMINATOR_BITS) - (2 * n + 1)  # 2^65 * (1 - u), exact
    return -math.log1p(-(remainder * _SCALE)) / weight


def key_display(n: int, weight: int) -> float:
    """``u^(1/weight)`` rounded to 12 significant digits, for people (the order uses
    the exact value). Computed with correctly rounded decimal ``ln``/``exp`` at 40
    digits, so every platform prints the same figure."""
    with localcontext() as ctx:
        ctx.prec = 40
        ln_u = Decimal(2 * n + 1).ln() - _U_DENOMINATOR_BITS * Decimal(2).ln()
        key = (ln_u / weight).exp()
        ctx.prec = KEY_DISPLAY_DIGITS
        return float(+key)


def _exact_ranks_before(n_a: int, w_a: int, id_a: bytes, n_b: int, w_b: int, id_b: bytes) -> bool:
    """True when entrant A ranks before B, decided exactly.

    ``u_a^(1/w_a) > u_b^(1/w_b)`` iff ``u_a^a > u_b^b`` with ``a = w_b/g`` and
    ``b = w_a/g`` (``g = gcd``). The keys are equal only when ``a = b = 1`` and
    ``n_a = n_b`` (the powers of two in ``(2n+1)^a / 2^(65a)`` differ otherwise),
    so the tie-break by member id is needed only then, and otherwise the decimal
    refinement below always terminates."""
    g = math.gcd(w_a, w_b)
    a, b = w_b // g, w_a // g
    if a == b:  # equal weights: compare u itself
        if n_a != n_b:
            return n_a > n_b
        return id_a < id_b
    if max(a, b) <= _BIGINT_EXPONENT_LIMIT:
        return _bigint_ranks_before(n_a, a, n_b, b)
    precision = _DECIMAL_START_PRECISION
    while precision <= _DECIMAL_MAX_PRECISION:
        decided = _decimal_ranks_before(n_a, a, n_b, b, precision)
        if decided is not None:
            return decided
        precision *= 2
    return _bigint_ranks_before(n_a, a, n_b, b)  # always right; slow for large a, b


def _bigint_ranks_before(n_a: int, a: int, n_b: int, b: int) -> bool:
    # u_a^a > u_b^b  <=>  (2n_a+1)^a * 2^(65b) > (2n_b+1)^b * 2^(65a)
    left = (2 * n_a + 1) ** a << (_U_DENOMINATOR_BITS * b)
    right = (2 * n_b + 1) ** b << (_U_DENOMINATOR_BITS * a)
    return left > right


def _decimal_ranks_before(n_a: int, a: int, n_b: int, b: int, precision: int) -> bool | None:
    """The sign of ``a ln u_a - b ln u_b`` at ``precision`` digits, or None when the
    computed value is within its error bound of 0."""
    with localcontext() as ctx:
        ctx.prec = precision
        ln2 = Decimal(2).ln()
        ln_u_a = Decimal(2 * n_a + 1).ln() - _U_DENOMINATOR_BITS * ln2
        ln_u_b = Decimal(2 * n_b + 1).ln() - _U_DENOMINATOR_BITS * ln2
        difference = a * ln_u_a - b * ln_u_b
        # Each ln is correctly rounded (|value| < 100: error <= 10^(2-p)/2); the
        # products (< 10^8) and sums add at most a few units of 10^(8-p). A generous
        # bound keeps the proof simple.
        bound = Decimal(a + b + 100).scaleb(9 - precision)
        if difference > bound:
            return True
        if difference < -bound:
            return False
        return None


class _Ranked:
    """An entrant in the ranking. ``x < y`` means x ranks *after* y (a worse key),
    so a min-heap of these has the worst kept entrant on top."""

    __slots__ = ("encoded", "member_id", "n", "sort_value", "weight")

    def __init__(self, member_id: str, encoded: bytes, weight: int, n: int) -> None:
        self.member_id = member_id
        self.encoded = encoded
        self.weight = weight
        self.n = n
        self.sort_value = _sort_value(n, weight)

    def ranks_before(self, other: _Ranked) -> bool:
        mine, theirs = self.sort_value, other.sort_value
        if mine < theirs * (1.0 - _FLOAT_MARGIN):
            return True
        if mine > theirs * (1.0 + _FLOAT_MARGIN):
            return False
        return _exact_ranks_before(
            self.n, self.weight, self.encoded, other.n, other.weight, other.encoded
        )

    def __lt__(self, other: _Ranked) -> bool:
        return other.ranks_before(self)


@dataclass(frozen=True)
class RankedEntrant:
    """An entrant at a rank of the draw's order, with its exact key ``(u64, weight)``."""

    rank: int
    member_id: str
    weight: int
    u64: int  # n: u = (2 * u64 + 1) / 2^65
    key: float  # u^(1/weight) to 12 significant digits, for display


@dataclass(frozen=True)
class RankBoundary:
    """The last entrant already ranked: ranking resumes strictly after it."""

    rank: int
    member_id: str
    weight: int
    u64: int


def rank_entrants(
    entrants: Iterable[tuple[str, int]],
    randomness: bytes,
    count: int,
    *,
    after: RankBoundary | None = None,
    hasher: EntrantsHasher | None = None,
) -> list[RankedEntrant]:
    """The ``count`` best-ranked entrants (all of them if fewer), best first, streaming
    with a heap of ``count``; with ``after``, only entrants ranking strictly after
    that boundary (a reroll past the ranks already given out). Each entrant is
    validated and its order checked through ``hasher`` (a new one if not given)."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise DrawInputError(f"count must be a non-negative integer, got {count!r}")
    hasher = hasher if hasher is not None else EntrantsHasher()
    boundary = None
    if after is not None:
        boundary = _Ranked(
            after.member_id, after.member_id.encode("utf-8"), after.weight, after.u64
        )
    heap: list[_Ranked] = []
    threshold = math.inf  # sort value beyond which an entrant certainly misses the heap
    floor = boundary.sort_value * (1.0 - _FLOAT_MARGIN) if boundary else -math.inf
    # Local names: this loop runs once per entrant.
    add, mac = hasher.add, _hmac_sha256_of(randomness)
    from_bytes, log, log1p = int.from_bytes, math.log, math.log1p
    for member_id, weight in entrants:
        encoded = add(member_id, weight)
        if count == 0:
            continue
        n = from_bytes(mac(encoded)[:8], "big")
        # _sort_value, inlined: this loop runs once per entrant
        if n < _HALF_N:
            value = -log((2 * n + 1) * _SCALE) / weight
        else:
            value = -log1p(-(((1 << _U_DENOMINATOR_BITS) - (2 * n + 1)) * _SCALE)) / weight
        if value > threshold:
            continue
        if value < floor:
            continue  # certainly ranks before the boundary: already given out
        candidate = _Ranked(member_id, encoded, weight, n)
        if boundary is not None and not boundary.ranks_before(candidate):
            continue
        if len(heap) < count:
            heapq.heappush(heap, candidate)
        elif candidate.ranks_before(heap[0]):
            heapq.heapreplace(heap, candidate)
        else:
            continue
        if len(heap) == count:
            threshold = heap[0].sort_value * (1.0 + _FLOAT_MARGIN)
    ordered = sorted(heap, reverse=True)  # __lt__ is "ranks after": reverse is best first
    first_rank = after.rank + 1 if after is not None else 1
    return [
        RankedEntrant(
            rank=first_rank + i,
            member_id=item.member_id,
            weight=item.weight,
            u64=item.n,
            key=key_display(item.n, item.weight),
        )
        for i, item in enumerate(ordered)
    ]


# -- prizes, records, draws, rerolls -----------------------------------------------------


@dataclass(frozen=True)
class PrizeTier:
    """``count`` prizes of one tier; tiers take ranks in the order they are listed."""

    tier: str
    count: int


@dataclass(frozen=True)
class Winner:
    """A rank that holds (or held, before a reroll replaced it) a prize."""

    rank: int
    member_id: str
    weight: int
    u64: int
    key: float
    tier: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``u64`` as 16 hex digits: JSON numbers lose 64-bit precision)."""
        return {
            "rank": self.rank,
            "member_id": self.member_id,
            "weight": self.weight,
            "u64": f"{self.u64:016x}",
            "key": self.key,
            "tier": self.tier,
        }


@dataclass(frozen=True)
class Reroll:
    """A prize passed from the holder at ``replaces_rank`` to the next rank."""

    replaces_rank: int
    reason: RerollReason
    winner: Winner

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: the replaced rank, the reason and the new holder's fields."""
        return {
            "replaces_rank": self.replaces_rank,
            "reason": self.reason.value,
            **self.winner.to_dict(),
        }


@dataclass(frozen=True)
class DrawRecord:
    """Everything needed to recompute a draw (with the entrant list, or its hash)."""

    seed: str
    commitment: str
    entrants_hash: str
    entrants_count: int
    external_value: str
    randomness: str
    prizes: tuple[PrizeTier, ...]
    winners: tuple[Winner, ...]
    rerolls: tuple[Reroll, ...] = ()
    algorithm: str = ALGORITHM

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data, in the canonical key order."""
        return {
            "algorithm": self.algorithm,
            "commitment": self.commitment,
            "seed": self.seed,
            "external_value": self.external_value,
            "entrants_hash": self.entrants_hash,
            "entrants_count": self.entrants_count,
            "randomness": self.randomness,
            "prizes": [{"tier": p.tier, "count": p.count} for p in self.prizes],
            "winners": [w.to_dict() for w in self.winners],
            "rerolls": [r.to_dict() for r in self.rerolls],
        }

    def to_json(self) -> str:
        """The canonical JSON text (2-space indent, UTF-8 text, final newline): the
        bytes published; :func:`verify_json` rejects any other spelling."""
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DrawRecord:
        """Parse a record's JSON data; :class:`InvalidRecord` names the bad field."""
        return _record_from_dict(data)

    @classmethod
    def from_json(cls, text: str | bytes) -> DrawRecord:
        """Parse a record's JSON text (as stored); :class:`InvalidRecord` if it is not one."""
        return _record_from_dict(_load_record_json(text))

    def holders(self) -> list[Winner]:
        """Who holds each prize now, in rank order of the slots: every winner, with a
        rerolled slot's holder replaced by its last reroll."""
        current = {w.rank: w for w in self.winners}
        slot_of = {w.rank: w.rank for w in self.winners}
        for reroll_ in self.rerolls:
            slot = slot_of.pop(reroll_.replaces_rank, None)
            if slot is None:
                raise InvalidRecord(
                    f"reroll #{reroll_.winner.rank} replaces rank {reroll_.replaces_rank}, "
                    "which holds no prize then"
                )
            current[slot] = reroll_.winner
            slot_of[reroll_.winner.rank] = slot
        return [current[w.rank] for w in self.winners]


def tier_of_ranks(prizes: Sequence[PrizeTier]) -> list[str]:
    """The tier of each rank 1..k (index 0 is rank 1): tiers fill ranks in order."""
    return [p.tier for p in prizes for _ in range(p.count)]


def check_prizes(prizes: Sequence[PrizeTier]) -> tuple[PrizeTier, ...]:
    """The prize tiers if valid: at least one, unique non-empty names, counts >= 1,
    at most :data:`MAX_WINNERS` prizes in all."""
    prizes = tuple(prizes)
    if not prizes:
        raise DrawInputError("prizes: at least one prize tier is needed")
    seen: set[str] = set()
    for index, prize in enumerate(prizes):
        where = f"prizes[{index}]"
        if not isinstance(prize, PrizeTier):
            raise DrawInputError(f"{where}: expected a PrizeTier, got {prize!r}")
        if not isinstance(prize.tier, str) or not prize.tier:
            raise DrawInputError(f"{where}: tier name must be a non-empty string")
        if len(prize.tier) > MAX_TIER_NAME_CHARS or _CONTROL_CHARS.search(prize.tier):
            raise DrawInputError(
                f"{where}: tier name {prize.tier[:80]!r} must be at most "
                f"{MAX_TIER_NAME_CHARS} characters without control characters"
            )
        if prize.tier in seen:
            raise DrawInputError(f"{where}: tier {prize.tier!r} is listed twice")
        seen.add(prize.tier)
        if isinstance(prize.count, bool) or not isinstance(prize.count, int) or prize.count < 1:
            raise DrawInputError(f"{where}: count must be an integer >= 1, got {prize.count!r}")
    total = sum(p.count for p in prizes)
    if total > MAX_WINNERS:
        raise DrawInputError(f"prizes: {total} prizes in all, at most {MAX_WINNERS} per draw")
    return prizes


def draw(
    entrants: Iterable[tuple[str, int]],
    *,
    seed: bytes,
    entrants_hash: str,
    prizes: Sequence[PrizeTier],
    external_value: str = "",
    commitment: str | None = None,
) -> DrawRecord:
    """Draw the winners of ``prizes`` from ``entrants`` (streamed in member-id order).

    ``entrants_hash`` is the hash published when the list was frozen: it feeds the
    randomness, and the entrants read now must hash to it (else
    :class:`EntrantsChanged`, nothing drawn). ``commitment``, when given (the one
    published at the opening), must be the seed's. Deterministic: drawing again
    with the same inputs gives the same record. Memory is O(number of prizes).
    """
    if commitment is not None and commit(seed) != commitment:
        raise DrawInputError(
            f"the seed does not match the commitment published at the opening ({commitment})"
        )
    prizes = check_prizes(prizes)
    randomness = draw_randomness(seed, entrants_hash, external_value)
    hasher = EntrantsHasher()
    tiers = tier_of_ranks(prizes)
    ranked = rank_entrants(entrants, randomness, len(tiers), hasher=hasher)
    _check_same_entrants(hasher, entrants_hash)
    return DrawRecord(
        seed=bytes(seed).hex(),
        commitment=commit(seed),
        entrants_hash=entrants_hash,
        entrants_count=hasher.count,
        external_value=external_value,
        randomness=randomness.hex(),
        prizes=prizes,
        winners=tuple(_winner(r, tiers[r.rank - 1]) for r in ranked),
    )


def _check_same_entrants(hasher: EntrantsHasher, entrants_hash: str) -> None:
    computed = hasher.hexdigest()
    if computed != entrants_hash:
        raise EntrantsChanged(
            f"the entrants read ({hasher.count}) hash to {computed}, not to the list "
            f"frozen at close ({entrants_hash}); nothing was drawn"
        )


def _winner(ranked: RankedEntrant, tier: str) -> Winner:
    return Winner(ranked.rank, ranked.member_id, ranked.weight, ranked.u64, ranked.key, tier)


def reroll(
    record: DrawRecord,
    entrants: Iterable[tuple[str, int]],
    *,
    replaces_rank: int,
    reason: RerollReason | str,
) -> DrawRecord:
    """The record with one more reroll: the prize held by ``replaces_rank`` goes to the
    next rank after every rank given out so far (found by streaming ``entrants``
    again, which must hash to the record's list). Never an earlier winner."""
    try:
        reason = RerollReason(reason)
    except ValueError:
        allowed = ", ".join(r.value for r in RerollReason)
        raise DrawInputError(f"reroll reason {reason!r} is not one of: {allowed}") from None
    holders = {h.rank: h for h in record.holders()}
    if replaces_rank not in holders:
        raise DrawInputError(
            f"rank {replaces_rank!r} holds no prize now; holders are ranks {sorted(holders)}"
        )
    last = record.rerolls[-1].winner if record.rerolls else record.winners[-1]
    hasher = EntrantsHasher()
    boundary = RankBoundary(last.rank, last.member_id, last.weight, last.u64)
    randomness = bytes.fromhex(record.randomness)
    found = rank_entrants(entrants, randomness, 1, after=boundary, hasher=hasher)
    _check_same_entrants(hasher, record.entrants_hash)
    if not found:
        raise NoEntrantsLeft(
            f"all {record.entrants_count} entrants already hold or held a prize; "
            f"rank {replaces_rank}'s prize cannot be rerolled"
        )
    new = Reroll(replaces_rank, reason, _winner(found[0], holders[replaces_rank].tier))
    return replace(record, rerolls=(*record.rerolls, new))


# -- parsing and verifying records ---------------------------------------------------------


def _require(data: Mapping[str, Any], name: str, kind: type, where: str) -> Any:
    if name not in data:
        raise InvalidRecord(f"{where}: missing field {name!r}")
    value = data[name]
    if kind is int and isinstance(value, bool):
        raise InvalidRecord(f"{where}.{name}: expected an integer, got {value!r}")
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind):
        raise InvalidRecord(f"{where}.{name}: expected {kind.__name__}, got {value!r}")
    return value


def _hex_field(data: Mapping[str, Any], name: str, pattern: re.Pattern[str], where: str) -> str:
    value: str = _require(data, name, str, where)
    if not pattern.fullmatch(value):
        raise InvalidRecord(
            f"{where}.{name}: {value[:80]!r} is not lowercase hex of the right length"
        )
    return value


def _winner_from_dict(data: Any, where: str) -> Winner:
    if not isinstance(data, Mapping):
        raise InvalidRecord(f"{where}: expected an object")
    return Winner(
        rank=_require(data, "rank", int, where),
        member_id=_require(data, "member_id", str, where),
        weight=_require(data, "weight", int, where),
        u64=int(_hex_field(data, "u64", _HEX16, where), 16),
        key=_require(data, "key", float, where),
        tier=_require(data, "tier", str, where),
    )


_RECORD_KEYS = (
    "algorithm",
    "commitment",
    "seed",
    "external_value",
    "entrants_hash",
    "entrants_count",
    "randomness",
    "prizes",
    "winners",
    "rerolls",
)


def _record_from_dict(data: Mapping[str, Any]) -> DrawRecord:
    where = "record"
    if not isinstance(data, Mapping):
        raise InvalidRecord("record: expected a JSON object")
    unknown = sorted(set(data) - set(_RECORD_KEYS))
    if unknown:
        raise InvalidRecord(f"record: unknown field(s) {', '.join(map(repr, unknown))}")
    prizes = []
    for index, item in enumerate(_require(data, "prizes", list, where)):
        if not isinstance(item, Mapping) or set(item) != {"tier", "count"}:
            raise InvalidRecord(f"record.prizes[{index}]: expected {{'tier', 'count'}}")
        prizes.append(
            PrizeTier(
                _require(item, "tier", str, f"record.prizes[{index}]"),
                _require(item, "count", int, f"record.prizes[{index}]"),
            )
        )
    winners = tuple(
        _winner_from_dict(item, f"record.winners[{i}]")
        for i, item in enumerate(_require(data, "winners", list, where))
    )
    rerolls = []
    for i, item in enumerate(_require(data, "rerolls", list, where)):
        item_where = f"record.rerolls[{i}]"
        winner = _winner_from_dict(item, item_where)
        reason_text = _require(item, "reason", str, item_where)
        try:
            reason = RerollReason(reason_text)
        except ValueError:
            raise InvalidRecord(f"{item_where}.reason: unknown reason {reason_text!r}") from None
        rerolls.append(Reroll(_require(item, "replaces_rank", int, item_where), reason, winner))
    return DrawRecord(
        algorithm=_require(data, "algorithm", str, where),
        seed=_hex_field(data, "seed", _HEX_SEED, where),
        commitment=_hex_field(data, "commitment", _HEX64, where),
        entrants_hash=_hex_field(data, "entrants_hash", _HEX64, where),
        entrants_count=_require(data, "entrants_count", int, where),
        external_value=_require(data, "external_value", str, where),
        randomness=_hex_field(data, "randomness", _HEX64, where),
        prizes=tuple(prizes),
        winners=winners,
        rerolls=tuple(rerolls),
    )


@dataclass(frozen=True)
class VerifyResult:
    """The verifier's answer: ``verified`` when nothing differs. ``differences`` says
    exactly what does; ``notes`` what could not be checked (no entrant list)."""

    differences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    entrants_checked: bool = False

    @property
    def verified(self) -> bool:
        """True when the recomputation agrees with the record in every field."""
        return not self.differences

    def summary(self) -> str:
        """``VERIFIED`` (with notes) or ``NOT VERIFIED`` followed by each difference."""
        if self.verified:
            lines = ["VERIFIED"] + [f"  note: {n}" for n in self.notes]
        else:
            lines = [f"NOT VERIFIED: {len(self.differences)} difference(s)"]
            lines += [f"  - {d}" for d in self.differences]
        return "\n".join(lines)


def _load_record_json(text: str | bytes) -> Any:
    """``json.loads`` for a record: :class:`InvalidRecord` for anything that is not JSON,
    including hostile nesting (a record is four levels deep; Python's decoder would
    raise ``RecursionError``)."""
    try:
        return json.loads(text)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise InvalidRecord(f"record is not valid UTF-8 JSON: {exc}") from None
    except RecursionError:
        raise InvalidRecord("record is not a draw record: JSON nested too deeply") from None


def verify_json(
    text: str | bytes, entrants: Iterable[tuple[str, int]] | None = None
) -> VerifyResult:
    """Verify a published record from its exact bytes: they must be valid JSON of a
    record in canonical form (any other spelling is reported), then :func:`verify`."""
    try:
        as_text = text.decode("utf-8") if isinstance(text, bytes) else text
    except UnicodeDecodeError as exc:
        return VerifyResult(differences=[f"record is not valid UTF-8 JSON: {exc}"])
    try:
        data = _load_record_json(as_text)
    except InvalidRecord as exc:
        return VerifyResult(differences=[str(exc)])
    try:
        record = DrawRecord.from_dict(data)
    except InvalidRecord as exc:
        return VerifyResult(differences=[f"record is malformed: {exc}"])
    result = verify(record, entrants)
    canonical = record.to_json()
    if as_text != canonical:
        offset = next(
            (i for i, (x, y) in enumerate(zip(as_text, canonical, strict=False)) if x != y),
            min(len(as_text), len(canonical)),
        )
        result.differences.insert(
            0,
            f"record text is not in canonical form (first difference at character {offset})",
        )
    return result


def verify(record: DrawRecord, entrants: Iterable[tuple[str, int]] | None = None) -> VerifyResult:
    """Recompute ``record`` from scratch and list every difference.

    Without ``entrants`` it checks the seed against the commitment, the randomness,
    each listed entrant's ``u64`` and key, the order among them, the tiers and the
    rerolls' structure; with the entrant list it also recomputes the hash, the count,
    and that the winners and rerolls are exactly the best-ranked entrants."""
    differences: list[str] = []
    notes: list[str] = []
    if record.algorithm != ALGORITHM:
        differences.append(
            f"algorithm is {record.algorithm!r}; this verifier implements {ALGORITHM!r}"
        )
        return VerifyResult(differences)
    if not _HEX_SEED.fullmatch(record.seed):
        differences.append("seed is not 16..64 bytes of lowercase hex")
        return VerifyResult(differences)
    seed = bytes.fromhex(record.seed)
    computed_commitment = hashlib.sha256(seed).hexdigest()
    if computed_commitment != record.commitment:
        differences.append(
            f"commitment does not match seed: record {record.commitment}, "
            f"SHA-256 of the seed is {computed_commitment}"
        )
    try:
        randomness = draw_randomness(seed, record.entrants_hash, record.external_value)
    except DrawInputError as exc:
        differences.append(f"randomness cannot be computed: {exc}")
        return VerifyResult(differences)
    if randomness.hex() != record.randomness:
        differences.append(
            f"randomness differs: record {record.randomness}, computed {randomness.hex()}"
        )
    try:
        prizes = check_prizes(record.prizes)
    except DrawInputError as exc:
        # Without valid prizes there is no k to recompute (and a forged count could
        # be huge): report it and stop.
        differences.append(f"record {exc}")
        return VerifyResult(differences)
    tiers = tier_of_ranks(prizes)
    _verify_listed(record, randomness, tiers, differences)
    if entrants is None:
        notes.append(
            "entrant list not given: the entrant-list hash, the count and that the "
            "winners are the best-ranked entrants were not checked"
        )
        return VerifyResult(differences, notes)
    _verify_against_entrants(record, entrants, randomness, len(tiers), differences)
    return VerifyResult(differences, notes, entrants_checked=True)


def _verify_listed(
    record: DrawRecord, randomness: bytes, tiers: list[str], differences: list[str]
) -> None:
    """Checks that need only the record: each listed entrant's fields, ranks, tiers."""
    listed = [("winner", w) for w in record.winners] + [
        ("reroll", r.winner) for r in record.rerolls
    ]
    if len(record.winners) != min(len(tiers), record.entrants_count):
        differences.append(
            f"record lists {len(record.winners)} winners; {len(tiers)} prizes among "
            f"{record.entrants_count} entrants give {min(len(tiers), record.entrants_count)}"
        )
    previous: _Ranked | None = None
    for position, (kind, item) in enumerate(listed, start=1):
        label = f"{kind} #{item.rank} ({item.member_id!r})"
        if item.rank != position:
            differences.append(f"{label}: rank should be {position}")
        try:
            encoded = check_member_id(item.member_id, where=label)
            check_weight(item.weight, where=label)
        except DrawInputError as exc:
            differences.append(str(exc))
            continue
        n = u_numerator(randomness, item.member_id)
        if n != item.u64:
            differences.append(f"{label}: u64 record {item.u64:016x}, computed {n:016x}")
        key = key_display(n, item.weight)
        if key != item.key:
            differences.append(f"{label}: key record {item.key!r}, computed {key!r}")
        current = _Ranked(item.member_id, encoded, item.weight, n)
        if previous is not None and not previous.ranks_before(current):
            differences.append(
                f"{label}: does not rank after {previous.member_id!r} (rank {position - 1})"
            )
        previous = current
    for winner in record.winners:
        expected = tiers[winner.rank - 1] if 0 < winner.rank <= len(tiers) else None
        if winner.tier != expected:
            differences.append(
                f"winner #{winner.rank}: tier record {winner.tier!r}, prizes give {expected!r}"
            )
    slot_tier = {w.rank: w.tier for w in record.winners}
    for reroll_ in record.rerolls:
        label = f"reroll #{reroll_.winner.rank}"
        if reroll_.replaces_rank not in slot_tier:
            differences.append(
                f"{label}: replaces rank {reroll_.replaces_rank}, which holds no prize then"
            )
        elif reroll_.winner.tier != slot_tier[reroll_.replaces_rank]:
            differences.append(
                f"{label}: tier record {reroll_.winner.tier!r}, the replaced rank "
                f"{reroll_.replaces_rank} holds {slot_tier[reroll_.replaces_rank]!r}"
            )
        if reroll_.replaces_rank in slot_tier:
            slot_tier[reroll_.winner.rank] = slot_tier.pop(reroll_.replaces_rank)


def _verify_against_entrants(
    record: DrawRecord,
    entrants: Iterable[tuple[str, int]],
    randomness: bytes,
    prize_count: int,
    differences: list[str],
) -> None:
    hasher = EntrantsHasher()
    wanted = prize_count + len(record.rerolls)
    try:
        ranked = rank_entrants(entrants, randomness, wanted, hasher=hasher)
    except DrawInputError as exc:
        differences.append(f"entrant list is invalid: {exc}")
        return
    computed_hash = hasher.hexdigest()
    if computed_hash != record.entrants_hash:
        differences.append(
            f"entrant list hash differs: record {record.entrants_hash}, computed {computed_hash}"
        )
    if hasher.count != record.entrants_count:
        differences.append(
            f"entrants count differs: record {record.entrants_count}, computed {hasher.count}"
        )
    expected_winners = ranked[:prize_count]
    expected_rerolls = ranked[prize_count:]
    _compare_ranks("winner", list(record.winners), expected_winners, differences)
    _compare_ranks("reroll", [r.winner for r in record.rerolls], expected_rerolls, differences)


def _compare_ranks(
    label: str, listed: list[Winner], expected: list[RankedEntrant], differences: list[str]
) -> None:
    for index in range(max(len(listed), len(expected))):
        have = listed[index] if index < len(listed) else None
        want = expected[index] if index < len(expected) else None
        if want is None:
            assert have is not None
            differences.append(
                f"{label} #{have.rank}: record {have.member_id}, computed none "
                "(no entrant left to rank)"
            )
        elif have is None:
            differences.append(
                f"{label} #{want.rank}: missing from the record, computed {want.member_id}"
            )
        elif (have.member_id, have.weight) != (want.member_id, want.weight):
            differences.append(
                f"{label} #{want.rank}: record {have.member_id} (weight {have.weight}), "
                f"computed {want.member_id} (weight {want.weight})"
            )
