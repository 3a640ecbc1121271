"""The published config in S3, cached per container.

``autopilot config push`` validates the YAML and writes the JSON document to a
versioned S3 bucket. Functions read it through :class:`ConfigStore`: a cached copy
is served for ``ttl`` seconds (``CONFIG_TTL_SECONDS``: 300 for the dispatcher, so
it revalidates every 5 ticks, not every tick), then revalidated with a conditional
GET (ETag): one small request, no parse, when unchanged. A config pushed at *P* is
returned by every ``get()`` at or after *P* + ``ttl`` (the cached copy was read
before *P*, and is revalidated at the first ``get()`` ``ttl`` after that read).
A document that fails to parse is never used: a warm container keeps its last
good config, a cold one walks back through the object's
earlier versions to the newest one that parses, and both say so in the logs.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from autopilot.clock import Clock, get_clock
from autopilot.config.model import Config, parse_config
from autopilot.errors import ConfigError, ConfigUnavailable

logger = logging.getLogger(__name__)

# How many earlier object versions a cold container tries before giving up.
MAX_FALLBACK_VERSIONS = 10


@dataclass
class _Cached:
    config: Config
    etag: str
    version_id: str
    fetched_at: datetime
    # Whether ``config`` is the object's newest version (False: an earlier version
    # used because the newest does not parse, or a kept copy while S3 was unreadable).
    newest: bool = True


class ConfigStore:
    """Reads and caches the published config document."""

    def __init__(
        self,
        s3: Any,
        bucket: str,
        key: str,
        *,
        ttl: timedelta = timedelta(seconds=60),
        clock: Clock | None = None,
    ):
        self._s3 = s3
        self._bucket = bucket
        self._key = key
        self._ttl = ttl
        self._clock = clock
        self._cached: _Cached | None = None
        self._lock = threading.Lock()

    def _now(self) -> datetime:
        return (self._clock or get_clock()).now()

    def get(self) -> Config:
        """The current config: cached, revalidated after the TTL, never an invalid one."""
        with self._lock:
            now = self._now()
            cached = self._cached
            if cached is not None and now - cached.fetched_at < self._ttl:
                return cached.config
            return self._refresh_or_keep(now)[0].config

    def revalidate(self) -> tuple[Config, bool]:
        """The current config, revalidated now whatever the TTL, and whether it is the
        newest published version.

        The dispatcher calls this when the config epoch shows another version than
        its cached one: a container must never run an older config's jobs once a
        newer one is in force.
        """
        with self._lock:
            current, read = self._refresh_or_keep(self._now())
            # A store we could not read says nothing about which version is newest.
            return current.config, read and current.newest

    def _refresh_or_keep(self, now: datetime) -> tuple[_Cached, bool]:
        """Refresh the cache from the store and say whether the store was read; if it
        is unreadable keep the last good config (and restart its TTL). Call with the
        lock held."""
        cached = self._cached
        try:
            self._cached = self._refresh(cached, now)
        except ConfigUnavailable:
            if cached is None:
                raise
            logger.error(
                "config store unreadable; keeping last good config version %s",
                cached.version_id,
            )
            cached.fetched_at = now
            return cached, False
        assert self._cached is not None
        return self._cached, True

    def _refresh(self, cached: _Cached | None, now: datetime) -> _Cached:
        from botocore.exceptions import ClientError

        kwargs: dict[str, Any] = {"Bucket": self._bucket, "Key": self._key}
        if cached is not None:
            kwargs["IfNoneMatch"] = cached.etag
        try:
            response = self._s3.get_object(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if cached is not None and (code == "304" or status == 304):
                cached.fetched_at = now
                return cached
            if code in ("NoSuchKey", "NoSuchBucket", "404"):
                raise ConfigUnavailable(
                    f"no config at s3://{self._bucket}/{self._key}: run `autopilot config push`"
                ) from exc
            raise ConfigUnavailable(f"cannot read s3://{self._bucket}/{self._key}: {exc}") from exc
        body = response["Body"].read()
        version_id = str(response.get("VersionId") or "null")
        etag = str(response.get("ETag", ""))
        newest = True
        try:
            config = self._parse(body, version_id, etag)
        except ConfigError as exc:
            logger.error("published config version %s is invalid: %s", version_id, exc)
            if cached is not None:
                raise ConfigUnavailable(str(exc)) from exc
            config, version_id = self._fallback(version_id)
            newest = False
            logger.warning("using earlier config version %s", version_id)
        return _Cached(
            config=config, etag=etag, version_id=version_id, fetched_at=now, newest=newest
        )

    def _parse(self, body: bytes, version_id: str, etag: str = "") -> Config:
        source = f"s3://{self._bucket}/{self._key}?versionId={version_id}"
        try:
            doc = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(issues=[], source=f"{source}: not valid UTF-8 JSON ({exc})") from exc
        config = parse_config(doc, source=source)
        return Config(
            communities=config.communities,
            published_at=config.published_at,
            # The S3 version id names the config version (the dispatcher's epoch);
            # an unversioned bucket answers "null" for every version: use the ETag.
            version_tag=version_id if version_id != "null" else f"etag:{etag}",
            warnings=config.warnings,
        )

    def _fallback(self, bad_version: str) -> tuple[Config, str]:
        listing = self._s3.list_object_versions(
            Bucket=self._bucket, Prefix=self._key, MaxKeys=MAX_FALLBACK_VERSIONS + 1
        )
        versions = [v for v in listing.get("Versions", []) if v["Key"] == self._key]
        versions.sort(key=lambda v: v["LastModified"], reverse=True)
        for version in versions[: MAX_FALLBACK_VERSIONS + 1]:
            if version["VersionId"] == bad_version:
                continue
            body = self._s3.get_object(
                Bucket=self._bucket, Key=self._key, VersionId=version["VersionId"]
            )["Body"].read()
            try:
                parsed = self._parse(body, version["VersionId"], str(version.get("ETag", "")))
                return parsed, version["VersionId"]
            except ConfigError as exc:
                logger.error(
                    "earlier config version %s is invalid too: %s", version["VersionId"], exc
                )
        raise ConfigUnavailable(
            f"s3://{self._bucket}/{self._key} holds no valid config in its last "
            f"{MAX_FALLBACK_VERSIONS} versions"
        )
