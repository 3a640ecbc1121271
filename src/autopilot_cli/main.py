"""Entry point of the `autopilot` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

DEFAULT_CONFIG = "config/communities.yaml"
# Capabilities add their commands in their own module: each has
# ``register(subparsers)`` adding parsers whose ``func`` default is
# ``(args) -> int``. Listed here so the import cost is paid only when used.
COMMAND_MODULES: tuple[str, ...] = (
    "autopilot_cli.commands.devtoken",
    "autopilot_cli.commands.channel",
    "autopilot_cli.commands.ledger",
)


def _iso(text: str) -> datetime:
    from autopilot.timeutil import parse_iso

    try:
        return parse_iso(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO-8601 instant with offset, e.g. 2027-03-08T00:00:00Z ({exc})"
        ) from exc


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be zero or more")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autopilot", description=__doc__.split("\n")[0] if __doc__ else None
    )
    sub = parser.add_subparsers(dest="command", required=True)

    config = sub.add_parser("config", help="validate or publish the community config")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    validate = config_sub.add_parser("validate", help="report every problem with file and line")
    validate.add_argument("files", nargs="*", default=[DEFAULT_CONFIG])
    push = config_sub.add_parser("push", help="validate, then publish to the config bucket")
    push.add_argument("file", nargs="?", default=DEFAULT_CONFIG)
    target = push.add_mutually_exclusive_group(required=True)
    target.add_argument("--bucket", help="config bucket name")
    target.add_argument("--stack", help="CloudFormation stack (reads its ConfigBucketName output)")
    push.add_argument("--key", default="communities.json")
    push.add_argument("--region", default=None)

    schedule = sub.add_parser("schedule", help="inspect schedules")
    schedule_sub = schedule.add_subparsers(dest="schedule_command", required=True)
    preview = schedule_sub.add_parser("preview", help="next occurrences in local time and UTC")
    preview.add_argument("--config", default=DEFAULT_CONFIG)
    preview.add_argument("--days", type=_positive, default=7)
    preview.add_argument(
        "--from", dest="start", type=_iso, default=None, help="start instant (default: now)"
    )
    preview.add_argument("--community", default=None)

    simulate = sub.add_parser("simulate", help="run the system on a fast simulated clock")
    simulate.add_argument("--config", default=DEFAULT_CONFIG)
    simulate.add_argument(
        "--start", type=_iso, default=None, help="ISO-8601 start (default: next Monday 00:00Z)"
    )
    simulate.add_argument("--days", type=_positive, default=7)
    simulate.add_argument(
        "--members",
        type=_positive,
        default=1000,
        help="simulated population (used by member capabilities)",
    )
    simulate.add_argument("--seed", type=int, default=1)
    simulate.add_argument("--out", default="out/simulation")
    simulate.add_argument(
        "--outage",
        action="append",
        default=[],
        help="START/DURATION with no ticks, e.g. 2027-03-10T06:00Z/4h",
    )
    simulate.add_argument(
        "--quiet", action="store_true", help="do not print the day-by-day account"
    )

    serve = sub.add_parser("serve", help="dispatcher in real time + HTTP API on localhost (moto)")
    serve.add_argument("--config", default=DEFAULT_CONFIG)
    serve.add_argument("--port", type=_positive, default=3000)
    serve.add_argument("--out", default="out/serve")

    import importlib

    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(sub)
    return parser


def _push(args: argparse.Namespace) -> int:
    import boto3

    from autopilot_cli.configfile import published_document, validate_file

    report = validate_file(args.file)
    for finding in [*report.errors, *report.warnings]:
        print(finding)
    if not report.ok:
        print(f"{args.file}: not published ({len(report.errors)} error(s))", file=sys.stderr)
        return 1
    session = boto3.session.Session(region_name=args.region)
    bucket = args.bucket
    if args.stack:
        stack = session.client("cloudformation").describe_stacks(StackName=args.stack)["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        bucket = outputs.get("ConfigBucketName")
        if not bucket:
            print(f"stack {args.stack} has no ConfigBucketName output", file=sys.stderr)
            return 1
    body = published_document(report.loaded, published_at=datetime.now(UTC))
    response = session.client("s3").put_object(
        Bucket=bucket, Key=args.key, Body=body, ContentType="application/json"
    )
    print(
        f"published {args.file} to s3://{bucket}/{args.key} "
        f"(version {response.get('VersionId', 'unversioned')}); "
        "functions pick it up within a minute"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "func", None) is not None:
        return int(args.func(args))
    if args.command == "config" and args.config_command == "validate":
        from autopilot_cli.configfile import cmd_validate

        return cmd_validate(list(args.files))
    if args.command == "config" and args.config_command == "push":
        return _push(args)
    if args.command == "schedule":
        from autopilot_cli.configfile import validate_file
        from autopilot_cli.preview import preview_rows, print_preview

        report = validate_file(args.config)
        if not report.ok:
            for finding in report.errors:
                print(finding, file=sys.stderr)
            return 1
        assert report.config is not None
        rows = preview_rows(
            report.config, args.start or datetime.now(UTC), args.days, args.community
        )
        print_preview(rows)
        return 0
    if args.command == "simulate":
        import os

        from autopilot_cli.simulate import Outage, default_start, run_simulation

        try:
            outages = [Outage.parse(text) for text in args.outage]
        except ValueError as exc:
            print(f"autopilot simulate: {exc}", file=sys.stderr)
            return 2
        os.environ.setdefault("AUTOPILOT_TEMPLATE", "template.yaml")
        result = run_simulation(
            args.config,
            start=args.start or default_start(),
            days=args.days,
            members=args.members,
            seed=args.seed,
            out_dir=args.out,
            outages=outages,
            template_path=os.environ["AUTOPILOT_TEMPLATE"],
            log=None if args.quiet else sys.stdout,
        )
        print(
            f"\nwrote {result.out_dir / 'summary.json'} ({result.ticks} ticks); "
            f"posts as the group sees them: {result.out_dir}/console.log"
        )
        return 0
    if args.command == "serve":
        import os

        from autopilot_cli.serve import serve

        os.environ["AUTOPILOT_OUTPUT_DIR"] = os.path.abspath(args.out)
        serve(args.config, port=args.port, log=sys.stdout)
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
