"""HS256 JSON Web Tokens for local development only (stdlib ``hmac``; no dependency).

``autopilot dev-token`` mints them and ``autopilot serve`` verifies them with a
per-checkout secret. Deployed, tokens come from a real identity provider (e.g. a
Cognito user pool) and API Gateway verifies their RS256 signatures against the
issuer's published keys: the dev secret and these tokens are never accepted
there (the template's default issuer has no keys API Gateway could fetch).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SECRET_ENV = "AUTOPILOT_DEV_JWT_SECRET"
SECRET_FILE = Path("out") / "dev-jwt-secret"
# API Gateway allows a little clock skew on exp/nbf as well.
LEEWAY_S = 60
# Far above any real token; a longer header is refused before it is decoded.
MAX_TOKEN_CHARS = 8192


class InvalidToken(Exception):
    """The token is malformed, wrongly signed, expired or for another issuer/audience."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _json_part(text: str, what: str) -> Any:
    """A base64url JSON part of the token, parsed with the API's strict, depth-bounded parser."""
    from autopilot.api.requests import json_document
    from autopilot.errors import BadRequest

    try:
        return json_document(_unb64(text), what)
    except (BadRequest, binascii.Error, ValueError) as exc:
        raise InvalidToken(f"undecodable JWT {what}: {str(exc)[:80]}") from None


def _time_claim(value: Any) -> float | None:
    # bool is an int to Python, but never a time; NaN would compare false and never expire.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def dev_secret(path: Path | None = None) -> bytes:
    """The local signing secret: ``$AUTOPILOT_DEV_JWT_SECRET``, else a file created once (0600)."""
    from_env = os.environ.get(SECRET_ENV)
    if from_env:
        return from_env.encode("utf-8")
    path = path or SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32))
    return path.read_text(encoding="utf-8").strip().encode("utf-8")


def encode(claims: Mapping[str, Any], secret: bytes) -> str:
    """A compact HS256 JWT of ``claims``."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64(json.dumps(dict(claims), separators=(",", ":")).encode())
    signature = hmac.new(secret, f"{header}.{payload}".encode("ascii"), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def decode(
    token: str, secret: bytes, *, issuer: str, audiences: list[str], now_s: float
) -> dict[str, Any]:
    """Verify ``token`` the way API Gateway's JWT authorizer does and return its claims.

    Checks: three parts, ``alg`` HS256 (never ``none``), signature, ``iss``,
    ``aud`` or ``client_id`` among ``audiences``, ``exp`` in the future, ``nbf``
    and ``iat`` not in the future (with :data:`LEEWAY_S`).
    """
    # Whatever the client sent, only InvalidToken leaves this function (a 401).
    if len(token) > MAX_TOKEN_CHARS or not token.isascii():
        raise InvalidToken("not a JWT (too long, or not ASCII)")
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("not a JWT (expected header.payload.signature)")
    header = _json_part(parts[0], "header")
    claims = _json_part(parts[1], "payload")
    try:
        signature = _unb64(parts[2])
    except (binascii.Error, ValueError):
        raise InvalidToken("undecodable JWT signature") from None
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        raise InvalidToken("unsupported alg (local tokens are HS256)")
    expected = hmac.new(secret, f"{parts[0]}.{parts[1]}".encode("ascii"), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature):
        raise InvalidToken("bad signature")
    if not isinstance(claims, dict):
        raise InvalidToken("claims are not an object")
    if claims.get("iss") != issuer:
        raise InvalidToken(f"iss {claims.get('iss')!r} is not {issuer!r}")
    aud = claims.get("aud", claims.get("client_id"))
    presented = aud if isinstance(aud, list) else [aud]
    if not any(isinstance(a, str) and a in audiences for a in presented):
        raise InvalidToken(f"aud {str(aud)[:80]!r} is not one of {audiences}")
    exp = _time_claim(claims.get("exp"))
    if exp is None or exp + LEEWAY_S < now_s:
        raise InvalidToken("expired (or no exp)")
    for name in ("nbf", "iat"):
        value = claims.get(name)
        moment = _time_claim(value)
        if value is not None and (moment is None or moment - LEEWAY_S > now_s):
            raise InvalidToken(f"{name} is in the future")
    return claims


def token_scopes(claims: Mapping[str, Any]) -> list[str]:
    """The token's scopes: ``scope`` (space separated) or ``scp`` (list or string)."""
    value = claims.get("scope", claims.get("scp"))
    if isinstance(value, list):
        return [str(v) for v in value]
    return str(value or "").split()
