"""A simulated day costs the same late in a run as early: counted, not timed.

Also: the worker's queue is drained after each tick (nightly work runs in the
simulation as in AWS), and long runs show their progress.
"""

from __future__ import annotations

import io
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from autopilot.timeutil import parse_iso

from autopilot_cli.local.runtime import LocalRuntime
from autopilot_cli.metering import RequestCounter
from autopilot_cli.simulate import DayMark, Progress, run_simulation

START = datetime(2027, 3, 8, tzinfo=UTC)
DAYS = 6


@pytest.fixture(scope="module")
def costed(repo_root, tmp_path_factory):
    """A steady population for DAYS days, with the AWS requests of every invocation."""
    calls: list[dict[str, Any]] = []
    original = LocalRuntime.invoke

    def invoke(self: LocalRuntime, logical_id: str, event: Any, *args: Any, **kwargs: Any) -> Any:
        with RequestCounter() as requests:
            try:
                return original(self, logical_id, event, *args, **kwargs)
            finally:
                calls.append(
                    {
                        "function": logical_id,
                        "route": event.get("routeKey") if isinstance(event, dict) else None,
                        "at": self_clock_now(),
                        "requests": requests.by_operation(),
                    }
                )

    marks: list[DayMark] = []
    progress = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
        }.items():
            patch.setenv(name, value)
        patch.chdir(repo_root)
        patch.setattr(LocalRuntime, "invoke", invoke)
        result = run_simulation(
            "config/communities.yaml",
            start=START,
            days=DAYS,
            members=40,
            seed=5,
            out_dir=str(tmp_path_factory.mktemp("month")),
            template_path=str(repo_root / "template.yaml"),
            progress=progress,
            on_day=marks.append,
        )
    return {"result": result, "calls": calls, "marks": marks, "progress": progress.getvalue()}


def self_clock_now() -> datetime:
    from autopilot.clock import get_clock

    return get_clock().now()


def _day(at: datetime) -> int:
    return (at - START) // timedelta(days=1) + 1


def test_no_invocation_scans_a_table(costed):
    scans = [c for c in costed["calls"] if ("dynamodb", "Scan") in c["requests"]]
    assert scans == [], "a Scan costs in proportion to the table, which grows every day"


def test_a_check_in_costs_the_same_requests_on_the_last_day_as_on_the_first(costed):
    per_day: dict[int, set[int]] = defaultdict(set)
    for call in costed["calls"]:
        if call["route"] == "POST /checkins":
            per_day[_day(call["at"])].add(sum(call["requests"].values()))
    assert per_day[1] and per_day[DAYS]
    # A check-in made after one of the day's reminders went out also reads the
    # member's reminder markers (BatchGetItem) and may record a conversion
    # (TransactWriteItems): at most two more, never more with the history.
    conversion = 2
    assert max(per_day[DAYS]) <= max(per_day[1] | per_day[2]) + conversion


def test_dispatcher_ticks_do_not_grow_with_the_history(costed):
    # The same job at the same local time: day 2 and the last day (both weekdays).
    # A lottery's close and draw read its entrants, which is work in proportion to
    # the entrants, not to the history: those ticks are left out of the comparison.
    lottery_due = [
        parse_iso(o["due_utc"])
        for o in costed["result"].summary["occurrences"]
        if o["job"].startswith("lottery.")
    ]
    by_day: dict[int, list[int]] = defaultdict(list)
    for call in costed["calls"]:
        if call["function"] == "DispatcherFunction" and not any(
            timedelta(0) <= call["at"] - due < timedelta(minutes=1) for due in lottery_due
        ):
            by_day[_day(call["at"])].append(sum(call["requests"].values()))
    assert by_day[2] and by_day[DAYS - 1]
    assert max(by_day[DAYS - 1]) <= max(by_day[2])


def test_the_worker_runs_the_nightly_work_the_dispatcher_enqueues(costed):
    summary = costed["result"].summary
    assert summary["worker"]["errors"] == 0
    worker_days = {_day(c["at"]) for c in costed["calls"] if c["function"] == "WorkerFunction"}
    # ledger_reconcile is nightly: every simulated day after the first night has a run.
    assert set(range(2, DAYS + 1)) <= worker_days
    # Every SQS batch delivered went to a function with an SQS event: the worker's
    # jobs and the reminder function's batches.
    assert summary["worker"]["batches"] == sum(
        1 for c in costed["calls"] if c["function"] in ("WorkerFunction", "ReminderFunction")
    )
    assert summary["ledger"]["reconciled"] is True


def test_each_day_is_reported_once_in_order(costed):
    marks = costed["marks"]
    assert [m.day for m in marks] == list(range(1, DAYS + 1))
    assert [m.at for m in marks] == [START + timedelta(days=d) for d in range(1, DAYS + 1)]
    checkins = [m.checkins for m in marks]
    assert (
        checkins == sorted(checkins)
        and checkins[-1] == (costed["result"].summary["member_activity"]["checkins"])
    )
    lines = costed["progress"].splitlines()
    assert len(lines) == DAYS  # not a terminal: one plain line per day, no redraws
    assert lines[0] == f"simulate: day 1/{DAYS} (2027-03-08) done, {checkins[0]} check-ins so far"
    assert "\r" not in costed["progress"]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_is_one_bar_redrawn_in_place():
    screen = _Terminal()
    progress = Progress(screen, START, 30)
    for day in (1, 15, 30):
        progress.update(DayMark(day, START + timedelta(days=day), day * 1000, 0))
    progress.close()
    text = screen.getvalue()
    assert text.count("\r") == 3 and text.endswith("\n") and text.count("\n") == 1
    last = text.rsplit("\r", 1)[1]
    assert last == "█" * 30 + " day 30/30 2027-04-06  30,000 check-ins\n"
    middle = text.split("\r")[2]
    assert middle.startswith("█" * 15 + "░" * 15 + " day 15/30 2027-03-22  15,000 check-ins")
