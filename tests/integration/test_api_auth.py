"""The auth matrix: every route x {member, ops, finance, no token, bad token}.

Requests go through ``LocalHttpApi`` — the same code ``autopilot serve`` runs —
so the gateway's part (token verification, route scopes from template.yaml) and
the function's part (roles, community pins) are both exercised.
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest

from .api_support import Api, make_api, token

# Who calls, as (sub, roles): each has its own member id so that writes do not interfere.
CALLERS = {"member": ("mia", ()), "ops": ("oscar", ("ops",)), "finance": ("fiona", ("finance",))}
PERIOD = {"community": "sunrise", "since": "2026-11-26", "until": "2026-11-26"}


def requests_for(caller: str) -> dict[str, tuple[str, str, dict]]:
    """One valid request per route (what the caller would send if allowed)."""
    target = f"target-{caller}"
    return {
        "POST /checkins": ("POST", "/checkins", {"body": {"community": "sunrise"}}),
        "GET /me": ("GET", "/me", {"query": {"community": "sunrise"}}),
        "POST /redemptions": (
            "POST",
            "/redemptions",
            {
                "body": {"community": "sunrise", "reward": "badge"},
                "headers": {"Idempotency-Key": f"order-{caller}"},
            },
        ),
        "GET /ledger": ("GET", "/ledger", {"query": PERIOD}),
        "GET /ledger/summary": ("GET", "/ledger/summary", {"query": PERIOD}),
        "PUT /members/{member_id}": (
            "PUT",
            f"/members/{target}",
            {"body": {"community": "sunrise", "display_name": "T"}},
        ),
        "DELETE /members/{member_id}": (
            "DELETE",
            f"/members/{target}",
            {"query": {"community": "sunrise"}},
        ),
        "POST /ledger/adjustments": (
            "POST",
            "/ledger/adjustments",
            {
                "body": {
                    "community": "sunrise",
                    "member": target,
                    "amount": 5,
                    "reason": "test",
                    "ref": f"adj-{caller}",
                }
            },
        ),
    }


MEMBER_ROUTES = {"POST /checkins", "GET /me", "POST /redemptions"}
FINANCE_ROUTES = {"GET /ledger", "GET /ledger/summary"}
OPS_ROUTES = {"PUT /members/{member_id}", "DELETE /members/{member_id}", "POST /ledger/adjustments"}


def expected(route: str, caller: str) -> int:
    if caller in ("none", "bad"):
        return 401  # the gateway refuses before the function runs
    if route in MEMBER_ROUTES:
        return 200  # every authenticated caller is a member acting for their own sub
    needed = "finance" if route in FINANCE_ROUTES else "ops"
    return 200 if caller == needed else 403


@pytest.fixture
def bare(stack) -> Api:
    """The API with an empty ledger."""
    return make_api(stack)


@pytest.fixture
def api(bare: Api) -> Api:
    """The API with every caller and target registered and holding 50 points."""
    api = bare
    ops = token("setup", "ops")
    # Every caller and target exists and can afford a badge.
    for member in [sub for sub, _ in CALLERS.values()] + [f"target-{c}" for c in CALLERS]:
        assert (
            api.call("PUT", f"/members/{member}", auth=ops, body={"community": "sunrise"}).status
            == 200
        )
        assert (
            api.call(
                "POST",
                "/ledger/adjustments",
                auth=ops,
                body={
                    "community": "sunrise",
                    "member": member,
                    "amount": 50,
                    "reason": "seed",
                    "ref": f"seed-{member}",
                },
            ).status
            == 200
        )
    return api


def test_auth_matrix(api):
    order = [
        "PUT /members/{member_id}",
        "POST /checkins",
        "GET /me",
        "POST /redemptions",
        "GET /ledger",
        "GET /ledger/summary",
        "POST /ledger/adjustments",
        "DELETE /members/{member_id}",
    ]
    assert set(order) == set(requests_for("x"))
    actual, wanted = {}, {}
    for caller in ["none", "bad", "member", "ops", "finance"]:
        if caller in CALLERS:
            sub, roles = CALLERS[caller]
            auth = token(sub, *roles)
        else:
            auth = None if caller == "none" else token("mallory", "ops", "finance") + "x"
        for route in order:
            method, path, kwargs = requests_for(caller)[route]
            answer = api.call(method, path, auth=auth, **kwargs)
            actual[(route, caller)] = answer.status
            wanted[(route, caller)] = expected(route, caller)
            if answer.status in (401, 403) and caller in ("none", "bad"):
                assert answer.json() == {"message": "Unauthorized"}  # API Gateway's own answer
    mismatches = {k: (actual[k], wanted[k]) for k in actual if actual[k] != wanted[k]}
    assert not mismatches, json.dumps({f"{r} as {c}": v for (r, c), v in mismatches.items()})


def test_missing_scope_is_refused_by_the_gateway(bare):
    """A member token on a finance route: API Gateway's 403, the function never runs."""
    invocations = len(bare.stack.runtime.invocations)
    answer = bare.call("GET", "/ledger", auth=token("mia"), query=PERIOD)
    assert (answer.status, answer.json()) == (403, {"message": "Forbidden"})
    assert len(bare.stack.runtime.invocations) == invocations


def test_scope_without_role_is_refused_by_the_function(bare):
    """A token with the finance scope but only the member role: the function's 403."""
    forged_scope = token("mia", scope="autopilot/member autopilot/finance")
    answer = bare.call("GET", "/ledger", auth=forged_scope, query=PERIOD)
    assert answer.status == 403 and answer.json()["error"] == "Forbidden"
    assert "finance" in answer.json()["message"]


def test_community_claim_pins_the_token(bare):
    pinned = token("mia", community="other")
    refused = bare.call("POST", "/checkins", auth=pinned, body={"community": "sunrise"})
    assert refused.status == 403 and "other" in refused.json()["message"]
    allowed = bare.call("POST", "/checkins", auth=pinned, body={"community": "other"})
    assert allowed.status == 200


def test_unknown_role_fails_closed(bare):
    answer = bare.call(
        "GET", "/me", auth=token("mia", roles=["member", "admin"]), query={"community": "sunrise"}
    )
    assert answer.status == 403 and "admin" in answer.json()["message"]


def _unsigned(claims: dict, alg: str = "none") -> str:
    def b64(doc: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(claims)}."


@pytest.mark.parametrize(
    "bad",
    [
        "expired",
        "future_iat",
        "wrong_issuer",
        "wrong_audience",
        "bad_signature",
        "alg_none",
        "garbage",
        "no_exp",
        "empty_bearer",
    ],
)
def test_bad_tokens_get_401_without_invoking_the_function(bare, bad):
    now = bare.stack.clock.now()
    tokens = {
        "expired": token("mia", now=now - timedelta(hours=2)),
        "future_iat": token("mia", now=now + timedelta(hours=2)),
        "wrong_issuer": token("mia", iss="https://evil.example/"),
        "wrong_audience": token("mia", aud="someone-else"),
        "bad_signature": token("mia")[:-4] + "AAAA",
        "alg_none": _unsigned(
            {
                "sub": "mia",
                "iss": "https://autopilot.local/dev",
                "aud": "community-autopilot-local",
                "exp": 4102444800,
                "scope": "autopilot/member",
            }
        ),
        "garbage": "not-a-jwt",
        "no_exp": token("mia", exp=None),
        "empty_bearer": "",
    }
    invocations = len(bare.stack.runtime.invocations)
    answer = bare.call("GET", "/me", auth=tokens[bad], query={"community": "sunrise"})
    assert (answer.status, answer.json()) == (401, {"message": "Unauthorized"})
    assert len(bare.stack.runtime.invocations) == invocations


def test_claims_reach_the_function_as_api_gateway_passes_them(api):
    """Array claims arrive as "[a b]" strings; the function still reads the roles."""
    answer = api.call("GET", "/ledger/summary", auth=token("fiona", "finance"), query=PERIOD)
    assert answer.status == 200
    answer = api.call("GET", "/me", auth=token("mia"), query={"community": "sunrise"}, headers={})
    assert answer.status == 200 and answer.json()["member"] == "mia"


def test_token_without_bearer_prefix_is_accepted_like_api_gateway(bare):
    answer = bare.gateway.handle(
        "GET", "/me", headers={"Authorization": token("mia")}, query={"community": "sunrise"}
    )
    assert answer.status == 404 and answer.json()["error"] == "NotAMember"  # the function ran


def test_webhook_route_needs_no_token_but_its_own_signature(bare):
    for auth in (None, token("mia")):
        answer = bare.call(
            "POST",
            "/webhooks/slack",
            auth=auth,
            query={"community": "sunrise"},
            body=b"user_id=U1&text=checkin",
        )
        # The function answered (not the gateway): the signature, not the JWT, decides.
        assert answer.status == 401 and answer.json()["error"] == "Unauthorized"


def test_gateway_judges_token_expiry_on_the_injected_clock(stack):
    """Without an explicit ``now_s`` the local gateway reads ``autopilot.clock``, not the
    wall clock: a token minted an hour-long life at the (simulated) T0 is valid at T0 and
    expired two hours later, whatever today's date is."""
    from .api_support import SECRET, T0, LocalHttpApi, api_config

    stack.push(api_config())
    stack.clock.set(T0)
    api = Api(stack, LocalHttpApi(stack.runtime, secret=SECRET))
    member = token("mia", ttl_s=3600)
    fresh = api.call("POST", "/checkins", auth=member, body={"community": "sunrise"})
    assert fresh.status == 200, fresh.json()
    stack.clock.set(T0 + timedelta(hours=2))
    stale = api.call("GET", "/me", auth=member, query={"community": "sunrise"})
    assert (stale.status, stale.json()) == (401, {"message": "Unauthorized"})
