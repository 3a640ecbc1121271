"""API Gateway HTTP API, locally: routes and JWT authorizers from template.yaml.

This module owns what API Gateway does *before* a function runs, so that
``autopilot serve`` and the tests exercise the same path as a deployed stack:

* route selection from every function's ``HttpApi`` events (literal routes win
  over ``{param}`` routes, as in API Gateway);
* the JWT authorizer of the route (explicit, the API's ``DefaultAuthorizer``, or
  ``NONE``): a missing or invalid token is answered ``401 {"message":
  "Unauthorized"}`` and a token without one of the route's
  ``AuthorizationScopes`` ``403 {"message": "Forbidden"}``, without invoking
  the function; the issuer and audiences are the template's (parameters
  resolved), the signature is the local HS256 dev secret (:mod:`devjwt`);
* the verified claims in ``requestContext.authorizer.jwt`` of the payload 2.0
  event, stringified the way API Gateway passes them (numbers as strings,
  arrays as ``"[a b]"``);
* the function's answer turned into HTTP (``statusCode``/``headers``/``body``,
  base64 bodies decoded; a handler exception becomes ``500``);
* ``OPTIONS`` and ``HEAD``: a method without a route is ``404 {"message":"Not
  Found"}`` as in API Gateway (HTTP APIs answer no ``405``); if the API has a
  ``CorsConfiguration``, a CORS preflight (``OPTIONS`` with ``Origin`` and
  ``Access-Control-Request-Method``) is answered ``204`` by the gateway itself,
  without authorization or invoking a function, and answers to allowed origins
  carry ``Access-Control-Allow-Origin``. The template configures no CORS (browsers
  on other origins are refused, deployed and locally alike).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from autopilot.clock import get_clock

from autopilot_cli.local import devjwt
from autopilot_cli.local.runtime import LocalRuntime, http_api_event

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class JwtAuthorizer:
    """A ``JwtConfiguration`` of the template, resolved."""

    name: str
    issuer: str
    audiences: tuple[str, ...]
    header: str = "authorization"


@dataclass(frozen=True)
class Cors:
    """An HTTP API's ``CorsConfiguration``, resolved (``true`` allows every origin)."""

    allow_origins: tuple[str, ...] = ("*",)
    allow_methods: tuple[str, ...] = ("*",)
    allow_headers: tuple[str, ...] = ("*",)
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None
    allow_credentials: bool = False

    @classmethod
    def from_template(cls, config: Any) -> Cors | None:
        """The configuration of a template's ``CorsConfiguration`` (None: no CORS)."""
        if config is True:
            return cls()
        if not isinstance(config, dict):
            return None

        def values(key: str) -> tuple[str, ...]:
            return tuple(str(v) for v in config.get(key) or ())

        max_age = config.get("MaxAge")
        return cls(
            values("AllowOrigins"),
            tuple(m.upper() for m in values("AllowMethods")),
            tuple(h.lower() for h in values("AllowHeaders")),
            values("ExposeHeaders"),
            int(max_age) if max_age is not None else None,
            bool(config.get("AllowCredentials")),
        )

    def origin_allowed(self, origin: str | None) -> bool:
        """Whether answers to ``origin`` may carry CORS headers."""
        return bool(origin) and ("*" in self.allow_origins or origin in self.allow_origins)

    def preflight(self, lower_headers: Mapping[str, str]) -> HttpResponse:
        """API Gateway's own answer to a preflight: 204, headers only if allowed."""
        origin = lower_headers.get("origin")
        method = lower_headers.get("access-control-request-method", "").upper()
        asked = [
            h.strip().lower()
            for h in lower_headers.get("access-control-request-headers", "").split(",")
            if h.strip()
        ]
        headers: dict[str, str] = {}
        method_ok = "*" in self.allow_methods or method in self.allow_methods
        headers_ok = "*" in self.allow_headers or all(h in self.allow_headers for h in asked)
        if self.origin_allowed(origin) and method_ok and headers_ok:
            allowed = "*" if "*" in self.allow_origins else origin or ""
            headers["Access-Control-Allow-Origin"] = allowed
            headers["Access-Control-Allow-Methods"] = ",".join(self.allow_methods)
            if self.allow_headers:
                headers["Access-Control-Allow-Headers"] = ",".join(self.allow_headers)
            if self.max_age is not None:
                headers["Access-Control-Max-Age"] = str(self.max_age)
            if self.allow_credentials:
                headers["Access-Control-Allow-Credentials"] = "true"
        return HttpResponse(204, headers)

    def decorate(self, lower_headers: Mapping[str, str], response: HttpResponse) -> None:
        """Add ``Access-Control-Allow-Origin`` (and friends) to an answer to an allowed origin."""
        origin = lower_headers.get("origin")
        if not self.origin_allowed(origin):
            return
        response.headers["Access-Control-Allow-Origin"] = (
            "*" if "*" in self.allow_origins else origin or ""
        )
        if self.expose_headers:
            response.headers["Access-Control-Expose-Headers"] = ",".join(self.expose_headers)
        if self.allow_credentials:
            response.headers["Access-Control-Allow-Credentials"] = "true"


class Route:
    """One ``HttpApi`` event of a function: method, path template, authorizer and scopes."""

    def __init__(
        self,
        function_id: str,
        method: str,
        path: str,
        authorizer: JwtAuthorizer | None = None,
        scopes: tuple[str, ...] = (),
        cors: Cors | None = None,
    ):
        self.function_id = function_id
        self.method = method.upper()
        self.path = path
        self.authorizer = authorizer
        self.scopes = scopes
        self.cors = cors
        pieces = re.split(r"\{([A-Za-z0-9_]+)\+?\}", path)
        pattern = "".join(
            re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/]+)" for i, p in enumerate(pieces)
        )
        self._regex = re.compile(f"^{pattern}$")
        self.parameters = len(pieces) // 2

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """The path parameters if this route takes ``method path``, else None."""
        if self.method not in ("ANY", method.upper()):
            return None
        return self.match_path(path)

    def match_path(self, path: str) -> dict[str, str] | None:
        """The path parameters if this route's path template takes ``path``, whatever the method."""
        found = self._regex.match(path)
        return found.groupdict() if found else None


def _authorizers(runtime: LocalRuntime, api_id: str) -> tuple[dict[str, JwtAuthorizer], str | None]:
    props = runtime.template["Resources"][api_id].get("Properties") or {}
    auth = runtime.resolve(props.get("Auth") or {})
    found: dict[str, JwtAuthorizer] = {}
    for name, spec in (auth.get("Authorizers") or {}).items():
        config = spec.get("JwtConfiguration")
        if config is None:
            continue  # Lambda authorizers are not emulated
        audiences = config.get("audience") or []
        source = str(spec.get("IdentitySource", "$request.header.Authorization"))
        found[name] = JwtAuthorizer(
            name,
            str(config.get("issuer")),
            tuple(str(a) for a in audiences),
            source.rsplit(".", 1)[-1].lower(),
        )
    return found, auth.get("DefaultAuthorizer")


def http_routes(runtime: LocalRuntime) -> list[Route]:
    """Every ``HttpApi`` route of the template, most specific first."""
    routes = []
    for function_id in runtime.function_ids():
        resource = runtime.template["Resources"][function_id]
        for event in (resource.get("Properties", {}).get("Events") or {}).values():
            if event.get("Type") != "HttpApi":
                continue
            props = event.get("Properties", {})
            authorizer = None
            scopes: tuple[str, ...] = ()
            cors = None
            api_ref = props.get("ApiId")
            if isinstance(api_ref, dict) and "Ref" in api_ref:
                api_props = runtime.template["Resources"][api_ref["Ref"]].get("Properties") or {}
                cors = Cors.from_template(runtime.resolve(api_props.get("CorsConfiguration")))
                authorizers, default = _authorizers(runtime, api_ref["Ref"])
                auth = props.get("Auth") or {}
                name = auth.get("Authorizer", default)
                if name and name != "NONE":
                    if name not in authorizers:
                        raise ValueError(f"{function_id}: unknown authorizer {name!r}")
                    authorizer = authorizers[name]
                    scopes = tuple(auth.get("AuthorizationScopes") or ())
            routes.append(
                Route(
                    function_id,
                    props.get("Method", "ANY"),
                    props.get("Path", "/"),
                    authorizer,
                    scopes,
                    cors,
                )
            )
    return sorted(routes, key=lambda r: (r.parameters, -len(r.path)))


def gateway_claims(claims: Mapping[str, Any]) -> dict[str, str]:
    """Claims as API Gateway hands them to Lambda: every value a string."""
    out = {}
    for key, value in claims.items():
        if isinstance(value, list):
            out[key] = "[" + " ".join(str(v) for v in value) + "]"
        elif isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, dict):
            out[key] = json.dumps(value, separators=(",", ":"))
        else:
            out[key] = str(value)
    return out


@dataclass
class HttpResponse:
    """What the client receives."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)


def _json_response(status: int, document: Any) -> HttpResponse:
    return HttpResponse(
        status,
        {"Content-Type": "application/json"},
        json.dumps(document, ensure_ascii=False).encode("utf-8"),
    )


class LocalHttpApi:
    """The template's HTTP API in front of the local runtime's functions."""

    def __init__(
        self,
        runtime: LocalRuntime,
        *,
        secret: bytes | None = None,
        now_s: Callable[[], float] | None = None,
    ):
        self.runtime = runtime
        self.routes = http_routes(runtime)
        self._secret = secret
        # Token expiry is judged on the injected clock (autopilot.clock), never the
        # wall clock, so a simulated or moved clock sees the same answers.
        self._now_s = now_s or (lambda: get_clock().now().timestamp())

    @property
    def secret(self) -> bytes:
        if self._secret is None:
            self._secret = devjwt.dev_secret()
        return self._secret

    def route(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route taking ``method path`` and its path parameters."""
        for route in self.routes:
            params = route.match(method, path)
            if params is not None:
                return route, params
        return None

    def authorize(
        self, route: Route, headers: Mapping[str, str]
    ) -> tuple[dict[str, Any], list[str]] | HttpResponse:
        """The verified claims and scopes, or API Gateway's 401/403 answer."""
        assert route.authorizer is not None
        lower = {k.lower(): v for k, v in headers.items()}
        value = lower.get(route.authorizer.header, "").strip()
        # API Gateway accepts the token with or without the "Bearer " prefix.
        token = value[7:].strip() if value[:7].lower() == "bearer " else value
        if not token:
            return _json_response(401, {"message": "Unauthorized"})
        try:
            claims = devjwt.decode(
                token,
                self.secret,
                issuer=route.authorizer.issuer,
                audiences=list(route.authorizer.audiences),
                now_s=self._now_s(),
            )
        except devjwt.InvalidToken as exc:
            logger.info("token refused: %s", exc)
            return _json_response(401, {"message": "Unauthorized"})
        scopes = devjwt.token_scopes(claims)
        if route.scopes and not set(route.scopes) & set(scopes):
            return _json_response(403, {"message": "Forbidden"})
        return claims, scopes

    def handle(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, Any] | None = None,
        body: bytes | str | None = None,
        invoke_lock: Any = None,
    ) -> HttpResponse:
        """Answer one request as the deployed API would (never raises)."""
        headers = dict(headers or {})
        lower = {k.lower(): v for k, v in headers.items()}
        method = method.upper()
        found = self.route(method, path)
        cors = self._cors(path)
        if (
            method == "OPTIONS"
            and cors is not None
            and "origin" in lower
            and "access-control-request-method" in lower
        ):
            return cors.preflight(lower)  # API Gateway answers preflights itself
        if found is None:
            return _json_response(404, {"message": "Not Found"})
        response = self._invoke(found, method, path, headers, query, body, invoke_lock)
        if cors is not None:
            cors.decorate(lower, response)
        return response

    def _cors(self, path: str) -> Cors | None:
        for route in self.routes:
            if route.cors is not None and route.match_path(path) is not None:
                return route.cors
        return None

    def _invoke(
        self,
        found: tuple[Route, dict[str, str]],
        method: str,
        path: str,
        headers: dict[str, str],
        query: Mapping[str, Any] | None,
        body: bytes | str | None,
        invoke_lock: Any,
    ) -> HttpResponse:
        route, params = found
        claims: dict[str, Any] | None = None
        scopes: list[str] | None = None
        if route.authorizer is not None:
            verdict = self.authorize(route, headers)
            if isinstance(verdict, HttpResponse):
                return verdict
            claims, scopes = verdict
        if isinstance(body, bytes):
            # Undecodable bytes stay bytes: sent base64-encoded, as API Gateway does.
            with contextlib.suppress(UnicodeDecodeError):
                body = body.decode("utf-8")
        try:
            event = http_api_event(
                method,
                path,
                body=body if body not in (b"", "") else None,
                headers=headers,
                query=dict(query or {}) or None,
                jwt_claims=gateway_claims(claims) if claims is not None else None,
                jwt_scopes=scopes,
                path_parameters=params or None,
                region=self.runtime.region,
                account_id=self.runtime.account_id,
            )
        except (ValueError, TypeError):  # UnicodeError included: no event can carry it
            return _json_response(400, {"message": "Bad Request"})
        try:
            if invoke_lock is not None:
                with invoke_lock:
                    result = self.runtime.invoke(route.function_id, event)
            else:
                result = self.runtime.invoke(route.function_id, event)
            return self._response(result)
        except Exception:
            logger.exception("%s failed", route.function_id)
            return _json_response(500, {"message": "Internal Server Error"})

    @staticmethod
    def _response(result: Any) -> HttpResponse:
        if not (isinstance(result, dict) and "statusCode" in result):
            # Payload 2.0: a non-proxy answer is JSON with status 200.
            return _json_response(200, result)
        payload = result.get("body") or ""
        data = (
            base64.b64decode(payload)
            if result.get("isBase64Encoded")
            else str(payload).encode("utf-8")
        )
        headers = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
        return HttpResponse(int(result["statusCode"]), headers, data)
