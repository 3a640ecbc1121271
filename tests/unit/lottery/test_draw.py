"""The draw core: commitment, canonical entrant list, randomness, draws, rerolls,
the record, and the verifier (agreement and tamper detection)."""

from __future__ import annotations

import hashlib
import json

import pytest
from autopilot.lottery.draw import (
    ALGORITHM,
    MAX_MEMBER_ID_BYTES,
    MAX_WEIGHT,
    MAX_WINNERS,
    DrawInputError,
    DrawRecord,
    EntrantsChanged,
    EntrantsHasher,
    EntrantsOutOfOrder,
    InvalidRecord,
    NoEntrantsLeft,
    PrizeTier,
    RerollReason,
    commit,
    draw,
    draw_randomness,
    entrant_line,
    entrants_hash,
    new_seed,
    parse_entrants,
    reroll,
    serialize_entrants,
    verify,
    verify_json,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from .reference import reference_order

SEED = bytes(range(32))
PRIZES = (PrizeTier("first", 1), PrizeTier("second", 2))


def make_entrants(count: int, weight_mod: int = 5) -> list[tuple[str, int]]:
    return [(f"m{i:04d}", i % weight_mod + 1) for i in range(count)]


def make_draw(
    entrants: list[tuple[str, int]], prizes=PRIZES, external: str = "round 42"
) -> DrawRecord:
    digest = entrants_hash(entrants)
    return draw(
        entrants,
        seed=SEED,
        entrants_hash=digest.entrants_hash,
        prizes=prizes,
        external_value=external,
    )


# -- commitment and seed ---------------------------------------------------------------


def test_commit_is_hex_sha256_of_the_seed() -> None:
    assert commit(SEED) == hashlib.sha256(SEED).hexdigest()


def test_new_seed_is_32_fresh_bytes() -> None:
    first, second = new_seed(), new_seed()
    assert len(first) == 32 and first != second


@pytest.mark.parametrize("seed", [b"", b"short", bytes(65), "not bytes"])
def test_bad_seeds_are_refused(seed) -> None:
    with pytest.raises(DrawInputError, match="seed must be"):
        commit(seed)


# -- the canonical entrant list ----------------------------------------------------------


def test_serialisation_is_id_tab_weight_newline_and_hash_is_its_sha256() -> None:
    entrants = [("alice", 1), ("bob", 12), ("成员", 3)]
    lines = list(serialize_entrants(entrants))
    assert lines == [b"alice\t1\n", b"bob\t12\n", "成员\t3\n".encode()]
    digest = entrants_hash(entrants)
    assert digest.entrants_hash == hashlib.sha256(b"".join(lines)).hexdigest()
    assert digest.entrants_count == 3
    assert entrant_line("bob", 12) == b"bob\t12\n"


def test_empty_entrant_list_hashes_the_empty_string() -> None:
    assert entrants_hash([]) == entrants_hash(iter(()))
    assert entrants_hash([]).entrants_hash == hashlib.sha256(b"").hexdigest()


def test_order_is_by_utf8_bytes_not_code_points_or_case() -> None:
    # "Z" (0x5A) < "a" (0x61); U+FF21 (EF BC A1) < U+1F600 (F0 9F 98 80) in UTF-8
    entrants_hash([("Z", 1), ("a", 1), ("\uff21", 1), ("\U0001f600", 1)])
    with pytest.raises(EntrantsOutOfOrder, match=r"entrant #2: member id 'Z' sorts before"):
        entrants_hash([("a", 1), ("Z", 1)])


def test_duplicate_member_is_refused_with_its_position() -> None:
    with pytest.raises(EntrantsOutOfOrder, match=r"entrant #3: member id 'b' repeats"):
        entrants_hash([("a", 1), ("b", 2), ("b", 2)])


@pytest.mark.parametrize(
    ("member_id", "message"),
    [
        ("", "member id is empty"),
        ("a\tb", "control character U\\+0009 at position 1"),
        ("a\nb", "control character U\\+000A"),
        ("a\rb", "control character U\\+000D"),
        ("\x00", "control character U\\+0000"),
        ("a\x7f", "control character U\\+007F"),
        ("a\x85", "control character U\\+0085"),
        ("\ud800", "not valid Unicode text"),
        ("x" * (MAX_MEMBER_ID_BYTES + 1), f"at most {MAX_MEMBER_ID_BYTES} allowed"),
        (17, "member id must be a string"),
    ],
)
def test_bad_member_ids_are_refused(member_id, message: str) -> None:
    with pytest.raises(DrawInputError, match=r"entrant #1: .*" + message):
        entrants_hash([(member_id, 1)])


def test_longest_member_id_is_accepted() -> None:
    entrants_hash([("é" * (MAX_MEMBER_ID_BYTES // 2), 1)])


@pytest.mark.parametrize(
    ("weight", "message"),
    [
        (0, "outside 1..1000000"),
        (-3, "outside 1..1000000"),
        (MAX_WEIGHT + 1, "outside 1..1000000"),
        (True, "must be an integer"),
        (2.0, "must be an integer"),
        ("3", "must be an integer"),
    ],
)
def test_bad_weights_are_refused(weight, message: str) -> None:
    with pytest.raises(DrawInputError, match=r"entrant #2 \('b'\): weight .*" + message):
        entrants_hash([("a", 1), ("b", weight)])


def test_subclasses_of_str_and_int_hash_like_plain_values() -> None:
    class MemberId(str):
        pass

    class Weight(int):
        pass

    plain = entrants_hash([("a", 2), ("b", 3)])
    assert entrants_hash([(MemberId("a"), Weight(2)), ("b", Weight(3))]) == plain


def test_errors_are_value_errors() -> None:
    assert issubclass(DrawInputError, ValueError)


def test_hasher_streams_without_holding_the_list() -> None:
    hasher = EntrantsHasher()
    for member_id, weight in ((f"m{i:06d}", 1) for i in range(1000)):
        hasher.add(member_id, weight)
    assert hasher.count == 1000
    whole = b"".join(b"m%06d\t1\n" % i for i in range(1000))
    assert hasher.hexdigest() == hashlib.sha256(whole).hexdigest()


def test_parse_entrants_round_trips_the_file() -> None:
    entrants = [("alice", 1), ("bob", 12), ("成员", 1000000)]
    data = b"".join(serialize_entrants(entrants))
    assert list(parse_entrants(data.splitlines(keepends=True))) == entrants


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"alice\t1", "missing the final newline"),
        (b"alice 1\n", "found no tab"),
        (b"alice\t01\n", "without sign or leading zeros"),
        (b"alice\t+1\n", "without sign or leading zeros"),
        (b"alice\t0\n", "without sign or leading zeros"),
        (b"alice\t1000001\n", "outside 1..1000000"),
        (b"alice\t1\t2\n", "without sign or leading zeros"),
        (b"\xffalice\t1\n", "not valid UTF-8"),
        (b"\t1\n", "member id is empty"),
        (b"alice\t1\r\n", "without sign or leading zeros"),
    ],
)
def test_parse_entrants_is_strict(line: bytes, message: str) -> None:
    with pytest.raises(DrawInputError, match=r"entrant file line 2: .*" + message):
        list(parse_entrants([b"aaa\t1\n", line]))


# -- randomness ----------------------------------------------------------------------------


def test_randomness_is_sha256_of_length_prefixed_fields() -> None:
    entrants_hex = hashlib.sha256(b"x").hexdigest()
    parts = [ALGORITHM.encode(), SEED, bytes.fromhex(entrants_hex), b"beacon 7"]
    message = b"".join(len(p).to_bytes(4, "big") + p for p in parts)
    assert draw_randomness(SEED, entrants_hex, "beacon 7") == hashlib.sha256(message).digest()


def test_randomness_depends_on_every_input() -> None:
    h1, h2 = hashlib.sha256(b"1").hexdigest(), hashlib.sha256(b"2").hexdigest()
    base = draw_randomness(SEED, h1, "v")
    assert draw_randomness(bytes(32), h1, "v") != base
    assert draw_randomness(SEED, h2, "v") != base
    assert draw_randomness(SEED, h1, "w") != base
    assert draw_randomness(SEED, h1, "") != base


@pytest.mark.parametrize(
    ("entrants_hex", "external", "message"),
    [
        ("ABC", "", "64 lowercase hex"),
        (hashlib.sha256(b"").hexdigest().upper(), "", "64 lowercase hex"),
        (hashlib.sha256(b"").hexdigest(), "x" * 1025, "external value is 1025 bytes"),
        (hashlib.sha256(b"").hexdigest(), 5, "external value must be a string"),
    ],
)
def test_randomness_inputs_are_checked(entrants_hex, external, message: str) -> None:
    with pytest.raises(DrawInputError, match=message):
        draw_randomness(SEED, entrants_hex, external)


# -- draws ----------------------------------------------------------------------------


def test_draw_assigns_tiers_in_rank_order_and_records_everything() -> None:
    entrants = make_entrants(50)
    record = make_draw(entrants)
    assert [w.rank for w in record.winners] == [1, 2, 3]
    assert [w.tier for w in record.winners] == ["first", "second", "second"]
    assert len({w.member_id for w in record.winners}) == 3
    randomness = bytes.fromhex(record.randomness)
    assert [w.member_id for w in record.winners] == reference_order(entrants, randomness)[:3]
    assert record.commitment == commit(SEED) and record.seed == SEED.hex()
    assert record.entrants_count == 50 and record.external_value == "round 42"
    assert all(0 < w.key < 1 for w in record.winners)
    assert verify(record, entrants).verified


def test_draw_checks_the_seed_against_the_published_commitment() -> None:
    entrants = make_entrants(5)
    frozen = entrants_hash(entrants).entrants_hash
    record = draw(entrants, seed=SEED, entrants_hash=frozen, prizes=PRIZES, commitment=commit(SEED))
    assert record.commitment == commit(SEED)
    with pytest.raises(DrawInputError, match="the seed does not match the commitment"):
        draw(entrants, seed=SEED, entrants_hash=frozen, prizes=PRIZES, commitment="0" * 64)


def test_drawing_again_gives_the_same_record() -> None:
    """A crashed draw resumed from the same inputs picks exactly the same winners."""
    entrants = make_entrants(40)
    assert make_draw(entrants) == make_draw(entrants)


def test_fewer_entrants_than_prizes_fill_the_first_ranks() -> None:
    record = make_draw(make_entrants(2))
    assert [w.tier for w in record.winners] == ["first", "second"]
    result = verify(record, make_entrants(2))
    assert result.verified, result.summary()


def test_no_entrants_draw_no_winners() -> None:
    record = make_draw([])
    assert record.winners == () and record.entrants_count == 0
    assert verify(record, []).verified


def test_draw_refuses_entrants_that_changed_since_close() -> None:
    entrants = make_entrants(10)
    frozen = entrants_hash(entrants).entrants_hash
    late = [*entrants, ("m9999", 1)]
    with pytest.raises(EntrantsChanged, match=r"11.*not to the list frozen at close"):
        draw(late, seed=SEED, entrants_hash=frozen, prizes=PRIZES)


@pytest.mark.parametrize(
    ("prizes", "message"),
    [
        ((), "at least one prize tier"),
        ((PrizeTier("a", 0),), r"prizes\[0\]: count must be an integer >= 1"),
        ((PrizeTier("a", 1), PrizeTier("a", 2)), r"prizes\[1\]: tier 'a' is listed twice"),
        ((PrizeTier("", 1),), "non-empty"),
        ((PrizeTier("a\nb", 1),), "without control characters"),
        ((PrizeTier("a", MAX_WINNERS + 1),), f"at most {MAX_WINNERS} per draw"),
        (({"tier": "a", "count": 1},), "expected a PrizeTier"),
    ],
)
def test_bad_prizes_are_refused(prizes, message: str) -> None:
    with pytest.raises(DrawInputError, match=message):
        make_draw(make_entrants(5), prizes=prizes)


@settings(max_examples=40, deadline=None)
@given(
    weights=st.lists(st.integers(1, 50), max_size=40),
    tiers=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    seed=st.binary(min_size=16, max_size=64),
    external=st.text(max_size=20),
)
def test_verifier_agrees_with_the_draw(
    weights: list[int], tiers: list[int], seed: bytes, external: str
) -> None:
    entrants = [(f"id-{i}-{w}", w) for i, w in enumerate(weights)]
    entrants.sort(key=lambda e: e[0].encode())
    prizes = [PrizeTier(f"tier{i}", c) for i, c in enumerate(tiers)]
    digest = entrants_hash(entrants)
    record = draw(
        entrants,
        seed=seed,
        entrants_hash=digest.entrants_hash,
        prizes=prizes,
        external_value=external,
    )
    result = verify_json(record.to_json(), entrants)
    assert result.verified, result.summary()
    assert result.entrants_checked
    expected = reference_order(entrants, bytes.fromhex(record.randomness))
    assert [w.member_id for w in record.winners] == expected[: sum(tiers)]


# -- rerolls -----------------------------------------------------------------------------


def test_rerolls_take_the_next_ranks_and_never_repeat_a_winner() -> None:
    entrants = make_entrants(30)
    record = make_draw(entrants)
    order = reference_order(entrants, bytes.fromhex(record.randomness))
    record = reroll(record, entrants, replaces_rank=2, reason=RerollReason.UNCLAIMED)
    record = reroll(record, entrants, replaces_rank=4, reason="disqualified")  # the rerolled one
    record = reroll(record, entrants, replaces_rank=1, reason="unclaimed")
    chosen = [w.member_id for w in record.winners] + [r.winner.member_id for r in record.rerolls]
    assert chosen == order[:6]
    assert [r.winner.rank for r in record.rerolls] == [4, 5, 6]
    assert [r.winner.tier for r in record.rerolls] == ["second", "second", "first"]
    holders = record.holders()
    assert [h.member_id for h in holders] == [order[5], order[4], order[2]]
    result = verify_json(record.to_json(), entrants)
    assert result.verified, result.summary()


def test_every_entrant_is_chosen_at_most_once_until_none_is_left() -> None:
    entrants = make_entrants(6)
    record = make_draw(entrants)
    for _ in range(3):
        first_holder = record.holders()[0].rank
        record = reroll(record, entrants, replaces_rank=first_holder, reason="unclaimed")
    chosen = [w.member_id for w in record.winners] + [r.winner.member_id for r in record.rerolls]
    assert sorted(chosen) == [m for m, _ in entrants]
    with pytest.raises(NoEntrantsLeft, match="all 6 entrants already hold or held a prize"):
        reroll(record, entrants, replaces_rank=record.holders()[0].rank, reason="unclaimed")
    assert verify(record, entrants).verified


@settings(max_examples=30, deadline=None)
@given(
    weights=st.lists(st.integers(1, 9), min_size=1, max_size=15),
    picks=st.lists(st.integers(0, 100), max_size=20),
    reasons=st.lists(st.sampled_from(list(RerollReason)), min_size=1, max_size=3),
)
def test_any_sequence_of_rerolls_never_repeats_a_member_and_verifies(
    weights: list[int], picks: list[int], reasons: list[RerollReason]
) -> None:
    entrants = [(f"e{i:02d}", w) for i, w in enumerate(weights)]
    record = make_draw(entrants, prizes=(PrizeTier("a", 1), PrizeTier("b", 2)))
    order = reference_order(entrants, bytes.fromhex(record.randomness))
    for step, pick in enumerate(picks):
        holders = record.holders()
        target = holders[pick % len(holders)]
        reason = reasons[step % len(reasons)]
        if len(record.winners) + len(record.rerolls) == len(entrants):
            with pytest.raises(NoEntrantsLeft):
                reroll(record, entrants, replaces_rank=target.rank, reason=reason)
            break
        record = reroll(record, entrants, replaces_rank=target.rank, reason=reason)
        assert record.rerolls[-1].winner.tier == target.tier
    chosen = [w.member_id for w in record.winners] + [r.winner.member_id for r in record.rerolls]
    assert len(set(chosen)) == len(chosen)
    assert chosen == order[: len(chosen)]
    assert len(record.holders()) == len(record.winners)
    assert DrawRecord.from_json(record.to_json()) == record
    result = verify_json(record.to_json(), entrants)
    assert result.verified, result.summary()


def test_from_json_refuses_what_is_not_json() -> None:
    with pytest.raises(InvalidRecord, match="record is not valid UTF-8 JSON"):
        DrawRecord.from_json(b"\xff{")


def test_reroll_of_a_rank_that_holds_nothing_is_refused() -> None:
    entrants = make_entrants(10)
    record = reroll(make_draw(entrants), entrants, replaces_rank=1, reason="unclaimed")
    holders = r"rank 1 holds no prize now; holders are ranks \[2, 3, 4\]"
    with pytest.raises(DrawInputError, match=holders):
        reroll(record, entrants, replaces_rank=1, reason="unclaimed")
    with pytest.raises(DrawInputError, match="reroll reason 'bored' is not one of"):
        reroll(record, entrants, replaces_rank=2, reason="bored")


def test_reroll_refuses_a_changed_entrant_list() -> None:
    entrants = make_entrants(10)
    record = make_draw(entrants)
    with pytest.raises(EntrantsChanged):
        reroll(record, entrants[:-1], replaces_rank=1, reason="unclaimed")


# -- the record and the verifier ---------------------------------------------------------


def test_record_json_round_trips() -> None:
    entrants = make_entrants(20)
    record = reroll(make_draw(entrants), entrants, replaces_rank=3, reason="unclaimed")
    assert DrawRecord.from_dict(json.loads(record.to_json())) == record
    assert json.loads(record.to_json())["winners"][0]["u64"] == f"{record.winners[0].u64:016x}"


def test_verify_without_entrants_checks_what_it_can_and_says_what_it_did_not() -> None:
    entrants = make_entrants(20)
    record = make_draw(entrants)
    result = verify(record)
    assert result.verified and not result.entrants_checked
    assert "entrant list not given" in result.summary()


def test_verify_reports_exactly_what_differs() -> None:
    entrants = make_entrants(20)
    record = make_draw(entrants)
    data = json.loads(record.to_json())
    data["commitment"] = "0" * 64
    data["winners"][1]["member_id"] = "m0019"
    result = verify(DrawRecord.from_dict(data), entrants)
    assert not result.verified
    text = result.summary()
    assert "commitment does not match seed: record 000" in text
    second = record.winners[1]
    assert (
        f"winner #2: record m0019 (weight {second.weight}), "
        f"computed {second.member_id} (weight {second.weight})"
    ) in result.differences
    other = [*entrants[:-1], ("m0019", 2)]
    result = verify(record, other)
    computed = entrants_hash(other).entrants_hash
    assert f"entrant list hash differs: record {record.entrants_hash}, computed {computed}" in (
        result.differences
    )


def tamper_cases(text: bytes):
    """Every byte position, changed to a different byte (a plausible one: a digit, a
    letter or a quote, cycling), plus a deletion and a duplication."""
    replacements = b'0a9fZ"m1 }'
    for position in range(len(text)):
        new = replacements[position % len(replacements)]
        if new == text[position]:
            new = replacements[(position + 1) % len(replacements)]
        yield text[:position] + bytes([new]) + text[position + 1 :]
    yield text[:-1]
    yield text + text[-1:]


def test_changing_any_byte_of_the_record_fails_verification() -> None:
    entrants = make_entrants(12)
    record = reroll(make_draw(entrants), entrants, replaces_rank=2, reason="unclaimed")
    original = record.to_json().encode()
    assert verify_json(original, entrants).verified
    undetected = [
        tampered for tampered in tamper_cases(original) if verify_json(tampered, entrants).verified
    ]
    assert undetected == []


def test_changing_any_byte_of_the_entrant_list_fails_verification() -> None:
    entrants = make_entrants(8)
    record = make_draw(entrants)
    original = b"".join(serialize_entrants(entrants))
    for tampered in tamper_cases(original):
        try:
            parsed = list(parse_entrants(tampered.splitlines(keepends=True)))
        except DrawInputError:
            continue  # the file itself is refused: detected
        result = verify(record, parsed)
        assert not result.verified, tampered


def test_invalid_entrant_file_is_reported_not_raised() -> None:
    entrants = make_entrants(5)
    record = make_draw(entrants)
    result = verify(record, [("m0001", 1), ("m0000", 1)])
    assert not result.verified
    assert "entrant list is invalid: entrant #2" in result.summary()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("seed"), "missing field 'seed'"),
        (lambda d: d.update(extra=1), "unknown field"),
        (lambda d: d.update(seed="ZZ" * 32), "record.seed: .* is not lowercase hex"),
        (lambda d: d.update(entrants_count="3"), "entrants_count: expected int"),
        (lambda d: d["winners"][0].update(u64="1"), r"winners\[0\].u64"),
        (
            lambda d: d["rerolls"].append(
                {**d["winners"][0], "replaces_rank": 1, "reason": "bored"}
            ),
            "unknown reason 'bored'",
        ),
    ],
)
def test_malformed_records_name_the_field(mutate, message: str) -> None:
    data = json.loads(make_draw(make_entrants(5)).to_json())
    mutate(data)
    with pytest.raises(InvalidRecord, match=message):
        DrawRecord.from_dict(data)
    result = verify_json(json.dumps(data))
    assert not result.verified and "record is malformed" in result.summary()


def test_other_algorithm_versions_are_not_verified_as_version_1() -> None:
    record = make_draw(make_entrants(5))
    data = json.loads(record.to_json())
    data["algorithm"] = "autopilot-lottery/2"
    result = verify(DrawRecord.from_dict(data))
    assert result.differences == [
        "algorithm is 'autopilot-lottery/2'; this verifier implements 'autopilot-lottery/1'"
    ]


def test_a_record_built_in_code_with_a_bad_seed_is_reported_not_raised() -> None:
    record = make_draw(make_entrants(3))
    bad = DrawRecord(**{**record.__dict__, "seed": "not hex"})
    assert verify(bad).differences == ["seed is not 16..64 bytes of lowercase hex"]


def test_a_record_with_invalid_prizes_is_reported_without_expanding_them() -> None:
    record = make_draw(make_entrants(3))
    data = json.loads(record.to_json())
    data["prizes"][0]["count"] = 10**12  # expanding this into ranks would never finish
    result = verify_json(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    assert result.differences == [
        f"record prizes: {10**12 + 2} prizes in all, at most {MAX_WINNERS} per draw"
    ]
