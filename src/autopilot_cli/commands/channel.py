"""`autopilot channel test NAME`: send a test message through a configured channel.

Reads the channel from the config file and its secret from SSM Parameter Store
(``<prefix>/<community>/<channel>``, the same parameter the functions read), sends
one message with the production code path (payload, signature, retries) and
prints the platform's answer. Secrets never appear in the output.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from autopilot.clock import get_clock

DEFAULT_CONFIG = "config/communities.yaml"
DEFAULT_PREFIX = "/community-autopilot/channels"


def register(subparsers: Any) -> None:
    """Add ``channel test`` to the ``autopilot`` parser."""
    channel = subparsers.add_parser("channel", help="check the chat channels of the config")
    channel_sub = channel.add_subparsers(dest="channel_command", required=True)
    test = channel_sub.add_parser(
        "test", help="send a test message through a channel and print the platform's answer"
    )
    test.add_argument("name", help="channel id, as in the config")
    test.add_argument("--community", default=None, help="community id (needed if ambiguous)")
    test.add_argument("--config", default=DEFAULT_CONFIG)
    test.add_argument("--text", default=None, help="message text (default: a short test line)")
    test.add_argument(
        "--to", default=None, help="send a direct message to this member address instead"
    )
    test.add_argument(
        "--prefix",
        default=os.environ.get("CHANNEL_SECRETS_PREFIX", DEFAULT_PREFIX),
        help="SSM parameter prefix of channel secrets (the stack's ChannelSecretsPrefix)",
    )
    test.add_argument("--region", default=None)
    test.add_argument("--out", default="out/channel-test", help="output dir for file channels")
    test.set_defaults(func=run_test)


def run_test(args: argparse.Namespace) -> int:
    """Send the test message; exit 0 if the platform accepted it, 1 otherwise."""
    from autopilot.channels.base import ChannelEnvironment, Message
    from autopilot.channels.registry import build_channel
    from autopilot.secrets import SecretStore, redact

    from autopilot_cli.configfile import validate_file

    report = validate_file(args.config, now=get_clock().now())
    if not report.ok or report.config is None:
        for finding in report.errors:
            print(finding, file=sys.stderr)
        return 1
    matches = [
        (community, channel)
        for community in report.config.communities
        if args.community in (None, community.id)
        for channel in community.channels
        if channel.id == args.name
    ]
    if not matches:
        print(f"no channel {args.name!r} in {args.config}", file=sys.stderr)
        return 1
    if len(matches) > 1:
        ids = ", ".join(c.id for c, _ in matches)
        print(
            f"channel {args.name!r} is in several communities ({ids}): pass --community",
            file=sys.stderr,
        )
        return 1
    community, spec = matches[0]
    region = (
        args.region
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or "us-east-1"
    )
    secrets = SecretStore(args.prefix, region)
    env = ChannelEnvironment(region=region, output_dir=args.out, secrets=secrets)
    channel = build_channel(spec, env)
    now = get_clock().now()
    text = args.text or f"Community Autopilot: test message for #{spec.id} of {community.name}"
    message = Message(
        text=text, key=f"{community.id}:channel-test:{now:%Y%m%dT%H%M%S}", community_id=community.id
    )
    if spec.type not in ("console", "file", "sns"):
        print(f"secret: SSM parameter {secrets.name(community.id, spec.id)}")
    if args.to:
        delivery = channel.send_to_member(args.to, message, now=now)
    else:
        delivery = channel.send_to_community(message, now=now)
    print(f"channel:    {community.id}/{spec.id} ({spec.type})")
    print(f"status:     {'published' if delivery.ok else 'failed'}")
    print(
        f"attempts:   {delivery.attempts}"
        + (f", parts: {delivery.parts}" if delivery.parts > 1 else "")
    )
    if delivery.message_id:
        print(f"message id: {delivery.message_id}")
    if delivery.response:
        print(f"answer:     {redact(delivery.response)}")
    if delivery.error:
        print(f"error:      {redact(delivery.error)}")
    return 0 if delivery.ok else 1
