"""Constant-cost partition reads for moto's DynamoDB ``Query`` in local runs.

moto 5.2.5's ``Table.query`` starts from ``Table.all_items()``, which walks the
whole table *and sorts it* (comparing ``DynamoType`` objects) on every call —
then filters to one partition and sorts the matches again. A query therefore
costs O(N log N) in the table size, which makes a reconciliation (one query per
member) quadratic in local runs. Real DynamoDB reads one partition.

While installed, ``Table.query`` sees an ``all_items`` that returns the queried
partition only (base-table queries), or for an index query the items that may
have the queried index hash value; the rest of moto's query — conditions, sort
order, pagination, filters, limits — runs unchanged over those candidates, so
results are identical (``tests/integration/test_fast_queries.py`` compares them
with stock moto, with writes, updates of index keys, deletes and failed
transactions in between).

Index candidates come from a per-table map, index → hash value → primary keys,
built by one walk of the table on the first index query and kept up to date by
observing every write path that can give an item an index value (``Table.put_item``
and the backend's ``update_item``, which transactions and batch writes use). The
map only ever grows: a key whose item was deleted, rolled back or re-keyed stays
listed, and each candidate is looked up in the table again at query time and
offered to moto only if its current value still matches. A map is trusted only
while it was maintained by the current installation (an epoch number), and a
table restored from a copy (moto's own transaction rollback) carries a map that
is still a superset of its older state. Index queries with several hash
attributes take the whole-table path.
Installed by :class:`~autopilot_cli.local.runtime.LocalRuntime` by default.
"""

from __future__ import annotations

import threading
from typing import Any

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table

from autopilot_cli.local.patching import ClassPatches

_epoch = 0
_original_query = Table.query
_original_put_item = Table.put_item
_original_update_item = DynamoDBBackend.update_item
_MAP_ATTRIBUTE = "_autopilot_index_map"


def _unsorted_items(table: Table) -> list[Any]:
    if table.range_key_attr:
        return [item for partition in table.items.values() for item in partition.values()]
    return list(table.items.values())


def _index_hash_attributes(table: Table) -> dict[str, str]:
    """Index name → its single hash attribute (indexes with one hash attribute only)."""
    found: dict[str, str] = {}
    for index in table.all_indexes():
        hashes = [key["AttributeName"] for key in index.schema if key["KeyType"] == "HASH"]
        if len(hashes) == 1:
            found[index.name] = hashes[0]
    return found


def _value_key(value: Any) -> Any:
    # DynamoType hashes and compares by (type, cast value); a snapshot of that
    # pair survives later in-place changes of the item.
    return (value.type, value.cast_value)


# Guards every map: building one (walk, then publish) and recording a write are
# atomic with respect to each other, so a write that lands during a build is
# either seen by the walk or recorded after the map is published (`serve` runs
# requests in threads).
_map_lock = threading.RLock()
_query_lock = threading.RLock()


def _observe(table: Table, item: Any, maps: dict[str, Any] | None = None) -> None:
    """Record the item's current index hash values in the table's map (if it has one)."""
    with _map_lock:
        _observe_locked(table, item, maps)


def _observe_locked(table: Table, item: Any, maps: dict[str, Any] | None) -> None:
    if maps is None:
        held = getattr(table, _MAP_ATTRIBUTE, None)
        if held is None or held[0] != _epoch:
            return
        maps = held[1]
    key = (item.hash_key, item.range_key)
    for index_name, attribute in maps["attributes"].items():
        value = item.attrs.get(attribute)
        if value is not None:
            maps["values"][index_name].setdefault(_value_key(value), {})[key] = None


def _index_map(table: Table) -> dict[str, Any]:
    with _map_lock:
        held = getattr(table, _MAP_ATTRIBUTE, None)
        if held is not None and held[0] == _epoch:
            return held[1]
        attributes = _index_hash_attributes(table)
        maps: dict[str, Any] = {"attributes": attributes, "values": {n: {} for n in attributes}}
        for item in _unsorted_items(table):
            _observe_locked(table, item, maps)
        setattr(table, _MAP_ATTRIBUTE, (_epoch, maps))
        return maps


def _current(table: Table, key: tuple[Any, Any]) -> Any:
    hash_key, range_key = key
    partition = table.items.get(hash_key)
    if partition is None:
        return None
    if table.range_key_attr:
        return partition.get(range_key)
    return partition


def _index_candidates(table: Table, index_name: str, conditions: Any) -> list[Any] | None:
    """Items that may match the index hash condition, or None (use the whole table)."""
    maps = _index_map(table)
    attribute = maps["attributes"].get(index_name)
    if attribute is None:
        return None
    wanted = [value for name, value in conditions or () if name == attribute]
    if len(wanted) != 1:
        return None
    value = wanted[0]
    with _map_lock:
        keys = list(maps["values"][index_name].get(_value_key(value), ()))
    items = []
    for key in keys:
        item = _current(table, key)
        if item is None:
            continue
        current = item.attrs.get(attribute)
        if current is not None and current == value:
            items.append(item)
    return items


def _put_item(self: Table, *args: Any, **kwargs: Any) -> Any:
    item = _original_put_item(self, *args, **kwargs)
    _observe(self, item)
    return item


def _update_item(self: DynamoDBBackend, *args: Any, **kwargs: Any) -> Any:
    item = _original_update_item(self, *args, **kwargs)
    table_name = kwargs["table_name"] if "table_name" in kwargs else args[0]
    if item is not None:
        _observe(self.get_table(table_name), item)
    return item


def _query(self: Table, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
    index_name = kwargs.get("index_name")
    if index_name is None and len(args) >= 7:
        index_name = args[6]
    if index_name is not None:
        candidates = _index_candidates(self, index_name, kwargs.get("hash_key_conditions"))
        items = _unsorted_items(self) if candidates is None else candidates
    elif hash_key is not None:
        partition = self.items.get(hash_key)
        if partition is None:
            items: list[Any] = []
        elif self.range_key_attr:
            items = list(partition.values())
        else:
            items = [partition]
    else:
        # moto sorts the matches itself; the pre-sort is wasted work.
        items = _unsorted_items(self)
    # The override is an attribute of the shared table: concurrent queries (threads of
    # one process) take turns, or one would delete the other's override mid-query.
    with _query_lock:
        self.all_items = lambda: items  # type: ignore[method-assign]  # this call only
        try:
            return _original_query(self, hash_key, *args, **kwargs)
        finally:
            del self.all_items


def _new_epoch() -> None:
    # Maps built under an earlier installation missed the writes made since.
    global _epoch
    _epoch += 1


_patches = ClassPatches(
    "fast_queries",
    (Table, "query", _query),
    (Table, "put_item", _put_item),
    (DynamoDBBackend, "update_item", _update_item),
    on_install=_new_epoch,
)
#: Patch moto's ``Table.query`` and observe its writes (reference-counted).
install = _patches.install
#: Undo one :func:`install`.
uninstall = _patches.uninstall
#: Whether the fast path is active.
is_installed = _patches.is_installed
#: Use the fast path inside a ``with`` block.
fast_queries = _patches.active
