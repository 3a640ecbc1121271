"""Finance jobs run by the dispatcher: the monthly export and reconciliation."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from autopilot.ledger.service import LedgerService, export_to_s3
from autopilot.scheduler.service import ActionContext, ActionResult
from autopilot.timeutil import local_wall, zone

logger = logging.getLogger(__name__)


def previous_month(ctx: ActionContext) -> str:
    """The community-local month before the occurrence's scheduled local date."""
    local = local_wall(ctx.occurrence.scheduled_utc, zone(ctx.community.timezone))
    first = local.date().replace(day=1)
    return (first - timedelta(days=1)).strftime("%Y-%m")


def ledger_actions(
    ledger: LedgerService, s3: Any, export_bucket: str
) -> dict[str, Callable[[ActionContext], ActionResult]]:
    """The ``ledger_export`` and ``ledger_reconcile`` actions."""

    def export(ctx: ActionContext) -> ActionResult:
        if not export_bucket:
            return ActionResult(ok=False, error="EXPORT_BUCKET is not set for this function")
        month = previous_month(ctx)
        manifest = export_to_s3(ledger, s3, export_bucket, ctx.community, month)
        return ActionResult(
            ok=True, detail={k: manifest[k] for k in ("month", "count", "net", "sha256", "csv_key")}
        )

    def reconcile(ctx: ActionContext) -> ActionResult:
        report = ledger.reconcile(ctx.community)
        if not report["ok"]:
            # Loud: an error log line per mismatch, and the occurrence is recorded failed.
            for mismatch in report["mismatches"]:
                logger.error("LEDGER MISMATCH %s: %s", ctx.community.id, mismatch)
            return ActionResult(
                ok=False,
                detail={"members": report["members"], "mismatches": report["mismatches"][:50]},
                error=f"{len(report['mismatches'])} ledger mismatch(es)",
            )
        return ActionResult(ok=True, detail={"members": report["members"], "mismatches": []})

    return {"ledger_export": export, "ledger_reconcile": reconcile}
