"""`autopilot simulate --secrets FILE`: point chat channels at your own test endpoints.

The file is one JSON object in the shape of the channels' SSM parameters::

    {
      "sunrise/wecom-group": {"webhook_url": "http://127.0.0.1:8123/cgi-bin/webhook/send?key=t"},
      "/community-autopilot/channels/sunrise/tg": {"bot_token": "123:abc", "chat_id": "-100"}
    }

A key is ``<community>/<channel>`` (a channel of the config; the simulation puts
it under the template's ``ChannelSecretsPrefix``) or a full parameter name
starting with ``/``. A value is an object of strings — what the parameter would
hold. The file is read and checked completely before anything runs: a mistake
is one clear error naming the file and the key, and the simulation never
starts half-configured.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from autopilot.config.model import Config

# More than any honest secrets file; refusing it beats reading a wrong file whole.
MAX_FILE_BYTES = 1024 * 1024
# An SSM standard-tier parameter holds at most 4 KB: the simulation stores each value as one.
MAX_VALUE_BYTES = 4096
# SSM parameter names: letters, digits and _.-/ ; at most 1011 characters.
SSM_NAME = re.compile(r"/[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*")
MAX_SSM_NAME = 1011


class SecretsFileError(ValueError):
    """The secrets file cannot be used; the message names the file and what is wrong."""


def _control_characters(text: str) -> list[str]:
    """The control and format characters in ``text`` (as ``U+XXXX``), in order."""
    return [
        f"U+{ord(ch):04X}" for ch in text if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp")
    ]


def _refuse_duplicates(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """``json`` object hook: a key given twice is an error, not "the last one wins"."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise SecretsFileError(f"key {key!r} appears twice")
        out[key] = value
    return out


def parse_secrets(text: str, *, source: str) -> dict[str, dict[str, str]]:
    """The secrets in ``text`` (a JSON document), checked for shape; ``source`` names it.

    Raises :class:`SecretsFileError` for malformed JSON, a document that is not
    an object, a key that is empty, has control characters or is not
    ``<community>/<channel>`` or a valid ``/`` parameter name, and a value that is
    not a non-empty object of strings (or too large for an SSM parameter).
    """
    try:
        document = json.loads(text, object_pairs_hook=_refuse_duplicates)
    except SecretsFileError as exc:
        raise SecretsFileError(f"{source}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise SecretsFileError(
            f"{source}: not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    except RecursionError:
        raise SecretsFileError(f"{source}: not valid JSON: nested too deeply") from None
    if not isinstance(document, dict):
        raise SecretsFileError(
            f"{source}: must be a JSON object of "
            '{"<community>/<channel>": {"webhook_url": "…"}}, not a ' + _kind(document)
        )
    secrets: dict[str, dict[str, str]] = {}
    for key, value in document.items():
        where = f"{source}: key {key!r}"
        _check_name(key, where)
        if not isinstance(value, dict):
            raise SecretsFileError(
                f"{where}: the value must be an object of strings such as "
                f'{{"webhook_url": "http://…"}}, not a {_kind(value)}'
            )
        if not value:
            raise SecretsFileError(f"{where}: the object is empty (what would the channel read?)")
        for field, item in value.items():
            if not field or _control_characters(field):
                raise SecretsFileError(
                    f"{where}: field {field!r} is empty or has control characters"
                )
            if not isinstance(item, str):
                raise SecretsFileError(
                    f"{where}: field {field!r} must be a string, not a {_kind(item)}"
                )
        size = len(json.dumps(value, ensure_ascii=False).encode("utf-8"))
        if size > MAX_VALUE_BYTES:
            raise SecretsFileError(
                f"{where}: {size} bytes as JSON, over the {MAX_VALUE_BYTES} bytes of an SSM "
                "parameter"
            )
        secrets[key] = dict(value)
    return secrets


def _check_name(key: str, where: str) -> None:
    if not key:
        raise SecretsFileError(f"{where}: an empty key (write <community>/<channel>)")
    bad = _control_characters(key)
    if bad:
        raise SecretsFileError(f"{where}: the key has control characters ({', '.join(bad)})")
    if key.startswith("/"):
        if len(key) > MAX_SSM_NAME or not SSM_NAME.fullmatch(key):
            raise SecretsFileError(
                f"{where}: not an SSM parameter name (letters, digits, _ . - separated by "
                f"single /, at most {MAX_SSM_NAME} characters)"
            )
        return
    community, slash, channel = key.partition("/")
    if not slash or not community or not channel or "/" in channel:
        raise SecretsFileError(
            f"{where}: write <community>/<channel> (e.g. sunrise/wecom-group) or a full "
            "parameter name starting with /"
        )


def check_channels(secrets: dict[str, dict[str, str]], config: Config, *, source: str) -> None:
    """Every ``<community>/<channel>`` key names a channel of ``config``.

    A typo would otherwise seed a parameter nothing reads while the real channel
    fails for a missing secret, days into the simulated run. Full ``/`` names are
    the user's to choose and are not checked.
    """
    for key in secrets:
        if key.startswith("/"):
            continue
        community_id, _, channel_id = key.partition("/")
        community = next((c for c in config.communities if c.id == community_id), None)
        if community is None:
            known = ", ".join(sorted(c.id for c in config.communities)) or "none"
            raise SecretsFileError(
                f"{source}: key {key!r}: no community {community_id!r} in the config "
                f"(communities: {known})"
            )
        if all(ch.id != channel_id for ch in community.channels):
            known = ", ".join(sorted(ch.id for ch in community.channels)) or "none"
            raise SecretsFileError(
                f"{source}: key {key!r}: community {community_id!r} has no channel "
                f"{channel_id!r} (channels: {known})"
            )


def load_secrets_file(path: str, config: Config | None) -> dict[str, dict[str, str]]:
    """Read, parse and check ``path``; channel names are checked when ``config`` is given."""
    source = str(path)
    try:
        file = Path(path)
        if file.is_dir():
            raise SecretsFileError(f"{source}: is a directory, not a JSON file")
        with file.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except SecretsFileError:
        raise
    except OSError as exc:
        raise SecretsFileError(f"{source}: cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise SecretsFileError(f"{source}: larger than {MAX_FILE_BYTES} bytes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SecretsFileError(f"{source}: not UTF-8 (byte {exc.start})") from None
    secrets = parse_secrets(text, source=source)
    if config is not None:
        check_channels(secrets, config, source=source)
    return secrets


def _kind(value: Any) -> str:
    """A JSON value's kind, in JSON's words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object"
