"""Exactly-once gaps of the dispatcher (issue 7): each test failed before its fix.

Every occurrence ends in exactly one recorded, reported state: deferred posts are
several posts, config changes never lose or double an occurrence, a claim is never
taken over while its holder can still send, and what is not run is summarised.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from autopilot.app import App
from autopilot.clock import ManualClock
from autopilot.scheduler.rules import MAX_CATCHUP, occurrences_between
from autopilot.scheduler.service import DEFAULT_LEASE, MAX_CLOCK_SKEW
from autopilot.scheduler.store import MAX_ATTEMPTS
from autopilot.settings import Settings
from autopilot.timeutil import zone

from .conftest import make_config


def post_job(job_id: str, cron: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": job_id,
        "cron": cron,
        "action": "post",
        "params": {"pool": "morning", "channels": ["group"], "template": "{content}"},
        **extra,
    }


def reported(*reports) -> list[tuple[str, str]]:
    return [(o.key, o.status) for r in reports for o in r.occurrences]


# -- 1. deferred occurrences are several posts, not one -----------------------


def test_deferred_hourly_posts_under_policy_all_are_each_posted(stack, at):
    """Eight hourly posts deferred to 07:00 are eight messages, as reported."""
    jobs = [post_job("hourly", "0 * * * *", misfire={"policy": "all"})]
    stack.push(make_config(jobs=jobs, published_at="2026-11-26T15:30:00Z"))  # 23:30 local
    app = stack.app()
    at(2026, 11, 26, 15, 50)
    reports = []
    for _ in range(8 * 6):  # every 10 minutes from 00:00 to 07:50 local
        stack.clock.advance(timedelta(minutes=10))
        reports.append(app.tick())
    expected = [f"2026-11-27T{h:02d}:00" for h in range(8)]
    assert reported(*reports) == [(k, "deferred") for k in expected[:7]] + [(expected[7], "fired")]
    lines = stack.lines()
    assert len(lines) == 8  # before: one message, eight "deferred"/"fired" reports
    assert len({line["key"] for line in lines}) == 8
    posts = list(app.post_store.posts("sunrise"))
    assert sorted(p.occurrence_key for p in posts) == expected


# -- 2. a renamed job never posts an occurrence twice ----------------------------


def _rename_setup(stack, at):
    stack.push(make_config(jobs=[post_job("a", "30 7 * * *")]))
    at(2026, 11, 26, 23, 29, 20)
    old = stack.app()
    old.config()  # this container caches the config with job "a" for its TTL
    stack.push(make_config(jobs=[post_job("b", "30 7 * * *")], published_at="2026-11-26T23:29:30Z"))
    return old


def test_renamed_job_old_container_first_posts_once(stack, at):
    old = _rename_setup(stack, at)
    at(2026, 11, 26, 23, 30, 5)
    assert reported(old.tick()) == [("2026-11-27T07:30", "fired")]  # "a", cached config
    at(2026, 11, 26, 23, 30, 10)
    new = stack.app()  # has the new config: "b" must not repost 07:30
    assert new.tick().idle
    stack.clock.advance(timedelta(minutes=5))
    assert new.tick().idle and old.tick().idle
    assert len(stack.lines()) == 1


def test_renamed_job_new_container_first_posts_once(stack, at):
    old = _rename_setup(stack, at)
    at(2026, 11, 26, 23, 30, 5)
    new = stack.app()
    assert reported(new.tick()) == [("2026-11-27T07:30", "fired")]  # "b"
    at(2026, 11, 26, 23, 30, 10)
    # The old container still caches "a"; the epoch tells it a newer config is in
    # force, it reloads, and finds 07:30 done.
    assert old.tick().idle
    assert old.config().communities[0].jobs[0].id == "b"
    assert len(stack.lines()) == 1


def test_claim_is_fenced_when_the_config_changes_between_read_and_claim(stack, at):
    old = _rename_setup(stack, at)
    at(2026, 11, 26, 23, 30, 5)
    new = stack.app()
    real_claim = old.scheduler_store.claim

    def claim_after_new_container_ticks(*args, **kwargs):
        assert reported(new.tick()) == [("2026-11-27T07:30", "fired")]
        return real_claim(*args, **kwargs)

    old.scheduler_store.claim = claim_after_new_container_ticks
    report = old.tick()
    assert report.idle and report.stale_config
    assert len(stack.lines()) == 1


# -- 3. a deferred occurrence follows the config current when it is decided ------


@pytest.mark.parametrize(
    ("change", "status", "posted"),
    [
        ({"quiet_hours": {"start": "00:00", "end": "06:00"}}, "fired", 1),
        ({"job_quiet": "ignore"}, "fired", 1),
        ({"job_quiet": "drop"}, "skipped", 0),
    ],
)
def test_deferred_occurrence_survives_a_config_change_while_it_waits(
    stack, at, change, status, posted
):
    stack.push(make_config(jobs=[post_job("early", "30 6 * * *")]))
    app = stack.app()
    at(2026, 11, 26, 22, 31)  # 06:31 local: deferred to 07:00
    assert app.tick().idle
    job = post_job("early", "30 6 * * *")
    if "job_quiet" in change:
        job["quiet_hours"] = change["job_quiet"]
        stack.push(make_config(jobs=[job], published_at="2026-11-26T22:33:00Z"))
    else:
        stack.push(
            make_config(
                jobs=[job], quiet_hours=change["quiet_hours"], published_at="2026-11-26T22:33:00Z"
            )
        )
    at(2026, 11, 26, 22, 35)
    later = stack.app()
    first = later.tick()
    assert reported(first) == [("2026-11-27T06:30", status)]  # before: never, not even recorded
    for _ in range(6):
        stack.clock.advance(timedelta(minutes=10))
        assert later.tick().idle and app.tick().idle
    assert len(stack.lines()) == posted
    assert [i.status for i in stack.history(later, "early")] == [status]


# -- 4. a re-enabled job does not replay the days it was disabled ----------------


def test_reenabled_job_does_not_replay_the_disabled_days(stack, at):
    hourly = post_job("digest", "0 * * * *", quiet_hours="ignore", misfire={"policy": "all"})
    stack.push(make_config(jobs=[hourly], published_at="2026-11-26T00:30:00Z"))
    app = stack.app()
    at(2026, 11, 26, 1, 0, 5)
    assert reported(app.tick()) == [("2026-11-26T09:00", "fired")]
    stack.push(
        make_config(jobs=[{**hourly, "enabled": False}], published_at="2026-11-26T01:30:00Z")
    )
    for _ in range(3 * 24):  # three days disabled, the dispatcher ticking (hourly here)
        stack.clock.advance(timedelta(hours=1))
        assert app.tick().idle
    stack.push(make_config(jobs=[hourly], published_at="2026-11-29T01:30:00Z"))
    at(2026, 11, 29, 2, 0, 5)
    report = stack.app().tick()
    assert reported(report) == [("2026-11-29T10:00", "fired")]  # before: 72 replayed posts
    assert len(stack.lines()) == 2


# -- 5. a timezone change gets the new zone's posts ------------------------------


def test_community_moving_west_gets_the_new_zones_post_for_the_same_local_date(stack, at):
    jobs = [post_job("morning", "0 8 * * *", quiet_hours="ignore")]
    stack.push(
        make_config(
            jobs=jobs, timezone="Asia/Tokyo", quiet_hours=None, published_at="2026-11-30T22:00:00Z"
        )
    )
    at(2026, 11, 30, 23, 0, 5)  # 08:00 on 1 December in Tokyo
    assert reported(stack.app().tick()) == [("2026-12-01T08:00", "fired")]
    stack.push(
        make_config(
            jobs=jobs,
            timezone="America/Los_Angeles",
            quiet_hours=None,
            published_at="2026-11-30T23:30:00Z",
        )
    )
    at(2026, 12, 1, 16, 0, 5)  # 08:00 on 1 December in Los Angeles
    app = stack.app()
    assert reported(app.tick()) == [("2026-12-01T08:00", "fired")]  # before: taken as done
    history = stack.history(app, "morning")
    assert [(i.occurrence_key, i.scheduled_utc) for i in history] == [
        ("2026-12-01T08:00", "2026-11-30T23:00:00Z"),
        ("2026-12-01T08:00", "2026-12-01T16:00:00Z"),
    ]
    assert len(stack.lines()) == 2


# -- 6. a live claim is never taken over, whatever the clocks say ----------------


def _skewed_run(stack, at, skew: timedelta):
    """Container X runs 07:30 slowly; container Y, whose clock is ``skew`` ahead, ticks."""
    stack.push(make_config())
    start = at(2026, 11, 26, 23, 30, 5)
    clock_y = ManualClock(start + skew)
    x = stack.app()
    y = App(Settings.from_env(stack.env), clock=clock_y)
    y.config()
    ends_at = start + timedelta(seconds=60)  # the invocation's timeout
    y_reports = []
    prepare = x.posts._prepare

    def slow_prepare(*args):
        # X has its post ready; 58 s pass (a slow platform, a long rate-limit
        # wait) before its send goes out, and meanwhile Y ticks.
        post = prepare(*args)
        stack.clock.advance(timedelta(seconds=58))
        clock_y.advance(timedelta(seconds=58))
        y_reports.append(y.tick())
        return post

    x.posts._prepare = slow_prepare
    x_report = x.tick(
        remaining_ms=lambda: int((ends_at - stack.clock.now()).total_seconds() * 1000)
    )
    return x, y, x_report, y_reports


def test_a_claim_is_not_taken_over_by_a_container_whose_clock_is_35s_ahead(stack, at):
    x, _y, x_report, y_reports = _skewed_run(stack, at, timedelta(seconds=35))
    assert y_reports[0].idle  # before: Y judged the 90 s lease expired and posted too
    assert reported(x_report) == [("2026-11-27T07:30", "fired")]
    assert len(stack.lines()) == 1
    (item,) = stack.history(x)
    assert item.attempt == 1 and item.status == "fired"


def test_a_taken_over_claim_never_sends(stack, at):
    """Beyond the documented skew the lease can expire early; the fencing token
    still stops the old holder from sending (and from recording anything)."""
    x, _y, x_report, y_reports = _skewed_run(stack, at, MAX_CLOCK_SKEW + timedelta(seconds=30))
    assert reported(y_reports[0]) == [("2026-11-27T07:30", "fired")]
    assert x_report.idle  # X lost its claim: it neither sent nor reported
    assert len(stack.lines()) == 1
    (item,) = stack.history(x)
    assert item.attempt == 2 and item.status == "fired"


def test_the_lease_covers_the_remaining_invocation_time_plus_the_skew(stack, at):
    stack.push(make_config())
    at(2026, 11, 26, 23, 30, 5)
    app = stack.app()
    seen = []
    original = app.posts.run

    def record(ctx):
        seen.append(ctx.remaining_ms())
        (item,) = stack.history(app)
        seen.append(item.lease_expires_ms)
        return original(ctx)

    app.dispatcher._actions = {"post": record}
    app.tick(remaining_ms=lambda: 45_000)
    now_ms = int(datetime(2026, 11, 26, 23, 30, 5, tzinfo=UTC).timestamp() * 1000)
    assert seen == [45_000, now_ms + 45_000 + int(MAX_CLOCK_SKEW.total_seconds() * 1000)]


# -- 7. every occurrence ends in exactly one recorded, reported state -----------


def test_unrun_records_after_an_outage_are_bounded_and_summarised(stack, at):
    jobs = [post_job("tenmin", "*/10 * * * *", quiet_hours="drop")]
    stack.push(make_config(jobs=jobs, published_at="2026-11-26T23:55:00Z"))
    app = stack.app()
    at(2026, 11, 27, 0, 0, 30)
    assert reported(app.tick()) == [("2026-11-27T08:00", "fired")]
    at(2026, 11, 30, 0, 0, 30)  # three days later: 432 occurrences, 126 in quiet hours
    report = app.tick()
    individual = [o for o in report.occurrences if ".." not in o.key]
    (gap,) = [o for o in report.occurrences if ".." in o.key]
    assert len(individual) <= MAX_CATCHUP + 1  # before: 126 skipped + 100 missed + 1
    (record,) = app.scheduler_store.gaps("sunrise", "tenmin")
    assert record.missed_count + len(individual) == 432
    assert gap.status == "missed" and f"{record.missed_count} occurrences" in gap.reason
    statuses = {o.status for o in individual}
    assert statuses == {"missed", "skipped", "fired"}
    assert len(stack.history(app, "tenmin")) == 1 + len(individual)


def test_unrun_records_respect_the_invocations_remaining_time(stack, at):
    jobs = [post_job("tenmin", "*/10 * * * *", quiet_hours="ignore")]
    stack.push(make_config(jobs=jobs, published_at="2026-11-26T23:55:00Z"))
    app = stack.app()
    at(2026, 11, 27, 0, 0, 30)
    app.tick()
    at(2026, 11, 27, 8, 0, 30)  # 48 occurrences: 47 superseded, the newest fired
    writes = []
    real = app.scheduler_store.record_unrun
    app.scheduler_store.record_unrun = lambda *a, **k: writes.append(1) or real(*a, **k)
    first = app.tick(remaining_ms=lambda: 60_000 if len(writes) < 10 else 5_000)
    assert len(first.occurrences) == 10  # before: all 48, the timeout notwithstanding
    stack.clock.advance(timedelta(minutes=1))
    second = app.tick()
    keys = [o.key for o in first.occurrences + second.occurrences]
    assert len(keys) == len(set(keys)) == 48
    statuses = [o.status for o in first.occurrences + second.occurrences]
    assert statuses.count("missed") == 47 and statuses[-1] == "fired"  # still within grace


def test_occurrences_older_than_the_lookback_get_a_missed_summary(stack, at):
    jobs = [post_job("monthly", "0 9 1 * *", quiet_hours="ignore", misfire={"policy": "all"})]
    stack.push(make_config(jobs=jobs, published_at="2026-11-26T00:00:00Z"))
    app = stack.app()
    # The dispatcher last decided the job on 26 November, then was down until 20 January.
    down = at(2026, 11, 26, 1, 0)
    app.scheduler_store.advance_watermark("JOB#sunrise#monthly", down, down)
    at(2027, 1, 20, 12, 0)
    report = stack.app().tick()
    assert reported(report) == [("2026-12-01T09:00..2027-01-01T09:00", "missed")]
    assert "2 occurrences not run: 2 older than the 7-day look-back" in report.occurrences[0].reason
    (gap,) = app.scheduler_store.gaps("sunrise", "monthly")
    assert gap.missed_count == 2 and gap.status == "missed"
    stack.clock.advance(timedelta(minutes=1))
    assert stack.app().tick().idle  # recorded once


def test_an_occurrence_that_crashes_every_attempt_is_reported_failed(stack, at, caplog):
    class Crash(BaseException):
        pass

    stack.push(make_config())
    at(2026, 11, 26, 23, 30, 5)
    for _ in range(MAX_ATTEMPTS):
        app = stack.app()
        app.dispatcher._actions = {"post": lambda ctx: (_ for _ in ()).throw(Crash())}
        with pytest.raises(Crash):
            app.tick()
        stack.clock.advance(DEFAULT_LEASE + timedelta(seconds=1))
    with caplog.at_level(logging.ERROR, logger="autopilot.scheduler.service"):
        report = stack.app().tick()
    assert [(o.key, o.status, o.reason) for o in report.occurrences] == [
        ("2026-11-27T07:30", "failed", f"crashed in {MAX_ATTEMPTS} attempts")
    ]  # before: recorded failed, reported nowhere
    assert any(r.levelno == logging.ERROR and "crashed" in r.getMessage() for r in caplog.records)
    stack.clock.advance(DEFAULT_LEASE)
    assert stack.app().tick().idle  # reported exactly once


# -- 8. safeguards that tests must guard ----------------------------------------


def test_only_the_claims_holder_can_finish_it(stack, at):
    stack.push(make_config())
    app = stack.app()
    community = app.config().communities[0]
    start = at(2026, 11, 26, 23, 30, 5)
    (occ,) = occurrences_between(
        "sunrise",
        community.job("morning-post"),
        zone("Asia/Shanghai"),
        community.quiet_hours,
        start - timedelta(minutes=1),
        start,
    )
    store = app.scheduler_store
    lease = timedelta(minutes=1)
    assert store.claim(occ, now=start, lease=lease, worker="A").state == "won"
    later = start + timedelta(minutes=2)  # A's lease expired: B takes over
    assert store.claim(occ, now=later, lease=lease, worker="B").state == "won"
    assert not store.finish(occ, status="fired", now=later, worker="A")
    assert not store.holds(occ, "A") and store.holds(occ, "B")
    (item,) = stack.history(app)
    assert (item.status, item.claimed_by, item.attempt) == ("claimed", "B", 2)
    assert store.finish(occ, status="fired", now=later, worker="B")
    (item,) = stack.history(app)
    assert item.status == "fired"


def test_occurrences_beyond_the_catch_up_bound_get_one_summary_record(stack, at):
    jobs = [post_job("hourly", "0 * * * *", quiet_hours="ignore", misfire={"policy": "all"})]
    stack.push(make_config(jobs=jobs, published_at="2026-11-26T00:00:00Z"))
    app = stack.app()
    at(2026, 11, 26, 0, 0, 30)
    app.tick()
    at(2026, 12, 1, 0, 0, 30)  # 120 hourly occurrences
    report = app.tick()
    fired = [o for o in report.occurrences if o.status == "fired"]
    missed = [o for o in report.occurrences if o.status == "missed"]
    assert len(fired) == MAX_CATCHUP
    assert [o.key for o in missed] == ["2026-11-26T09:00..2026-11-27T04:00"]
    (gap,) = app.scheduler_store.gaps("sunrise", "hourly")
    assert gap.missed_count == 120 - MAX_CATCHUP
    history = stack.history(app, "hourly")
    assert len(history) == MAX_CATCHUP  # the newest, all fired; no individual missed record
    assert {i.status for i in history} == {"fired"}
    assert len(stack.lines()) == MAX_CATCHUP


def test_the_post_carries_the_occurrence_id_as_its_idempotency_key(stack, at):
    """Platforms that deduplicate (Discord nonce, Feishu uuid) get the occurrence's id."""
    stack.push(make_config())
    app = stack.app()
    sent = []
    factory = app.posts._channel_factory

    def capturing(spec, env):
        channel = factory(spec, env)
        send = channel.send_to_community

        def record(message, **kwargs):
            sent.append(message)
            return send(message, **kwargs)

        channel.send_to_community = record
        return channel

    app.posts._channel_factory = capturing
    at(2026, 11, 26, 23, 30, 5)
    (occ,) = app.tick().occurrences
    (message,) = sent
    assert occ.occurrence_id == "2026-11-27T07:30@2026-11-26T23:30:00Z"
    assert message.idempotency_key == f"sunrise:morning-post:{occ.occurrence_id}"
