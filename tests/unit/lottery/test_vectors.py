"""docs/lottery.md's test vectors are what the code computes (read from the document,
so the two cannot drift apart)."""

from __future__ import annotations

import hashlib
import re
from decimal import Decimal, localcontext
from pathlib import Path

import pytest
from autopilot.lottery.draw import (
    ALGORITHM,
    PrizeTier,
    _exact_ranks_before,
    commit,
    draw,
    draw_randomness,
    entrants_hash,
    key_display,
    rank_entrants,
    reroll,
    serialize_entrants,
    u_numerator,
    verify_json,
)

from .reference import key_greater

DOC = Path(__file__).resolve().parents[3] / "docs" / "lottery.md"


def section(title: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(f"\n{title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def fenced_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def assignments(block: str) -> dict[str, str]:
    return dict(line.split(" = ", 1) for line in block.strip().splitlines())


def table_rows(text: str, header_start: str) -> list[list[str]]:
    lines = text[text.index(header_start) :].splitlines()
    rows = []
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


@pytest.fixture(scope="module")
def vector() -> str:
    text = section("### Vector 1: six entrants, three prizes, one reroll")
    return text[: text.index("### Comparison vectors")]


def test_vector_1_inputs_and_derived_values(vector: str) -> None:
    inputs_block, entrants_block, derived_block = fenced_blocks(vector, "text")
    inputs, derived = assignments(inputs_block), assignments(derived_block)
    entrants = [
        (member_id, int(weight))
        for member_id, weight in (line.split("\\t") for line in entrants_block.strip().splitlines())
    ]
    seed = bytes.fromhex(inputs["seed"])
    external = inputs["external_value"]
    assert inputs["prizes"] == "first x 1, second x 2"
    assert inputs["reroll"] == "rank 2, unclaimed"

    file_bytes = b"".join(serialize_entrants(entrants))
    assert file_bytes.decode() == entrants_block.replace("\\t", "\t")
    assert "张伟".encode() == bytes.fromhex("e5bca0e4bc9f")
    digest = entrants_hash(entrants)
    assert digest.entrants_hash == derived["entrants_hash"]
    assert hashlib.sha256(file_bytes).hexdigest() == derived["entrants_hash"]
    assert commit(seed) == derived["commitment"]
    message = bytes.fromhex(derived["randomness_input"])
    assert message.startswith(len(ALGORITHM).to_bytes(4, "big") + ALGORITHM.encode())
    assert hashlib.sha256(message).hexdigest() == derived["randomness"]
    randomness = draw_randomness(seed, digest.entrants_hash, external)
    assert randomness.hex() == derived["randomness"]

    rows = table_rows(vector, "| rank | member_id |")
    assert len(rows) == len(entrants)
    ranked = rank_entrants(entrants, randomness, len(entrants))
    for row, entrant in zip(rows, ranked, strict=True):
        rank, member_id, weight, u64, u_text, key = row
        n = u_numerator(randomness, member_id)
        expected = (entrant.rank, entrant.member_id, entrant.weight)
        assert (int(rank), member_id, int(weight)) == expected
        assert u64 == f"{n:016x}" == f"{entrant.u64:016x}"
        with localcontext() as ctx:
            ctx.prec = 20
            assert Decimal(u_text) == +((2 * Decimal(n) + 1) / Decimal(2) ** 65)
        assert float(key) == key_display(n, int(weight)) == entrant.key

    record = draw(
        entrants,
        seed=seed,
        entrants_hash=digest.entrants_hash,
        prizes=[PrizeTier("first", 1), PrizeTier("second", 2)],
        external_value=external,
    )
    record = reroll(record, entrants, replaces_rank=2, reason="unclaimed")
    (published,) = fenced_blocks(vector, "json")
    assert record.to_json() == published
    assert verify_json(published, entrants).verified


def test_comparison_vectors() -> None:
    rows = table_rows(section("### Comparison vectors"), "| A: u64 |")
    assert len(rows) == 5
    for u64_a, weight_a, u64_b, weight_b, first in rows:
        n_a, w_a, n_b, w_b = int(u64_a, 16), int(weight_a), int(u64_b, 16), int(weight_b)
        greater = key_greater(n_a, w_a, n_b, w_b)
        if first == "the smaller member id":
            assert greater == 0
            assert _exact_ranks_before(n_a, w_a, b"a", n_b, w_b, b"b")
            assert not _exact_ranks_before(n_b, w_b, b"b", n_a, w_a, b"a")
        else:
            assert greater == (1 if first == "A" else -1)
            assert _exact_ranks_before(n_a, w_a, b"a", n_b, w_b, b"b") == (first == "A")
