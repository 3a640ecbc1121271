"""`autopilot channel test NAME` against a fake platform, with the secret in (moto) SSM."""

from __future__ import annotations

import json

from autopilot.aws import client

from autopilot_cli.main import main

from ..unit.channels.platforms import PLATFORMS, SECRET_VALUES, FakePlatform, Reply

CONFIG = """\
version: 1
communities:
  - id: club
    name: Club
    timezone: Europe/London
    channels:
      - {id: tg, type: telegram, parse_mode: HTML}
      - {id: log, type: console}
    pools:
      - id: p
        items: [{id: a, text: hello}]
    jobs:
      - id: j
        cron: "0 9 * * *"
        action: post
        params: {pool: p, channels: [tg], template: "{content}"}
"""


def test_channel_test_sends_and_prints_the_platform_answer(local_runtime, tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    fake = FakePlatform(PLATFORMS["telegram"].check)
    try:
        client("ssm", "us-east-1").put_parameter(
            Name="/community-autopilot/channels/club/tg",
            Value=json.dumps(PLATFORMS["telegram"].secret(fake.base)),
            Type="SecureString",
        )
        code = main(["channel", "test", "tg", "--config", str(config), "--text", "ping"])
        out = capsys.readouterr().out
        assert code == 0, out
        assert "status:     published" in out and "message id:" in out
        assert "secret: SSM parameter /community-autopilot/channels/club/tg" in out
        assert fake.accepted[0].json()["text"] == "ping"

        fake.queue(
            Reply(403, {"ok": False, "error_code": 403, "description": "Forbidden: bot was kicked"})
        )
        code = main(["channel", "test", "tg", "--config", str(config)])
        out = capsys.readouterr().out
        assert code == 1 and "Forbidden: bot was kicked" in out.split("error:")[1]
        assert not any(secret in out for secret in SECRET_VALUES)
    finally:
        fake.close()


def test_channel_test_explains_a_missing_secret(local_runtime, tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    assert main(["channel", "test", "tg", "--config", str(config)]) == 1
    assert "create the SecureString parameter /community-autopilot/channels/club/tg" in (
        capsys.readouterr().out
    )
    assert main(["channel", "test", "nope", "--config", str(config)]) == 1


def test_config_refuses_secrets_and_points_to_ssm(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(
        CONFIG.replace(
            "{id: tg, type: telegram, parse_mode: HTML}",
            "{id: tg, type: telegram, bot_token: '123:abc', parse_mode: Bold}",
        ),
        encoding="utf-8",
    )
    assert main(["config", "validate", str(config)]) == 1
    out = capsys.readouterr().out
    assert "'bot_token' must not be in the config file" in out and "SSM" in out
    assert "parse_mode" in out
