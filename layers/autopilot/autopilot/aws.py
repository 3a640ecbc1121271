"""Lazily created, per-container AWS clients.

Clients are created on first use, not at import, so a cold start that never
publishes to SNS never pays for an SNS client.
"""

from __future__ import annotations

import threading
from functools import cache
from typing import Any

_lock = threading.Lock()


@cache
def _session() -> Any:
    import boto3  # imported here: boto3 costs most of a cold start

    return boto3.session.Session()


def client(service: str, region: str) -> Any:
    """A cached boto3 client for ``service`` in ``region`` (thread-safe creation)."""
    return _client(service, region)


@cache
def _client(service: str, region: str) -> Any:
    with _lock:  # boto3 client creation is not thread-safe
        return _session().client(service, region_name=region)


def reset_clients() -> None:
    """Forget cached clients (a new mock or a new region in tests)."""
    _client.cache_clear()
    _session.cache_clear()
