"""Entry point of the `autopilot` command.

Every command takes the current time from the injected clock
(:func:`autopilot.clock.get_clock`), never from ``datetime.now()``: the real
clock by default, or a fixed instant given with the global ``--now`` option
or the ``AUTOPILOT_NOW`` environment variable (reproducible runs and tests).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from datetime import datetime

from autopilot.clock import ManualClock, get_clock, set_clock

DEFAULT_CONFIG = "config/communities.yaml"
NOW_ENV = "AUTOPILOT_NOW"
# Commands that act on a live system answer to the real clock only: `serve` is the
# dispatcher in real time (a frozen clock would never tick), and a config
# published, a ledger entry or membership change written, or a message sent with
# a made-up time would put a false date on real records (a backdated adjustment
# would change a month finance already exported; uploaded coupon codes are dated).
REAL_TIME_COMMANDS = frozenset(
    {
        "serve",
        "config push",
        "ledger adjust",
        "members add",
        "members leave",
        "channel test",
        "lottery codes",
    }
)
# Capabilities add their commands in their own module: each has
# ``register(subparsers)`` adding parsers whose ``func`` default is
# ``(args) -> int``. Listed here so the import cost is paid only when used.
COMMAND_MODULES: tuple[str, ...] = (
    "autopilot_cli.commands.devtoken",
    "autopilot_cli.commands.channel",
    "autopilot_cli.commands.ledger",
    "autopilot_cli.commands.lottery",
    "autopilot_cli.commands.report",
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
    parser.add_argument(
        "--now",
        type=_iso,
        default=None,
        metavar="ISO",
        help=(
            "run as if the current time were this fixed instant, e.g. 2027-03-08T09:00:00Z "
            f"(default: ${NOW_ENV} if set, else the real clock; not accepted by serve)"
        ),
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
    simulate.add_argument(
        "--secrets",
        default=None,
        metavar="FILE",
        help=(
            "JSON object of chat channel secrets, the shape of the SSM parameters: "
            '{"<community>/<channel>": {"webhook_url": "http://127.0.0.1:8123/..."}} '
            "(or full parameter names starting with /)"
        ),
    )
    simulate.add_argument(
        "--faults",
        default=None,
        metavar="SPEC",
        help=(
            "inject faults, deterministically from --seed: kind=rate,… (throttle, "
            "service_error, timeout_after_commit, crash, duplicate, channel_5xx, channel_429, "
            "channel_hang, channel_lost, skew, freeze) or 'standard'; the run is compared "
            "with a fault-free run of the same seed (docs/reliability.md); exit 1 if an "
            "invariant broke"
        ),
    )
    simulate.add_argument(
        "--local-platform",
        action="store_true",
        help=(
            "point every WeCom channel of the config at a local fake platform that logs "
            "what it accepted under OUT/platform (no network; see config/faults.yaml)"
        ),
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

    report = validate_file(args.file, now=get_clock().now())
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
    body = published_document(report.loaded, published_at=get_clock().now())
    response = session.client("s3").put_object(
        Bucket=bucket, Key=args.key, Body=body, ContentType="application/json"
    )
    print(
        f"published {args.file} to s3://{bucket}/{args.key} "
        f"(version {response.get('VersionId', 'unversioned')}); "
        "functions pick it up within a minute"
    )
    return 0


def _fixed_now(parser: argparse.ArgumentParser, args: argparse.Namespace) -> datetime | None:
    """The instant of ``--now``, else of ``$AUTOPILOT_NOW``, else None (the real clock)."""
    now: datetime | None = args.now
    if now is None and os.environ.get(NOW_ENV):
        try:
            now = _iso(os.environ[NOW_ENV])
        except argparse.ArgumentTypeError as exc:
            parser.error(f"${NOW_ENV}: {exc}")
    command = _command_path(args)
    if now is not None and command in REAL_TIME_COMMANDS:
        parser.error(
            f"`{command}` acts on a live system and runs on the real clock: "
            f"drop --now and unset ${NOW_ENV} (`autopilot simulate` runs on a simulated clock)"
        )
    return now


def _command_path(args: argparse.Namespace) -> str:
    """``"ledger adjust"`` for ``autopilot ledger adjust ...`` (the command words)."""
    words = [args.command]
    sub = getattr(args, f"{args.command.replace('-', '_')}_command", None)
    if sub:
        words.append(sub)
    return " ".join(words)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    now = _fixed_now(parser, args)
    if now is None:
        # The clock already installed: the real one, or a test's ManualClock.
        return _run(args)
    previous = set_clock(ManualClock(now))
    try:
        return _run(args)
    finally:
        set_clock(previous)


def _run(args: argparse.Namespace) -> int:
    if getattr(args, "func", None) is not None:
        return int(args.func(args))
    if args.command == "config" and args.config_command == "validate":
        from autopilot_cli.configfile import cmd_validate

        return cmd_validate(list(args.files), now=get_clock().now())
    if args.command == "config" and args.config_command == "push":
        return _push(args)
    if args.command == "schedule":
        from autopilot_cli.configfile import validate_file
        from autopilot_cli.preview import preview_rows, print_preview

        now = get_clock().now()
        report = validate_file(args.config, now=now)
        if not report.ok:
            for finding in report.errors:
                print(finding, file=sys.stderr)
            return 1
        assert report.config is not None
        rows = preview_rows(report.config, args.start or now, args.days, args.community)
        print_preview(rows)
        return 0
    if args.command == "simulate":
        from autopilot_cli.simulate import Outage, default_start, run_simulation

        try:
            outages = [Outage.parse(text) for text in args.outage]
        except ValueError as exc:
            print(f"autopilot simulate: {exc}", file=sys.stderr)
            return 2
        start = args.start or default_start(get_clock().now())
        secrets: dict[str, dict[str, str]] | None = None
        if args.secrets is not None:
            from autopilot_cli.commands.simulate_secrets import SecretsFileError, load_secrets_file
            from autopilot_cli.configfile import validate_file

            # Channel names are checked against a valid config; an invalid one is
            # reported by run_simulation below, as without --secrets.
            checked = validate_file(args.config, now=start)
            try:
                secrets = load_secrets_file(args.secrets, checked.config if checked.ok else None)
            except SecretsFileError as exc:
                print(f"autopilot simulate: --secrets {exc}", file=sys.stderr)
                return 2
        faults = None
        if args.faults is not None:
            from autopilot_cli.local.faults import FaultSpec

            try:
                faults = FaultSpec.parse(args.faults)
            except ValueError as exc:
                print(f"autopilot simulate: --faults: {exc}", file=sys.stderr)
                return 2
        os.environ.setdefault("AUTOPILOT_TEMPLATE", "template.yaml")
        with contextlib.ExitStack() as stack:
            if args.local_platform:
                from autopilot_cli.configfile import validate_file
                from autopilot_cli.fakeplatform import FakePlatform

                platform = stack.enter_context(FakePlatform())
                checked = validate_file(args.config, now=start)
                if checked.ok and checked.config is not None:
                    # Explicit --secrets win over the local platform's.
                    secrets = {**platform.secrets(checked.config), **(secrets or {})}
            result = run_simulation(
                args.config,
                start=start,
                days=args.days,
                members=args.members,
                seed=args.seed,
                out_dir=args.out,
                outages=outages,
                template_path=os.environ["AUTOPILOT_TEMPLATE"],
                log=None if args.quiet else sys.stdout,
                progress=sys.stderr,  # a bar on a terminal, a line per day in CI
                secrets=secrets,
                faults=faults,
            )
        print(
            f"\nwrote {result.out_dir / 'summary.json'} ({result.ticks} ticks); "
            f"posts as the group sees them: {result.out_dir}/console.log"
        )
        if faults is not None and not result.summary.get("invariants_held", False):
            print("autopilot simulate: an invariant broke (see above)", file=sys.stderr)
            return 1
        return 0
    if args.command == "serve":
        from autopilot_cli.serve import serve

        os.environ["AUTOPILOT_OUTPUT_DIR"] = os.path.abspath(args.out)
        serve(args.config, port=args.port, log=sys.stdout)
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
