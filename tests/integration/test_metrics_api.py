"""``GET /metrics`` through the template's gateway and the API function on moto.

Snapshots come from real check-ins (through the API) and the snapshot job's own
code (``app.metrics.snapshot``), so the route answers what the metrics.daily job
stores: as JSON with the days of the period that have none, or as CSV, to ops
and finance only, after one Query on MetricsTable.
"""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from typing import Any

import pytest
from moto.dynamodb.models import DynamoDBBackend

from autopilot_cli.metering import RequestCounter

from .api_support import T0, Api, make_api, token

SUNRISE = {"community": "sunrise"}
FIRST = date(2026, 11, 26)  # T0's check-in day in Shanghai
SNAPSHOT_DAYS = [FIRST, FIRST + timedelta(days=1), FIRST + timedelta(days=2)]
PERIOD = {"community": "sunrise", "from": "2026-11-25", "to": "2026-11-29"}


@pytest.fixture
def snapshots(stack) -> tuple[Api, list[dict[str, Any]]]:
    """Three days of check-ins (alice daily, bob on the first and third day), each
    day snapshotted after it ended; the API before and after the period has none."""
    api = make_api(stack)
    for offset in range(3):
        api.stack.clock.set(T0 + timedelta(days=offset))
        for member in ("alice", "bob") if offset != 1 else ("alice",):
            answer = api.call("POST", "/checkins", auth=token(member), body=SUNRISE)
            assert answer.status == 200, answer.body
    api.stack.clock.set(T0 + timedelta(days=4))
    app = stack.app()
    community = app.config().community("sunrise")
    taken = []
    for day in SNAPSHOT_DAYS:
        snapshot, written, identical = app.metrics.snapshot(community, day)
        assert written and identical
        taken.append(snapshot)
    return api, taken


def test_finance_gets_the_snapshots_and_the_missing_days_as_json(snapshots):
    api, taken = snapshots
    answer = api.call("GET", "/metrics", auth=token("fay", "finance"), query=PERIOD)
    assert answer.status == 200, answer.body
    assert answer.headers["Content-Type"] == "application/json"
    document = answer.json()
    assert document == {
        "community": "sunrise",
        "from": "2026-11-25",
        "to": "2026-11-29",
        "snapshots": taken,
        "missing_days": ["2026-11-25", "2026-11-29"],
    }
    counts = [(s["day"], s["checkins"]["count"], s["members"]["total"]) for s in taken]
    assert counts == [("2026-11-26", 2, 2), ("2026-11-27", 1, 2), ("2026-11-28", 2, 2)]


def test_ops_may_read_them_too_and_a_period_without_snapshots_is_all_missing(snapshots):
    api, taken = snapshots
    ops = token("olga", "ops")
    one = api.call("GET", "/metrics", auth=ops, query={**PERIOD, "from": "2026-11-27"})
    assert one.status == 200, one.body
    assert one.json()["snapshots"] == taken[1:]
    empty = api.call(
        "GET", "/metrics", auth=ops, query={**PERIOD, "from": "2027-01-01", "to": "2027-01-03"}
    )
    assert empty.json()["snapshots"] == []
    assert empty.json()["missing_days"] == ["2027-01-01", "2027-01-02", "2027-01-03"]


def test_csv_by_format_or_accept_header_with_a_filename(snapshots):
    api, taken = snapshots
    finance = token("fay", "finance")
    by_format = api.call("GET", "/metrics", auth=finance, query={**PERIOD, "format": "csv"})
    by_accept = api.call(
        "GET", "/metrics", auth=finance, query=PERIOD, headers={"Accept": "text/csv"}
    )
    for answer in (by_format, by_accept):
        assert answer.status == 200, answer.body
        assert answer.headers["Content-Type"] == "text/csv; charset=utf-8"
        assert answer.headers["Content-Disposition"] == (
            'attachment; filename="metrics-sunrise-2026-11-25-2026-11-29.csv"'
        )
    assert by_format.body == by_accept.body
    rows = list(csv.reader(io.StringIO(by_format.body.decode("utf-8"))))
    assert rows[0][:4] == ["day", "members_total", "members_joined", "members_left"]
    assert rows[0][-2:] == ["reminders_sent", "reminders_converted"]
    assert [r[0] for r in rows[1:]] == [s["day"] for s in taken]
    figures = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    assert [f["checkins_count"] for f in figures] == ["2", "1", "2"]
    assert [f["points_outstanding"] for f in figures] == [
        str(s["points"]["outstanding"]) for s in taken
    ]
    # An explicit format wins over the Accept header.
    as_json = api.call(
        "GET",
        "/metrics",
        auth=finance,
        query={**PERIOD, "format": "json"},
        headers={"Accept": "text/csv"},
    )
    assert as_json.headers["Content-Type"] == "application/json"
    assert as_json.json()["snapshots"] == taken


def test_members_are_refused_at_the_gateway_and_by_the_function(snapshots):
    api, _ = snapshots
    member = api.call("GET", "/metrics", auth=token("alice"), query=PERIOD)
    assert (member.status, member.json()) == (403, {"message": "Forbidden"})
    forged = token("alice", scope="autopilot/member autopilot/finance")
    refused = api.call("GET", "/metrics", auth=forged, query=PERIOD)
    assert refused.status == 403 and refused.json()["error"] == "Forbidden"
    assert "'ops' or 'finance'" in refused.json()["message"]
    pinned = api.call(
        "GET", "/metrics", auth=token("fay", "finance", community="other"), query=PERIOD
    )
    assert pinned.status == 403 and "other" in pinned.json()["message"]
    assert api.call("GET", "/metrics", query=PERIOD).status == 401


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"community": "sunrise", "to": "2026-11-29"}, "missing query parameter 'from'"),
        ({"community": "sunrise", "from": "2026-11-25"}, "missing query parameter 'to'"),
        ({"from": "2026-11-25", "to": "2026-11-29"}, "missing query parameter 'community'"),
        ({**PERIOD, "from": "2026-13-01"}, "from must be a date YYYY-MM-DD"),
        ({**PERIOD, "from": "26-11-25"}, "from must be a date YYYY-MM-DD"),
        ({**PERIOD, "to": "2026-11-31"}, "to must be a date YYYY-MM-DD"),
        ({**PERIOD, "from": "1969-12-31"}, "from must be a date from 1970-01-01"),
        ({**PERIOD, "to": "9999-12-31"}, "to must be a date from 1970-01-01 to 2999-12-31"),
        ({**PERIOD, "from": "2026-11-30"}, "from (2026-11-30) must not be after to (2026-11-29)"),
        ({**PERIOD, "from": "2025-11-28"}, "to must be within 366 days of from"),
        ({**PERIOD, "format": "xml"}, "format must be one of json, csv, got 'xml'"),
        ({**PERIOD, "format": "CSV"}, "format must be one of json, csv"),
        ({**PERIOD, "since": "2026-11-25"}, "unknown query parameter 'since'"),
        ({**PERIOD, "community": "sun\x00rise"}, "control character"),
    ],
)
def test_bad_parameters_are_a_400_naming_them_before_any_read(snapshots, query, message):
    api, _ = snapshots
    with RequestCounter() as counter:
        answer = api.call("GET", "/metrics", auth=token("fay", "finance"), query=query)
    assert answer.status == 400, answer.body
    assert answer.json()["error"] == "BadRequest"
    assert message in answer.json()["message"]
    assert counter.count("dynamodb") == 0, counter.summary()


def test_a_period_of_366_days_is_answered(snapshots):
    api, taken = snapshots
    year = {**PERIOD, "from": "2025-11-29", "to": "2026-11-29"}  # 366 days, both included
    answer = api.call("GET", "/metrics", auth=token("fay", "finance"), query=year)
    assert answer.status == 200, answer.body
    assert answer.json()["snapshots"] == taken
    assert len(answer.json()["missing_days"]) == 366 - len(taken)


def test_an_unknown_community_is_a_404_like_every_route(snapshots):
    api, _ = snapshots
    answer = api.call(
        "GET", "/metrics", auth=token("fay", "finance"), query={**PERIOD, "community": "nope"}
    )
    assert answer.status == 404 and answer.json()["error"] == "UnknownCommunity"
    assert "nope" in answer.json()["message"]


def test_the_route_reads_one_query_of_the_metrics_table_and_the_config(snapshots, monkeypatch):
    api, _ = snapshots
    tables: list[str] = []
    query = DynamoDBBackend.query

    def recording(self: DynamoDBBackend, table_name: str, *args: Any, **kwargs: Any) -> Any:
        tables.append(table_name)
        return query(self, table_name, *args, **kwargs)

    monkeypatch.setattr(DynamoDBBackend, "query", recording)
    finance = token("fay", "finance")
    api.stack.runtime.reset_containers()  # a cold start reads the config as well
    with RequestCounter() as cold:
        assert api.call("GET", "/metrics", auth=finance, query=PERIOD).status == 200
    with RequestCounter() as warm:
        csv_answer = api.call("GET", "/metrics", auth=finance, query={**PERIOD, "format": "csv"})
        assert csv_answer.status == 200
    dynamodb = {op: n for (service, op), n in cold.by_operation().items() if service == "dynamodb"}
    assert dynamodb == {"Query": 1}, cold.summary()
    assert {service for service, _ in cold.by_operation()} <= {"dynamodb", "s3"}, cold.summary()
    assert warm.summary() == {"dynamodb.Query": 1}
    assert tables == [api.stack.runtime.physical_id("MetricsTable")] * 2
