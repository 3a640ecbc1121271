"""The dispatcher on moto: duplicate, concurrent, crashed and missed ticks; DST; quiet hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from autopilot.scheduler.service import DEFAULT_LEASE
from autopilot.scheduler.store import MAX_ATTEMPTS

from .conftest import make_config


class Crash(BaseException):
    """A crash the handler cannot catch (like the Lambda being killed mid-run)."""


def statuses(stack, app, job="morning-post"):
    return {item.occurrence_key: item.status for item in stack.history(app, job)}


def test_duplicate_tick_delivers_once(stack, at):
    stack.push(make_config())
    app = stack.app()
    at(2026, 11, 26, 23, 30, 5)
    first = app.tick()
    second = app.tick()  # EventBridge delivered the same tick twice
    assert [o.status for o in first.occurrences] == ["fired"]
    assert second.idle
    assert statuses(stack, app) == {"2026-11-27T07:30": "fired"}
    assert len(stack.lines()) == 1
    assert stack.lines()[0]["text"].startswith("早安！今天是2026年11月27日，星期五。")


def test_duplicate_tick_in_another_container_delivers_once(stack, at):
    stack.push(make_config())
    at(2026, 11, 26, 23, 30, 5)
    a, b = stack.app(), stack.app()
    assert [o.status for o in a.tick().occurrences] == ["fired"]
    assert b.tick().idle  # a cold container re-reads the watermark and finds the claim done
    assert len(stack.lines()) == 1


def test_overlapping_ticks_run_the_occurrence_once(stack, at):
    """Container B ticks while A is in the middle of running the occurrence."""
    stack.push(make_config())
    at(2026, 11, 26, 23, 30, 5)
    a, b = stack.app(), stack.app()
    seen_by_b = []
    original = a.posts.run

    def run_while_b_ticks(ctx):
        report = b.tick()
        seen_by_b.append(report)
        return original(ctx)

    a.dispatcher._actions = {"post": run_while_b_ticks}
    report_a = a.tick()
    assert [o.status for o in report_a.occurrences] == ["fired"]
    assert seen_by_b[0].idle  # B found A's claim live and left it alone
    # B held its watermark before the busy occurrence; later ticks do not rerun it.
    stack.clock.advance(timedelta(minutes=5))
    assert b.tick().idle and a.tick().idle
    assert len(stack.lines()) == 1
    assert statuses(stack, a) == {"2026-11-27T07:30": "fired"}


@pytest.mark.parametrize(
    "crash_point", ["before_action", "after_post_created", "after_delivery", "before_finish"]
)
def test_crash_at_any_point_is_retried_after_the_lease_and_delivers_once(stack, at, crash_point):
    stack.push(make_config())
    at(2026, 11, 26, 23, 30, 5)
    app = stack.app()
    store = app.post_store
    originals = {
        "create_post": store.create_post,
        "record_delivery": store.record_delivery,
        "finish": app.scheduler_store.finish,
        "run": app.posts.run,
    }

    def crash_after(name):
        def wrapper(*args, **kwargs):
            originals[name](*args, **kwargs)
            raise Crash(name)

        return wrapper

    if crash_point == "before_action":
        app.dispatcher._actions = {"post": lambda ctx: (_ for _ in ()).throw(Crash("boom"))}
    elif crash_point == "after_post_created":
        store.create_post = crash_after("create_post")
    elif crash_point == "after_delivery":
        store.record_delivery = crash_after("record_delivery")
    else:
        app.scheduler_store.finish = lambda *a, **k: (_ for _ in ()).throw(Crash("finish"))
    with pytest.raises(Crash):
        app.tick()

    # The Lambda is retried at once: the claim's lease is still live, nothing reruns.
    retry = stack.app()
    assert retry.tick().idle
    assert statuses(stack, retry) == {"2026-11-27T07:30": "claimed"}
    # After the lease expires, the next tick takes the occurrence over.
    stack.clock.advance(DEFAULT_LEASE + timedelta(seconds=1))
    report = retry.tick()
    assert [(o.key, o.status) for o in report.occurrences] == [("2026-11-27T07:30", "fired")]
    history = stack.history(retry)
    assert history[0].attempt == 2
    delivered = stack.lines()
    # Delivered exactly once, unless the crash came after the platform accepted it
    # but before we could record that (the one unavoidable at-least-once window).
    assert len(delivered) == 1
    posts = list(retry.post_store.posts("sunrise"))
    assert len(posts) == 1 and posts[0].deliveries["group"]["status"] == "published"


def test_an_occurrence_that_keeps_crashing_is_failed_after_max_attempts(stack, at):
    stack.push(make_config())
    at(2026, 11, 26, 23, 30, 5)
    for _ in range(MAX_ATTEMPTS):
        app = stack.app()
        app.dispatcher._actions = {"post": lambda ctx: (_ for _ in ()).throw(Crash("boom"))}
        with pytest.raises(Crash):
            app.tick()
        stack.clock.advance(DEFAULT_LEASE + timedelta(seconds=1))
    app = stack.app()
    app.tick()
    (item,) = stack.history(app)
    assert item.status == "failed" and "crashed" in item.reason
    assert item.attempt == MAX_ATTEMPTS
    assert stack.lines() == []


def test_missed_ticks_run_only_the_latest_post_within_grace(stack, at):
    jobs = [
        {
            "id": "hourly",
            "cron": "0 8-20 * * *",
            "action": "post",
            "params": {"pool": "morning", "channels": ["group"], "template": "{content}"},
            "misfire": {"policy": "latest", "grace": "10m"},
        }
    ]
    stack.push(make_config(jobs=jobs, published_at="2026-11-26T23:59:00Z"))
    app = stack.app()
    at(2026, 11, 27, 0, 0, 10)  # 08:00 local: fires
    assert [o.status for o in app.tick().occurrences] == ["fired"]
    at(2026, 11, 27, 5, 3)  # dispatcher down from 08:01 to 13:03 local
    report = app.tick()
    assert [(o.key[-5:], o.status) for o in report.occurrences] == [
        ("09:00", "missed"),
        ("10:00", "missed"),
        ("11:00", "missed"),
        ("12:00", "missed"),
        ("13:00", "fired"),
    ]
    assert len(stack.lines()) == 2  # no burst of stale posts
    at(2026, 11, 27, 12, 30)  # down again past the last one's grace: nothing posted
    report = app.tick()
    assert {o.status for o in report.occurrences} == {"missed"}
    assert "beyond the grace window" in report.occurrences[-1].reason
    assert len(stack.lines()) == 2


def test_missed_ticks_catch_up_every_occurrence_with_policy_all(stack, at):
    jobs = [
        {
            "id": "digest",
            "cron": "0 * * * *",
            "action": "post",
            "quiet_hours": "ignore",
            "params": {"pool": "morning", "channels": ["group"], "template": "{content}"},
            "misfire": {"policy": "all"},
        }
    ]
    stack.push(make_config(jobs=jobs, published_at="2026-11-26T23:59:00Z"))
    app = stack.app()
    at(2026, 11, 27, 0, 0, 10)
    app.tick()
    at(2026, 11, 27, 6, 0, 30)
    report = app.tick()
    assert [o.status for o in report.occurrences] == ["fired"] * 6
    keys = [line["key"].rsplit(":", 2)[-2:] for line in stack.lines()]
    assert len(keys) == 7 and keys == sorted(keys)  # oldest first, none lost


def test_catch_up_stops_before_the_timeout_and_resumes_next_tick(stack, at):
    jobs = [
        {
            "id": "digest",
            "cron": "0 * * * *",
            "action": "post",
            "quiet_hours": "ignore",
            "params": {"pool": "morning", "channels": ["group"], "template": "{content}"},
            "misfire": {"policy": "all"},
        }
    ]
    stack.push(make_config(jobs=jobs, published_at="2026-11-26T23:59:00Z"))
    app = stack.app()
    at(2026, 11, 27, 0, 0, 10)
    app.tick()
    at(2026, 11, 27, 5, 0, 30)
    runs = []
    original = app.posts.run
    app.dispatcher._actions = {"post": lambda ctx: runs.append(1) or original(ctx)}
    # The invocation has time for two runs, then less than the safety margin is left.
    first = app.tick(remaining_ms=lambda: 60_000 if len(runs) < 2 else 5_000)
    assert len(first.occurrences) == 2
    stack.clock.advance(timedelta(minutes=1))
    second = app.tick()
    assert len(second.occurrences) == 3
    assert len(stack.lines()) == 6


def test_quiet_hours_defer_to_their_end(stack, at):
    jobs = [
        {
            "id": "early",
            "cron": "30 6 * * *",
            "action": "post",
            "params": {"pool": "morning", "channels": ["group"], "template": "{content}"},
        }
    ]
    stack.push(make_config(jobs=jobs))
    app = stack.app()
    at(2026, 11, 26, 22, 30, 5)  # 06:30 local, inside quiet hours 00:00-07:00
    assert app.tick().idle
    at(2026, 11, 26, 23, 0, 5)
    report = app.tick()
    assert [(o.key, o.status) for o in report.occurrences] == [("2026-11-27T06:30", "deferred")]
    assert stack.lines()[0]["at_utc"] == "2026-11-26T23:00:05Z"


def test_quiet_hours_drop(stack, at):
    jobs = [
        {
            "id": "early",
            "cron": "30 6 * * *",
            "action": "post",
            "quiet_hours": "drop",
            "params": {"pool": "morning", "channels": ["group"], "template": "{content}"},
        }
    ]
    stack.push(make_config(jobs=jobs))
    app = stack.app()
    at(2026, 11, 26, 22, 30, 5)
    report = app.tick()
    assert [(o.status, o.reason) for o in report.occurrences] == [
        ("skipped", "quiet hours (job drops messages)")
    ]
    assert stack.lines() == []


@pytest.mark.parametrize(
    ("tz", "cron", "start", "hours", "expected"),
    [
        # New York fall-back: 01:30 happens twice; the job runs once.
        ("America/New_York", "30 1 * * *", (2026, 11, 1, 4, 0), 6, ["2026-11-01T01:30"]),
        # New York spring-forward: 02:30 never happens; the job runs once at 03:00 EDT.
        ("America/New_York", "30 2 * * *", (2027, 3, 14, 5, 0), 4, ["2027-03-14T02:30"]),
        # London fall-back, hourly: one run per wall-clock hour.
        (
            "Europe/London",
            "0 * * * *",
            (2026, 10, 24, 22, 30),
            5,
            ["2026-10-25T00:00", "2026-10-25T01:00", "2026-10-25T02:00", "2026-10-25T03:00"],
        ),
    ],
)
def test_dst_days_ticking_every_minute(stack, at, tz, cron, start, hours, expected):
    jobs = [
        {
            "id": "dst",
            "cron": cron,
            "action": "post",
            "quiet_hours": "ignore",
            "params": {"pool": "morning", "channels": ["group"], "template": "{content}"},
        }
    ]
    published = datetime(*start, tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    stack.push(
        make_config(jobs=jobs, timezone=tz, quiet_hours=None, locale="en", published_at=published)
    )
    app = stack.app()
    at(*start)
    for _ in range(hours * 60):
        stack.clock.advance(timedelta(minutes=1))
        app.tick()
    assert statuses(stack, app, "dst") == dict.fromkeys(expected, "fired")
    assert len(stack.lines()) == len(expected)


def test_content_rotates_without_repeats_until_the_pool_is_exhausted(stack, at):
    stack.push(make_config())
    app = stack.app()
    at(2026, 11, 26, 23, 30, 5)
    for _ in range(12):
        app.tick()
        stack.clock.advance(timedelta(days=1))
    content = [p.content_id for p in app.post_store.posts("sunrise")]
    assert len(content) == 12
    assert sorted(content[:5]) == [f"m{i:02d}" for i in range(5)]
    assert sorted(content[5:10]) == [f"m{i:02d}" for i in range(5)]
    assert all(a != b for a, b in pairwise(content))


def test_a_failed_channel_is_recorded_on_the_occurrence(stack, at):
    jobs = [
        {
            "id": "morning-post",
            "cron": "30 7 * * *",
            "action": "post",
            "params": {
                "pool": "morning",
                "channels": ["group", "announce"],
                "template": "{content}",
            },
        }
    ]
    stack.env["POSTS_TOPIC_ARN"] = "arn:aws:sns:us-east-1:123456789012:no-such-topic"
    stack.push(make_config(jobs=jobs))
    app = stack.app()
    at(2026, 11, 26, 23, 30, 5)
    (occ,) = app.tick().occurrences
    assert occ.status == "failed" and occ.reason.startswith("announce: SNS publish failed")
    (item,) = stack.history(app)
    assert item.outcome["deliveries"]["group"]["status"] == "published"
    assert item.outcome["deliveries"]["announce"]["status"] == "failed"
    assert len(stack.lines()) == 1


def test_sns_channel_publishes_to_the_template_topic(stack, at):
    jobs = [
        {
            "id": "morning-post",
            "cron": "30 7 * * *",
            "action": "post",
            "params": {"pool": "morning", "channels": ["announce"], "template": "{content}"},
        }
    ]
    stack.push(make_config(jobs=jobs))
    app = stack.app()
    at(2026, 11, 26, 23, 30, 5)
    (occ,) = app.tick().occurrences
    assert occ.status == "fired"
    (post,) = app.post_store.posts("sunrise")
    assert post.deliveries["announce"]["message_id"]


def test_new_job_does_not_replay_history_before_publication(stack, at):
    stack.push(make_config(published_at="2026-11-26T23:40:00Z"))
    app = stack.app()
    at(2026, 11, 26, 23, 45)  # today's 07:30 (23:30Z) was before the config existed
    assert app.tick().idle
    assert stack.history(app) == []
