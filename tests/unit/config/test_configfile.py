"""Tests of the config file pipeline: strict YAML loading, schema, semantics, warnings,
the published document and ``autopilot config validate``.

The broken-config corpus lives in ``fixtures/``: each file states what validation
must report in header comments (``# expect: <severity> <line> <path>: <text>``,
``-`` for no path), so the expected line numbers sit next to the lines they name.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from autopilot.config import parse_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from autopilot_cli.configfile import (
    MAX_CONFIG_BYTES,
    SCHEMA_PATH,
    ConfigFileError,
    Finding,
    cmd_validate,
    load_schema,
    load_yaml_with_lines,
    published_document,
    validate_file,
    validate_loaded,
)

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "config" / "communities.yaml"
FIXTURES = Path(__file__).parent / "fixtures"
# A fixed "now" before New York's 2026 spring-forward (2026-03-08), so the example's
# DST warning names a known date.
NOW = datetime(2026, 3, 1, tzinfo=UTC)

_EXPECT = re.compile(r"^# expect: (error|warning) (\d+) (\S+): (.+)$")
_NOW = re.compile(r"^# now: (\S+)$")


def _expectations(path: Path) -> tuple[list[tuple[str, int, str, str]], datetime]:
    expected, now = [], NOW
    for line in path.read_text(encoding="utf-8").splitlines():
        if match := _EXPECT.match(line):
            severity, number, location, text = match.groups()
            expected.append((severity, int(number), "" if location == "-" else location, text))
        elif match := _NOW.match(line):
            now = datetime.fromisoformat(match.group(1).replace("Z", "+00:00"))
    return expected, now


# --------------------------------------------------------------------------- the example


def test_example_config_validates_without_errors() -> None:
    report = validate_file(EXAMPLE, now=NOW)

    assert report.errors == []
    assert report.ok
    assert report.config is not None
    assert [c.id for c in report.config.communities] == ["sunrise-readers", "daybreak-writers"]
    # 16 jobs ops wrote (4 reminders, 4 report posts), each weekly lottery as 3 derived
    # jobs, and each community's daily metric snapshot.
    assert sum(len(c.jobs) for c in report.config.communities) == 16 + 2 * 3 + 2
    zh = report.config.communities[0]
    assert [j.action for j in zh.jobs][-6:] == [
        "ledger_export",
        "ledger_reconcile",
        "lottery_open",
        "lottery_close",
        "lottery_draw",
        "metrics_snapshot",  # the daily snapshot comes last, after the day boundary
    ]
    snapshot = zh.job("metrics.daily")
    assert (snapshot.cron, snapshot.misfire.policy) == ("30 4 * * *", "all")  # boundary 04:00
    assert [c.lottery("weekly").title for c in report.config.communities] == [
        "周五抽奖",
        "Friday draw",
    ]
    assert zh.checkins.base_points == 10 and zh.rewards[0].id == "bookmark"


def test_example_config_warns_only_about_the_deliberate_digest_job() -> None:
    report = validate_file(EXAMPLE, now=NOW)

    assert {w.location for w in report.warnings} == {"communities[1].jobs[2].cron"}
    messages = sorted(w.message for w in report.warnings)
    assert messages[0].startswith(
        "fires at 02:30 local, inside quiet hours 22:00–07:00: deferred to 07:00"
    )
    assert messages[1].startswith(
        "on Sun 2026-03-08 clocks go forward 1 h at 02:00, so 02:30 "
        "does not exist that day: the run fires at 03:00 EDT instead"
    )
    cron_line = next(
        i
        for i, text in enumerate(EXAMPLE.read_text("utf-8").splitlines(), 1)
        if text.strip() == 'cron: "30 2 * * 0"'
    )
    assert {w.line for w in report.warnings} == {cron_line}


def test_example_config_has_the_content_the_playbook_asks_for() -> None:
    config = validate_file(EXAMPLE, now=NOW).config
    assert config is not None
    zh, en = config.community("sunrise-readers"), config.community("daybreak-writers")

    assert (zh.timezone, zh.locale, zh.day_boundary.isoformat("minutes")) == (
        "Asia/Shanghai",
        "zh-CN",
        "04:00",
    )
    assert zh.quiet_hours is not None
    assert (zh.quiet_hours.start.isoformat("minutes"), zh.quiet_hours.end.isoformat("minutes")) == (
        "00:00",
        "07:00",
    )
    assert {c.type for c in zh.channels} == {"console", "file", "sns"}
    assert len(zh.pool("morning").items) >= 14
    assert len(zh.pool("evening").items) >= 14
    assert len(zh.pool("weekly").items) >= 6
    assert {j.cron for j in zh.jobs if j.action == "post"} == {
        "30 7 * * *",
        "0 21 * * *",
        "0 9 * * 1",
    }

    assert (en.timezone, en.locale) == ("America/New_York", "en")
    assert len(en.pool("morning").items) >= 10
    assert len(en.pool("evening").items) >= 10
    assert {"0 8 * * *", "30 20 * * *"} <= {j.cron for j in en.jobs}
    assert {j.action for c in config.communities for j in c.jobs} == {
        "post",
        "ledger_export",
        "ledger_reconcile",
        "lottery_open",
        "lottery_close",
        "lottery_draw",
        "reminder",
        "metrics_snapshot",
        "metrics_report",
    }
    # Each community: last week's figures on Monday 09:30 on the group channel, and the
    # month's points summary on the 1st at 10:00.
    for community in config.communities:
        reports = {
            j.id: (j.cron, j.params["period"], tuple(j.params["channels"]))
            for j in community.jobs
            if j.action == "metrics_report"
        }
        assert reports == {
            "weekly-report": ("30 9 * * 1", "week", ("group-log",)),
            "finance-summary": ("0 10 1 * *", "month", ("group-log",)),
        }
    # Each community: a not_checked_in reminder at 20:00 and a streak_at_risk at 21:30.
    for community in config.communities:
        reminders = {j.params["kind"]: j.cron for j in community.jobs if j.action == "reminder"}
        assert reminders == {"not_checked_in": "0 20 * * *", "streak_at_risk": "30 21 * * *"}

    for community in config.communities:
        texts = [item.text for pool in community.pools for item in pool.items]
        assert len(texts) == len(set(texts)), f"{community.id} repeats a text"


# --------------------------------------------------------------------------- broken configs


@pytest.mark.parametrize("fixture", sorted(FIXTURES.glob("*.yaml")), ids=lambda p: p.stem)
def test_fixture_reports_exactly_the_expected_findings(fixture: Path) -> None:
    expected, now = _expectations(fixture)
    assert expected, f"{fixture.name} states no expectation"

    report = validate_file(fixture, now=now)

    found = [(f.severity, f.line, f.location, f.message) for f in report.findings]
    assert sorted((s, n, loc) for s, n, loc, _ in found) == sorted(
        (s, n, loc) for s, n, loc, _ in expected
    ), "\n".join(str(f) for f in report.findings)
    for severity, number, location, text in expected:
        messages = [m for s, n, loc, m in found if (s, n, loc) == (severity, number, location)]
        assert any(text in m for m in messages), f"{text!r} not in {messages}"
    assert report.ok == all(s == "warning" for s, *_ in expected)
    assert all(f.file == str(fixture) for f in report.findings)


def test_findings_render_compiler_style() -> None:
    report = validate_file(FIXTURES / "bad_cron.yaml", now=NOW)

    assert [str(f) for f in report.errors] == [
        f"{FIXTURES / 'bad_cron.yaml'}:16:15: error: communities[0].jobs[0].cron: "
        "invalid cron expression '61 7 * * *'"
    ]


def test_findings_are_sorted_by_line() -> None:
    report = validate_file(FIXTURES / "many_errors.yaml", now=NOW)

    lines = [f.line for f in report.errors]
    assert lines == sorted(lines) and len(lines) == 5


def test_a_wrong_type_is_reported_once() -> None:
    report = validate_file(FIXTURES / "wrong_type.yaml", now=NOW)

    assert len(report.errors) == 1
    assert "expected bool" not in report.errors[0].message  # the model's terser twin is dropped


def test_a_missing_post_params_is_one_error_not_one_per_param() -> None:
    loaded = load_yaml_with_lines(
        _minimal_yaml().replace(
            '        params: {pool: morning, channels: [console], template: "{content}"}\n', ""
        )
    )

    report = validate_loaded(loaded, now=NOW)

    assert [(f.location, f.message) for f in report.errors] == [
        ("communities[0].jobs[0].params", "required key 'params' is missing")
    ]
    assert report.errors[0].line == 14  # the job, where the key must be added


def test_unknown_channel_keys_follow_the_channel_type() -> None:
    text = _minimal_yaml().replace(
        "{id: console, type: console}", "{id: console, type: console, path: x.jsonl}"
    )

    report = validate_loaded(load_yaml_with_lines(text), now=NOW)

    assert [(f.line, f.location) for f in report.errors] == [(8, "communities[0].channels[0].path")]
    assert report.errors[0].message.startswith("unknown key 'path'")


def test_file_too_big_is_refused_before_parsing(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"# " + b"x" * MAX_CONFIG_BYTES + b"\n")

    report = validate_file(big)

    assert not report.ok
    [error] = report.errors
    assert (error.line, error.column, error.path) == (None, None, ())
    assert "at most 1 MiB" in error.message
    assert str(error).startswith(f"{big}: error: file is 1,048,579 bytes")


def test_a_file_of_exactly_the_limit_is_read(tmp_path: Path) -> None:
    exact = tmp_path / "exact.yaml"
    exact.write_bytes(b"#" * (MAX_CONFIG_BYTES - 1) + b"\n")

    report = validate_file(exact)

    assert [e.message for e in report.errors] == [
        "the file is empty: expected a mapping with 'version' and 'communities'"
    ]


def test_non_utf8_bytes_are_refused_with_their_position(tmp_path: Path) -> None:
    gbk = tmp_path / "gbk.yaml"
    gbk.write_bytes(_minimal_yaml().replace("name: Demo", "name: 晨读社").encode("gbk"))

    report = validate_file(gbk)

    [error] = report.errors
    assert (error.line, error.column) == (4, 11)
    assert error.message.startswith("the file is not valid UTF-8: byte 0x")
    assert "save the file as UTF-8" in error.message


def test_a_utf8_byte_order_mark_is_accepted() -> None:
    loaded = load_yaml_with_lines(b"\xef\xbb\xbf" + _minimal_yaml().encode())

    assert validate_loaded(loaded, now=NOW).ok
    assert loaded.position(("version",)) == (1, 10)  # the BOM takes no column


def test_missing_file_is_an_error_not_a_crash(tmp_path: Path) -> None:
    report = validate_file(tmp_path / "nope.yaml")

    [error] = report.errors
    assert error.message.startswith("cannot read the file: No such file")


def test_empty_file() -> None:
    report = validate_loaded(load_yaml_with_lines("# only a comment\n"))

    assert [(e.line, e.message) for e in report.errors] == [
        (1, "the file is empty: expected a mapping with 'version' and 'communities'")
    ]


# --------------------------------------------------------------------------- strict loading


def test_every_duplicate_key_is_reported() -> None:
    text = "version: 1\nversion: 1\ncommunities: []\ncommunities: []\n"

    with pytest.raises(ConfigFileError) as caught:
        load_yaml_with_lines(text)

    assert [(f.line, f.column, f.location) for f in caught.value.findings] == [
        (2, 1, "version"),
        (4, 1, "communities"),
    ]
    assert "(first on line 1)" in caught.value.findings[0].message


def test_merge_keys_are_not_duplicates_and_point_at_their_definition() -> None:
    text = (
        "defaults: &post\n"
        "  action: post\n"
        "  cron: '0 8 * * *'\n"
        "job:\n"
        "  <<: *post\n"
        "  cron: '0 9 * * *'\n"
    )

    loaded = load_yaml_with_lines(text)

    assert loaded.doc["job"] == {"action": "post", "cron": "0 9 * * *"}
    assert loaded.position(("job", "cron")) == (6, 9)  # the override, not the merged value
    assert loaded.position(("job", "action")) == (2, 11)  # merged: where it is written


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("version: 1\non: true\n", 2, "key 'on' is read by YAML as a boolean"),
        ("version: 1\n1: one\n", 2, "key '1' is read by YAML as an integer"),
        ("version: 1\n[a, b]: x\n", 2, "mapping keys must be plain text"),
    ],
)
def test_keys_must_be_text(text: str, line: int, message: str) -> None:
    with pytest.raises(ConfigFileError) as caught:
        load_yaml_with_lines(text)

    [finding] = caught.value.findings
    assert finding.line == line
    assert message in finding.message


def test_alias_expansion_is_bounded() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 7)]

    with pytest.raises(ConfigFileError) as caught:
        load_yaml_with_lines("\n".join(lines) + "\n")

    [finding] = caught.value.findings
    assert "once YAML aliases are expanded" in finding.message


def test_recursive_alias_is_refused() -> None:
    with pytest.raises(ConfigFileError) as caught:
        load_yaml_with_lines("version: 1\nloop: &me [1, *me]\n")

    assert "recursive" in caught.value.findings[0].message
    assert caught.value.findings[0].line == 2


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        ("version: 1\ncommunities:\n\t- id: x\n", 3, 1, "indentation must use spaces, not tabs"),
        ("version: 1\n---\nversion: 1\n", 2, 1, "expected a single document"),
        ("version: 1\nname: 'unterminated\n", 3, 1, "YAML syntax error"),
        ("version: 1\nname: a\x00b\n", 2, 8, "is not allowed in a YAML file"),
        ("version: 1\nday: 2026-13-45\n", 2, 6, "not a valid one (month must be in 1..12)"),
        ("version: 1\nref: !Ref Bucket\n", 2, 6, "could not determine a constructor"),
    ],
)
def test_unreadable_yaml_is_reported_with_its_position(
    text: str, line: int, column: int, message: str
) -> None:
    with pytest.raises(ConfigFileError) as caught:
        load_yaml_with_lines(text, source="c.yaml")

    [finding] = caught.value.findings
    assert (finding.line, finding.column) == (line, column)
    assert message in finding.message
    assert str(finding).startswith(f"c.yaml:{line}:{column}: error: ")


def test_deep_nesting_is_refused() -> None:
    with pytest.raises(ConfigFileError) as caught:
        load_yaml_with_lines("a: " + "[" * 100 + "]" * 100 + "\n")

    assert "nested" in caught.value.findings[0].message


def test_load_accepts_a_path_text_or_bytes(tmp_path: Path) -> None:
    text = _minimal_yaml()
    file = tmp_path / "c.yaml"
    file.write_text(text, encoding="utf-8")

    from_path = load_yaml_with_lines(file)
    from_str_path = load_yaml_with_lines(str(file))
    from_text = load_yaml_with_lines(text)
    from_bytes = load_yaml_with_lines(text.encode(), source="named.yaml")

    assert from_path.doc == from_str_path.doc == from_text.doc == from_bytes.doc
    assert (from_path.source, from_text.source, from_bytes.source) == (
        str(file),
        "<string>",
        "named.yaml",
    )
    assert from_path.sha256 == hashlib.sha256(text.encode()).hexdigest()


def test_positions_of_values_keys_and_missing_keys() -> None:
    loaded = load_yaml_with_lines(_minimal_yaml())

    assert loaded.position(("communities", 0, "jobs", 0, "cron")) == (15, 15)  # the value
    assert loaded.position(("communities", 0, "channels")) == (7, 5)  # block list: the key
    assert loaded.position(("communities", 0, "channels", 0)) == (8, 9)
    assert loaded.position(("communities", 0, "jobs", 0, "params", "channels", 0)) == (17, 44)
    # A key that is not in the file resolves to the mapping it belongs in.
    assert loaded.position(("communities", 0, "jobs", 0, "misfire", "grace")) == (14, 9)
    assert loaded.position(("communities", 5)) == (2, 1)  # the list, at its key
    assert loaded.node_at(("communities", 0, "jobs", 0, "misfire")) is None
    assert loaded.node_at(("communities", 0, "id")).value == "demo"


# --------------------------------------------------------------------------- schema


def test_schema_is_a_valid_draft_2020_12_schema_with_id_and_title() -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))

    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] and schema["title"]


def test_every_schema_property_has_a_description() -> None:
    missing: list[str] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if where.endswith("/if"):
                return  # a condition (`type: const file`), not documentation
            for name, sub in node.get("properties", {}).items():
                if "description" not in sub:
                    missing.append(f"{where}/properties/{name}")
            for key, sub in node.items():
                walk(sub, f"{where}/{key}")
        elif isinstance(node, list):
            for index, sub in enumerate(node):
                walk(sub, f"{where}/{index}")

    walk(load_schema(), "#")
    assert missing == []


def test_schema_accepts_the_example_and_its_published_form() -> None:
    validator = Draft202012Validator(load_schema())
    loaded = load_yaml_with_lines(EXAMPLE)
    published = json.loads(published_document(loaded, published_at=NOW))

    assert list(validator.iter_errors(loaded.doc)) == []
    assert list(validator.iter_errors(published)) == []


@pytest.mark.parametrize(
    ("mutate", "keyword"),
    [
        (lambda d: d.update(extra=1), "additionalProperties"),
        (lambda d: d.update(source_sha256="not-hex"), "pattern"),
        (lambda d: d.update(published_at="yesterday"), "pattern"),
        (lambda d: d.update(version=2), "enum"),
        (lambda d: d["communities"][0]["jobs"][0].update(action="shout"), "enum"),
        (lambda d: d["communities"][0]["channels"][2].update(subject="x" * 101), "maxLength"),
        (lambda d: d["communities"][0]["channels"][1].update(path="../etc/passwd"), "pattern"),
        (
            lambda d: d["communities"][0]["jobs"][0]["params"]["channels"].append("console"),
            "uniqueItems",
        ),
    ],
)
def test_schema_is_strict(mutate: Any, keyword: str) -> None:
    doc = copy.deepcopy(load_yaml_with_lines(EXAMPLE).doc)
    mutate(doc)

    errors = list(Draft202012Validator(load_schema()).iter_errors(doc))

    assert [e.validator for e in errors] == [keyword]


# --------------------------------------------------------------------------- published document


def test_published_document_is_deterministic_json() -> None:
    loaded = load_yaml_with_lines(EXAMPLE)

    first = published_document(loaded, published_at=datetime(2026, 3, 1, 15, 0, tzinfo=UTC))
    # The same instant written in UTC+8: the document must not depend on the zone.
    again = published_document(
        load_yaml_with_lines(EXAMPLE),
        published_at=datetime(2026, 3, 1, 23, 0, tzinfo=timezone(timedelta(hours=8))),
    )

    assert first == again
    text = first.decode("utf-8")
    assert "晨读社" in text and "\\u" not in text  # ensure_ascii=False
    doc = json.loads(text)
    assert list(doc) == sorted(doc)
    assert doc["published_at"] == "2026-03-01T15:00:00Z"
    assert doc["source_sha256"] == hashlib.sha256(EXAMPLE.read_bytes()).hexdigest()
    assert (
        json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode() == first
    )


def test_published_document_round_trips_through_parse_config() -> None:
    report = validate_file(EXAMPLE, now=NOW)
    assert report.loaded is not None and report.config is not None

    body = published_document(report.loaded, published_at=NOW)
    config = parse_config(json.loads(body), source="s3://bucket/communities.json")

    assert config.communities == report.config.communities
    assert config.published_at == NOW
    assert config.version_tag == report.loaded.sha256


def test_published_document_needs_an_aware_time_and_a_mapping() -> None:
    with pytest.raises(ValueError, match="naive"):
        published_document(load_yaml_with_lines(EXAMPLE), published_at=datetime(2026, 3, 1))
    with pytest.raises(ValueError, match="only a config mapping"):
        published_document(load_yaml_with_lines("- a\n- b\n"), published_at=NOW)


# --------------------------------------------------------------------------- the command


def test_cmd_validate_ok_prints_warnings_then_summary() -> None:
    out = io.StringIO()

    code = cmd_validate([str(EXAMPLE)], out=out, now=NOW)

    lines = out.getvalue().splitlines()
    assert code == 0
    assert lines[-1] == f"{EXAMPLE}: OK (2 communities, 16 jobs, 2 lotteries), 2 warnings"
    assert all(re.match(rf"^{re.escape(str(EXAMPLE))}:\d+:\d+: warning: ", ln) for ln in lines[:-1])
    assert len(lines) == 3


def test_cmd_validate_errors_exit_1_with_every_finding() -> None:
    out = io.StringIO()
    path = str(FIXTURES / "many_errors.yaml")

    code = cmd_validate([path], out=out, now=NOW)

    lines = out.getvalue().splitlines()
    assert code == 1
    assert lines[-1] == f"{path}: 5 errors"
    assert [int(ln.split(":")[1]) for ln in lines[:-1]] == [12, 15, 23, 24, 25]
    assert all(": error: communities[0]." in ln for ln in lines[:-1])


def test_cmd_validate_several_files_fails_if_any_fails() -> None:
    out = io.StringIO()

    code = cmd_validate(
        [str(FIXTURES / "warn_quiet_hours.yaml"), str(FIXTURES / "bad_cron.yaml")], out=out, now=NOW
    )

    summaries = [
        ln for ln in out.getvalue().splitlines() if ": error:" not in ln and ": warning:" not in ln
    ]
    assert code == 1
    assert summaries == [
        f"{FIXTURES / 'warn_quiet_hours.yaml'}: OK (1 community, 4 jobs), 2 warnings",
        f"{FIXTURES / 'bad_cron.yaml'}: 1 error",
    ]


def test_cmd_validate_warnings_alone_exit_0_and_no_file_is_a_usage_error() -> None:
    assert cmd_validate([str(FIXTURES / "warn_dst.yaml")], out=io.StringIO(), now=NOW) == 0
    out = io.StringIO()
    assert cmd_validate([], out=out) == 2
    assert "no config file given" in out.getvalue()


def test_cmd_validate_defaults_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert cmd_validate([str(FIXTURES / "bad_cron.yaml")], now=NOW) == 1

    assert capsys.readouterr().out.endswith("bad_cron.yaml: 1 error\n")


def test_finding_without_position_or_path() -> None:
    assert str(Finding("c.yaml", None, None, (), "boom")) == "c.yaml: error: boom"
    assert str(Finding("c.yaml", 3, 7, (), "bad", "warning")) == "c.yaml:3:7: warning: bad"
    assert Finding("c.yaml", 1, 1, ("communities", 0, "jobs", 2, "id"), "x").location == (
        "communities[0].jobs[2].id"
    )


# --------------------------------------------------------------------------- robustness


def _json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-3, 3),
        st.text(max_size=6),
        st.sampled_from(["console", "morning", "30 7 * * *", "07:00", "post"]),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
        ),
        max_leaves=6,
    )


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += _paths(value, (*prefix, index))
    return out


_BASE_DOC = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
_BASE_DOC["communities"] = _BASE_DOC["communities"][1:]  # one community keeps it quick
_BASE_PATHS = _paths(_BASE_DOC)[1:]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(_BASE_PATHS), _json_values()), min_size=1, max_size=3))
def test_any_mutation_yields_findings_never_a_crash(
    mutations: list[tuple[tuple[Any, ...], Any]],
) -> None:
    doc = copy.deepcopy(_BASE_DOC)
    for path, value in mutations:
        parent = doc
        try:
            for part in path[:-1]:
                parent = parent[part]
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation replaced an ancestor
        key = path[-1]
        if (isinstance(parent, dict) and isinstance(key, str)) or (
            isinstance(parent, list) and isinstance(key, int) and key < len(parent)
        ):
            parent[key] = value
    text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)

    report = validate_loaded(load_yaml_with_lines(text), now=NOW)

    line_count = text.count("\n") + 1
    for finding in report.findings:
        assert finding.line is not None and 1 <= finding.line <= line_count
        assert finding.message
    assert report.ok == (report.config is not None)


# --------------------------------------------------------------------------- helpers


def _minimal_yaml() -> str:
    return (
        "version: 1\n"  # 1
        "communities:\n"  # 2
        "  - id: demo\n"  # 3
        "    name: Demo\n"  # 4
        "    timezone: Asia/Shanghai\n"  # 5
        "    quiet_hours: {start: '00:00', end: '07:00'}\n"  # 6
        "    channels:\n"  # 7
        "      - {id: console, type: console}\n"  # 8
        "    pools:\n"  # 9
        "      - id: morning\n"  # 10
        "        items:\n"  # 11
        "          - {id: m1, text: 早安}\n"  # 12
        "    jobs:\n"  # 13
        "      - id: morning-post\n"  # 14
        "        cron: '30 7 * * *'\n"  # 15
        "        action: post\n"  # 16
        '        params: {pool: morning, channels: [console], template: "{content}"}\n'  # 17
    )


def test_a_shape_error_does_not_hide_semantic_errors_in_the_same_community() -> None:
    # The schema reports the wrong types; the semantic checks still run on the rest
    # of the community (the broken channel and job replaced by stand-ins that keep
    # their ids), so the unknown pool of the next job is reported too, and the job
    # that names the broken channel is not told that the channel does not exist.
    text = (
        _minimal_yaml()
        .replace(
            "      - {id: console, type: console}\n",
            "      - {id: console, type: console}\n      - {id: chat, type: sns, subject: 5}\n",
        )
        .replace("        action: post\n", "        action: post\n        enabled: maybe\n")
        + "      - id: evening-post\n"
        "        cron: '0 19 * * *'\n"
        "        action: post\n"
        '        params: {pool: evening, channels: [chat], template: "{content}"}\n'
    )

    report = validate_loaded(load_yaml_with_lines(text), now=NOW)

    assert [(f.line, f.location, f.message.split(" (")[0]) for f in report.errors] == [
        (9, "communities[0].channels[1].subject", "expected a string, got the integer 5"),
        (18, "communities[0].jobs[0].enabled", "expected a boolean"),
        (23, "communities[0].jobs[1].params.pool", "unknown pool 'evening'"),
    ]


def test_a_secret_in_a_chat_channel_points_to_ssm() -> None:
    text = _minimal_yaml().replace(
        "{id: console, type: console}",
        "{id: console, type: console}\n      - {id: group, type: wecom, webhook_url: x}",
    )

    report = validate_loaded(load_yaml_with_lines(text), now=NOW)

    assert [(f.line, f.location) for f in report.errors] == [
        (9, "communities[0].channels[1].webhook_url")
    ]
    assert "SSM SecureString parameter <ChannelSecretsPrefix>/demo/group" in (
        report.errors[0].message
    )
