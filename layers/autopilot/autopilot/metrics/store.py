"""The metrics table: one immutable snapshot per community and day (PynamoDB).

``MetricsTable``: ``pk = SNAP#<community>``, ``sk = <day ISO>`` — the snapshot
(docs/metrics.md) as canonical JSON, written once with ``attribute_not_exists``;
a re-run of the day computes the same document from the same frozen counters,
and is compared with the stored one rather than written again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import PutError
from pynamodb.models import Model

from autopilot.dynamo import bind_table
from autopilot.timeutil import iso_utc


class SnapshotItem(Model):
    """A daily snapshot of one community."""

    class Meta:
        table_name = "MetricsTable"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    community_id = UnicodeAttribute()
    body = UnicodeAttribute()
    version = NumberAttribute(default=1)
    written_at = UnicodeAttribute()


def snapshot_pk(community_id: str) -> str:
    return f"SNAP#{community_id}"


def canonical(snapshot: dict[str, Any]) -> str:
    """The stored form: sorted keys, no spaces, UTF-8 text kept."""
    return json.dumps(snapshot, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


class MetricsStore:
    """Snapshots by community and day."""

    def __init__(self, table_name: str, region: str):
        self.table = table_name
        if table_name:
            bind_table(table_name, SnapshotItem, region=region)

    def put(self, snapshot: dict[str, Any], now: datetime) -> bool:
        """Store ``snapshot`` once; ``False`` when the day already has one (unchanged)."""
        item = SnapshotItem(
            snapshot_pk(snapshot["community"]),
            snapshot["day"],
            community_id=snapshot["community"],
            body=canonical(snapshot),
            version=int(snapshot.get("version", 1)),
            written_at=iso_utc(now),
        )
        try:
            item.save(condition=SnapshotItem.pk.does_not_exist())
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def get(self, community_id: str, day: date) -> dict[str, Any] | None:
        """The snapshot of ``day`` (None if it has none)."""
        try:
            item = SnapshotItem.get(
                snapshot_pk(community_id), day.isoformat(), consistent_read=True
            )
        except SnapshotItem.DoesNotExist:
            return None
        return dict(json.loads(item.body))

    def snapshots(self, community_id: str, first: date, last: date) -> Iterator[dict[str, Any]]:
        """The snapshots of ``first`` .. ``last`` in day order (Query pages)."""
        for item in SnapshotItem.query(
            snapshot_pk(community_id),
            SnapshotItem.sk.between(first.isoformat(), last.isoformat()),
        ):
            yield dict(json.loads(item.body))
