"""`autopilot lottery verify RECORD [--entrants FILE]`: recompute a published draw.

Anyone can run it on what a draw published: the record (JSON, in canonical form)
and, optionally, the frozen entrant list (one ``member_id<TAB>weight`` line per
entrant, sorted by member id). The draw is recomputed from scratch with the
algorithm of docs/lottery.md; the command prints ``VERIFIED`` or exactly what
differs. Exit status: 0 verified, 1 not verified, 2 a file cannot be read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

# A draw record lists at most 10,000 prizes plus rerolls: far below this.
MAX_RECORD_BYTES = 64 * 2**20


def register(subparsers: Any) -> None:
    """Add ``lottery verify`` to the ``autopilot`` parser."""
    lottery = subparsers.add_parser("lottery", help="verify lottery draws")
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
