"""Constant-cost partition reads for moto's DynamoDB ``Query`` in local runs.

moto 5.2.5's ``Table.query`` starts from ``Table.all_items()``, which walks the
whole table *and sorts it* (comparing ``DynamoType`` objects) on every call —
then filters to one partition and sorts the matches again. A query therefore
costs O(N log N) in the table size, which makes a reconciliation (one query per
member) quadratic in local runs. Real DynamoDB reads one partition.

While installed, ``Table.query`` sees an ``all_items`` that returns the queried
partition only (base-table queries) or the table unsorted (index queries); the
rest of moto's query — conditions, sort order, pagination, filters, limits —
runs unchanged, so results are identical
(``tests/integration/test_fast_queries.py`` compares them with stock moto).
Installed by :class:`~autopilot_cli.local.runtime.LocalRuntime` by default.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from moto.dynamodb.models.table import Table

_lock = threading.Lock()
_installs = 0
_original_query = Table.query


def _unsorted_items(table: Table) -> list[Any]:
    if table.range_key_attr:
        return [item for partition in table.items.values() for item in partition.values()]
    return list(table.items.values())


def _query(self: Table, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
    index_name = kwargs.get("index_name")
    if index_name is None and len(args) >= 7:
        index_name = args[6]
    if index_name is None and hash_key is not None:
        partition = self.items.get(hash_key)
        if partition is None:
            items: list[Any] = []
        elif self.range_key_attr:
            items = list(partition.values())
        else:
            items = [partition]
    else:
        # moto sorts the matches of an index query itself; the pre-sort is wasted work.
        items = _unsorted_items(self)
    self.all_items = lambda: items  # type: ignore[method-assign]  # this call only
    try:
        return _original_query(self, hash_key, *args, **kwargs)
    finally:
        del self.all_items


def install() -> None:
    """Patch moto's ``Table.query`` (reference-counted)."""
    global _installs
    with _lock:
        _installs += 1
        if _installs == 1:
            Table.query = _query  # type: ignore[method-assign]


def uninstall() -> None:
    """Undo one :func:`install`."""
    global _installs
    with _lock:
        if _installs == 0:
            return
        _installs -= 1
        if _installs == 0:
            Table.query = _original_query  # type: ignore[method-assign]


def is_installed() -> bool:
    """Whether the fast path is active."""
    return Table.query is _query


@contextmanager
def fast_queries() -> Iterator[None]:
    """Use the fast path inside a ``with`` block."""
    install()
    try:
        yield
    finally:
        uninstall()
