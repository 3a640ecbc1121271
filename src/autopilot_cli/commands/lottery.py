"""`autopilot lottery verify` (recompute a published draw) and `autopilot lottery codes`
(coupon pools of a deployed stack).

``autopilot lottery verify RECORD [--entrants FILE]``: anyone can run it on what a
draw published: the record (JSON, in canonical form) and, optionally, the frozen
entrant list (one ``member_id<TAB>weight`` line per entrant, sorted by member id).
The draw is recomputed from scratch with the
algorithm of docs/lottery.md; the command prints ``VERIFIED`` or exactly what
differs. Exit status: 0 verified, 1 not verified, 2 a file cannot be read.

``autopilot lottery codes upload|status``: ops manage the coupon pools that
``coupon_pool`` prizes draw from, in the stack's lottery table, with their AWS
credentials (like ``autopilot ledger``)::

    autopilot lottery codes upload --stack community-autopilot --community sunrise-readers \\
        --pool coffee codes.txt
    autopilot lottery codes status --stack community-autopilot --community sunrise-readers \\
        --pool coffee

``--table`` names the lottery table directly instead of ``--stack``. The file has
one code per line; a file with any refused line (blank, surrounding spaces,
control characters, too long, not UTF-8) is reported with line numbers and
nothing is uploaded; codes already in the pool are skipped, so running the same
upload again is safe (``autopilot.lottery.codes``). Exit status: 0 done, 1
refused, 2 the file cannot be read.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = "config/communities.yaml"
# A draw record lists at most 10,000 prizes plus rerolls: far below this.
MAX_RECORD_BYTES = 64 * 2**20


def register(subparsers: Any) -> None:
    """Add ``lottery verify`` and ``lottery codes upload|status`` to the ``autopilot`` parser."""
    lottery = subparsers.add_parser(
        "lottery", help="verify lottery draws; upload and count coupon codes"
    )
    lottery_sub = lottery.add_subparsers(dest="lottery_command", required=True)
    verify = lottery_sub.add_parser(
        "verify",
        help="recompute a draw from its published record (and entrant list) and say VERIFIED "
        "or what differs",
    )
    verify.add_argument("record", help="the draw record (JSON) as published")
    verify.add_argument(
        "--entrants",
        default=None,
        help="the frozen entrant list (member_id<TAB>weight per line); without it the "
        "winners' keys and order are checked but not that the list is complete",
    )
    verify.set_defaults(func=run_verify)

    codes = lottery_sub.add_parser("codes", help="coupon code pools: upload codes, count them")
    codes_sub = codes.add_subparsers(dest="codes_command", required=True)
    upload = codes_sub.add_parser(
        "upload",
        help="add the codes of FILE (one per line) to a pool; codes already there are skipped",
    )
    _pool_target(upload)
    upload.add_argument("file", help="the codes, one per line (UTF-8)")
    upload.set_defaults(func=run_codes_upload)
    status = codes_sub.add_parser("status", help="how many codes a pool has, has given, has left")
    _pool_target(status)
    status.set_defaults(func=run_codes_status)


def _pool_target(parser: argparse.ArgumentParser) -> None:
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--stack", help="CloudFormation stack (reads its LotteryTableName output)")
    target.add_argument("--table", help="lottery table name")
    parser.add_argument("--community", required=True)
    parser.add_argument("--pool", required=True, help="the pool id prizes name (coupon_pool)")
    parser.add_argument(
        "--config", default=DEFAULT_CONFIG, help="community config (which lotteries use the pool)"
    )
    parser.add_argument("--region", default=None)


def run_verify(args: argparse.Namespace) -> int:
    """Verify the record; print the verdict. 0 verified, 1 not verified, 2 unreadable input."""
    from autopilot.lottery.draw import parse_entrants, verify_json

    record_path = Path(args.record)
    try:
        size = record_path.stat().st_size
        if size > MAX_RECORD_BYTES:
            print(
                f"{record_path}: {size} bytes is too large for a draw record "
                f"(at most {MAX_RECORD_BYTES})",
                file=sys.stderr,
            )
            return 2
        text = record_path.read_bytes()
    except OSError as exc:
        print(f"cannot read the record {record_path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if args.entrants is None:
        result = verify_json(text)
    else:
        try:
            with open(args.entrants, "rb") as handle:
                result = verify_json(text, parse_entrants(handle))
        except OSError as exc:
            print(
                f"cannot read the entrant list {args.entrants}: {exc.strerror or exc}",
                file=sys.stderr,
            )
            return 2
    print(result.summary())
    return 0 if result.verified else 1


def _pools(args: argparse.Namespace) -> tuple[Any, Any]:
    """The community (validated config) and the stack's :class:`CouponPools`."""
    import boto3
    from autopilot.clock import get_clock
    from autopilot.config.document import ID_RE
    from autopilot.lottery.codes import CouponPools

    from autopilot_cli.configfile import validate_file

    if not re.fullmatch(ID_RE, args.pool):
        raise SystemExit(f"--pool {args.pool[:60]!r} is not a pool id ({ID_RE})")
    report = validate_file(args.config, now=get_clock().now())
    if not report.ok or report.config is None:
        for finding in report.errors:
            print(finding, file=sys.stderr)
        raise SystemExit(1)
    try:
        community = report.config.community(args.community)
    except KeyError:
        known = ", ".join(c.id for c in report.config.communities)
        raise SystemExit(f"unknown community {args.community!r} (config has: {known})") from None
    region = args.region or boto3.session.Session().region_name or "us-east-1"
    table = args.table
    if args.stack:
        stack = boto3.client("cloudformation", region_name=region).describe_stacks(
            StackName=args.stack
        )["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        table = outputs.get("LotteryTableName")
        if not table:
            raise SystemExit(f"stack {args.stack} has no LotteryTableName output")
    return community, CouponPools(table, region)


def _pool_users(community: Any, pool_id: str) -> list[tuple[str, int]]:
    """``(lottery id, codes one draw needs)`` for each lottery whose prizes use the pool."""
    from autopilot.lottery.prizes import CouponPrize

    users = []
    for lottery in community.lotteries:
        if lottery.plan is None:
            continue
        need = sum(
            t.count
            for t in lottery.plan.tiers
            if isinstance(t.prize, CouponPrize) and t.prize.pool_id == pool_id
        )
        if need:
            users.append((lottery.id, need))
    return users


def _describe_users(community: Any, pool_id: str, unused: int) -> None:
    users = _pool_users(community, pool_id)
    if not users:
        print(
            f"note: no lottery of {community.id} gives codes from pool {pool_id!r} yet "
            "(a prize tier names it with coupon_pool)"
        )
    for lottery_id, need in users:
        draws = unused // need
        print(f"lottery {lottery_id}: {need} code(s) per draw; enough for {draws} draw(s)")


def run_codes_upload(args: argparse.Namespace) -> int:
    """Upload the file's codes to the pool. 0 done, 1 refused (nothing written), 2 unreadable."""
    from autopilot.clock import get_clock
    from autopilot.lottery.codes import (
        MAX_UPLOAD_BYTES,
        CouponCodeError,
        PoolBusy,
        parse_codes,
    )

    path = Path(args.file)
    try:
        if path.stat().st_size > MAX_UPLOAD_BYTES:
            print(
                f"{path}: {path.stat().st_size} bytes is too large for one upload "
                f"(at most {MAX_UPLOAD_BYTES}); split the file",
                file=sys.stderr,
            )
            return 1
        data = path.read_bytes()
    except OSError as exc:
        print(f"cannot read the codes {path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    parsed = parse_codes(data)
    if not parsed.ok:
        for line in parsed.describe_problems(str(path)):
            print(line, file=sys.stderr)
        print(f"{path}: nothing uploaded", file=sys.stderr)
        return 1
    community, pools = _pools(args)
    try:
        result = pools.upload(community.id, args.pool, parsed, now=get_clock().now())
    except (CouponCodeError, PoolBusy) as exc:
        print(f"autopilot lottery codes upload: {exc}", file=sys.stderr)
        return 1
    where = f"{community.id}/{args.pool}"
    if result.added:
        print(f"{where}: added {result.added} code(s) (#{result.first_seq}-#{result.last_seq})")
    else:
        print(f"{where}: added 0 codes")
    if result.already:
        print(f"{where}: {result.already} code(s) of the file were already in the pool (skipped)")
    if result.repeated_lines:
        shown = ", ".join(str(n) for n in result.repeated_lines[:10])
        more = ", ..." if len(result.repeated_lines) > 10 else ""
        print(
            f"{path}: {len(result.repeated_lines)} line(s) repeat an earlier code and were "
            f"kept once (lines {shown}{more})"
        )
    status = pools.status(community.id, args.pool)
    print(f"{where}: {status.total} codes, {status.given} given, {status.unused} unused")
    _describe_users(community, args.pool, status.unused)
    return 0


def run_codes_status(args: argparse.Namespace) -> int:
    """Print the pool's counts (and which lotteries use it). 0 always (an empty pool: 0s)."""
    community, pools = _pools(args)
    status = pools.status(community.id, args.pool)
    print(
        f"{community.id}/{args.pool}: {status.total} codes, {status.given} given, "
        f"{status.unused} unused"
    )
    _describe_users(community, args.pool, status.unused)
    return 0
