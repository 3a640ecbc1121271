"""Answer shapes shared by the API functions: error documents and the ledger as CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from typing import Any

from autopilot.errors import RequestError
from autopilot.ledger.rules import CSV_COLUMNS, Entry, csv_row


def to_json(document: Any) -> str:
    """Compact JSON with non-ASCII text as is (members' names and Chinese answers stay readable)."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def error_document(exc: RequestError) -> dict[str, Any]:
    """``{"error": code, "message": text}``: what every refused request answers, plus
    ``"reasons"`` (a list of texts) when the error carries them (a member who may not
    enter a lottery is told every rule they fail)."""
    document: dict[str, Any] = {"error": exc.code, "message": str(exc)}
    reasons = getattr(exc, "reasons", None)
    if isinstance(reasons, list) and reasons:
        document["reasons"] = [str(reason) for reason in reasons]
    return document


def install_error_answers(resolver: Any, logger: Any, what: str) -> None:
    """Register the one place where request errors become HTTP answers on ``resolver``.

    A :class:`RequestError` answers its status with :func:`error_document`; an
    unknown route answers 404. ``what`` names the refusal in the log line.
    """
    from aws_lambda_powertools.event_handler import Response

    @resolver.exception_handler(RequestError)
    def refused(exc: RequestError) -> Any:
        logger.info(f"{what} refused", extra={"status": exc.status, "error": exc.code})
        return Response(exc.status, "application/json", error_document(exc))

    @resolver.not_found
    def no_route(exc: Exception) -> Any:
        return Response(404, "application/json", {"error": "NotFound", "message": "no such route"})


def entries_csv(entries: Iterable[Entry]) -> str:
    """Entries rendered as the export's CSV.

    Same columns and spreadsheet-safe cells as the monthly export
    (:data:`autopilot.ledger.rules.CSV_COLUMNS`), so finance reads one format.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for entry in entries:
        writer.writerow(csv_row(entry))
    return out.getvalue()
