"""The published config: caching, revalidation, and never using an invalid document."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from autopilot.errors import ConfigUnavailable

from .conftest import make_config


def test_config_is_cached_then_revalidated_with_the_etag(stack, at, request_counter):
    stack.push(make_config())
    app = stack.app()
    at(2026, 11, 26, 12, 0)
    app.config()
    app.config()
    assert request_counter.count("s3", "GetObject") == 1  # cached for the TTL
    stack.clock.advance(timedelta(seconds=61))
    assert app.config().communities[0].id == "sunrise"
    assert request_counter.count("s3", "GetObject") == 2  # conditional GET, not modified


def test_a_new_config_reaches_a_warm_container_after_the_ttl(stack, at):
    stack.push(make_config())
    app = stack.app()
    at(2026, 11, 26, 12, 0)
    assert app.config().communities[0].name == "晨读社"
    stack.push(make_config(name="晨读社·新"))
    stack.clock.advance(timedelta(seconds=61))
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
    stack.clock.advance(timedelta(seconds=61))
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
