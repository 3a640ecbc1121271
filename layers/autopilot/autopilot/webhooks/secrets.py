"""The signing secrets of a (community, platform) webhook, from the channel secret store.

Parameter ``<ChannelSecretsPrefix>/<community>/webhooks/<platform>`` holds a JSON
object; every key starting with ``signing_secret`` is a valid secret, so a secret
rotates without downtime (add ``signing_secret_next``, switch the platform, remove
the old key). Values are cached by :class:`autopilot.secrets.SecretStore` and never
logged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from autopilot.errors import ChannelError, RequestError
from autopilot.secrets import SecretStore, redact

logger = logging.getLogger(__name__)

# Unverified requests decide which parameter is read: remembering "not configured"
# keeps a flood of forged requests from turning into a flood of SSM calls.
MISSING_TTL_S = 60.0
MAX_MISSING = 1024


class WebhookUnavailable(RequestError):
    """The secret could not be read right now; the platform should retry later."""

    status = 503


class WebhookSecrets:
    """``(community, platform) -> [secret, ...]``; an empty list if none is configured."""

    def __init__(self, store: SecretStore, *, monotonic: Callable[[], float] = time.monotonic):
        self._store = store
        self._monotonic = monotonic
        self._missing: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def __call__(self, community_id: str, platform: str) -> list[str]:
        key = (community_id, platform)
        now = self._monotonic()
        with self._lock:
            if self._missing.get(key, 0.0) > now:
                return []
        try:
            secret = self._store.get(community_id, f"webhooks/{platform}")
        except ChannelError as exc:
            if not exc.permanent:
                raise WebhookUnavailable("cannot read the webhook secret; retry later") from None
            logger.error("webhook %s/%s is not configured: %s", *key, redact(exc))
            with self._lock:
                if len(self._missing) >= MAX_MISSING:
                    self._missing.clear()
                self._missing[key] = now + MISSING_TTL_S
            return []
        return [v for k, v in sorted(secret.items()) if k.startswith("signing_secret") and v]
