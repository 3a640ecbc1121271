"""Member registry operations (profile changes never move points).

Besides ops' profile changes (:meth:`MemberService.upsert`, :meth:`~MemberService.leave`),
members set their own preferences (:meth:`MemberService.set_preferences`, ``PUT
/me/preferences`` and the chat keywords ``退订提醒``/``开启提醒``): which reminder
kinds they receive, their time zone and where direct messages go.

Reminder opt-outs are two fields of the account: ``reminders_opt_out`` (every
kind, including kinds added later) and ``reminder_opt_outs`` (the kinds opted out
of one by one). A member who opted out of everything and then turns one kind back
on is stored as "every other kind off", one by one: what they asked for the kinds
that exist now.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from autopilot.api.requests import member_id, plain_text
from autopilot.checkins.rules import AccountState
from autopilot.config.model import Community
from autopilot.errors import BadRequest, Conflict, NotAMember
from autopilot.ledger.store import Account, LedgerStore, MetricsDelta, StaleAccount
from autopilot.metrics.rules import membership_counters, metrics_day
from autopilot.reminders.rules import ReminderKind
from autopilot.timeutil import MAX_ZONE_NAME, iso_utc, zone

PROFILE_FIELDS = {
    "display_name": str,
    "timezone": str,
    "reminders_opt_out": bool,
    "dm_address": str,
    "referred_by": str,
}
MAX_TEXT = 200
#: The reminder kinds a member may opt out of, in the order answers list them.
REMINDER_KINDS: tuple[str, ...] = tuple(kind.value for kind in ReminderKind)
#: What ``PUT /me/preferences`` may change (``community`` is the route's).
PREFERENCE_FIELDS: tuple[str, ...] = ("reminders", "timezone", "dm_address")


def opted_out_kinds(account: Account) -> frozenset[str]:
    """The reminder kinds the member does not receive (every kind when opted out of all)."""
    if account.reminders_opt_out:
        return frozenset(REMINDER_KINDS)
    return frozenset(account.reminder_opt_outs)


def reminders_map(account: Account) -> dict[str, bool]:
    """``{kind: receives}`` for every reminder kind, in :data:`REMINDER_KINDS` order."""
    off = opted_out_kinds(account)
    return {kind: kind not in off for kind in REMINDER_KINDS}


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
    # {kind: receives}, as PUT /me/preferences answers it (GET /me shows it here).
    reminders: dict[str, bool] = field(default_factory=dict)

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
            reminders=reminders_map(account),
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


@dataclass(frozen=True)
class MemberPreferences:
    """A member's preferences as ``PUT /me/preferences`` answers them.

    ``changed`` says whether the request changed anything (a chat answer may say
    so); it is not part of the JSON, so the same request twice answers the same.
    """

    member_id: str
    community: str
    opted_out: frozenset[str]
    timezone: str | None
    dm_address: str | None
    changed: bool = False

    @classmethod
    def of(cls, account: Account, *, changed: bool = False) -> MemberPreferences:
        """The preferences of a stored account."""
        return cls(
            member_id=account.member_id,
            community=account.community_id,
            opted_out=opted_out_kinds(account),
            timezone=account.timezone,
            dm_address=account.dm_address,
            changed=changed,
        )

    @property
    def reminders(self) -> dict[str, bool]:
        """``{kind: receives}`` for every reminder kind."""
        return {kind: kind not in self.opted_out for kind in REMINDER_KINDS}

    def to_json(self) -> dict[str, Any]:
        """The JSON document (key order is part of the API's answer)."""
        return {
            "member_id": self.member_id,
            "community": self.community,
            "reminders": self.reminders,
            "timezone": self.timezone,
            "dm_address": self.dm_address,
        }


def _reminders_choice(value: Any) -> bool | dict[str, bool]:
    """``reminders`` of a preferences request: a boolean, or ``{kind: bool}`` naming
    at least one known kind."""
    kinds = ", ".join(REMINDER_KINDS)
    if type(value) is bool:
        return value
    if not isinstance(value, dict):
        raise BadRequest(
            "reminders must be true (every kind), false (none) or an object of "
            f"kind: true/false (kinds: {kinds})"
        )
    if not value:
        raise BadRequest(f"reminders must name at least one kind (kinds: {kinds})")
    choice: dict[str, bool] = {}
    for kind, receives in value.items():
        if kind not in REMINDER_KINDS:
            raise BadRequest(f"reminders: unknown reminder kind {kind[:40]!r} (kinds: {kinds})")
        if type(receives) is not bool:
            raise BadRequest(f"reminders.{kind} must be a boolean (true/false)")
        choice[kind] = receives
    return choice


def _timezone_choice(value: Any) -> str | None:
    if value is None:
        return None
    if type(value) is not str:
        raise BadRequest("timezone must be a string (an IANA name such as Asia/Shanghai) or null")
    if not value or len(value) > MAX_ZONE_NAME:
        raise BadRequest(f"timezone must be 1-{MAX_ZONE_NAME} characters")
    plain_text("timezone", value)
    try:
        zone(value)
    except ValueError as exc:
        raise BadRequest(f"timezone: {exc}") from None
    return value


def _dm_address_choice(value: Any) -> str | None:
    if value is None:
        return None
    if type(value) is not str:
        raise BadRequest("dm_address must be a string or null")
    if not value.strip() or len(value) > MAX_TEXT:
        raise BadRequest(f"dm_address must be 1-{MAX_TEXT} characters")
    if value != value.strip():
        raise BadRequest("dm_address must not start or end with spaces")
    # An address is one line: no tab or newline either (plain_text allows those).
    plain_text("dm_address", value)
    if any(ch in value for ch in "\t\n\r"):
        raise BadRequest("dm_address contains a control character (tab or line break)")
    return value


def validate_preferences(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Check a preferences request (``reminders``, ``timezone``, ``dm_address``; at
    least one); raise ``BadRequest`` naming the first bad field. Pure: nothing is
    read or written, so a refused request changes nothing."""
    unknown = sorted(set(changes) - set(PREFERENCE_FIELDS))
    if unknown:
        raise BadRequest(
            f"unknown field {str(unknown[0])[:40]!r} (allowed: community, "
            f"{', '.join(sorted(PREFERENCE_FIELDS))})"
        )
    if not changes:
        raise BadRequest(f"send at least one of {', '.join(PREFERENCE_FIELDS)}")
    clean: dict[str, Any] = {}
    if "reminders" in changes:
        clean["reminders"] = _reminders_choice(changes["reminders"])
    if "timezone" in changes:
        clean["timezone"] = _timezone_choice(changes["timezone"])
    if "dm_address" in changes:
        clean["dm_address"] = _dm_address_choice(changes["dm_address"])
    return clean


def apply_reminders(
    opt_out_all: bool, opt_outs: Collection[str], choice: bool | Mapping[str, bool]
) -> tuple[bool, tuple[str, ...]]:
    """The new ``(reminders_opt_out, reminder_opt_outs)`` after a reminders choice.

    ``True`` receives every kind (both cleared); ``False`` opts out of every kind,
    kinds added later included (the per-kind list is cleared: it says nothing more).
    A map changes the kinds it names: from "every kind off", turning one on leaves
    every *other current* kind off one by one; a map that only turns kinds off keeps
    "every kind off" as it is. Kinds stored but no longer known are kept.
    """
    if choice is True:
        return False, ()
    if choice is False:
        return True, ()
    off = set(REMINDER_KINDS) | set(opt_outs) if opt_out_all else set(opt_outs)
    for kind, receives in choice.items():
        if receives:
            off.discard(kind)
        else:
            off.add(kind)
    if opt_out_all and off >= set(REMINDER_KINDS):
        return True, ()
    return False, tuple(sorted(off))


def _with_preferences(account: Account, clean: Mapping[str, Any]) -> Account:
    """``account`` with validated preferences applied (unsaved)."""
    changes: dict[str, Any] = {k: clean[k] for k in ("timezone", "dm_address") if k in clean}
    if "reminders" in clean:
        opt_out_all, opt_outs = apply_reminders(
            account.reminders_opt_out, account.reminder_opt_outs, clean["reminders"]
        )
        changes.update(reminders_opt_out=opt_out_all, reminder_opt_outs=opt_outs)
    return replace(account, **changes)


def _preferences_key(account: Account) -> tuple[Any, ...]:
    return (
        account.timezone,
        account.dm_address,
        account.reminders_opt_out,
        tuple(sorted(account.reminder_opt_outs)),
    )


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
            joined = create or account.left_at is not None  # a rejoin counts as joining
            account = replace(account, left_at=None, **clean)
            metrics = (
                MetricsDelta(
                    metrics_day(now, community.timezone, community.day_boundary),
                    membership_counters(joined=True),
                )
                if joined
                else None
            )
            try:
                return self._store.put_account(account, now, create=create, metrics=metrics)
            except StaleAccount:
                continue
        raise Conflict("the member changed concurrently; retry")

    def set_preferences(
        self,
        community: Community,
        member_id: str,
        changes: Mapping[str, Any],
        now: datetime,
    ) -> MemberPreferences:
        """Set the member's own preferences (``PUT /me/preferences``, chat keywords).

        ``changes``: ``reminders`` (``true``, ``false`` or ``{kind: bool}``,
        see :func:`apply_reminders`), ``timezone`` (IANA name or ``None``),
        ``dm_address`` (or ``None``); validated before anything is read, so a
        refused request writes nothing. A member without an account is
        ``NotAMember`` (404), as for ``GET /me``: preferences never register
        anyone. A member who left may still set them (they are kept for a
        rejoin). Idempotent: a request that changes nothing writes nothing.
        """
        clean = validate_preferences(changes)
        account = self._store.account(community.id, member_id)
        for _ in range(3):
            if account is None:
                raise NotAMember(f"member {member_id!r} has not joined community {community.id!r}")
            updated = _with_preferences(account, clean)
            if _preferences_key(updated) == _preferences_key(account):
                return MemberPreferences.of(account)
            try:
                saved = self._store.put_account(updated, now, create=False)
            except StaleAccount as stale:
                account = stale.current
                continue
            return MemberPreferences.of(saved, changed=True)
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
                    replace(account, left_at=iso_utc(now)),
                    now,
                    create=False,
                    metrics=MetricsDelta(
                        metrics_day(now, community.timezone, community.day_boundary),
                        membership_counters(left=True),
                    ),
                )
            except StaleAccount:
                continue
        raise Conflict("the member changed concurrently; retry")
