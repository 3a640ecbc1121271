"""The published config: caching, revalidation, and never using an invalid document."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from autopilot.aws import client
from autopilot.clock import get_clock
from autopilot.config.store import ConfigStore
from autopilot.errors import ConfigUnavailable

from autopilot_cli.local.runtime import scheduled_event
from autopilot_cli.metering import RequestCounter

from .conftest import make_config


def past_ttl(stack) -> timedelta:
    """Just past the dispatcher's config TTL (its template environment)."""
    return timedelta(seconds=int(stack.env["CONFIG_TTL_SECONDS"]) + 1)


def test_config_is_cached_then_revalidated_with_the_etag(stack, at, request_counter):
    stack.push(make_config())
    app = stack.app()
    at(2026, 11, 26, 12, 0)
    app.config()
    app.config()
    assert request_counter.count("s3", "GetObject") == 1  # cached for the TTL
    stack.clock.advance(past_ttl(stack))
    assert app.config().communities[0].id == "sunrise"
    assert request_counter.count("s3", "GetObject") == 2  # conditional GET, not modified


def test_a_new_config_reaches_a_warm_container_after_the_ttl(stack, at):
    stack.push(make_config())
    app = stack.app()
    at(2026, 11, 26, 12, 0)
    assert app.config().communities[0].name == "晨读社"
    stack.push(make_config(name="晨读社·新"))
    stack.clock.advance(past_ttl(stack))
    assert app.config().communities[0].name == "晨读社·新"


@pytest.mark.parametrize(
    "bad",
    [
        b"{not json",
        json.dumps(
            {
                "version": 1,
                "communities": [
                    {"id": "x", "name": "X", "timezone": "Nowhere/Void", "channels": [], "jobs": []}
                ],
            }
        ).encode(),
    ],
)
def test_warm_container_keeps_the_last_good_config(stack, at, caplog, bad):
    stack.push(make_config())
    app = stack.app()
    at(2026, 11, 26, 12, 0)
    good = app.config()
    stack.push(bad)  # bypassing `config push`, e.g. a hand edit in the console
    stack.clock.advance(past_ttl(stack))
    with caplog.at_level(logging.ERROR, logger="autopilot"):
        assert app.config() == good
    assert any("keeping last good config" in r.getMessage() for r in caplog.records)


def test_cold_container_falls_back_to_the_newest_valid_version(stack, at, caplog):
    stack.push(make_config(name="v1"))
    stack.push(make_config(name="v2"))
    stack.push(b'{"version": 1, "communities": "oops"}')
    at(2026, 11, 26, 12, 0)
    with caplog.at_level(logging.WARNING, logger="autopilot"):
        config = stack.app().config()
    assert config.communities[0].name == "v2"
    assert any("using earlier config version" in r.getMessage() for r in caplog.records)


def test_no_config_at_all_is_a_clear_error(stack, at):
    at(2026, 11, 26, 12, 0)
    with pytest.raises(ConfigUnavailable, match="autopilot config push"):
        stack.app().config()


def test_revalidate_bypasses_the_ttl_and_says_whether_it_is_the_newest(stack, at):
    """The dispatcher revalidates when the config epoch names another version."""
    v1 = stack.push(make_config(name="v1"))
    app = stack.app()
    at(2026, 11, 26, 12, 0)
    assert app.config().version_tag == v1
    v2 = stack.push(make_config(name="v2"))
    assert app.config().version_tag == v1  # still cached
    config, newest = app.config_store.revalidate()
    assert (config.version_tag, config.communities[0].name, newest) == (v2, "v2", True)
    assert app.config_store.revalidate() == (config, True)  # not modified: still the newest
    stack.push(b"{broken")
    kept, newest = app.config_store.revalidate()
    assert kept.version_tag == v2 and newest is False  # a kept copy is not the newest
    cold, newest = stack.app().config_store.revalidate()
    assert cold.version_tag == v2 and newest is False  # an earlier version, by fallback


@pytest.mark.parametrize("ttl", [60, 300])
def test_a_pushed_config_is_used_from_exactly_push_plus_ttl(stack, at, ttl):
    """The documented bound: a get() at or after push + TTL returns the pushed version
    (here the cache was filled 10 s before the push, the worst case is filling it
    just before); before fetch + TTL the cached copy is served without any request."""
    v1 = stack.push(make_config(name="v1"))
    at(2026, 11, 26, 12, 0)
    store = ConfigStore(
        client("s3", "us-east-1"),
        stack.env["CONFIG_BUCKET"],
        stack.env["CONFIG_KEY"],
        ttl=timedelta(seconds=ttl),
    )
    filled = get_clock().now()
    assert store.get().version_tag == v1
    stack.clock.advance(timedelta(seconds=10))
    pushed_at = get_clock().now()
    v2 = stack.push(make_config(name="v2"))
    stack.clock.set(filled + timedelta(seconds=ttl) - timedelta(milliseconds=1))
    assert store.get().version_tag == v1
    stack.clock.set(filled + timedelta(seconds=ttl))
    assert store.get().version_tag == v2
    assert get_clock().now() <= pushed_at + timedelta(seconds=ttl)


def test_warm_dispatcher_ticks_revalidate_the_config_once_per_five_minutes(stack, at):
    """The deployed dispatcher (template env CONFIG_TTL_SECONDS=300) makes one S3
    request per 5 one-minute ticks, not one per tick."""
    stack.push(make_config(published_at="2026-11-26T10:00:00Z"))
    start = at(2026, 11, 26, 10, 0, 30)
    stack.runtime.invoke("DispatcherFunction", scheduled_event(start))  # cold
    with RequestCounter() as warm:
        for minute in range(1, 11):
            stack.clock.set(start + timedelta(minutes=minute))
            stack.runtime.invoke("DispatcherFunction", scheduled_event(stack.clock.now()))
    assert warm.count("s3") == 2  # at +5 and +10 minutes (conditional GETs)
