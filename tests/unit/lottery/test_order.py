"""The draw's order: exact key comparison, near-ties, ties, float filter, streaming top-k,
and the empirical win frequencies (chi-square)."""

from __future__ import annotations

import hashlib
import hmac
import math
import random
from decimal import Decimal, localcontext

import pytest
from autopilot.lottery import draw as draw_module
from autopilot.lottery.draw import (
    MAX_WEIGHT,
    RankBoundary,
    _exact_ranks_before,
    _hmac_sha256_of,
    _Ranked,
    _sort_value,
    draw_randomness,
    entrants_hash,
    rank_entrants,
    u_numerator,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from .reference import key_greater, reference_n, reference_order

R = hashlib.sha256(b"test randomness").digest()
TOP = (1 << 64) - 1


def exact_before(n_a: int, w_a: int, id_a: str, n_b: int, w_b: int, id_b: str) -> bool:
    greater = key_greater(n_a, w_a, n_b, w_b)
    return greater > 0 or (greater == 0 and id_a.encode() < id_b.encode())


def near_tie_partner(n_a: int, w_a: int, w_b: int) -> int:
    """The n whose key u^(1/w_b) is closest to (n_a, w_a)'s key u_a^(1/w_a)."""
    with localcontext() as ctx:
        ctx.prec = 80
        u_a = (2 * Decimal(n_a) + 1) / Decimal(2) ** 65
        u_b = u_a ** (Decimal(w_b) / Decimal(w_a))
        n_b = int(((u_b * Decimal(2) ** 65) - 1) / 2)
    return min(max(n_b, 0), TOP)


def test_u_numerator_is_the_first_eight_hmac_bytes() -> None:
    assert u_numerator(R, "m1") == reference_n(R, "m1")
    assert u_numerator(R, "成员") == reference_n(R, "成员")


@settings(max_examples=200, deadline=None)
@given(key=st.binary(max_size=100), message=st.binary(max_size=300))
def test_precomputed_hmac_is_hmac_sha256(key: bytes, message: bytes) -> None:
    assert _hmac_sha256_of(key)(message) == hmac.new(key, message, hashlib.sha256).digest()


@pytest.mark.parametrize("n", [0, 1, 2**52, 2**63 - 1, 2**63, 2**63 + 1, TOP - 1, TOP])
@pytest.mark.parametrize("weight", [1, 3, 1000, MAX_WEIGHT])
def test_float_sort_value_is_within_its_error_bound(n: int, weight: int) -> None:
    """The float filter relies on -ln(u)/w being within 2^-48 (relative) of the truth,
    including u next to 0, next to 1/2 (the branch) and next to 1 (cancellation)."""
    with localcontext() as ctx:
        ctx.prec = 60
        exact = -((2 * Decimal(n) + 1) / Decimal(2) ** 65).ln() / weight
    assert abs(Decimal(_sort_value(n, weight)) - exact) <= exact * Decimal(2) ** -48


@settings(max_examples=300, deadline=None)
@given(
    n_a=st.integers(0, TOP),
    w_a=st.integers(1, 40),
    n_b=st.integers(0, TOP),
    w_b=st.integers(1, 40),
)
def test_ranks_before_matches_exact_comparison_on_random_keys(
    n_a: int, w_a: int, n_b: int, w_b: int
) -> None:
    a, b = _Ranked("a", b"a", w_a, n_a), _Ranked("b", b"b", w_b, n_b)
    assert a.ranks_before(b) == exact_before(n_a, w_a, "a", n_b, w_b, "b")
    assert b.ranks_before(a) == exact_before(n_b, w_b, "b", n_a, w_a, "a")


@settings(max_examples=200, deadline=None)
@given(
    n_a=st.integers(1, TOP - 1),
    w_a=st.integers(1, 60),
    w_b=st.integers(1, 60),
    offset=st.integers(-2, 2),
)
def test_near_ties_are_decided_exactly(n_a: int, w_a: int, w_b: int, offset: int) -> None:
    """Keys so close that floats cannot tell them apart (relative gap ~1e-19) still
    come out in the exact order, both ways round."""
    n_b = min(max(near_tie_partner(n_a, w_a, w_b) + offset, 0), TOP)
    a, b = _Ranked("a", b"a", w_a, n_a), _Ranked("b", b"b", w_b, n_b)
    assert a.ranks_before(b) == exact_before(n_a, w_a, "a", n_b, w_b, "b")
    assert b.ranks_before(a) == exact_before(n_b, w_b, "b", n_a, w_a, "a")


@pytest.mark.parametrize(("w_a", "w_b"), [(1009, 1013), (2003, 997), (4099, 6)])
def test_near_ties_with_large_coprime_weights_use_decimal_and_agree(w_a: int, w_b: int) -> None:
    """Reduced exponents above the big-integer limit go through the decimal refinement;
    it agrees with the big-integer comparison on constructed near-ties."""
    rng = random.Random(w_a * w_b)
    for _ in range(5):
        n_a = rng.randrange(1, TOP)
        centre = near_tie_partner(n_a, w_a, w_b)
        for n_b in (centre - 1, centre, centre + 1):
            got = _exact_ranks_before(n_a, w_a, b"a", n_b, w_b, b"b")
            assert got == (key_greater(n_a, w_a, n_b, w_b) > 0)


def test_decimal_refinement_is_used_for_large_reduced_exponents(monkeypatch) -> None:
    calls: list[int] = []
    original = draw_module._decimal_ranks_before

    def spy(*args):
        calls.append(args[-1])
        return original(*args)

    monkeypatch.setattr(draw_module, "_decimal_ranks_before", spy)
    n_a = 2**63 + 12345
    _exact_ranks_before(n_a, 1009, b"a", near_tie_partner(n_a, 1009, 1013), 1013, b"b")
    assert calls  # the path under test really ran


def test_equal_keys_break_ties_by_smaller_member_id_bytes() -> None:
    """Equal keys need equal weights and equal n; then the smaller id bytes rank first
    (UTF-8 bytes, not UTF-16 units: U+FF21 sorts after U+1F600 in UTF-16, before in UTF-8)."""
    n = 2**63 + 7
    assert _Ranked("m1", b"m1", 4, n).ranks_before(_Ranked("m2", b"m2", 4, n))
    assert not _Ranked("m2", b"m2", 4, n).ranks_before(_Ranked("m1", b"m1", 4, n))
    low, high = "\uff21", "\U0001f600"
    assert low.encode() < high.encode()
    assert _Ranked(low, low.encode(), 2, n).ranks_before(_Ranked(high, high.encode(), 2, n))


def test_different_weights_never_tie_even_with_equal_n() -> None:
    """For u < 1, u^(1/3) > u^(1/2): with equal u the heavier entrant ranks first,
    whatever the ids."""
    n = 2**62
    heavy, light = _Ranked("z", b"z", 3, n), _Ranked("a", b"a", 2, n)
    assert heavy.ranks_before(light)


def fake_member_hmac(table: dict[str, int]):
    """A stand-in for the per-entrant HMAC giving each member id a chosen n (to force
    ties and near-ties that real HMAC outputs would practically never produce)."""

    def hmac_of(key: bytes):
        return lambda message: table[message.decode()].to_bytes(8, "big") + bytes(24)

    return hmac_of


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    size=st.integers(1, 40),
    count=st.integers(0, 12),
)
def test_streaming_top_k_equals_the_reference_sort_with_ties_and_near_ties(
    data: st.DataObject, size: int, count: int
) -> None:
    """With n drawn from a tiny pool (many exact ties and near-ties), the heap's top-k
    and every resumed ranking after a boundary equal the exact reference order."""
    pool = [0, 1, 2**63 - 1, 2**63, TOP - 1, TOP, 2**40, 2**40 + 1]
    ids = sorted({f"m{i:03d}" for i in range(size)})
    weights = data.draw(st.lists(st.integers(1, 6), min_size=size, max_size=size))
    table = {m: data.draw(st.sampled_from(pool)) for m in ids}
    entrants = list(zip(ids, weights, strict=True))
    expected = reference_order(entrants, R, n_of=lambda _r, m: table[m])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(draw_module, "_hmac_sha256_of", fake_member_hmac(table))
        got = rank_entrants(entrants, R, count)
        assert [e.member_id for e in got] == expected[:count]
        assert [e.rank for e in got] == list(range(1, len(got) + 1))
        if got:
            last = got[-1]
            boundary = RankBoundary(last.rank, last.member_id, last.weight, last.u64)
            after = rank_entrants(entrants, R, 3, after=boundary)
            assert [e.member_id for e in after] == expected[count : count + 3]
            assert [e.rank for e in after] == list(range(count + 1, count + 1 + len(after)))


@settings(max_examples=40, deadline=None)
@given(
    weights=st.lists(st.integers(1, 1000), min_size=0, max_size=60),
    count=st.integers(0, 70),
    salt=st.binary(min_size=1, max_size=8),
)
def test_streaming_top_k_equals_the_reference_sort_on_real_hmac(
    weights: list[int], count: int, salt: bytes
) -> None:
    entrants = [(f"member-{i:04d}", w) for i, w in enumerate(weights)]
    randomness = hashlib.sha256(salt).digest()
    got = rank_entrants(entrants, randomness, count)
    assert [e.member_id for e in got] == reference_order(entrants, randomness)[:count]


# -- empirical frequencies --------------------------------------------------------------


def chi_square_survival(statistic: float, df: int) -> float:
    """P(X > statistic) for X ~ chi-square(df): Q(df/2, x/2) by the half-integer
    recurrence Q(s+1, y) = Q(s, y) + y^s e^-y / Gamma(s+1), from Q(1/2) or Q(1)."""
    y = statistic / 2
    if df % 2:
        s, q = 0.5, math.erfc(math.sqrt(y))
    else:
        s, q = 1.0, math.exp(-y)
    while s < df / 2:
        q += math.exp(s * math.log(y) - y - math.lgamma(s + 1)) if y > 0 else 0.0
        s += 1
    return q


def test_chi_square_survival_matches_table_values() -> None:
    # Standard table: chi-square critical values at p = 0.001.
    assert chi_square_survival(10.828, 1) == pytest.approx(0.001, rel=1e-3)
    assert chi_square_survival(16.266, 3) == pytest.approx(0.001, rel=1e-3)
    assert chi_square_survival(31.264, 11) == pytest.approx(0.001, rel=1e-3)


def test_win_frequencies_match_weights() -> None:
    """6,000 draws of 2 winners among weights 1, 2, 3, 4 (fixed seeds): the first
    winner is i with probability w_i / W, and the ordered pair (i, j) has probability
    w_i / W * w_j / (W - w_i) (sampling without replacement). Chi-square goodness of
    fit of both must not be rejected at p = 0.001."""
    weights = {"a": 1, "b": 2, "c": 3, "d": 4}
    entrants = sorted(weights.items())
    total = sum(weights.values())
    digest = entrants_hash(entrants)
    firsts = dict.fromkeys(weights, 0)
    pairs: dict[tuple[str, str], int] = {}
    trials = 6000
    for trial in range(trials):
        seed = hashlib.sha256(b"chi-square seed %d" % trial).digest()
        randomness = draw_randomness(seed, digest.entrants_hash, "")
        first, second = (e.member_id for e in rank_entrants(entrants, randomness, 2))
        firsts[first] += 1
        pairs[(first, second)] = pairs.get((first, second), 0) + 1

    first_stat = sum(
        (firsts[m] - trials * w / total) ** 2 / (trials * w / total) for m, w in weights.items()
    )
    pair_stat = 0.0
    for i, w_i in weights.items():
        for j, w_j in weights.items():
            if i != j:
                expected = trials * w_i / total * w_j / (total - w_i)
                pair_stat += (pairs.get((i, j), 0) - expected) ** 2 / expected
    assert chi_square_survival(first_stat, 3) > 0.001, (first_stat, firsts)
    assert chi_square_survival(pair_stat, 11) > 0.001, (pair_stat, pairs)
    # And the test can fail: equal-weight expectations are rejected by the same data.
    flat = sum((c - trials / 4) ** 2 / (trials / 4) for c in firsts.values())
    assert chi_square_survival(flat, 3) < 0.001
