"""`autopilot report`: a community's daily metrics as a terminal table and an HTML report.

    autopilot report --community sunrise-readers --from 2027-03-08 --to 2027-03-14 \\
        --local-dir out/demo                  # what `autopilot simulate` wrote
    autopilot report --community sunrise-readers --from 2027-03-01 --to 2027-03-31 \\
        --stack community-autopilot [--region R] [--out out/reports]

It prints the table (:func:`autopilot_cli.report.render_table`) and writes
``OUT/report-<community>-<from>-<to>.html`` (:func:`autopilot_cli.report.write_report`),
one self-contained file with charts (docs/reports.md). The snapshots (docs/metrics.md)
come from :func:`load_snapshots`: ``--local-dir DIR`` reads ``DIR/summary.json``'s
``"snapshots"``; ``--stack`` reads the stack's MetricsTable (its ``MetricsTableName``
output) through ``autopilot.metrics.store.MetricsStore``.

The community's name and locale (Chinese or English labels) come from ``--config``
when it has the community, else the id and English; ``--locale`` overrides.

Exit status: 0 written; 1 no snapshot in the period, or the stack cannot be used
(nothing written); 2 bad arguments (day not ``YYYY-MM-DD``, ``--from`` after
``--to``, more than 366 days) or a source that cannot be read or holds snapshots
of the wrong shape.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = "config/communities.yaml"
DEFAULT_OUT = "out/reports"
MAX_DAYS = 366
# Beyond these a day is a typo, and date arithmetic near year 1 or 9999 overflows.
FIRST_DAY = date(1970, 1, 1)
LAST_DAY = date(9998, 12, 31)
# summary.json of a simulated month at 100k members is a few MB; far below this.
MAX_SUMMARY_BYTES = 512 * 2**20
_DAY_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ID_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,47}")  # autopilot.config.document.ID_RE


class SourceError(Exception):
    """Snapshots that cannot be read: the message says what and where (exit 2)."""


@dataclass(frozen=True)
class LocalDirSource:
    """``DIR/summary.json`` as ``autopilot simulate --out DIR`` writes it."""

    path: Path


@dataclass(frozen=True)
class StackSource:
    """The MetricsTable of a deployed stack (its ``MetricsTableName`` output)."""

    stack: str
    region: str | None = None


def register(sub: Any) -> None:
    """Add ``autopilot report``."""
    report = sub.add_parser(
        "report",
        help="a community's daily metrics: a table here and an HTML report with charts",
        description="Print a community's daily metrics as a table and write a self-contained "
        "HTML report with charts (docs/reports.md).",
    )
    report.add_argument("--community", required=True, type=_community_id, help="community id")
    report.add_argument(
        "--from", dest="first", required=True, type=_day, metavar="YYYY-MM-DD", help="first day"
    )
    report.add_argument(
        "--to",
        dest="last",
        required=True,
        type=_day,
        metavar="YYYY-MM-DD",
        help=f"last day (included; at most {MAX_DAYS} days from --from)",
    )
    report.add_argument(
        "--out", default=DEFAULT_OUT, help=f"directory of the HTML file (default {DEFAULT_OUT})"
    )
    source = report.add_mutually_exclusive_group(required=True)
    source.add_argument("--stack", help="CloudFormation stack (reads its MetricsTableName output)")
    source.add_argument(
        "--local-dir",
        dest="local_dir",
        help="a directory with summary.json written by `autopilot simulate --out DIR`",
    )
    report.add_argument("--region", default=None, help="with --stack")
    report.add_argument(
        "--config",
        default=DEFAULT_CONFIG,
        help="community config: the community's name and locale (default: the id, English)",
    )
    report.add_argument(
        "--locale", default=None, help="labels' language: zh* Chinese, else English"
    )
    report.set_defaults(func=run_report)


def _day(text: str) -> date:
    """An argparse ``type``: a calendar day ``YYYY-MM-DD`` between 1970 and 9998."""
    if not _DAY_RE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a day YYYY-MM-DD")
    try:
        day = date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a calendar day ({exc})") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise argparse.ArgumentTypeError(
            f"{text!r} is out of range: a day from {FIRST_DAY} to {LAST_DAY}"
        )
    return day


def _community_id(text: str) -> str:
    if not _ID_RE.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text[:60]!r} is not a community id: 1-48 characters a-z, 0-9, '-' or '_'"
        )
    return text


def check_period(first: date, last: date) -> str | None:
    """What is wrong with the period ``first``..``last`` (both included), or None."""
    if first > last:
        return f"--from {first} is after --to {last}"
    days = (last - first).days + 1
    if days > MAX_DAYS:
        return f"--from {first} --to {last} is {days} days: at most {MAX_DAYS} in one report"
    return None


def load_snapshots(
    community: str, first: date, last: date, *, source: LocalDirSource | StackSource
) -> list[dict[str, Any]]:
    """The snapshots of ``community`` for the days ``first``..``last``, sorted by day.

    :class:`SourceError` when the source cannot be read; ``SystemExit`` (exit 1)
    when the stack cannot be used, as the other ``--stack`` commands do.
    """
    if isinstance(source, LocalDirSource):
        snapshots = _local_snapshots(source.path)
    else:
        snapshots = _stack_snapshots(community, first, last, source)
    low, high = first.isoformat(), last.isoformat()
    chosen = [
        s
        for s in snapshots
        if isinstance(s, dict)
        and s.get("community") == community
        and isinstance(s.get("day"), str)
        and low <= s["day"] <= high
    ]
    return sorted(chosen, key=lambda s: str(s["day"]))


def _local_snapshots(directory: Path) -> list[Any]:
    path = directory / "summary.json"
    try:
        size = path.stat().st_size
        if size > MAX_SUMMARY_BYTES:
            raise SourceError(f"{path}: {size} bytes is too large (at most {MAX_SUMMARY_BYTES})")
        document = json.loads(path.read_bytes())
    except OSError as exc:
        raise SourceError(
            f"cannot read {path}: {exc.strerror or exc} (write it with "
            "`autopilot simulate --out DIR`)"
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path} is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise SourceError(f'{path}: expected an object with a "snapshots" list')
    snapshots = document.get("snapshots")
    if snapshots is None:
        raise SourceError(
            f'{path} has no "snapshots" list (written by an autopilot simulate without '
            "metrics? run it again)"
        )
    if not isinstance(snapshots, list):
        raise SourceError(f'{path}: "snapshots" is {type(snapshots).__name__}, not a list')
    for index, snapshot in enumerate(snapshots):
        if not isinstance(snapshot, dict):
            raise SourceError(
                f"{path}: snapshots[{index}] is {type(snapshot).__name__}, not an object"
            )
    return snapshots


def _stack_snapshots(
    community: str, first: date, last: date, source: StackSource
) -> list[dict[str, Any]]:
    """The AWS source: the stack's MetricsTable through ``MetricsStore.snapshots``.

    ``MetricsStore(table, region).snapshots(community, first, last)`` yields the
    snapshot dicts of docs/metrics.md for the days ``first``..``last`` (dates,
    both included). The stack's outputs name the table, as for the other
    ``--stack`` commands; AWS errors (no credentials, no such stack) end with
    their message, exit 1.
    """
    try:
        from autopilot.metrics.store import MetricsStore
    except ImportError as exc:
        raise SystemExit(
            "autopilot report --stack: this version has no metrics store "
            f"(autopilot.metrics.store: {exc}); use --local-dir DIR with what "
            "`autopilot simulate --out DIR` wrote"
        ) from None
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError
    from pynamodb.exceptions import PynamoDBException

    region = source.region or boto3.session.Session().region_name or "us-east-1"
    try:
        stack = boto3.client("cloudformation", region_name=region).describe_stacks(
            StackName=source.stack
        )["Stacks"][0]
    except (BotoCoreError, ClientError) as exc:
        raise SystemExit(f"autopilot report: stack {source.stack} ({region}): {exc}") from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    table = outputs.get("MetricsTableName")
    if not table:
        raise SystemExit(f"stack {source.stack} has no MetricsTableName output")
    store = MetricsStore(table, region)
    try:
        return list(store.snapshots(community, first, last))
    except (BotoCoreError, ClientError, PynamoDBException) as exc:
        raise SystemExit(f"autopilot report: metrics table {table} ({region}): {exc}") from None


def _name_and_locale(args: argparse.Namespace) -> tuple[str, str]:
    """The community's display name and locale from ``--config``, else the id and ``en``.

    Only the community's ``name`` and ``locale`` are read (no validation: a report
    of past days does not depend on today's config), so a default config that is
    missing or unreadable does not stop a report (a note says so); ``--locale`` wins.
    An explicit ``--config`` that does not exist is an error.
    """
    name, locale = args.community, "en"
    path = Path(args.config)
    if args.config != DEFAULT_CONFIG and not path.exists():
        raise SourceError(f"cannot read --config {args.config}: no such file")
    if path.exists():
        import yaml

        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            print(
                f"note: cannot read {path} ({type(exc).__name__}); "
                "the report names the community by its id",
                file=sys.stderr,
            )
            document = None
        communities = document.get("communities") if isinstance(document, dict) else None
        for community in communities if isinstance(communities, list) else []:
            if isinstance(community, dict) and community.get("id") == args.community:
                if isinstance(community.get("name"), str) and community["name"].strip():
                    name = community["name"]
                if isinstance(community.get("locale"), str):
                    locale = community["locale"]
                break
    return name, args.locale or locale


def run_report(args: argparse.Namespace) -> int:
    """Print the table and write the HTML report; see the module's exit statuses."""
    from autopilot_cli.report import SnapshotError, render_table, write_report

    problem = check_period(args.first, args.last)
    if problem:
        print(f"autopilot report: {problem}", file=sys.stderr)
        return 2
    source: LocalDirSource | StackSource
    if args.local_dir:
        source = LocalDirSource(Path(args.local_dir))
        where = str(source.path / "summary.json")
    else:
        source = StackSource(args.stack, args.region)
        where = f"stack {args.stack}"
    try:
        name, locale = _name_and_locale(args)
        snapshots = load_snapshots(args.community, args.first, args.last, source=source)
    except SourceError as exc:
        print(f"autopilot report: {exc}", file=sys.stderr)
        return 2
    if not snapshots:
        print(
            f"autopilot report: no snapshots of {args.community} from {args.first} to "
            f"{args.last} in {where}; nothing written",
            file=sys.stderr,
        )
        return 1
    try:
        table = render_table(snapshots, community_name=name, locale=locale)
        path = write_report(
            snapshots,
            args.out,
            community_name=name,
            locale=locale,
            community_id=args.community,
            period=(args.first.isoformat(), args.last.isoformat()),
        )
    except SnapshotError as exc:
        print(f"autopilot report: {where}: {exc}; nothing written", file=sys.stderr)
        return 2
    print(table, end="")
    print(f"\nwrote {path}")
    return 0
