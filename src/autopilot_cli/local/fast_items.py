"""Linear-time item construction for moto's DynamoDB in local runs (same items, same errors).

moto 5.2.5 stores an item's attributes in a ``LimitedSizeDict`` whose
``__setitem__`` re-measures every key and value already stored before adding
one, to enforce DynamoDB's 400 KB item limit. Building an item of *n*
attributes (every ``PutItem``, every transaction ``Put``) therefore measures
n²/2 attribute values: for the ledger's 20-attribute items, about 5 % of a
simulated check-in.

While installed, ``Item.__init__`` keeps the running size instead: it checks
each attribute against the size of the ones before it, exactly the sum stock
moto recomputes, raises the same ``ItemSizeTooLarge`` at the same attribute,
and stores the same ``DynamoType`` values in the same ``LimitedSizeDict`` (later
writes to it still go through moto's own check).
``tests/integration/test_fast_items.py`` compares both constructions, limits
included. Installed by :class:`~autopilot_cli.local.runtime.LocalRuntime`.
"""

from __future__ import annotations

from typing import Any

from moto.dynamodb.exceptions import ItemSizeTooLarge
from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
from moto.dynamodb.models.utilities import bytesize

from autopilot_cli.local.patching import ClassPatches

__all__ = ["ITEM_SIZE_LIMIT", "fast_items", "install", "is_installed", "uninstall"]

#: moto's limit in ``LimitedSizeDict.__setitem__`` (between DynamoDB's 409 and 410 KB).
ITEM_SIZE_LIMIT = 405000


def _init(
    self: Item, hash_key: DynamoType, range_key: DynamoType | None, attrs: dict[str, Any]
) -> None:
    self.hash_key = hash_key
    self.range_key = range_key
    stored = self.attrs = LimitedSizeDict()
    size = 0  # what LimitedSizeDict.__setitem__ would sum over the attributes so far
    for key, value in attrs.items():
        typed = DynamoType(value)
        added = bytesize(key) + typed.size()
        if size + added > ITEM_SIZE_LIMIT:
            raise ItemSizeTooLarge
        dict.__setitem__(stored, key, typed)
        size += added


_patches = ClassPatches("fast_items", (Item, "__init__", _init))
#: Patch moto's ``Item.__init__`` (reference-counted; see :mod:`.patching`).
install = _patches.install
#: Undo one :func:`install`.
uninstall = _patches.uninstall
#: Whether the fast path is active.
is_installed = _patches.is_installed
#: Use the fast path inside a ``with`` block.
fast_items = _patches.active
