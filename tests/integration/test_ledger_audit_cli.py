"""`autopilot ledger audit`: the full audit ops run on demand, paginated and resumable."""

from __future__ import annotations

from datetime import UTC, datetime

from autopilot.ledger.store import AccountItem, JobItem, member_pk

from autopilot_cli.configfile import validate_file
from autopilot_cli.main import main

from .test_ledger_cli import CONFIG, cli


def test_the_audit_pauses_resumes_and_reports_a_mismatch(stack, repo_root, monkeypatch, capsys):
    monkeypatch.chdir(repo_root)
    community = validate_file(CONFIG).config.community("sunrise-readers")
    app = stack.app()
    at = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
    for n in range(5):
        app.checkins.check_in(community, f"wx:m{n}", at)
    stack.clock.set(datetime(2026, 11, 30, 15, 0, tzinfo=UTC))
    argv = [
        *cli(stack, "ledger", "audit"),
        "--community",
        "sunrise-readers",
        "--job-id",
        "audit-1",
        "--max-pages",
        "1",
    ]
    runs = 0
    while True:
        runs += 1
        code = main(argv)
        out = capsys.readouterr().out
        if "paused" not in out:
            break
        assert code == 0 and JobItem.get("WORK#audit-1", "JOB").cursor
    assert code == 0 and "audit audit-1 OK" in out and runs > 1
    assert JobItem.get("WORK#audit-1", "JOB").status == "done"
    assert main(argv) == 0  # done: not run again
    assert "audit-1 is done" in capsys.readouterr().out
    # A balance edited behind the ledger's back: a new audit names the member.
    AccountItem(member_pk("sunrise-readers", "wx:m3"), "ACCOUNT").update(
        actions=[AccountItem.balance.add(9)]
    )
    assert main([*cli(stack, "ledger", "audit"), "--community", "sunrise-readers"]) == 1
    captured = capsys.readouterr()
    assert "MISMATCH balance member=wx:m3" in captured.err
