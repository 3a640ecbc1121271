"""Typed errors of the domain library, mapped to HTTP status or log lines in one place."""

from __future__ import annotations

from dataclasses import dataclass, field


class AutopilotError(Exception):
    """Base class of every error the library raises on purpose."""


@dataclass(frozen=True)
class ConfigIssue:
    """One problem found in a config document.

    ``path`` locates the value inside the document (``("communities", 0, "jobs", 1,
    "cron")``); the CLI maps it to a file line. ``severity`` is ``error`` or ``warning``.
    """

    path: tuple[str | int, ...]
    message: str
    severity: str = "error"

    def location(self) -> str:
        """The path as a readable dotted string, e.g. ``communities[0].jobs[1].cron``."""
        out = ""
        for part in self.path:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
        return out or "<document>"

    def __str__(self) -> str:
        return f"{self.location()}: {self.message}"


@dataclass
class ConfigError(AutopilotError):
    """The config document is invalid; ``issues`` lists every problem found."""

    issues: list[ConfigIssue] = field(default_factory=list)
    source: str = "<config>"

    def __str__(self) -> str:
        errors = [i for i in self.issues if i.severity == "error"]
        if not errors:
            return self.source
        lines = [f"{self.source}: {len(errors)} error(s)"]
        lines += [f"  {issue}" for issue in errors]
        return "\n".join(lines)


class ConfigUnavailable(AutopilotError):
    """No valid config could be loaded from the store (and none was cached)."""


class UnknownCommunity(AutopilotError):
    """A request named a community the config does not define."""


class ChannelError(AutopilotError):
    """A channel failed to deliver a message."""

    def __init__(self, message: str, *, permanent: bool = False, response: str | None = None):
        super().__init__(message)
        self.permanent = permanent
        self.response = response


class RequestError(AutopilotError):
    """A request the API refuses; ``status`` is the HTTP status it maps to."""

    status = 400

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.code = code or type(self).__name__


class BadRequest(RequestError):
    """Malformed or invalid input."""

    status = 400


class NotAMember(RequestError):
    """The member is unknown to the community (and may not be auto-registered here)."""

    status = 404


class MemberLeft(RequestError):
    """The member left the community."""

    status = 403


class UnknownReward(RequestError):
    """The reward is not in the community's catalog."""

    status = 404


class InsufficientPoints(RequestError):
    """The balance does not cover the redemption or make-up."""

    status = 409


class RewardOutOfStock(RequestError):
    """The reward's stock is used up."""

    status = 409


class Conflict(RequestError):
    """A concurrent change could not be resolved in time; safe to retry."""

    status = 409


class IdempotencyKeyReused(RequestError):
    """An idempotency key (request id, ``Idempotency-Key``, adjustment ref) was sent
    again with a different request; the first request's answer is not repeated."""

    status = 422


class UnknownLottery(RequestError):
    """The community has no such lottery (or no such draw of it)."""

    status = 404


class LotteryNotOpen(RequestError):
    """The lottery takes no entries now (not opened yet, closed, drawn or cancelled)."""

    status = 409


class NotEligible(RequestError):
    """The member may not enter this lottery; ``reasons`` says why, rule by rule."""

    status = 403

    def __init__(self, message: str, *, reasons: list[str] | None = None):
        super().__init__(message)
        self.reasons = list(reasons or [])


class LotteryConflict(RequestError):
    """The lottery's state does not allow this change (drawn, cancelled, already paid)."""

    status = 409


class NothingToClaim(RequestError):
    """The member holds no prize of the lottery that can be claimed (none, or expired)."""

    status = 404
