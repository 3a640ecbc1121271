"""`autopilot ledger …` and `autopilot members …`: finance and ops on a deployed stack.

They talk to the stack's tables directly with your AWS credentials (finance and
ops roles), using the same domain services as the functions:

    autopilot ledger export --stack community-autopilot --community sunrise-readers \\
        --month 2026-11 --out november.csv
    autopilot ledger reconcile --stack community-autopilot
    autopilot ledger audit --stack community-autopilot --community sunrise-readers \\
        [--job-id audit-7] [--max-pages 10]   # resumable: run it again to continue
    autopilot ledger adjust --stack community-autopilot --community sunrise-readers \\
        --member wx:alice --amount -20 --reason "duplicate gift" --ref TICKET-42
    autopilot members add|leave --stack … --community … --member …

``--table`` (and ``--bucket``) name the resources directly instead of ``--stack``.
Entries and membership changes are dated by the injected clock
(:func:`autopilot.clock.get_clock`), as in the functions.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from autopilot.api.requests import member_id, request_key
from autopilot.clock import get_clock
from autopilot.errors import BadRequest

DEFAULT_CONFIG = "config/communities.yaml"


def _common(parser: argparse.ArgumentParser) -> None:
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--stack", help="CloudFormation stack (reads its outputs)")
    target.add_argument("--table", help="ledger table name")
    parser.add_argument(
        "--config", default=DEFAULT_CONFIG, help="community config (rules, catalog, time zone)"
    )
    parser.add_argument("--region", default=None)


def register(sub: Any) -> None:
    """Add the `ledger` and `members` commands."""
    ledger = sub.add_parser("ledger", help="finance: export, reconcile, adjust the points ledger")
    ledger_sub = ledger.add_subparsers(dest="ledger_command", required=True)

    export = ledger_sub.add_parser("export", help="a month's entries as CSV (+ manifest)")
    _common(export)
    export.add_argument("--community", required=True)
    export.add_argument("--month", required=True, help="YYYY-MM, in the community's time zone")
    export.add_argument("--out", required=True, help="CSV file to write")
    export.set_defaults(func=_export)

    reconcile = ledger_sub.add_parser("reconcile", help="entries sum to balances, ids unique")
    _common(reconcile)
    reconcile.add_argument("--community", default=None, help="default: every community")
    reconcile.set_defaults(func=_reconcile)

    audit = ledger_sub.add_parser(
        "audit", help="full audit: every member's whole history, paginated and resumable"
    )
    _common(audit)
    audit.add_argument("--community", required=True)
    audit.add_argument(
        "--job-id",
        default=None,
        help="the audit's job record (default: audit-<community>-<UTC date>); "
        "running the same id again resumes where it stopped",
    )
    audit.add_argument(
        "--max-pages", type=int, default=0, help="stop after this many pages (0: run to the end)"
    )
    audit.set_defaults(func=_audit)

    adjust = ledger_sub.add_parser("adjust", help="an ops correction: a new adjustment entry")
    _common(adjust)
    adjust.add_argument("--community", required=True)
    adjust.add_argument("--member", required=True, type=_checked(member_id, "--member"))
    adjust.add_argument("--amount", required=True, type=int)
    adjust.add_argument("--reason", required=True, help="why (stored on the entry)")
    adjust.add_argument(
        "--ref",
        required=True,
        type=_checked(request_key, "--ref"),
        help="your unique reference (ticket id): running the same ref twice adjusts once",
    )
    adjust.add_argument("--actor", default=None, help="who (default: $USER)")
    adjust.set_defaults(func=_adjust)

    members = sub.add_parser("members", help="ops: add, update or remove members")
    members_sub = members.add_subparsers(dest="members_command", required=True)
    add = members_sub.add_parser("add", help="register a member or update their profile")
    _common(add)
    add.add_argument("--community", required=True)
    add.add_argument("--member", required=True, type=_checked(member_id, "--member"))
    add.add_argument("--name", dest="display_name", default=None)
    add.add_argument(
        "--referred-by",
        dest="referred_by",
        default=None,
        type=_checked(member_id, "--referred-by"),
    )
    add.add_argument("--dm-address", dest="dm_address", default=None)
    add.add_argument("--timezone", default=None)
    add.set_defaults(func=_members_add)
    leave = members_sub.add_parser("leave", help="mark a member as left (history is kept)")
    _common(leave)
    leave.add_argument("--community", required=True)
    leave.add_argument("--member", required=True, type=_checked(member_id, "--member"))
    leave.set_defaults(func=_members_leave)


def _checked(rule: Callable[[str, str], str], name: str) -> Callable[[str], str]:
    """An argparse ``type`` applying the API's id rule, so the CLI accepts the same ids."""

    def check(text: str) -> str:
        try:
            return rule(name, text)
        except BadRequest as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return check


def _services(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    import boto3
    from autopilot.ledger.service import LedgerService
    from autopilot.ledger.store import LedgerStore
    from autopilot.members.service import MemberService

    from autopilot_cli.configfile import validate_file

    report = validate_file(args.config, now=get_clock().now())
    if not report.ok:
        for finding in report.errors:
            print(finding, file=sys.stderr)
        raise SystemExit(1)
    table = args.table
    region = args.region or boto3.session.Session().region_name or "us-east-1"
    if args.stack:
        stack = boto3.client("cloudformation", region_name=region).describe_stacks(
            StackName=args.stack
        )["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        table = outputs.get("LedgerTableName")
        if not table:
            raise SystemExit(f"stack {args.stack} has no LedgerTableName output")
    store = LedgerStore(table, region)
    return report.config, LedgerService(store), MemberService(store)


def _community(config: Any, community_id: str) -> Any:
    try:
        return config.community(community_id)
    except KeyError:
        known = ", ".join(c.id for c in config.communities)
        raise SystemExit(f"unknown community {community_id!r} (config has: {known})") from None


def _export(args: argparse.Namespace) -> int:
    config, ledger, _ = _services(args)
    community = _community(config, args.community)
    with open(args.out, "wb") as out:
        manifest = ledger.export_month(community, args.month, out)
    manifest_path = f"{args.out}.manifest.json"
    with open(manifest_path, "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, ensure_ascii=False, indent=2, sort_keys=True)
    print(
        f"wrote {args.out}: {manifest['count']} entries, net {manifest['net']}, "
        f"sha256 {manifest['sha256']} (manifest: {manifest_path})"
    )
    return 0


def _reconcile(args: argparse.Namespace) -> int:
    config, ledger, _ = _services(args)
    communities = (
        [_community(config, args.community)] if args.community else list(config.communities)
    )
    failed = False
    for community in communities:
        report = ledger.reconcile(community)
        status = "OK" if report["ok"] else f"{len(report['mismatches'])} MISMATCH(ES)"
        print(
            f"{community.id}: {status} ({report['members']} members, outstanding "
            f"{report['aggregate_outstanding']} points)"
        )
        for mismatch in report["mismatches"]:
            print(
                f"  MISMATCH {mismatch['kind']} member={mismatch['member']}: {mismatch['detail']}",
                file=sys.stderr,
            )
        failed = failed or not report["ok"]
    return 1 if failed else 0


def _audit(args: argparse.Namespace) -> int:
    """Run (or resume) the full audit of one community, saving its cursor as it goes."""
    from autopilot.ledger.jobs import LEASE
    from autopilot.ledger.reconcile import Reconciler

    config, ledger, _ = _services(args)
    community = _community(config, args.community)
    store = ledger._store
    now = get_clock().now()
    job_id = args.job_id or f"audit-{community.id}-{now:%Y-%m-%d}"
    item = store.claim_job(job_id, "ledger_audit", community.id, now, LEASE)
    if item is None:
        existing = store.job(job_id)
        status = existing.status if existing is not None else "unknown"
        print(f"audit {job_id} is {status} (use another --job-id to audit again)")
        return 0 if status == "done" else 1
    pages = 0

    def deadline() -> bool:
        nonlocal pages
        pages += 1
        return bool(args.max_pages) and pages >= args.max_pages

    cursor = (item.cursor or {}).get("audit")
    report = Reconciler(store).audit(community.id, now, cursor=cursor, deadline=deadline)
    if not report.complete:
        item.cursor = {"audit": report.cursor}
        store.release_job(item, get_clock().now())
        print(
            f"{community.id}: audit {job_id} paused after {report.members} members; "
            "run the same command again to resume"
        )
        return 0
    item.status = "done" if report.ok else "failed"
    item.outcome = {**report.as_dict(), "mismatches": report.mismatches[:50]}
    store.finish_job(item, get_clock().now())
    status = "OK" if report.ok else f"{len(report.mismatches)} MISMATCH(ES)"
    print(
        f"{community.id}: audit {job_id} {status} ({report.members} members in this run, "
        f"verified total {report.verified_total}, outstanding {report.aggregate_outstanding})"
    )
    for mismatch in report.mismatches:
        print(
            f"  MISMATCH {mismatch['kind']} member={mismatch['member']}: {mismatch['detail']}",
            file=sys.stderr,
        )
    return 0 if report.ok else 1


def _adjust(args: argparse.Namespace) -> int:
    import getpass

    from autopilot.errors import RequestError

    config, ledger, _ = _services(args)
    community = _community(config, args.community)
    actor = f"ops:{args.actor or getpass.getuser()}"
    try:
        from autopilot.ledger.service import Adjustment

        adjustment = Adjustment(
            member_id=args.member, amount=args.amount, reason=args.reason, ref=args.ref, actor=actor
        )
        result = ledger.adjust(community, adjustment, get_clock().now())
    except RequestError as exc:
        print(f"autopilot ledger adjust: {exc}", file=sys.stderr)
        return 1
    verb = "already recorded" if result.repeat else "recorded"
    print(
        f"{verb}: {result.amount:+d} points for {args.member} (entry {result.entry_id}, "
        f"balance {result.balance})"
    )
    return 0


def _members_add(args: argparse.Namespace) -> int:
    from autopilot.errors import RequestError

    config, _, members = _services(args)
    community = _community(config, args.community)
    fields = {
        k: getattr(args, k)
        for k in ("display_name", "referred_by", "dm_address", "timezone")
        if getattr(args, k) is not None
    }
    try:
        account = members.upsert(community, args.member, fields, get_clock().now())
    except RequestError as exc:
        print(f"autopilot members add: {exc}", file=sys.stderr)
        return 1
    print(f"{args.member} is a member of {community.id} (joined {account.joined_at})")
    return 0


def _members_leave(args: argparse.Namespace) -> int:
    from autopilot.errors import RequestError

    config, _, members = _services(args)
    community = _community(config, args.community)
    try:
        account = members.leave(community, args.member, get_clock().now())
    except RequestError as exc:
        print(f"autopilot members leave: {exc}", file=sys.stderr)
        return 1
    print(f"{args.member} left {community.id} at {account.left_at}; balance and history kept")
    return 0
