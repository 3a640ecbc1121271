"""Strict parsing of HTTP API v2 requests: every refusal names the field and writes nothing.

The API refuses input it does not understand instead of guessing: a body that
is not a JSON object, a field of the wrong type (``true`` is not a number, ``"1"``
is not a boolean), a field or query parameter it does not know (a typo such as
``comunity`` must not silently fall back to a default), or a body over
:data:`MAX_BODY_BYTES`. Parsing happens before any service call, so a refused
request never reaches DynamoDB.

Hostile input is refused here too, once for every route and webhook, so that no
later layer can fail on it with a 500: JSON nested deeper than
:data:`MAX_JSON_DEPTH` (Python's parser would recurse until ``RecursionError``),
``NaN``/``Infinity`` and numbers that overflow a float, text with control
characters or lone surrogates (``"\\ud800"`` cannot even be encoded to UTF-8 for
DynamoDB), integers beyond :data:`MAX_INT`, dates outside
:data:`MIN_DAY`..:data:`MAX_DAY`, and ids that break the one id rule
(:func:`member_id`, :func:`request_key`).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import unquote_to_bytes

from autopilot.config.document import ID_RE
from autopilot.config.model import Community, Config, Lottery
from autopilot.errors import BadRequest, RequestError

# Every body of this API is a handful of short fields; 16 KiB leaves room for
# long display names in any script and refuses accidental (or hostile) uploads.
MAX_BODY_BYTES = 16 * 1024
MAX_TEXT = 200
MAX_MEMBER_ID = 128
MAX_REQUEST_KEY = 128
# Our bodies are flat; Telegram updates nest about 6 levels. Python's json module
# recurses once per level, so depth is bounded before it parses (RecursionError).
MAX_JSON_DEPTH = 64
# Every integer the API accepts (points, amounts) is far below this; DynamoDB
# refuses numbers of more than 38 digits, and sums of many values must stay exact.
MAX_INT = 1_000_000_000
# One adjustment moves at most a billion points either way (docs/api.md).
MAX_ADJUSTMENT = MAX_INT
MAX_QUERY_VALUE = 1024
# A lottery's external value (a public randomness beacon round), as the draw bounds it.
MAX_EXTERNAL_VALUE_BYTES = 1024
# Ledger periods: wide enough for any community's history and future, far enough
# from date.min/date.max that a day's UTC bounds and "next day" never overflow.
MIN_DAY = date(1970, 1, 1)
MAX_DAY = date(2999, 12, 31)
# In free text: C0 controls except tab/newline/CR, DEL, C1 controls, lone surrogates.
_CONFIG_ID = re.compile(ID_RE)
_BAD_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


class PayloadTooLarge(RequestError):
    """The body is larger than :data:`MAX_BODY_BYTES`."""

    status = 413


class UnknownCommunity(RequestError):
    """The request names a community the published config does not define."""

    status = 404


@dataclass(frozen=True)
class Field:
    """One expected body field: its JSON type, whether it must be present, for
    integers the accepted range (default ±:data:`MAX_INT`) and for strings the
    longest accepted (default :data:`MAX_TEXT` characters)."""

    kind: type
    required: bool = False
    low: int = -MAX_INT
    high: int = MAX_INT
    max_chars: int = MAX_TEXT


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
        # surrogatepass: a lone surrogate becomes bytes the UTF-8 check refuses (400).
        data = str(body).encode("utf-8", "surrogatepass")
    if len(data) > MAX_BODY_BYTES:
        raise PayloadTooLarge(
            f"the body is {len(data)} bytes; at most {MAX_BODY_BYTES} bytes are accepted"
        )
    return data


def json_depth(text: str) -> int:
    """How deeply arrays/objects nest in JSON ``text`` (brackets inside strings ignored).

    One linear pass without parsing, so it is safe on any input: used to refuse
    deep documents before :func:`json.loads` recurses into them.
    """
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def plain_text(what: str, value: str) -> str:
    """``value``, unless it has a control character (other than tab, newline, CR)
    or a lone surrogate: then :class:`BadRequest` naming ``what``."""
    if _BAD_TEXT.search(value):
        raise BadRequest(
            f"{what} contains a control character or an unpaired surrogate "
            "(tab, newline and paired surrogates are fine)"
        )
    return value


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _check_strings(value: Any, what: str, path: str = "") -> None:
    # Depth is bounded by MAX_JSON_DEPTH, so this recursion is too.
    if isinstance(value, str):
        plain_text(f"{what}, at {path}," if path else what, value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_strings(key, f"a field name of {what}")
            _check_strings(item, what, f"{path}.{key[:40]}" if path else key[:40])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_strings(item, what, f"{path}[{index}]")


def json_document(data: bytes, what: str = "the body") -> Any:
    """Parse ``data`` as strict JSON text in UTF-8; :class:`BadRequest` naming ``what`` otherwise.

    Refused: bytes that are not UTF-8, a byte order mark, nesting deeper than
    :data:`MAX_JSON_DEPTH`, ``NaN``/``Infinity`` and numbers that overflow a
    float, integers of more than 4300 digits, and any string (field names too)
    with a control character other than tab/newline/CR or a lone surrogate.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(f"{what} is not UTF-8 text") from None
    if text.startswith("\ufeff"):
        raise BadRequest(f"{what} starts with a byte order mark; send UTF-8 JSON without one")
    if json_depth(text) > MAX_JSON_DEPTH:
        raise BadRequest(f"{what} nests arrays/objects deeper than {MAX_JSON_DEPTH} levels")
    try:
        document = json.loads(text, parse_float=_finite_float, parse_constant=_no_constant)
    except RecursionError:  # unreachable after json_depth; kept so no parser path can 500
        raise BadRequest(f"{what} nests too deeply") from None
    except ValueError as exc:
        raise BadRequest(f"{what} is not valid JSON: {str(exc)[:200]}") from None
    _check_strings(document, what)
    return document


def json_object(event: Mapping[str, Any]) -> dict[str, Any]:
    """The body parsed as a JSON object (400 for empty, malformed or non-object bodies).

    See :func:`json_document` for what is refused.
    """
    data = raw_body(event)
    if not data.strip():
        raise BadRequest("the body is empty; send a JSON object")
    document = json_document(data)
    if not isinstance(document, dict):
        raise BadRequest(f"the body must be a JSON object, not {_json_type(document)}")
    return document


def _json_type(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number"}
    return "null" if value is None else names.get(type(value), "a number")


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
            raise BadRequest(
                f"unknown field {unknown[0][:40]!r} (allowed: {', '.join(sorted(spec))})"
            )
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
        if isinstance(value, str) and (not value.strip() or len(value) > field.max_chars):
            raise BadRequest(f"{name} must be 1-{field.max_chars} characters")
        if type(value) is int and not field.low <= value <= field.high:
            raise BadRequest(f"{name} must be an integer from {field.low:,} to {field.high:,}")
        out[name] = value
    if allow_extra:
        out.update({k: v for k, v in document.items() if k not in spec})
    return out


def query(
    event: Mapping[str, Any], allowed: set[str], required: frozenset[str] | set[str] = frozenset()
) -> dict[str, str]:
    """The query parameters; 400 for an unknown or missing one, or a malformed value.

    A value longer than :data:`MAX_QUERY_VALUE` or with a control character or
    lone surrogate is refused. (API Gateway joins repeated keys with commas, so
    ``?a=1&a=2`` arrives as ``"1,2"`` and fails the parameter's own check.)
    """
    params = dict(event.get("queryStringParameters") or {})
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise BadRequest(
            f"unknown query parameter {str(unknown[0])[:40]!r} "
            f"(allowed: {', '.join(sorted(allowed))})"
        )
    out = {}
    for name, value in params.items():
        text = str(value)
        if len(text) > MAX_QUERY_VALUE or _BAD_TEXT.search(text):
            raise BadRequest(
                f"query parameter {name!r} must be at most {MAX_QUERY_VALUE} characters "
                "without control characters"
            )
        out[name] = text
    for name in sorted(required):
        if not out.get(name, "").strip():
            raise BadRequest(f"missing query parameter {name!r}")
    return out


def day(name: str, text: str) -> date:
    """A ``YYYY-MM-DD`` parameter from :data:`MIN_DAY` to :data:`MAX_DAY` (400 otherwise).

    The range keeps every date computation downstream (a local day's UTC bounds,
    the next day) far from the ends of the calendar, where they would overflow.
    """
    try:
        if len(text) != 10 or not text.isascii():
            raise ValueError(text)
        value = date.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"{name} must be a date YYYY-MM-DD, got {text[:40]!r}") from None
    if not MIN_DAY <= value <= MAX_DAY:
        raise BadRequest(f"{name} must be a date from {MIN_DAY} to {MAX_DAY}, got {text!r}")
    return value


def integer(name: str, text: str, low: int, high: int) -> int:
    """An integer parameter within ``low``..``high`` (plain ASCII digits)."""
    # Length first: int() of thousands of digits is slow, and refused past 4300.
    if (
        not (text.isascii() and text.isdigit())
        or len(text) > len(str(high)) + 1
        or not low <= int(text) <= high
    ):
        raise BadRequest(f"{name} must be an integer {low}-{high}, got {text[:40]!r}")
    return int(text)


def choice(name: str, text: str, options: tuple[str, ...]) -> str:
    """A parameter that must be one of ``options``."""
    if text not in options:
        raise BadRequest(f"{name} must be one of {', '.join(options)}, got {text[:40]!r}")
    return text


def _noncharacter(code: int) -> bool:
    return 0xFDD0 <= code <= 0xFDEF or (code & 0xFFFE) == 0xFFFE


def _id_char_refused(ch: str, *, spaces: bool) -> bool:
    """Whether ``ch`` may not appear in an id (see :func:`member_id`)."""
    if ch == "#" or _noncharacter(ord(ch)):
        return True
    category = unicodedata.category(ch)
    if category in ("Cc", "Cf", "Cs", "Zl", "Zp"):
        return True
    return category == "Zs" and not (spaces and ch == " ")


def member_id(name: str, text: str) -> str:
    """A member id: 1-128 characters, no ``#``, whitespace, control or format characters.

    The one rule for every id that enters (token ``sub``, path, query, body,
    chat user ids): refused are ``#`` (it separates the parts of the ledger's
    keys, so an id containing it could address another member's items), every
    Unicode space and line separator, control characters (C0, DEL, C1),
    format characters (zero-width, bidi overrides, BOM), lone surrogates and
    noncharacters. Ids are never truncated: a longer one is refused.
    """
    if not 1 <= len(text) <= MAX_MEMBER_ID or any(
        _id_char_refused(ch, spaces=False) for ch in text
    ):
        raise BadRequest(
            f"{name} must be 1-{MAX_MEMBER_ID} characters without '#', spaces, "
            "control or format characters"
        )
    return text


def request_key(name: str, text: str) -> str:
    """An idempotency key or reference (``request_id``, ``Idempotency-Key``, ``ref``).

    Like :func:`member_id` (1-128 characters, no ``#``, control or format
    characters), except that inner plain spaces are allowed; surrounding
    whitespace is refused rather than trimmed, so one key is never two.
    """
    if (
        not 1 <= len(text) <= MAX_REQUEST_KEY
        or text != text.strip()
        or any(_id_char_refused(ch, spaces=True) for ch in text)
    ):
        raise BadRequest(
            f"{name} must be 1-{MAX_REQUEST_KEY} characters without '#', control characters "
            "or surrounding spaces"
        )
    return text


def idempotency_key(event: Mapping[str, Any], request_id: str | None) -> str:
    """The request's idempotency key: the ``Idempotency-Key`` header or the body's
    ``request_id`` (both :func:`request_key`); 400 if neither is sent or they differ."""
    key = header(event, "Idempotency-Key")
    if key is not None:
        key = request_key("the Idempotency-Key header", key)
    if request_id is not None:
        request_id = request_key("request_id", request_id)
    if key and request_id and key != request_id:
        raise BadRequest("request_id and the Idempotency-Key header differ; send one")
    chosen = request_id or key
    if not chosen:
        raise BadRequest("send a request_id field or an Idempotency-Key header (retries are safe)")
    return chosen


def path_parameter(name: str, raw: str) -> str:
    """A path parameter as sent (percent-encoded), decoded strictly as UTF-8.

    ``%FF`` or a truncated sequence is a 400, never a silent U+FFFD.
    """
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(f"{name} is not percent-encoded UTF-8") from None


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


def config_id(name: str, text: str) -> str:
    """An id of the config (lottery, pool): ``[a-z0-9][a-z0-9_-]{0,47}``; 400 otherwise.

    Checked before the config is consulted, so a path with control characters or
    a 10 kB id is refused as malformed rather than looked up.
    """
    if not _CONFIG_ID.fullmatch(text):
        raise BadRequest(
            f"{name} must be 1-48 characters of a-z, 0-9, '-' and '_', starting with a "
            f"letter or digit, got {text[:40]!r}"
        )
    return text


def draw_id(name: str, text: str) -> str:
    """A lottery draw id (``<lottery>-<YYYYMMDDTHHMM>``): 1-96 characters without ``#``,
    whitespace or control characters; 400 otherwise. (Which draws exist is the
    lottery service's answer: 404.)"""
    from autopilot.lottery.prizes import MAX_DRAW_ID_CHARS, PrizeError, check_draw_id

    try:
        check_draw_id(text)
    except PrizeError:
        raise BadRequest(
            f"{name} must be 1-{MAX_DRAW_ID_CHARS} characters without '#', spaces or control "
            f"characters, got {text[:40]!r}"
        ) from None
    return text


def lottery_of(community: Community, lottery_id: str) -> Lottery:
    """The lottery ``lottery_id`` of ``community``; 404 if the config has none by that id."""
    from autopilot.errors import UnknownLottery

    try:
        return community.lottery(lottery_id)
    except KeyError:
        raise UnknownLottery(
            f"community {community.id!r} has no lottery {lottery_id!r}", code="UnknownLottery"
        ) from None


def external_value(name: str, text: str) -> str:
    """A lottery's external value (e.g. ``drand round 4215300: 6f1c...``): 1 to
    :data:`MAX_EXTERNAL_VALUE_BYTES` bytes of UTF-8, no surrounding whitespace and no
    control characters at all (it is published in posts and hashed into the draw's
    randomness exactly as stored: one value must have one spelling)."""
    encoded = text.encode("utf-8", "surrogatepass")
    if not 1 <= len(encoded) <= MAX_EXTERNAL_VALUE_BYTES or text != text.strip():
        raise BadRequest(
            f"{name} must be 1-{MAX_EXTERNAL_VALUE_BYTES} bytes of UTF-8 without surrounding spaces"
        )
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp") for ch in text):
        raise BadRequest(f"{name} must not contain control, format or line separator characters")
    return text
