"""Direct tests of ``autopilot.config.model``: the typed config and its semantic checks."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from autopilot.config.model import (
    DEFAULT_GRACE,
    MisfirePolicy,
    QuietHours,
    collect_issues,
    parse_config,
    template_fields,
    validate_cron,
)
from autopilot.errors import ConfigError


def _doc() -> dict[str, Any]:
    """A small valid document; tests copy and break it."""
    return {
        "version": 1,
        "communities": [
            {
                "id": "demo",
                "name": "Demo",
                "timezone": "Asia/Shanghai",
                "quiet_hours": {"start": "22:00", "end": "07:00"},
                "channels": [
                    {"id": "console", "type": "console"},
                    {"id": "log", "type": "file", "path": "demo/log.jsonl"},
                ],
                "pools": [{"id": "morning", "items": [{"id": "m1", "text": " 早安 "}]}],
                "jobs": [
                    {
                        "id": "morning-post",
                        "cron": "30 7 * * *",
                        "action": "post",
                        "params": {
                            "pool": "morning",
                            "channels": ["console"],
                            "template": "{content}",
                        },
                    }
                ],
            }
        ],
    }


def _errors(doc: Any) -> list[tuple[tuple[str | int, ...], str]]:
    _, issues = collect_issues(doc)
    return [(i.path, i.message) for i in issues if i.severity == "error"]


# --------------------------------------------------------------------------- QuietHours


@pytest.mark.parametrize(
    ("wall", "inside"),
    [
        (time(21, 59), False),
        (time(22, 0), True),  # start is inclusive
        (time(23, 59), True),
        (time(0, 0), True),  # across midnight
        (time(6, 59), True),
        (time(7, 0), False),  # end is exclusive: deferred messages go out then
        (time(12, 0), False),
    ],
)
def test_quiet_hours_across_midnight(wall: time, inside: bool) -> None:
    assert QuietHours(time(22, 0), time(7, 0)).contains(wall) is inside


@pytest.mark.parametrize(
    ("wall", "inside"),
    [(time(0, 0), True), (time(6, 59), True), (time(7, 0), False), (time(23, 59), False)],
)
def test_quiet_hours_within_one_day(wall: time, inside: bool) -> None:
    assert QuietHours(time(0, 0), time(7, 0)).contains(wall) is inside


def test_equal_start_and_end_is_an_empty_window_and_a_warning() -> None:
    assert not QuietHours(time(7, 0), time(7, 0)).contains(time(7, 0))
    doc = _doc()
    doc["communities"][0]["quiet_hours"] = {"start": "07:00", "end": "07:00"}

    config, issues = collect_issues(doc)

    assert config is not None
    assert [(i.severity, i.path) for i in issues] == [
        ("warning", ("communities", 0, "quiet_hours"))
    ]
    assert config.warnings == tuple(issues)


def test_quiet_hours_are_optional() -> None:
    doc = _doc()
    del doc["communities"][0]["quiet_hours"]

    assert parse_config(doc).communities[0].quiet_hours is None


# --------------------------------------------------------------------------- defaults


def test_misfire_policy_defaults() -> None:
    assert MisfirePolicy() == MisfirePolicy("latest", timedelta(minutes=10))
    assert MisfirePolicy().grace is DEFAULT_GRACE


def test_job_defaults() -> None:
    job = parse_config(_doc()).communities[0].jobs[0]

    assert job.misfire == MisfirePolicy()
    assert job.quiet_hours == "defer"  # posts talk to members
    assert job.enabled is True
    assert job.description == ""
    assert job.sends_messages


def test_partial_misfire_keeps_the_other_default() -> None:
    doc = _doc()
    doc["communities"][0]["jobs"][0]["misfire"] = {"policy": "all"}
    only_policy = parse_config(copy.deepcopy(doc)).communities[0].jobs[0].misfire
    doc["communities"][0]["jobs"][0]["misfire"] = {"grace": "2h"}
    only_grace = parse_config(doc).communities[0].jobs[0].misfire

    assert only_policy == MisfirePolicy("all", DEFAULT_GRACE)
    assert only_grace == MisfirePolicy("latest", timedelta(hours=2))


def test_community_defaults_and_lookups() -> None:
    config = parse_config(_doc())
    community = config.community("demo")

    assert (community.locale, community.day_boundary) == ("en", time(0, 0))
    assert community.pool("morning").items[0].text == "早安"  # trimmed
    assert community.pool("morning").item("m1") is not None
    assert community.pool("morning").item("nope") is None
    assert community.channel("log").options == {"path": "demo/log.jsonl"}
    assert community.job("morning-post").cron == "30 7 * * *"
    for lookup in (community.channel, community.pool, community.job, config.community):
        with pytest.raises(KeyError):
            lookup("missing")


def test_published_fields_are_read() -> None:
    doc = _doc()
    doc["published_at"] = "2026-03-01T07:00:00Z"
    doc["source_sha256"] = "ab" * 32

    config = parse_config(doc)

    assert config.published_at == datetime(2026, 3, 1, 7, tzinfo=UTC)
    assert config.version_tag == "ab" * 32


# --------------------------------------------------------------------------- types


@pytest.mark.parametrize(
    ("mutate", "path", "text"),
    [
        # bool is an int in Python: `version: true` must not pass as 1 ...
        (lambda d: d.update(version=True), ("version",), "expected int, got bool True"),
        # ... and 1 must not pass as a boolean.
        (
            lambda d: d["communities"][0]["jobs"][0].update(enabled=1),
            ("communities", 0, "jobs", 0, "enabled"),
            "expected bool, got int 1",
        ),
        (
            lambda d: d["communities"][0]["jobs"][0].update(cron=5),
            ("communities", 0, "jobs", 0, "cron"),
            "expected string, got int 5",
        ),
        (
            lambda d: d["communities"][0].update(name=None),
            ("communities", 0, "name"),
            "expected string, got null None",
        ),
    ],
)
def test_type_checks_tell_bool_from_int(
    mutate: Callable[[dict[str, Any]], None], path: tuple[str | int, ...], text: str
) -> None:
    doc = _doc()
    mutate(doc)

    assert _errors(doc) == [(path, text)]


def test_true_is_a_valid_enabled_flag() -> None:
    doc = _doc()
    doc["communities"][0]["jobs"][0]["enabled"] = False

    assert parse_config(doc).communities[0].jobs[0].enabled is False


# --------------------------------------------------------------------------- every error has a path


def _set(path: tuple[str | int, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        parent: Any = doc
        for part in path[:-1]:
            parent = parent[part]
        if isinstance(parent, list) and path[-1] == len(parent):
            parent.append(value)  # one past the end: add an entry
        else:
            parent[path[-1]] = value

    return mutate


def _delete(path: tuple[str | int, ...]) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        parent: Any = doc
        for part in path[:-1]:
            parent = parent[part]
        del parent[path[-1]]

    return mutate


C = ("communities", 0)
J = (*C, "jobs", 0)
P = (*J, "params")

ERROR_KINDS: list[tuple[str, Callable[[dict[str, Any]], None], tuple[str | int, ...], str]] = [
    ("unknown top key", _set(("extra",), 1), ("extra",), "unknown key 'extra'"),
    ("missing version", _delete(("version",)), ("version",), "required key 'version' is missing"),
    ("unsupported version", _set(("version",), 2), ("version",), "unsupported config version 2"),
    ("no communities", _set(("communities",), []), ("communities",), "at least one community"),
    ("bad published_at", _set(("published_at",), "yesterday"), ("published_at",), "yesterday"),
    ("community not a mapping", _set(C, "demo"), C, "expected mapping, got string 'demo'"),
    ("bad community id", _set((*C, "id"), "Demo!"), (*C, "id"), "'Demo!' is not a valid id"),
    (
        "unknown zone",
        _set((*C, "timezone"), "Mars/Olympus"),
        (*C, "timezone"),
        "unknown time zone 'Mars/Olympus'",
    ),
    ("unknown locale", _set((*C, "locale"), "fr"), (*C, "locale"), "unknown locale 'fr'"),
    (
        "bad day boundary",
        _set((*C, "day_boundary"), "4am"),
        (*C, "day_boundary"),
        "'4am' is not a valid time of day",
    ),
    (
        "quiet hours not a mapping",
        _set((*C, "quiet_hours"), "night"),
        (*C, "quiet_hours"),
        "expected mapping or null, got string 'night'",
    ),
    (
        "bad quiet start",
        _set((*C, "quiet_hours", "start"), "24:00"),
        (*C, "quiet_hours", "start"),
        "'24:00' is not a valid time of day",
    ),
    (
        "quiet end missing",
        _delete((*C, "quiet_hours", "end")),
        (*C, "quiet_hours", "end"),
        "required key 'end' is missing",
    ),
    (
        "channel not a mapping",
        _set((*C, "channels", 0), "console"),
        (*C, "channels", 0),
        "expected mapping, got string 'console'",
    ),
    (
        "unknown channel type",
        _set((*C, "channels", 0, "type"), "carrier-pigeon"),
        (*C, "channels", 0, "type"),
        "unknown channel type 'carrier-pigeon'",
    ),
    (
        "file path escapes",
        _set((*C, "channels", 1, "path"), "../x"),
        (*C, "channels", 1, "path"),
        "must not contain '..'",
    ),
    (
        "duplicate channel",
        _set((*C, "channels", 1), {"id": "console", "type": "console"}),
        (*C, "channels", 1, "id"),
        "duplicate channel id 'console'",
    ),
    (
        "sns subject too long",
        _set((*C, "channels", 1), {"id": "sns", "type": "sns", "subject": "x" * 101}),
        (*C, "channels", 1, "subject"),
        "longer than the limit of 100",
    ),
    (
        "pool not a mapping",
        _set((*C, "pools", 0), []),
        (*C, "pools", 0),
        "expected mapping, got list",
    ),
    (
        "empty pool",
        _set((*C, "pools", 0, "items"), []),
        (*C, "pools", 0, "items"),
        "a pool needs at least one item",
    ),
    (
        "item not a mapping",
        _set((*C, "pools", 0, "items", 0), "hi"),
        (*C, "pools", 0, "items", 0),
        "expected mapping, got string 'hi'",
    ),
    (
        "blank item text",
        _set((*C, "pools", 0, "items", 0, "text"), "  "),
        (*C, "pools", 0, "items", 0, "text"),
        "'  ' is blank",
    ),
    (
        "duplicate item",
        _set((*C, "pools", 0, "items", 1), {"id": "m1", "text": "again"}),
        (*C, "pools", 0, "items", 1, "id"),
        "duplicate item id 'm1'",
    ),
    (
        "duplicate pool",
        _set((*C, "pools", 1), {"id": "morning", "items": [{"id": "x", "text": "y"}]}),
        (*C, "pools", 1, "id"),
        "duplicate pool id 'morning'",
    ),
    ("job not a mapping", _set(J, 7), J, "expected mapping, got int 7"),
    ("bad cron", _set((*J, "cron"), "30 25 * * *"), (*J, "cron"), "invalid cron expression"),
    ("cron never fires", _set((*J, "cron"), "0 0 31 2 *"), (*J, "cron"), "never fires"),
    ("unknown action", _set((*J, "action"), "shout"), (*J, "action"), "unknown action 'shout'"),
    (
        "unknown misfire policy",
        _set((*J, "misfire"), {"policy": "first"}),
        (*J, "misfire", "policy"),
        "unknown misfire policy 'first'",
    ),
    (
        "bad grace",
        _set((*J, "misfire"), {"grace": "soon"}),
        (*J, "misfire", "grace"),
        "'soon' is not a valid duration",
    ),
    (
        "unknown quiet policy",
        _set((*J, "quiet_hours"), "mute"),
        (*J, "quiet_hours"),
        "unknown quiet-hours policy 'mute'",
    ),
    (
        "duplicate job",
        _set(
            (*C, "jobs", 1),
            {
                "id": "morning-post",
                "cron": "0 9 * * *",
                "action": "post",
                "params": {"pool": "morning", "channels": ["console"], "template": "x"},
            },
        ),
        (*C, "jobs", 1, "id"),
        "duplicate job id 'morning-post'",
    ),
    ("unknown pool", _set((*P, "pool"), "evening"), (*P, "pool"), "unknown pool 'evening'"),
    ("no channels", _set((*P, "channels"), []), (*P, "channels"), "at least one channel"),
    (
        "unknown channel",
        _set((*P, "channels"), ["console", "wechat"]),
        (*P, "channels", 1),
        "unknown channel 'wechat'",
    ),
    (
        "channel twice",
        _set((*P, "channels"), ["console", "console"]),
        (*P, "channels"),
        "a channel is listed twice",
    ),
    (
        "missing template",
        _delete((*P, "template")),
        (*P, "template"),
        "required key 'template' is missing",
    ),
    (
        "template too long",
        _set((*P, "template"), "x" * 4001),
        (*P, "template"),
        "longer than the limit of 4000",
    ),
    (
        "bad placeholder",
        _set((*P, "template"), "{Content}"),
        (*P, "template"),
        "invalid placeholder {Content}",
    ),
    ("unbalanced brace", _set((*P, "title"), "{content"), (*P, "title"), "bad template"),
    ("unknown param", _set((*P, "tone"), "warm"), (*P, "tone"), "unknown key 'tone'"),
    (
        "duplicate community",
        lambda d: d["communities"].append(copy.deepcopy(d["communities"][0])),
        ("communities", 1, "id"),
        "duplicate community id 'demo'",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "path", "text"), [k[1:] for k in ERROR_KINDS], ids=[k[0] for k in ERROR_KINDS]
)
def test_every_error_kind_has_a_path(
    mutate: Callable[[dict[str, Any]], None], path: tuple[str | int, ...], text: str
) -> None:
    doc = _doc()
    mutate(doc)

    config, issues = collect_issues(doc)

    errors = [i for i in issues if i.severity == "error"]
    assert config is None
    assert errors, "expected an error"
    assert all(i.path for i in errors), [str(i) for i in errors]
    assert any(i.path == path and text in i.message for i in errors), [str(i) for i in errors]


def test_a_document_that_is_not_a_mapping_is_an_error_at_the_root() -> None:
    config, issues = collect_issues(["version", 1])

    assert config is None
    assert [(i.path, i.location()) for i in issues] == [((), "<document>")]


def test_parse_config_raises_with_every_issue_and_the_source() -> None:
    doc = _doc()
    doc["communities"][0]["timezone"] = "Nowhere/Town"
    doc["communities"][0]["jobs"][0]["cron"] = "30 25 * * *"  # 5 fields, hour 25

    with pytest.raises(ConfigError) as caught:
        parse_config(doc, source="s3://bucket/communities.json")

    assert {i.location() for i in caught.value.issues} == {
        "communities[0].timezone",
        "communities[0].jobs[0].cron",
    }
    assert str(caught.value).startswith("s3://bucket/communities.json: 2 error(s)")


def test_a_mapping_as_channel_reference_is_an_issue_not_a_crash() -> None:
    doc = _doc()
    doc["communities"][0]["jobs"][0]["params"]["channels"] = [{"id": "console"}]

    errors = _errors(doc)
    assert any("expected string, got mapping" in str(e) for e in errors)


@pytest.mark.parametrize("template", ["{date!z}", "{date:%Y}"])
def test_placeholders_that_cannot_render_are_refused(template: str) -> None:
    with pytest.raises(ValueError):
        template_fields(template)


# --------------------------------------------------------------------------- helpers of the model


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("30 7 * * *", None),
        ("*/15 0-6 * * 1-5", None),
        ("0 9 * * 7", None),  # 7 is Sunday too
        ("30 7 * *", "expected 5 fields"),
        ("0 30 7 * * *", "expected 5 fields"),
        ("61 7 * * *", "invalid cron expression"),
        ("0 0 30 2 *", "never fires"),
    ],
)
def test_validate_cron(expression: str, problem: str | None) -> None:
    message = validate_cron(expression)

    assert (message is None) if problem is None else (problem in str(message))


def test_template_fields() -> None:
    assert template_fields("早安！{date}，{weekday}。\n{content}") == ["date", "weekday", "content"]
    assert template_fields("literal {{braces}} and {title}") == ["title"]
    with pytest.raises(ValueError, match="invalid placeholder"):
        template_fields("{}")
    with pytest.raises(ValueError, match="invalid placeholder"):
        template_fields("{item.text}")


def test_rules_that_refuse_themselves_are_issues_not_a_crash() -> None:
    # CheckinRules validates itself; the model must report the problem (with its
    # path) and never construct rules it has found invalid.
    doc = _doc()
    doc["communities"][0]["checkins"] = {
        "tiers": [
            {"id": "bronze", "name": "Bronze", "min_lifetime_points": 0},
            {"id": "gold", "name": "Gold", "min_lifetime_points": 100},
            {"id": "silver", "name": "Silver", "min_lifetime_points": 50},
        ]
    }

    assert _errors(doc) == [
        (
            ("communities", 0, "checkins", "tiers", 2, "min_lifetime_points"),
            "tiers must be listed in increasing min_lifetime_points",
        )
    ]


def test_validation_never_raises_on_a_damaged_example() -> None:
    # Any value anywhere may be wrong: validation reports it, it never crashes
    # (found: rules that validate themselves raised out of the model).
    import random

    import yaml
    from autopilot.config.model import semantic_issues

    example = yaml.safe_load(
        (Path(__file__).resolve().parents[3] / "config" / "communities.yaml").read_text("utf-8")
    )

    def paths(node: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
        out = [path]
        items = (
            node.items()
            if isinstance(node, dict)
            else enumerate(node)
            if isinstance(node, list)
            else ()
        )
        for key, child in items:
            out += paths(child, (*path, key))
        return out

    every_path = [p for p in paths(example) if p]
    values: list[Any] = [None, 5, 0, -1, True, "x", "", [], {}, [1], {"id": "q"}, "0 0 31 2 *"]
    rnd = random.Random(8)
    for _ in range(150):
        doc = copy.deepcopy(example)
        for _ in range(rnd.randint(1, 4)):
            path = rnd.choice(every_path)
            parent: Any = doc
            try:
                for part in path[:-1]:
                    parent = parent[part]
                parent[path[-1]] = rnd.choice(values)
            except (KeyError, IndexError, TypeError):
                continue
        semantic_issues(doc)
        collect_issues(doc)
