"""Channel secrets from SSM Parameter Store, cached per container, and log redaction.

Every chat-platform channel has one ``SecureString`` parameter holding a JSON
object, named ``<prefix>/<community>/<channel>`` (the prefix is the stack's
``ChannelSecretsPrefix``, ``/community-autopilot/channels`` by default), e.g.::

    {"webhook_url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…"}

Secrets never appear in the config file. Values read here are registered with
:func:`redact`, which every channel error and platform answer passes through
before it is logged or stored, so a webhook key cannot leak through an error
message (``HTTPError`` texts, exception reprs, echoed URLs).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from autopilot.errors import ChannelError

DEFAULT_PREFIX = "/community-autopilot/channels"
# A rotated secret is picked up within this time; a cached one costs no request.
DEFAULT_TTL_S = 300.0
# Shorter values (e.g. a chat id "42") would redact ordinary numbers in messages;
# they are not secret on their own anyway.
_MIN_REDACTED_LENGTH = 6
# URL path segments at least this long are treated as tokens.
_MIN_SEGMENT_LENGTH = 12
MASK = "***"

_known: set[str] = set()
_known_lock = threading.Lock()
# scheme://host[:port] then anything up to whitespace or a quote: the path and query
# of a webhook URL carry its key (WeCom ?key=, Slack /services/…, Discord /webhooks/…,
# Telegram /bot<token>/), so only scheme and host survive in logs.
_URL = re.compile(r"(?P<origin>https?://[^/\s?#'\"<>]+)(?P<rest>[^\s'\"<>]*)")


def register_secret(value: str) -> None:
    """Make :func:`redact` mask ``value`` (and its URL-encoded forms) from now on.

    For a URL, its path-and-query, query values and long path segments are masked
    too: a platform's error page may echo ``/send?key=…`` without the host.
    """
    if not isinstance(value, str) or len(value) < _MIN_REDACTED_LENGTH:
        return
    from urllib.parse import parse_qsl, quote, quote_plus, urlsplit

    forms = {value}
    if value.startswith(("http://", "https://")):
        parts = urlsplit(value)
        if parts.query:
            forms.add(f"{parts.path}?{parts.query}")
            forms.update(v for _, v in parse_qsl(parts.query) if len(v) >= _MIN_REDACTED_LENGTH)
        # Tokens live in long segments (Slack, Discord, Feishu, Telegram); short ones
        # are words such as "webhook" or "send" that must stay readable.
        forms.update(seg for seg in parts.path.split("/") if len(seg) >= _MIN_SEGMENT_LENGTH)
    with _known_lock:
        for form in forms:
            _known.update({form, quote(form, safe=""), quote_plus(form)})


def redact(text: object) -> str:
    """``text`` with every registered secret masked and every URL cut to its origin."""
    out = str(text)
    with _known_lock:
        known = sorted(_known, key=len, reverse=True)  # longest first: no partial leftovers
    for value in known:
        if value in out:
            out = out.replace(value, MASK)
    return _URL.sub(lambda m: m["origin"] + ("/" + MASK if m["rest"] else ""), out)


class ChannelSecret(Mapping[str, str]):
    """The decoded JSON object of one channel's parameter; its repr shows keys only."""

    def __init__(self, name: str, values: Mapping[str, Any]):
        self.name = name
        self._values = {str(k): str(v) for k, v in values.items() if v is not None}

    def __getitem__(self, key: str) -> str:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"ChannelSecret({self.name!r}, keys={sorted(self._values)})"

    def require(self, key: str, what: str) -> str:
        """The value of ``key``, or a permanent :class:`ChannelError` naming the parameter."""
        value = self._values.get(key, "").strip()
        if not value:
            raise ChannelError(
                f"SSM parameter {self.name} has no {key!r} ({what}); "
                "see docs/channels.md for the keys each channel type needs",
                permanent=True,
            )
        return value


class SecretStore:
    """Reads channel secrets from SSM (``GetParameter`` with decryption), cached per container."""

    def __init__(
        self,
        prefix: str,
        region: str,
        *,
        client: Any = None,
        ttl_s: float = DEFAULT_TTL_S,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self._region = region
        self._client = client
        self._ttl_s = ttl_s
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, ChannelSecret]] = {}
        self._lock = threading.Lock()

    def name(self, community_id: str, channel_id: str) -> str:
        """The parameter name of a community's channel."""
        return f"{self.prefix}/{community_id}/{channel_id}"

    def _ssm(self) -> Any:
        if self._client is None:
            from autopilot.aws import client

            self._client = client("ssm", self._region)
        return self._client

    def get(self, community_id: str, channel_id: str) -> ChannelSecret:
        """The channel's secret; raises a permanent ``ChannelError`` if it is missing or bad.

        Failures are not cached, so a parameter created after an error is used by
        the next send.
        """
        name = self.name(community_id, channel_id)
        now = self._monotonic()
        with self._lock:
            cached = self._cache.get(name)
        if cached is not None and now - cached[0] < self._ttl_s:
            return cached[1]
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self._ssm().get_parameter(Name=name, WithDecryption=True)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ParameterNotFound":
                raise ChannelError(
                    f"no secret for channel {channel_id!r} of {community_id!r}: create the "
                    f"SecureString parameter {name} (see docs/channels.md)",
                    permanent=True,
                ) from None
            raise ChannelError(f"cannot read SSM parameter {name}: {code or exc}") from None
        except BotoCoreError as exc:
            raise ChannelError(f"cannot read SSM parameter {name}: {exc}") from None
        raw = response["Parameter"]["Value"]
        try:
            values = json.loads(raw)
        except ValueError:
            values = None
        if not isinstance(values, dict):
            raise ChannelError(
                f"SSM parameter {name} must hold a JSON object such as "
                '{"webhook_url": "https://…"}',
                permanent=True,
            )
        secret = ChannelSecret(name, values)
        for value in secret.values():
            register_secret(value)
        with self._lock:
            self._cache[name] = (now, secret)
        return secret
