"""`autopilot ledger` and `autopilot members` against the stack's ledger table (moto)."""

from __future__ import annotations

import csv
import hashlib
import json
from datetime import UTC, datetime, timedelta

from autopilot_cli.configfile import validate_file
from autopilot_cli.main import main

CONFIG = "config/communities.yaml"


def cli(stack, *words):
    """The command words followed by the moto stack's table and the example config."""
    return [*words, "--table", stack.env["LEDGER_TABLE"], "--config", CONFIG]


def test_members_adjust_reconcile_and_export(stack, repo_root, monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(repo_root)
    config = validate_file(CONFIG).config
    community = config.community("sunrise-readers")
    app = stack.app()
    start = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
    for day in range(8):  # a 7-day streak bonus on the 7th day
        app.checkins.check_in(community, "wx:alice", start + timedelta(days=day))
    # The CLI dates what it writes by the injected clock, never the wall clock: the
    # last evening of November, 23:00 in Shanghai (15:00 UTC).
    stack.clock.set(datetime(2026, 11, 30, 15, 0, tzinfo=UTC))

    assert (
        main(
            [
                *cli(stack, "members", "add"),
                "--community",
                "sunrise-readers",
                "--member",
                "wx:bob",
                "--name",
                "Bob",
            ]
        )
        == 0
    )
    assert "(joined 2026-11-30T15:00:00Z)" in capsys.readouterr().out
    stack.clock.set(datetime(2026, 11, 30, 15, 59, tzinfo=UTC))  # 23:59 in Shanghai
    argv = [
        *cli(stack, "ledger", "adjust"),
        "--community",
        "sunrise-readers",
        "--member",
        "wx:bob",
        "--amount",
        "25",
        "--reason",
        "活动补发",
        "--ref",
        "TICKET-1",
        "--actor",
        "carol",
    ]
    assert main(argv) == 0
    assert main(argv) == 0  # same ref again: recorded once
    out = capsys.readouterr().out
    assert "recorded: +25 points for wx:bob" in out and "already recorded" in out

    assert main(cli(stack, "ledger", "reconcile")) == 0
    assert "sunrise-readers: OK (2 members, outstanding 155 points)" in capsys.readouterr().out

    target = tmp_path / "nov.csv"
    assert (
        main(
            [
                *cli(stack, "ledger", "export"),
                "--community",
                "sunrise-readers",
                "--month",
                "2026-11",
                "--out",
                str(target),
            ]
        )
        == 0
    )
    rows = list(csv.DictReader(target.open(encoding="utf-8")))
    assert [r["reason"] for r in rows].count("checkin") == 8
    assert [r["reason"] for r in rows].count("streak_bonus") == 1
    assert [
        (r["member_id"], r["amount"], r["note"], r["at_utc"])
        for r in rows
        if r["reason"] == "adjustment"
    ] == [("wx:bob", "25", "活动补发", "2026-11-30T15:59:00Z")]
    manifest = json.loads((tmp_path / "nov.csv.manifest.json").read_text(encoding="utf-8"))
    assert manifest["sha256"] == hashlib.sha256(target.read_bytes()).hexdigest()
    assert manifest["count"] == len(rows) == 10 and manifest["net"] == 155

    stack.clock.set(datetime(2026, 11, 30, 16, 30, tzinfo=UTC))  # 1 December in Shanghai
    assert (
        main(
            [
                *cli(stack, "members", "leave"),
                "--community",
                "sunrise-readers",
                "--member",
                "wx:bob",
            ]
        )
        == 0
    )
    assert "left sunrise-readers at 2026-11-30T16:30:00Z" in capsys.readouterr().out


def test_reconcile_fails_loudly_on_a_mismatch(stack, repo_root, monkeypatch, capsys):
    from autopilot.ledger.store import AccountItem, member_pk

    monkeypatch.chdir(repo_root)
    community = validate_file(CONFIG).config.community("sunrise-readers")
    stack.app().checkins.check_in(community, "wx:alice", datetime(2026, 11, 2, 1, tzinfo=UTC))
    item = AccountItem.get(member_pk("sunrise-readers", "wx:alice"), "ACCOUNT")
    item.balance = 1000
    item.save()
    assert main([*cli(stack, "ledger", "reconcile"), "--community", "sunrise-readers"]) == 1
    captured = capsys.readouterr()
    # The balance disagrees with its entries, and the aggregate with the balances.
    assert "2 MISMATCH(ES)" in captured.out and "MISMATCH balance member=wx:alice" in captured.err
    assert "MISMATCH aggregate" in captured.err


def test_bad_adjustments_are_refused_and_write_nothing(stack, repo_root, monkeypatch, capsys):
    from autopilot_cli.metering import RequestCounter

    monkeypatch.chdir(repo_root)
    base = [
        *cli(stack, "ledger", "adjust"),
        "--community",
        "sunrise-readers",
        "--member",
        "wx:nobody",
        "--reason",
        "x",
        "--ref",
        "T-9",
    ]
    with RequestCounter() as counter:
        assert main([*base, "--amount", "0"]) == 1
        assert main([*base, "--amount", "5"]) == 1  # unknown member
    assert counter.count("dynamodb", "TransactWriteItems") == 0
    err = capsys.readouterr().err
    assert "non-zero integer" in err and "is not in community" in err


def test_cli_ids_follow_the_api_rules_and_write_nothing(stack, repo_root, monkeypatch, capsys):
    """Member ids and refs from the command line obey the same rule as the API's:
    a '#' (the ledger's key separator), control characters or surrounding spaces are
    refused by argparse (exit 2, the option named) before any AWS request."""
    import pytest

    from autopilot_cli.metering import RequestCounter

    monkeypatch.chdir(repo_root)
    community = ["--community", "sunrise-readers"]
    adjust = [*cli(stack, "ledger", "adjust"), *community, "--amount", "5", "--reason", "x"]
    cases = [
        ([*adjust, "--member", "wx:a#ACCOUNT", "--ref", "T-1"], "--member"),
        ([*adjust, "--member", "wx:a", "--ref", " T-1"], "--ref"),
        ([*adjust, "--member", "wx:a", "--ref", "T\x001"], "--ref"),
        ([*cli(stack, "members", "add"), *community, "--member", "a\u200bb"], "--member"),
        (
            [*cli(stack, "members", "add"), *community, "--member", "ok", "--referred-by", "x#y"],
            "--referred-by",
        ),
        ([*cli(stack, "members", "leave"), *community, "--member", "a b"], "--member"),
    ]
    with RequestCounter() as counter:
        for argv, option in cases:
            with pytest.raises(SystemExit) as exit_info:
                main(argv)
            assert exit_info.value.code == 2
            assert f"argument {option}: {option} must be" in capsys.readouterr().err
    assert counter.total == 0
