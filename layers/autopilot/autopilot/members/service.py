"""Member registry operations (profile changes never move points)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

from autopilot.api.requests import member_id
from autopilot.checkins.rules import AccountState
from autopilot.config.model import Community
from autopilot.errors import BadRequest, Conflict, NotAMember
from autopilot.ledger.store import Account, LedgerStore, StaleAccount
from autopilot.timeutil import iso_utc, zone

PROFILE_FIELDS = {
    "display_name": str,
    "timezone": str,
    "reminders_opt_out": bool,
    "dm_address": str,
    "referred_by": str,
}
MAX_TEXT = 200


@dataclass(frozen=True)
class MemberProfile:
    """A member's profile as the API shows it (never points: those are the ledger's)."""

    member_id: str
    display_name: str | None
    joined_at: str | None
    left_at: str | None
    timezone: str | None
    reminders_opt_out: bool
    dm_address: str | None
    referred_by: str | None

    @classmethod
    def of(cls, account: Account) -> MemberProfile:
        """The profile of a stored account."""
        return cls(
            member_id=account.member_id,
            display_name=account.display_name,
            joined_at=account.joined_at,
            left_at=account.left_at,
            timezone=account.timezone,
            reminders_opt_out=account.reminders_opt_out,
            dm_address=account.dm_address,
            referred_by=account.referred_by,
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON document (key order, the fields' order, is part of the API's answer)."""
        return asdict(self)


@dataclass(frozen=True)
class MemberAnswer:
    """What a profile change (``PUT``/``DELETE /members/{id}``) answers."""

    community: str
    member: str
    profile: MemberProfile

    def to_json(self) -> dict[str, Any]:
        """The JSON document."""
        return {
            "community": self.community,
            "member": self.member,
            "profile": self.profile.to_json(),
        }


def validate_profile(fields: dict[str, Any]) -> dict[str, Any]:
    """Check profile fields; raise ``BadRequest`` naming the first bad one."""
    clean: dict[str, Any] = {}
    for key, value in fields.items():
        kind = PROFILE_FIELDS.get(key)
        if kind is None:
            raise BadRequest(
                f"unknown field {key!r} (allowed: {', '.join(sorted(PROFILE_FIELDS))})"
            )
        if value is not None and (type(value) is not kind):
            raise BadRequest(f"{key} must be a {kind.__name__}")
        if isinstance(value, str) and (not value.strip() or len(value) > MAX_TEXT):
            raise BadRequest(f"{key} must be 1-{MAX_TEXT} characters")
        if key == "referred_by" and value is not None:
            # The referrer is a member id: the same one rule as every id that enters.
            member_id("referred_by", str(value))
        if key == "timezone" and value is not None:
            try:
                zone(value)
            except ValueError as exc:
                raise BadRequest(f"timezone: {exc}") from exc
        clean[key] = value
    return clean


class MemberService:
    """Adds, updates and removes members."""

    def __init__(self, store: LedgerStore):
        self._store = store

    def new_account(self, community: Community, member_id: str, now: datetime, via: str) -> Account:
        """An unsaved account for a member joining now."""
        return Account(
            community.id,
            member_id,
            AccountState(),
            joined_at=iso_utc(now),
            joined_via=via,
            exists=False,
        )

    def upsert(
        self,
        community: Community,
        member_id: str,
        fields: dict[str, Any],
        now: datetime,
        via: str = "ops",
    ) -> Account:
        """Register a member or update their profile; rejoining clears ``left_at``."""
        clean = validate_profile(fields)
        for _ in range(3):
            account = self._store.account(community.id, member_id)
            create = account is None
            if account is None:
                account = self.new_account(community, member_id, now, via)
            account = replace(account, left_at=None, **clean)
            try:
                return self._store.put_account(account, now, create=create)
            except StaleAccount:
                continue
        raise Conflict("the member changed concurrently; retry")

    def leave(self, community: Community, member_id: str, now: datetime) -> Account:
        """Mark a member as left (history and balance are kept)."""
        for _ in range(3):
            account = self._store.account(community.id, member_id)
            if account is None:
                raise NotAMember(f"member {member_id!r} is not in community {community.id!r}")
            if account.left_at:
                return account
            try:
                return self._store.put_account(
                    replace(account, left_at=iso_utc(now)), now, create=False
                )
            except StaleAccount:
                continue
        raise Conflict("the member changed concurrently; retry")
