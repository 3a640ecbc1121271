"""`autopilot lottery codes upload|status` against the stack's lottery table (moto)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from autopilot.aws import client
from autopilot.lottery.codes import (
    UPLOAD_LEASE,
    CouponPools,
    PoolBusy,
    parse_codes,
    pool_pk,
)

from autopilot_cli.main import main

CONFIG = "config/communities.yaml"
COMMUNITY = "sunrise-readers"
NOW = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)


def cli(stack, *words: str) -> list[str]:
    return [
        "lottery",
        "codes",
        *words,
        "--table",
        stack.env["LOTTERY_TABLE"],
        "--config",
        CONFIG,
        "--community",
        COMMUNITY,
        "--pool",
        "coffee",
    ]


def table_items(stack) -> list[dict[str, Any]]:
    """Every item of the lottery table (to compare before/after)."""
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": stack.env["LOTTERY_TABLE"], "ConsistentRead": True}
    while True:
        page = client("dynamodb", "us-east-1").scan(**kwargs)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return sorted(items, key=lambda i: (i["pk"]["S"], i["sk"]["S"]))
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@pytest.fixture
def pools(stack, repo_root, monkeypatch) -> CouponPools:
    monkeypatch.chdir(repo_root)
    stack.clock.set(NOW)
    return CouponPools(stack.env["LOTTERY_TABLE"], "us-east-1")


def test_upload_dedupes_is_idempotent_and_keeps_pool_order(stack, pools, tmp_path, capsys):
    first = tmp_path / "codes.txt"
    first.write_text("C-1\nC-2\nC-1\nC-3\n", encoding="utf-8")
    assert main([*cli(stack, "upload"), str(first)]) == 0
    out = capsys.readouterr().out
    assert "sunrise-readers/coffee: added 3 code(s) (#1-#3)" in out
    assert "1 line(s) repeat an earlier code and were kept once (lines 3)" in out
    assert "3 codes, 0 given, 3 unused" in out

    before = table_items(stack)
    assert main([*cli(stack, "upload"), str(first)]) == 0  # the same file again
    out = capsys.readouterr().out
    assert "added 0 codes" in out and "3 code(s) of the file were already in the pool" in out
    assert table_items(stack) == before  # nothing rewritten, the lease released

    more = tmp_path / "more.txt"
    more.write_text("C-3\nC-4\nC-5\n", encoding="utf-8")
    assert main([*cli(stack, "upload"), str(more)]) == 0
    assert "added 2 code(s) (#4-#5)" in capsys.readouterr().out
    codes = [(item.seq, item.code) for item in pools.codes(COMMUNITY, "coffee")]
    assert codes == [(1, "C-1"), (2, "C-2"), (3, "C-3"), (4, "C-4"), (5, "C-5")]
    assert {item.uploaded_at for item in pools.codes(COMMUNITY, "coffee")} == {
        "2026-11-30T15:00:00Z"
    }


def test_a_file_with_a_bad_line_writes_nothing_and_names_the_lines(stack, pools, tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"C-1\n\nC-2 \nC\x07-3\nC-4\n")
    before = table_items(stack)
    assert main([*cli(stack, "upload"), str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:2: blank line" in err
    assert f"{bad}:3: 'C-2 ' has spaces around it" in err
    assert f"{bad}:4: " in err and "U+0007" in err
    assert "nothing uploaded" in err
    assert table_items(stack) == before
    assert pools.status(COMMUNITY, "coffee").total == 0


def test_unreadable_file_and_bad_pool_id(stack, pools, tmp_path, capsys):
    assert main([*cli(stack, "upload"), str(tmp_path / "missing.txt")]) == 2
    assert "cannot read the codes" in capsys.readouterr().err
    codes = tmp_path / "codes.txt"
    codes.write_text("C-1\n", encoding="utf-8")
    argv = [*cli(stack, "upload"), str(codes)]
    argv[argv.index("coffee")] = "Coffee#1"
    with pytest.raises(SystemExit, match="is not a pool id"):
        main(argv)
    assert table_items(stack) == []


def test_status_counts_given_codes_and_names_the_lotteries_using_the_pool(
    stack, pools, tmp_path, capsys
):
    assert main([*cli(stack, "status")]) == 0
    assert "sunrise-readers/coffee: 0 codes, 0 given, 0 unused" in capsys.readouterr().out
    pools.upload(COMMUNITY, "coffee", parse_codes(b"A\nB\nC\nD\n"), now=NOW)
    assert pools.give(COMMUNITY, "coffee", 2, "lottery:d1:rank:1:wx:alice", at=NOW)
    assert not pools.give(COMMUNITY, "coffee", 2, "lottery:d1:rank:2:wx:bob", at=NOW)
    assert not pools.give(COMMUNITY, "coffee", 9, "lottery:d1:rank:2:wx:bob", at=NOW)
    assert main([*cli(stack, "status")]) == 0
    out = capsys.readouterr().out
    assert "4 codes, 1 given, 3 unused" in out
    assert "no lottery of sunrise-readers gives codes from pool 'coffee'" in out
    # An unknown pool is empty; the give of a code that does not exist created nothing.
    assert [i["sk"]["S"] for i in table_items(stack)] == [f"CODE#{n:08d}" for n in range(1, 5)]


def test_unused_pages_in_pool_order_skip_given_codes(stack, pools):
    pools.upload(
        COMMUNITY, "coffee", parse_codes("".join(f"K{n}\n" for n in range(60)).encode()), now=NOW
    )
    for seq in (1, 2, 3, 30):
        assert pools.give(COMMUNITY, "coffee", seq, f"ref-{seq}", at=NOW)
    first = pools.unused(COMMUNITY, "coffee", 5)
    assert [(c.seq, c.code) for c in first] == [(n, f"K{n - 1}") for n in range(4, 9)]
    rest = pools.unused(COMMUNITY, "coffee", 100, after_seq=first[-1].seq)
    assert [c.seq for c in rest] == [n for n in range(9, 61) if n != 30]
    assert pools.unused(COMMUNITY, "coffee", 0) == []
    assert pools.unused(COMMUNITY, "other-pool", 5) == []


def test_a_running_upload_holds_the_pool_until_its_lease_ends(stack, pools):
    # The lease another upload holds (written as _lease writes it).
    client("dynamodb", "us-east-1").put_item(
        TableName=stack.env["LOTTERY_TABLE"],
        Item={
            "pk": {"S": pool_pk(COMMUNITY, "coffee")},
            "sk": {"S": "UPLOAD"},
            "holder": {"S": "someone-else"},
            "lease_until": {"S": "2026-11-30T15:10:00Z"},
        },
    )
    with pytest.raises(PoolBusy, match="lease ends 2026-11-30T15:10:00Z"):
        pools.upload(COMMUNITY, "coffee", parse_codes(b"A\n"), now=NOW)
    assert pools.status(COMMUNITY, "coffee").total == 0
    # A crashed upload's lease runs out; the next upload takes over and releases it.
    later = NOW + UPLOAD_LEASE + timedelta(seconds=1)
    result = pools.upload(COMMUNITY, "coffee", parse_codes(b"A\n"), now=later)
    assert result.added == 1
    assert [i["sk"]["S"] for i in table_items(stack)] == ["CODE#00000001"]


def test_codes_commands_run_on_the_real_clock_only(stack, pools, tmp_path):
    with pytest.raises(SystemExit):
        main(["--now", "2026-11-30T15:00:00Z", *cli(stack, "status")])
