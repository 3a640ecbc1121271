"""Who is calling: the JWT claims API Gateway verified, turned into a :class:`Principal`.

Deployed, an HTTP API JWT authorizer checks the token (signature, ``exp``,
``iss``, ``aud``) and the route's scopes before the function runs, and passes
the claims in ``requestContext.authorizer.jwt``. ``autopilot serve`` does the
same locally. This module only decides what a verified caller may do:

* the member is the token's ``sub`` (never a field of the body);
* roles come from the ``roles`` claim (a list, or a space/comma separated
  string; API Gateway hands array claims to Lambda as ``"[a b]"`` strings),
  values ``member``, ``ops``, ``finance``; a token without the claim is a
  member. Every authenticated caller may use the member routes for their own
  ``sub``; ``ops`` and ``finance`` routes need that role (else 403);
* a ``community`` claim, if present, pins the token to one community (403 for
  any other).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from autopilot.api.requests import member_id
from autopilot.errors import BadRequest, RequestError

MEMBER, OPS, FINANCE = "member", "ops", "finance"
ROLES = (MEMBER, OPS, FINANCE)
ROLES_CLAIM = "roles"
COMMUNITY_CLAIM = "community"
# The OAuth scope each role's routes require at API Gateway (template.yaml
# AuthorizationScopes). Scopes make access tokens distinguishable from ID tokens.
SCOPES = {MEMBER: "autopilot/member", OPS: "autopilot/ops", FINANCE: "autopilot/finance"}
_SPLIT = re.compile(r"[\s,]+")


class Unauthorized(RequestError):
    """No verified identity reached the function (a gateway misconfiguration if deployed)."""

    status = 401


class Forbidden(RequestError):
    """The caller is known but may not do this."""

    status = 403


@dataclass(frozen=True)
class Principal:
    """A verified caller: member id (``sub``), roles, scopes and optional community pin."""

    member: str
    roles: frozenset[str]
    scopes: frozenset[str]
    community: str | None = None

    def require(self, role: str) -> None:
        """Raise :class:`Forbidden` unless the caller has ``role`` (member routes: anyone)."""
        if role != MEMBER and role not in self.roles:
            raise Forbidden(f"this route needs the {role!r} role", code="Forbidden")

    def check_community(self, community_id: str) -> None:
        """Raise :class:`Forbidden` if the token is pinned to another community."""
        if self.community is not None and self.community != community_id:
            raise Forbidden(
                f"the token is for community {self.community!r}, not {community_id!r}",
                code="Forbidden",
            )


def claim_values(value: Any) -> list[str]:
    """A list claim as strings: a JSON list, ``"a b"``, ``"a,b"`` or API Gateway's ``"[a b]"``."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    text = str(value).strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return [part.strip("\"'") for part in _SPLIT.split(text) if part.strip("\"'")]


def principal_from_event(event: Mapping[str, Any]) -> Principal:
    """The caller of an HTTP API v2 event; :class:`Unauthorized` if no JWT claims are present."""
    jwt = ((event.get("requestContext") or {}).get("authorizer") or {}).get("jwt") or {}
    return principal_from_claims(jwt.get("claims") or {}, jwt.get("scopes"))


def principal_from_claims(claims: Mapping[str, Any], scopes: Any = None) -> Principal:
    """Turn verified claims into a :class:`Principal` (raises on a missing ``sub``/bad role)."""
    member = str(claims.get("sub") or "").strip()
    if not member:
        raise Unauthorized("no authenticated caller (the token has no 'sub')", code="Unauthorized")
    try:
        member_id("sub", member)
    except BadRequest:
        raise Forbidden("the token's sub cannot be used as a member id", code="Forbidden") from None
    roles = frozenset(claim_values(claims.get(ROLES_CLAIM))) or frozenset({MEMBER})
    unknown = roles - set(ROLES)
    if unknown:
        # Fail closed: a typo in the identity provider must not grant or hide a role.
        raise Forbidden(
            f"unknown role(s) {sorted(unknown)} in the token (known: {', '.join(ROLES)})",
            code="Forbidden",
        )
    granted = frozenset(claim_values(scopes)) | frozenset(claim_values(claims.get("scope")))
    community = str(claims.get(COMMUNITY_CLAIM) or "").strip() or None
    return Principal(member, roles, granted, community)
