"""O(items touched) DynamoDB transactions for moto.

moto 5.2.5's ``DynamoDBBackend.transact_write_items`` deep-copies every table
a transaction touches before running it, so that it can put the copies back
if the transaction is cancelled. That makes every transaction cost
O(table size): a simulated week with thousands of members spends most of its
time copying tables, and a check-in (one transaction) gets slower as the
simulation runs.

This module owns a drop-in replacement that snapshots only the items the
transaction addresses (each at most once: DynamoDB rejects two operations on
one item) and puts exactly those back on cancellation. Everything else is
moto's own code path, in moto's order: the same validation, the same
exceptions, the same ``CancellationReasons`` (items after a failed one are
still evaluated, as moto does), the same ``ReturnValuesOnConditionCheckFailure``
handling, the same stream records.

Deliberate differences from stock moto, both towards what DynamoDB does:

* a table addressed by ARN is rolled back too (moto only backs up tables
  addressed by name);
* an element with two operations (``TransactWriteSingleOpException``) rolls
  back the elements before it (moto raises without restoring them).

``tests/integration/test_fast_transactions.py`` runs one corpus of
transactions against stock moto and against this module and asserts the
same responses, exceptions and table contents.

Use :func:`install` / :func:`uninstall` (reference counted, so nested users
compose) or the :func:`fast_transactions` context manager. The local runtime
installs it by default.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    ConditionalCheckFailed,
    MockValidationException,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import StreamRecord, StreamShard

from autopilot_cli.local.patching import ClassPatches

__all__ = ["fast_transactions", "install", "is_installed", "uninstall"]

_serial = threading.RLock()


@dataclass
class _ItemSnapshot:
    """One addressed item as it was before its operation ran."""

    table_name: str
    hash_key: DynamoType
    range_key: DynamoType | None
    # A private deep copy (UpdateItem mutates the stored Item in place);
    # None when no item existed at that key.
    item: Item | None
    # Range-key tables keep items in a dict per partition; moto's get_item
    # creates an empty one as a side effect of looking up a missing item.
    # Remember whether the partition existed so a rollback removes only the
    # ones this transaction created.
    partition_existed: bool


@dataclass
class _StreamSnapshot:
    """A table's stream shard before the transaction: its record list and length."""

    shard: StreamShard
    records: list[StreamRecord]
    length: int


class _Journal:
    """Before-images of everything a transaction may change, and their restoration."""

    def __init__(self, backend: DynamoDBBackend) -> None:
        self._backend = backend
        self._items: list[_ItemSnapshot] = []
        self._streams: dict[str, _StreamSnapshot] = {}

    def _table_name(self, name_or_arn: str) -> str | None:
        # Mirrors DynamoDBBackend.get_table: by name first, then by ARN.
        if name_or_arn in self._backend.tables:
            return name_or_arn
        for name, table in list(self._backend.tables.items()):
            if table.table_arn == name_or_arn:
                return name
        return None

    def record(self, name_or_arn: str, key: dict[str, Any]) -> None:
        """Snapshot the item ``key`` of table ``name_or_arn`` before an operation on it.

        Nothing is recorded when the table does not exist or the key does not
        name one item: moto then fails the operation before it can write
        (``get_keys_value`` validates the key, a Put without its key
        attributes raises ``KeyError``), so there is nothing to restore.
        """
        table_name = self._table_name(name_or_arn)
        if table_name is None:
            return
        table = self._backend.tables[table_name]
        try:
            hash_key = DynamoType(key[table.hash_key_attr])
            range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
        except Exception:
            return

        if range_key is None:
            container: MutableMapping[DynamoType, Any] = table.items
            container_key = hash_key
            partition_existed = True
        else:
            # .get(): indexing the defaultdict would create the partition.
            partition_existed = hash_key in table.items
            container = table.items.get(hash_key) or {}
            container_key = range_key
        current = container.get(container_key)
        self._items.append(
            _ItemSnapshot(
                table_name=table_name,
                hash_key=hash_key,
                range_key=range_key,
                item=copy.deepcopy(current),
                partition_existed=partition_existed,
            )
        )

        shard = table.stream_shard
        if shard is not None and table_name not in self._streams:
            self._streams[table_name] = _StreamSnapshot(shard, shard.items, len(shard.items))

    def rollback(self) -> None:
        """Put every recorded item (and stream) back as it was."""
        tables = self._backend.tables
        for snapshot in reversed(self._items):
            table = tables.get(snapshot.table_name)
            if table is None:  # pragma: no cover - transactions cannot drop tables
                continue
            if snapshot.range_key is None:
                container: MutableMapping[DynamoType, Any] = table.items
                container_key = snapshot.hash_key
            else:
                partition = table.items.get(snapshot.hash_key)
                if partition is None:
                    if snapshot.item is None:
                        continue
                    partition = table.items[snapshot.hash_key]
                container = partition
                container_key = snapshot.range_key

            if snapshot.item is None:
                container.pop(container_key, None)
            else:
                # A deleted item comes back at the end of its dict: moto sorts
                # Scan and Query results by key, so the order is not observable.
                container[container_key] = snapshot.item

            if (
                snapshot.range_key is not None
                and not snapshot.partition_existed
                and not table.items.get(snapshot.hash_key)
            ):
                table.items.pop(snapshot.hash_key, None)

        for stream in self._streams.values():
            # Stream records appended by the cancelled transaction disappear;
            # if delivery to a Lambda reset the list meanwhile, the original
            # list object still holds the records from before.
            del stream.records[stream.length :]
            stream.shard.items = stream.records


def _transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    """``DynamoDBBackend.transact_write_items`` with per-item rollback.

    The body follows moto 5.2.5's implementation statement by statement;
    only the backup (a journal of addressed items instead of deep copies of
    whole tables) and the restore differ.
    """
    # DynamoDB serialises transactions; moto does not lock at all, so two
    # threads could both pass a condition before either writes. Running
    # transactions one at a time restores the isolation the product relies on.
    with _serial:
        _transact_write_items_serial(self, transact_items)


def _transact_write_items_serial(
    self: DynamoDBBackend, transact_items: list[dict[str, Any]]
) -> None:
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    journal = _Journal(self)

    target_items: set[tuple[str, str]] = set()

    def check_unicity(table_name: str, key: dict[str, Any]) -> None:
        item = (str(table_name), str(dict(sorted(key.items()))))
        if item in target_items:
            raise MultipleTransactionsException()
        target_items.add(item)

    errors: list[tuple[str, str, dict[str, Any]] | tuple[None, None, None]] = []
    for item in transact_items:
        original_item: dict[str, Any] | None = None
        if len(list(item.keys())) > 1:
            journal.rollback()
            raise TransactWriteSingleOpException

        try:
            op_type, op = next(iter(item.items()))
            if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                raise ValueError("Unsupported transaction operation")

            table_name = op["TableName"]
            condition_expression = op.get("ConditionExpression")
            expression_attribute_names = op.get("ExpressionAttributeNames")
            expression_attribute_values = op.get("ExpressionAttributeValues")
            return_values_on_condition_check_failure = op.get("ReturnValuesOnConditionCheckFailure")

            if op_type == "Put":
                attrs = op["Item"]
                table = self.get_table(table_name)
                key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = attrs[table.range_key_attr]
            else:
                key = op["Key"]

            check_unicity(table_name, key)
            # Recorded for ConditionCheck too: moto's get_item below creates
            # an empty partition for a missing item of a range-key table, and
            # stock moto's rollback removes it.
            journal.record(table_name, key)

            current = self.get_item(table_name, key)
            if condition_expression is not None:
                condition_op = get_filter_expression(
                    condition_expression,
                    expression_attribute_names,
                    expression_attribute_values,
                )
                if not condition_op.expr(current):
                    if return_values_on_condition_check_failure == "ALL_OLD" and current:
                        original_item = current.to_json()["Attributes"]
                    raise ConditionalCheckFailed(item=original_item)

            if op_type == "Put":
                attrs = op["Item"]
                self.put_item(
                    table_name,
                    attrs,
                    condition_expression=condition_expression,
                    expression_attribute_names=expression_attribute_names,
                    expression_attribute_values=expression_attribute_values,
                )
            elif op_type == "Delete":
                self.delete_item(
                    table_name,
                    key,
                    condition_expression=condition_expression,
                    expression_attribute_names=expression_attribute_names,
                    expression_attribute_values=expression_attribute_values,
                )
            elif op_type == "Update":
                update_expression = op["UpdateExpression"]
                self.update_item(
                    table_name,
                    key,
                    update_expression=update_expression,
                    condition_expression=condition_expression,
                    expression_attribute_names=expression_attribute_names,
                    expression_attribute_values=expression_attribute_values,
                )
            errors.append((None, None, None))
        except (MultipleTransactionsException, MockValidationException):
            journal.rollback()
            raise
        except ConditionalCheckFailed as e:
            errors.append(("ConditionalCheckFailed", str(e.message), original_item))  # type: ignore[arg-type]
        except Exception as e:
            errors.append((type(e).__name__, str(e), original_item))  # type: ignore[arg-type]

    if any(code is not None for code, _, _ in errors):
        journal.rollback()
        raise TransactionCanceledException(errors)


_patches = ClassPatches(
    "fast_transactions", (DynamoDBBackend, "transact_write_items", _transact_write_items)
)
#: Replace moto's ``transact_write_items`` with the per-item version. Reference
#: counted: every ``install()`` needs a matching :func:`uninstall`. Affects every moto
#: DynamoDB backend in the process (it patches the class).
install = _patches.install
#: Undo one :func:`install`; moto's own method is back after the last one.
uninstall = _patches.uninstall
#: Whether moto currently runs transactions through this module.
is_installed = _patches.is_installed
#: Context manager: :func:`install` on entry, :func:`uninstall` on exit.
fast_transactions = _patches.active
