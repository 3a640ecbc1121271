"""Request signature schemes of chat platforms, as pure functions (no clock, no AWS).

Every verifier takes the candidate secrets (several, so a secret can be rotated
without downtime: add the new one, switch the platform, remove the old one) and
raises :class:`InvalidSignature` with a reason for logs. Comparisons use
:func:`hmac.compare_digest` so that timing does not reveal how much of a
signature matched.

* **Slack** (slash commands, Events API): ``X-Slack-Signature: v0=<hex>`` where
  ``<hex>`` is HMAC-SHA256(signing secret, ``"v0:{X-Slack-Request-Timestamp}:{raw body}"``);
  a timestamp more than 300 s from now is refused (replay window).
* **Telegram**: ``X-Telegram-Bot-Api-Secret-Token`` equals the ``secret_token``
  given to ``setWebhook`` (Telegram signs nothing; the token is a shared secret).
* **Generic (``v1``)**, for every other platform or bridge:
  ``X-Autopilot-Timestamp: <unix seconds>`` and
  ``X-Autopilot-Signature: v1=<hex>[,v1=<hex>...]`` where ``<hex>`` is
  HMAC-SHA256(secret, ``"{timestamp}.{raw body}"``); 300 s window; any one
  matching ``v1`` value is enough (a sender rotating its secret sends both).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

MAX_SKEW_S = 300
SLACK_VERSION = "v0"
GENERIC_VERSION = "v1"


class InvalidSignature(Exception):
    """The request is not authentic (bad or missing signature, or outside the time window)."""


def _hmac_hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def _check_timestamp(timestamp: str | None, now_epoch_s: float, max_skew_s: int) -> int:
    if not timestamp or not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise InvalidSignature("missing or malformed timestamp")
    value = int(timestamp)
    if abs(now_epoch_s - value) > max_skew_s:
        raise InvalidSignature(
            f"timestamp is {int(now_epoch_s - value)} s from now (allowed: ±{max_skew_s} s)"
        )
    return value


def _any_matches(expected: Sequence[str], presented: Sequence[str]) -> bool:
    # Compare every pair (no early exit on the first secret) so timing does not
    # tell which secret, if any, is current.
    matched = False
    for want in expected:
        for got in presented:
            matched |= hmac.compare_digest(want.encode("ascii"), got.encode("ascii", "replace"))
    return matched


def slack_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Slack-Signature`` value Slack sends for ``body`` at ``timestamp``."""
    base = f"{SLACK_VERSION}:{timestamp}:".encode() + body
    return f"{SLACK_VERSION}={_hmac_hex(secret, base)}"


def verify_slack(
    secrets: Sequence[str],
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now_epoch_s: float,
    *,
    max_skew_s: int = MAX_SKEW_S,
) -> None:
    """Verify a Slack request (raises :class:`InvalidSignature`)."""
    if not secrets:
        raise InvalidSignature("no signing secret configured")
    _check_timestamp(timestamp, now_epoch_s, max_skew_s)
    assert timestamp is not None
    if not signature or not signature.startswith(f"{SLACK_VERSION}="):
        raise InvalidSignature("missing or malformed X-Slack-Signature")
    expected = [slack_signature(secret, timestamp, body) for secret in secrets]
    if not _any_matches(expected, [signature]):
        raise InvalidSignature("signature does not match")


def verify_telegram(secrets: Sequence[str], token: str | None) -> None:
    """Verify Telegram's ``X-Telegram-Bot-Api-Secret-Token`` header (raises on mismatch)."""
    if not secrets:
        raise InvalidSignature("no secret token configured")
    if not token:
        raise InvalidSignature("missing X-Telegram-Bot-Api-Secret-Token")
    if not _any_matches(list(secrets), [token]):
        raise InvalidSignature("secret token does not match")


def generic_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The hex HMAC of the generic scheme (send it as ``v1=<hex>``)."""
    return _hmac_hex(secret, f"{timestamp}.".encode() + body)


def sign_generic(secret: str, timestamp: str, body: bytes) -> dict[str, str]:
    """The headers a sender of the generic scheme adds to a request."""
    return {
        "X-Autopilot-Timestamp": timestamp,
        "X-Autopilot-Signature": f"{GENERIC_VERSION}={generic_signature(secret, timestamp, body)}",
    }


def verify_generic(
    secrets: Sequence[str],
    timestamp: str | None,
    signature_header: str | None,
    body: bytes,
    now_epoch_s: float,
    *,
    max_skew_s: int = MAX_SKEW_S,
) -> None:
    """Verify the generic ``v1`` scheme (raises :class:`InvalidSignature`)."""
    if not secrets:
        raise InvalidSignature("no signing secret configured")
    _check_timestamp(timestamp, now_epoch_s, max_skew_s)
    assert timestamp is not None
    presented = []
    for part in (signature_header or "").split(","):
        scheme, _, value = part.strip().partition("=")
        if scheme == GENERIC_VERSION and value:
            presented.append(value.lower())
    if not presented:
        raise InvalidSignature("missing or malformed X-Autopilot-Signature (expected v1=<hex>)")
    expected = [generic_signature(secret, timestamp, body) for secret in secrets]
    if not _any_matches(expected, presented):
        raise InvalidSignature("signature does not match")
