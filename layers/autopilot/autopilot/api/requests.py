"""Strict parsing of HTTP API v2 requests: every refusal names the field and writes nothing.

The API refuses input it does not understand instead of guessing: a body that
is not a JSON object, a field of the wrong type (``true`` is not a number, ``"1"``
is not a boolean), a field or query parameter it does not know (a typo such as
``comunity`` must not silently fall back to a default), or a body over
:data:`MAX_BODY_BYTES`. Parsing happens before any service call, so a refused
request never reaches DynamoDB.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from autopilot.config.model import Community, Config
from autopilot.errors import BadRequest, RequestError

# Every body of this API is a handful of short fields; 16 KiB leaves room for
# long display names in any script and refuses accidental (or hostile) uploads.
MAX_BODY_BYTES = 16 * 1024
MAX_TEXT = 200
MAX_MEMBER_ID = 128
_BAD_ID = re.compile(r"[#\s\x00-\x1f\x7f]")


class PayloadTooLarge(RequestError):
    """The body is larger than :data:`MAX_BODY_BYTES`."""

    status = 413


class UnknownCommunity(RequestError):
    """The request names a community the published config does not define."""

    status = 404


@dataclass(frozen=True)
class Field:
    """One expected body field: its JSON type and whether it must be present."""

    kind: type
    required: bool = False


_TYPE_NAMES = {
    str: "a string",
    bool: "a boolean (true/false)",
    int: "an integer",
    dict: "an object",
}


def raw_body(event: Mapping[str, Any]) -> bytes:
    """The request body as bytes, exactly as sent (base64 decoded); 413 if it is too large."""
    body = event.get("body")
    if body is None:
        return b""
    if event.get("isBase64Encoded"):
        try:
            data = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("the body is not valid base64") from None
    else:
        data = str(body).encode("utf-8")
    if len(data) > MAX_BODY_BYTES:
        raise PayloadTooLarge(
            f"the body is {len(data)} bytes; at most {MAX_BODY_BYTES} bytes are accepted"
        )
    return data


def json_object(event: Mapping[str, Any]) -> dict[str, Any]:
    """The body parsed as a JSON object (400 for empty, malformed or non-object bodies)."""
    data = raw_body(event)
    if not data.strip():
        raise BadRequest("the body is empty; send a JSON object")
    try:
        document = json.loads(data)
    except UnicodeDecodeError:
        raise BadRequest("the body is not UTF-8 text") from None
    except ValueError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise BadRequest(f"the body must be a JSON object, not {type(document).__name__}")
    return document


def fields(
    document: Mapping[str, Any], spec: Mapping[str, Field], *, allow_extra: bool = False
) -> dict[str, Any]:
    """Check ``document`` against ``spec``: types, required fields, no unknown fields.

    Returns the known fields that are present (absent optional ones are left out).
    With ``allow_extra`` the other fields are returned too, for a service that
    validates them itself (member profiles).
    """
    if not allow_extra:
        unknown = sorted(set(document) - set(spec))
        if unknown:
            raise BadRequest(f"unknown field {unknown[0]!r} (allowed: {', '.join(sorted(spec))})")
    out: dict[str, Any] = {}
    for name, field in spec.items():
        if name not in document or document[name] is None:
            if field.required:
                raise BadRequest(f"missing required field {name!r}")
            continue
        value = document[name]
        # type() not isinstance(): JSON true must not pass as the integer 1.
        if type(value) is not field.kind:
            raise BadRequest(f"{name} must be {_TYPE_NAMES.get(field.kind, field.kind.__name__)}")
        if isinstance(value, str) and (not value.strip() or len(value) > MAX_TEXT):
            raise BadRequest(f"{name} must be 1-{MAX_TEXT} characters")
        out[name] = value
    if allow_extra:
        out.update({k: v for k, v in document.items() if k not in spec})
    return out


def query(
    event: Mapping[str, Any], allowed: set[str], required: frozenset[str] | set[str] = frozenset()
) -> dict[str, str]:
    """The query parameters; 400 for an unknown or missing one."""
    params = dict(event.get("queryStringParameters") or {})
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise BadRequest(
            f"unknown query parameter {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})"
        )
    for name in sorted(required):
        if not str(params.get(name) or "").strip():
            raise BadRequest(f"missing query parameter {name!r}")
    return {k: str(v) for k, v in params.items()}


def day(name: str, text: str) -> date:
    """A ``YYYY-MM-DD`` parameter (400 naming ``name`` otherwise)."""
    try:
        if len(text) != 10:
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"{name} must be a date YYYY-MM-DD, got {text[:40]!r}") from None


def integer(name: str, text: str, low: int, high: int) -> int:
    """An integer parameter within ``low``..``high``."""
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise BadRequest(f"{name} must be an integer {low}-{high}, got {text[:40]!r}")
    return int(text)


def choice(name: str, text: str, options: tuple[str, ...]) -> str:
    """A parameter that must be one of ``options``."""
    if text not in options:
        raise BadRequest(f"{name} must be one of {', '.join(options)}, got {text[:40]!r}")
    return text


def member_id(name: str, text: str) -> str:
    """A member id: 1-128 characters without ``#`` or control characters.

    ``#`` separates the parts of the ledger's keys, so an id containing it could
    address another member's items.
    """
    if not 1 <= len(text) <= MAX_MEMBER_ID or _BAD_ID.search(text):
        raise BadRequest(
            f"{name} must be 1-{MAX_MEMBER_ID} characters without '#', spaces or control characters"
        )
    return text


def header(event: Mapping[str, Any], name: str) -> str | None:
    """A request header (API Gateway lower-cases names in v2 events)."""
    headers = event.get("headers") or {}
    value = headers.get(name.lower())
    return None if value is None else str(value)


def community_of(config: Config, community_id: str) -> Community:
    """The community ``community_id`` of the published config; 404 if it does not exist."""
    try:
        return config.community(community_id)
    except KeyError:
        raise UnknownCommunity(
            f"unknown community {community_id[:64]!r}", code="UnknownCommunity"
        ) from None
