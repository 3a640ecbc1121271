"""`autopilot dev-token`: a signed JWT for calling `autopilot serve`'s HTTP API locally.

FOR LOCAL USE ONLY. The token is HS256-signed with this checkout's dev secret
(``$AUTOPILOT_DEV_JWT_SECRET`` or ``out/dev-jwt-secret``, created on first use);
only ``autopilot serve`` accepts it. Deployed stacks verify tokens of a real
identity provider (template parameters ``JwtIssuer``/``JwtAudience``).

    TOKEN=$(autopilot dev-token --member alice)
    curl -H "Authorization: Bearer $TOKEN" -d '{"community":"sunrise-readers"}' \\
         http://127.0.0.1:3000/checkins
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from autopilot.clock import get_clock

ROLES = ("member", "ops", "finance")
SCOPE_PREFIX = "autopilot/"


def _ttl(text: str) -> int:
    from autopilot.timeutil import parse_duration

    try:
        seconds = int(parse_duration(text).total_seconds())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not 0 < seconds <= 7 * 86400:
        raise argparse.ArgumentTypeError("--ttl must be between 1s and 7d")
    return seconds


def template_audience(template_path: str | Path = "template.yaml") -> tuple[str, str]:
    """The default ``JwtIssuer`` and ``JwtAudience`` of the template (what serve checks)."""
    from autopilot_cli.local.cfn import load_template

    parameters = load_template(Path(template_path)).get("Parameters") or {}
    return str(parameters["JwtIssuer"]["Default"]), str(parameters["JwtAudience"]["Default"])


def dev_claims(
    member: str,
    roles: list[str],
    *,
    issuer: str,
    audience: str,
    ttl_s: int,
    community: str | None = None,
    now_s: float | None = None,
) -> dict[str, Any]:
    """The claims of a local token: ``sub``, ``roles``, the matching scopes, optional community.

    Every token has the member scope (staff check in too); ``ops`` and
    ``finance`` add their own scope and role.
    """
    now = int(get_clock().now().timestamp() if now_s is None else now_s)
    roles = sorted(set(roles) | {"member"}, key=ROLES.index)
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": member,
        "iat": now,
        "exp": now + ttl_s,
        "token_use": "access",
        "scope": " ".join(SCOPE_PREFIX + role for role in roles),
        "roles": roles,
    }
    if community:
        claims["community"] = community
    return claims


def _run(args: argparse.Namespace) -> int:
    from autopilot_cli.local import devjwt

    issuer, audience = template_audience(args.template)
    claims = dev_claims(
        args.member,
        args.role or ["member"],
        issuer=issuer,
        audience=audience,
        ttl_s=args.ttl,
        community=args.community,
    )
    print(devjwt.encode(claims, devjwt.dev_secret()))
    return 0


def register(subparsers: Any) -> None:
    """Add ``dev-token`` to the ``autopilot`` command."""
    parser = subparsers.add_parser(
        "dev-token",
        help="mint a LOCAL-ONLY JWT for autopilot serve's HTTP API",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("--member", required=True, help="the member id (the token's sub)")
    parser.add_argument(
        "--role", action="append", choices=ROLES, help="member (default), ops, finance; repeatable"
    )
    parser.add_argument("--community", default=None, help="pin the token to one community")
    parser.add_argument("--ttl", type=_ttl, default=3600, help="lifetime, e.g. 15m, 1h (default)")
    parser.add_argument("--template", default="template.yaml", help=argparse.SUPPRESS)
    parser.set_defaults(func=_run)
