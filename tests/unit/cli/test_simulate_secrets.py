"""`autopilot simulate --secrets FILE`: the file is checked whole before anything runs.

Every mistake is one error naming the file and the offending key, with exit
code 2 and no simulation started (no output directory written).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autopilot_cli.commands.simulate_secrets import (
    MAX_VALUE_BYTES,
    SecretsFileError,
    load_secrets_file,
    parse_secrets,
)
from autopilot_cli.configfile import validate_file
from autopilot_cli.main import main

CONFIG = """\
version: 1
communities:
  - id: sunrise
    name: 晨读社
    timezone: Asia/Shanghai
    locale: zh-CN
    channels:
      - {id: wecom-group, type: wecom}
      - {id: group-log, type: file, path: sunrise/group.jsonl}
    pools:
      - id: noon
        items:
          - {id: n1, text: 午安}
    jobs:
      - id: noon-post
        cron: "0 12 * * *"
        action: post
        params: {pool: noon, channels: [wecom-group], template: "{content}"}
"""

GOOD = {
    "sunrise/wecom-group": {"webhook_url": "http://127.0.0.1:8123/cgi-bin/webhook/send?key=k"},
    "/community-autopilot/channels/sunrise/other": {"bot_token": "1:a", "chat_id": "-100"},
}


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "communities.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def write(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "secrets.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def test_a_good_file_gives_the_secrets_as_they_are(tmp_path, config_path):
    config = validate_file(str(config_path)).config
    path = write(tmp_path, json.dumps(GOOD))
    assert load_secrets_file(str(path), config) == GOOD


def test_a_utf8_bom_is_accepted(tmp_path):
    path = write(tmp_path, b"\xef\xbb\xbf" + json.dumps(GOOD).encode())
    assert load_secrets_file(str(path), None) == GOOD


@pytest.mark.parametrize(
    ("text", "named", "problem"),
    [
        ('{"sunrise/wecom-group": ', None, "not valid JSON"),
        ('{"a/b": {"webhook_url": "x"}, "a/b": {"webhook_url": "y"}}', "'a/b'", "appears twice"),
        ("[]", None, "must be a JSON object"),
        ('"sunrise/wecom-group"', None, "not a string"),
        ('{"sunrise/wecom-group": "http://x"}', "'sunrise/wecom-group'", "not a string"),
        ('{"sunrise/wecom-group": ["http://x"]}', "'sunrise/wecom-group'", "not a list"),
        ('{"sunrise/wecom-group": {}}', "'sunrise/wecom-group'", "empty"),
        ('{"sunrise/wecom-group": {"webhook_url": 8123}}', "'webhook_url'", "not a number"),
        ('{"sunrise/wecom-group": {"webhook_url": null}}', "'webhook_url'", "not a null"),
        ('{"sunrise/wecom-group": {"a": {"b": "c"}}}', "'a'", "not a object"),
        ('{"": {"webhook_url": "x"}}', "key ''", "empty key"),
        ('{"sunrise/wecom\\u0000group": {"webhook_url": "x"}}', "\\x00", "U+0000"),
        ('{"sunrise/wecom-group\\n": {"webhook_url": "x"}}', "\\n", "control characters"),
        ('{"sunrise/\\u202ewecom": {"webhook_url": "x"}}', "sunrise/", "U+202E"),
        ('{"sunrise": {"webhook_url": "x"}}', "'sunrise'", "<community>/<channel>"),
        ('{"a/b/c": {"webhook_url": "x"}}', "'a/b/c'", "<community>/<channel>"),
        ('{"/bad name": {"webhook_url": "x"}}', "'/bad name'", "SSM parameter name"),
        ('{"/a//b": {"webhook_url": "x"}}', "'/a//b'", "SSM parameter name"),
        ('{"a/b": {"w\\u0007": "x"}}', "\\x07", "control characters"),
    ],
)
def test_bad_shapes_name_the_file_and_the_key(text, named, problem):
    with pytest.raises(SecretsFileError) as refused:
        parse_secrets(text, source="my-secrets.json")
    message = str(refused.value)
    assert message.startswith("my-secrets.json: ")
    assert problem in message
    if named is not None:
        assert named in message


def test_a_value_too_large_for_an_ssm_parameter_is_refused():
    text = json.dumps({"a/b": {"webhook_url": "x" * MAX_VALUE_BYTES}})
    with pytest.raises(SecretsFileError, match=r"'a/b'.*SSM parameter"):
        parse_secrets(text, source="s.json")


def test_deeply_nested_json_is_an_error_not_a_crash():
    with pytest.raises(SecretsFileError, match=r"s\.json"):
        parse_secrets("[" * 100_000 + "]" * 100_000, source="s.json")


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("moon/wecom-group", "no community 'moon' in the config (communities: sunrise)"),
        ("sunrise/wecom", "has no channel 'wecom' (channels: group-log, wecom-group)"),
    ],
)
def test_unknown_community_or_channel_is_named(tmp_path, config_path, key, problem):
    config = validate_file(str(config_path)).config
    path = write(tmp_path, json.dumps({key: {"webhook_url": "http://x"}}))
    with pytest.raises(SecretsFileError) as refused:
        load_secrets_file(str(path), config)
    assert str(refused.value).startswith(f"{path}: key {key!r}: ")
    assert problem in str(refused.value)


def test_unreadable_files_are_named(tmp_path):
    with pytest.raises(SecretsFileError, match=r"missing\.json: cannot read"):
        load_secrets_file(str(tmp_path / "missing.json"), None)
    with pytest.raises(SecretsFileError, match="is a directory"):
        load_secrets_file(str(tmp_path), None)
    with pytest.raises(SecretsFileError, match="not UTF-8"):
        load_secrets_file(str(write(tmp_path, b'{"a/b": {"w": "\xff"}}')), None)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"sunrise/wecom-group": {"webhook_url": 1}}', "key 'sunrise/wecom-group'"),
        ('{"sunrise/nope": {"webhook_url": "http://x"}}', "no channel 'nope'"),
        ("{not json", "not valid JSON"),
    ],
)
def test_the_cli_exits_2_and_runs_nothing(tmp_path, config_path, capsys, content, expected):
    secrets = write(tmp_path, content)
    out = tmp_path / "sim"
    code = main(
        [
            "simulate",
            "--config",
            str(config_path),
            "--start",
            "2027-03-08T00:00:00Z",
            "--days",
            "1",
            "--out",
            str(out),
            "--secrets",
            str(secrets),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert f"--secrets {secrets}: " in err and expected in err
    assert not out.exists()  # nothing ran


def test_the_cli_names_a_missing_file(tmp_path, config_path, capsys):
    out = tmp_path / "sim"
    argv = ["simulate", "--config", str(config_path), "--out", str(out)]
    assert main([*argv, "--secrets", str(tmp_path / "nope.json")]) == 2
    assert "nope.json: cannot read" in capsys.readouterr().err
    assert not out.exists()
