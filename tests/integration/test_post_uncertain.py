"""Posts at most once across crashes, lost answers and transient AWS errors (issue 12).

Every scheduled occurrence runs at most once: a channel send whose outcome is
unknown (the platform's answer was lost, or the function crashed after the
platform accepted the post) is recorded ``uncertain``, never sent again by a
rerun, the occurrence ends ``uncertain`` and ops are told once. A transient AWS
error inside an action releases the claim: the next tick runs it again, up to
``MAX_TRANSIENT_RETRIES`` retries, then it fails (and ops are told once).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from autopilot.aws import client
from autopilot.channels.base import Delivery
from autopilot.scheduler.service import DEFAULT_LEASE
from autopilot.scheduler.store import MAX_TRANSIENT_RETRIES
from autopilot.timeutil import iso_utc
from botocore.exceptions import ClientError, ReadTimeoutError
from pynamodb.exceptions import UpdateError

from ..unit.channels.platforms import FEISHU, PLATFORMS, FakePlatform
from ..unit.channels.test_platforms import FEISHU_APP
from .conftest import BASE_COMMUNITY, make_config

MORNING = datetime(2026, 11, 26, 23, 30, 5, tzinfo=UTC)  # 07:30:05 in Shanghai
KEY = "2026-11-27T07:30"
CHANNELS = [*BASE_COMMUNITY["channels"], {"id": "ops", "type": "file", "path": "ops.jsonl"}]


class Crash(BaseException):
    """A crash the handler cannot catch (the Lambda killed mid-run)."""


def post_job(channels: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "id": "morning-post",
        "cron": "30 7 * * *",
        "action": "post",
        "params": {"pool": "morning", "channels": channels, "template": "{content}"},
        **extra,
    }


def push(stack, channels=CHANNELS, job_channels=("group",), **job: Any) -> None:
    stack.push(
        make_config(
            jobs=[post_job(list(job_channels), **job)],
            channels=channels,
            alerts={"channel": "ops"},
            published_at="2026-11-26T12:00:00Z",
        )
    )


def alerts(stack) -> list[str]:
    return [line["text"] for line in stack.lines("ops.jsonl")]


def channel_of(app, channel_id: str = "group"):
    community = app.config().communities[0]
    return app.posts.channel(community, channel_id)


def throttled(operation: str = "UpdateItem") -> UpdateError:
    """What PynamoDB raises when DynamoDB throttled a write and the SDK gave up."""
    cause = ClientError(
        {
            "Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        },
        operation,
    )
    return UpdateError("Failed to update item", cause)


def statuses(stack, app) -> list[tuple[str, str]]:
    return [(i.occurrence_key, i.status) for i in stack.history(app)]


@pytest.fixture(autouse=True)
def _output(stack, monkeypatch):
    monkeypatch.setenv("AUTOPILOT_OUTPUT_DIR", str(stack.output_dir))


# -- (a) a crash after the platform accepted the post -----------------------------


def test_crash_after_the_platform_accepted_is_not_resent_and_recorded_uncertain(stack):
    push(stack)
    stack.clock.set(MORNING)
    app = stack.app()
    channel = channel_of(app)
    original = channel.send_to_community

    def accepted_then_crash(*args, **kwargs):
        original(*args, **kwargs)  # the group got it...
        raise Crash("killed before the outcome was recorded")

    channel.send_to_community = accepted_then_crash
    with pytest.raises(Crash):
        app.tick()
    assert len(stack.lines()) == 1
    (post,) = app.post_store.posts("sunrise")
    intent = post.deliveries["group"]
    assert intent["status"] == "sending" and intent["attempt"] == 1
    assert intent["at_utc"] == iso_utc(MORNING)

    # The trigger retries at once: the lease is live, nothing runs.
    retry = stack.app()
    assert retry.tick().idle
    # After the lease, the next tick takes the occurrence over: it must not re-send.
    stack.clock.advance(DEFAULT_LEASE + timedelta(seconds=1))
    report = retry.tick()
    assert report.summary()["counts"] == {"uncertain": 1}
    (occurrence,) = report.occurrences
    assert occurrence.key == KEY and occurrence.status == "uncertain"
    assert len(stack.lines()) == 1  # not re-posted
    (post,) = retry.post_store.posts("sunrise")
    delivery = post.deliveries["group"]
    assert delivery["status"] == "uncertain" and delivery["attempt"] == 1
    assert "crashed mid-send" in delivery["error"] and "not re-sent" in delivery["error"]
    (record,) = stack.history(retry)
    assert record.status == "uncertain" and record.attempt == 2
    assert "crashed mid-send" in record.reason
    (text,) = alerts(stack)
    assert "may or may not have reached the group" in text
    assert "group" in text and "not sent again" in text and KEY in text

    # Duplicated ticks, other containers, hours later: nothing more is sent or alerted.
    for _ in range(3):
        stack.clock.advance(timedelta(minutes=30))
        assert stack.app().tick().idle and retry.tick().idle
    assert len(stack.lines()) == 1 and len(alerts(stack)) == 1
    assert statuses(stack, retry) == [(KEY, "uncertain")]


def test_a_crash_before_the_send_leaves_no_intent_and_the_rerun_posts_once(stack):
    """The intent is written just before the send: a crash before it loses nothing."""
    push(stack)
    stack.clock.set(MORNING)
    app = stack.app()
    store = app.post_store
    original = store.begin_delivery
    store.begin_delivery = lambda *a, **k: (_ for _ in ()).throw(Crash("before the intent"))
    with pytest.raises(Crash):
        app.tick()
    store.begin_delivery = original
    stack.clock.advance(DEFAULT_LEASE + timedelta(seconds=1))
    report = stack.app().tick()
    assert [(o.key, o.status) for o in report.occurrences] == [(KEY, "fired")]
    assert len(stack.lines()) == 1 and alerts(stack) == []


# -- (b) a lost answer ----------------------------------------------------------------


def test_a_lost_answer_is_uncertain_and_never_resent_by_a_rerun(stack):
    push(stack, job_channels=("group", "announce"))
    stack.clock.set(MORNING)
    app = stack.app()
    sends: list[str] = []

    def lost(message, *, now, deadline=None):
        sends.append(message.key)
        return Delivery(
            "group",
            False,
            iso_utc(now),
            error="no answer (timed out); outcome unknown",
            unknown=True,
        )

    channel_of(app).send_to_community = lost
    # The run also crashes before recording the occurrence's outcome: a rerun follows.
    finish = app.scheduler_store.finish
    app.scheduler_store.finish = lambda *a, **k: (_ for _ in ()).throw(Crash("before finish"))
    with pytest.raises(Crash):
        app.tick()
    app.scheduler_store.finish = finish
    (post,) = app.post_store.posts("sunrise")
    assert post.deliveries["group"]["status"] == "uncertain"
    assert post.deliveries["group"]["unknown"] is True
    assert post.deliveries["announce"]["status"] == "published"

    stack.clock.advance(DEFAULT_LEASE + timedelta(seconds=1))
    rerun = stack.app()
    rerun_sends: list[str] = []
    channel_of(rerun).send_to_community = lambda message, **kw: rerun_sends.append(message.key)
    report = rerun.tick()
    assert [(o.key, o.status) for o in report.occurrences] == [(KEY, "uncertain")]
    assert sends == [f"sunrise:morning-post:{post.occurrence_id}"] and rerun_sends == []
    reason = report.occurrences[0].reason
    assert "group: no answer (timed out)" in reason and "may or may not have been posted" in reason
    (text,) = alerts(stack)
    assert "the post to group may or may not have reached the group" in text
    assert "announce" not in text.split("Details:")[0]  # only the uncertain channel


def test_a_lost_answer_without_a_crash_ends_uncertain_with_one_alert(stack):
    push(stack)
    stack.clock.set(MORNING)
    app = stack.app()
    channel_of(app).send_to_community = lambda message, *, now, deadline=None: Delivery(
        "group", False, iso_utc(now), error="no answer", unknown=True
    )
    report = app.tick()
    assert report.summary()["counts"] == {"uncertain": 1}
    assert statuses(stack, app) == [(KEY, "uncertain")]
    app.tick()
    stack.app().tick()
    assert len(alerts(stack)) == 1


# -- (c) a transient AWS error: retried by the next tick -------------------------------


def test_a_throttled_write_is_retried_by_the_next_tick_and_fired_once(stack):
    push(stack)
    stack.clock.set(MORNING)
    app = stack.app()
    store = app.post_store
    original = store.read_rotation
    calls = []

    def throttled_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise throttled("GetItem")
        return original(*args, **kwargs)

    store.read_rotation = throttled_once
    report = app.tick()
    assert report.idle  # released, not failed: nothing decided yet
    (record,) = stack.history(app)
    assert record.status == "claimed" and record.attempt == 0  # given back to the crash budget
    assert record.transient_retries == 1
    assert "ProvisionedThroughputExceededException" in record.reason
    assert stack.lines() == []

    stack.clock.advance(timedelta(minutes=1))  # the next tick
    report = app.tick()
    assert [(o.key, o.status) for o in report.occurrences] == [(KEY, "fired")]
    (record,) = stack.history(app)
    assert record.status == "fired" and record.attempt == 1 and record.transient_retries == 1
    assert len(stack.lines()) == 1 and alerts(stack) == []
    stack.clock.advance(timedelta(minutes=1))
    assert app.tick().idle and stack.app().tick().idle
    assert len(stack.lines()) == 1


def test_a_released_occurrence_is_retried_by_a_cold_container_too(stack):
    push(stack)
    stack.clock.set(MORNING)
    app = stack.app()
    app.dispatcher._actions["post"] = lambda ctx: (_ for _ in ()).throw(
        ReadTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com/")
    )
    assert app.tick().idle
    stack.clock.advance(timedelta(minutes=1))
    report = stack.app().tick()
    assert [(o.key, o.status) for o in report.occurrences] == [(KEY, "fired")]
    assert len(stack.lines()) == 1


def test_a_released_occurrence_is_retried_even_when_a_later_one_supersedes_it(stack):
    """Under ``latest`` the next tick sees 07:30 and 07:31: the started 07:30 still runs."""
    push(stack, cron="* * * * *", quiet_hours="ignore")
    stack.clock.set(MORNING)
    app = stack.app()
    post = app.dispatcher._actions["post"]
    failing = {"07:30"}

    def action(ctx):
        if ctx.occurrence.key[-5:] in failing:
            failing.clear()
            raise throttled()
        return post(ctx)

    app.dispatcher._actions["post"] = action
    first = app.tick()  # the minutes since the config's publication are missed, not 07:30
    assert all(o.status == "missed" for o in first.occurrences)
    assert "07:30" not in {o.key[-5:] for o in first.occurrences}
    stack.clock.advance(timedelta(minutes=1))
    report = app.tick()
    assert sorted((o.key[-5:], o.status) for o in report.occurrences) == [
        ("07:30", "fired"),
        ("07:31", "fired"),
    ]
    assert len(stack.lines()) == 2


def test_a_lost_answer_on_the_intent_write_is_absorbed_without_a_duplicate(stack):
    """DynamoDB applied the intent, the answer was lost: writing it again passes (its
    own token) and the post goes out once, published."""
    push(stack)
    stack.clock.set(MORNING)
    app = stack.app()
    store = app.post_store
    original = store.begin_delivery
    lost = []

    def applied_then_lost(*args, **kwargs):
        result = original(*args, **kwargs)
        if not lost:
            lost.append(1)
            raise UpdateError("Failed to update item", ReadTimeoutError(endpoint_url="x"))
        return result

    store.begin_delivery = applied_then_lost
    report = app.tick()
    assert [(o.key, o.status) for o in report.occurrences] == [(KEY, "fired")]
    assert len(stack.lines()) == 1
    (post,) = app.post_store.posts("sunrise")
    assert post.deliveries["group"]["status"] == "published"


# -- (d) an always-transient error: failed after MAX_TRANSIENT_RETRIES, alerted once --------


def test_an_always_throttled_action_fails_after_its_transient_retries_with_one_alert(stack):
    push(stack)
    stack.clock.set(MORNING)
    app = stack.app()
    runs = []

    def always_throttled(ctx):
        runs.append(ctx.attempt)
        raise throttled()

    app.dispatcher._actions["post"] = always_throttled
    reports = [app.tick()]
    for _ in range(MAX_TRANSIENT_RETRIES + 3):
        stack.clock.advance(timedelta(minutes=1))
        reports.append(app.tick())
    # Each run is the first attempt of the crash budget: transient runs give it back.
    assert runs == [1] * (MAX_TRANSIENT_RETRIES + 1)
    decided = [(o.key, o.status) for r in reports for o in r.occurrences]
    assert decided == [(KEY, "failed")]
    (record,) = stack.history(app)
    assert record.status == "failed" and record.attempt == 1
    assert record.transient_retries == MAX_TRANSIENT_RETRIES
    assert "ProvisionedThroughputExceededException" in record.reason
    assert f"transient error in each of {MAX_TRANSIENT_RETRIES + 1} runs" in record.reason
    (text,) = alerts(stack)
    assert "morning-post" in text and "failed" in text
    assert stack.lines() == []


def test_a_permanent_error_fails_at_once(stack):
    push(stack)
    stack.clock.set(MORNING)
    app = stack.app()
    denied = ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "GetItem")
    app.dispatcher._actions["post"] = lambda ctx: (_ for _ in ()).throw(denied)
    report = app.tick()
    assert [(o.key, o.status) for o in report.occurrences] == [(KEY, "failed")]
    assert len(alerts(stack)) == 1


# -- a platform that deduplicates on the occurrence's key ------------------------------


def _feishu(stack, secret_of, **job: Any) -> FakePlatform:
    fake = FakePlatform(PLATFORMS["feishu"].check)
    prefix = stack.env["CHANNEL_SECRETS_PREFIX"]
    client("ssm", "us-east-1").put_parameter(
        Name=f"{prefix}/sunrise/feishu-group",
        Value=json.dumps(secret_of(fake)),
        Type="SecureString",
        Overwrite=True,
    )
    push(
        stack,
        channels=[*CHANNELS, {"id": "feishu-group", "type": "feishu"}],
        job_channels=("feishu-group",),
        **job,
    )
    return fake


def _crash_after_accepted(app, channel_id: str) -> None:
    channel = channel_of(app, channel_id)
    original = channel.send_to_community

    def accepted_then_crash(*args, **kwargs):
        assert original(*args, **kwargs).ok
        raise Crash("killed before the outcome was recorded")

    channel.send_to_community = accepted_then_crash


def test_a_feishu_app_rerun_resends_with_the_same_uuid_and_posts_nothing_new(stack):
    fake = _feishu(stack, lambda f: {**FEISHU_APP, "api_base": f.base})
    try:
        stack.clock.set(MORNING)
        app = stack.app()
        _crash_after_accepted(app, "feishu-group")
        with pytest.raises(Crash):
            app.tick()
        assert len(FEISHU.of(fake.base)) == 1
        stack.clock.advance(DEFAULT_LEASE + timedelta(seconds=1))
        report = stack.app().tick()
        assert [(o.key, o.status) for o in report.occurrences] == [(KEY, "fired")]
        assert len(FEISHU.of(fake.base)) == 1  # Feishu deduplicated the re-send (uuid)
        uuids = [r.json()["uuid"] for r in fake.received if r.path == "/open-apis/im/v1/messages"]
        assert len(uuids) == 2 and uuids[0] == uuids[1]
        assert alerts(stack) == []
    finally:
        fake.close()


def test_a_feishu_custom_bot_rerun_is_uncertain_not_resent(stack):
    fake = _feishu(stack, lambda f: PLATFORMS["feishu"].secret(f.base))
    try:
        stack.clock.set(MORNING)
        app = stack.app()
        _crash_after_accepted(app, "feishu-group")
        with pytest.raises(Crash):
            app.tick()
        assert len(fake.accepted) == 1
        stack.clock.advance(DEFAULT_LEASE + timedelta(seconds=1))
        report = stack.app().tick()
        assert [(o.key, o.status) for o in report.occurrences] == [(KEY, "uncertain")]
        assert len(fake.received) == 1  # no uuid on a custom bot: never sent again
        (text,) = alerts(stack)
        assert "feishu-group" in text
    finally:
        fake.close()


def test_a_feishu_app_rerun_past_the_dedup_window_is_uncertain(stack):
    fake = _feishu(
        stack,
        lambda f: {**FEISHU_APP, "api_base": f.base},
        misfire={"policy": "latest", "grace": "2h"},
    )
    try:
        stack.clock.set(MORNING)
        app = stack.app()
        _crash_after_accepted(app, "feishu-group")
        with pytest.raises(Crash):
            app.tick()
        # The dispatcher was down for an hour: Feishu no longer deduplicates the uuid.
        stack.clock.advance(timedelta(minutes=55))
        report = stack.app().tick()
        statuses_ = [(o.key, o.status) for o in report.occurrences]
        assert statuses_ == [(KEY, "uncertain")]
        assert len(FEISHU.of(fake.base)) == 1
    finally:
        fake.close()
