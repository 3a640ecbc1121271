"""Template data for posts: built-in fields plus providers that capabilities register.

A provider is a function of a :class:`PostContext` returning a mapping of template
fields. The built-in provider supplies date and time fields in the community's
locale; later capabilities (check-ins, lotteries) register providers for live
data such as today's check-in count or tonight's draw. Config validation accepts
the names listed in :mod:`autopilot.config.fields` (a leaf module, so config and
posts do not import each other).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from autopilot.config.fields import POST_FIELDS
from autopilot.config.model import Community, ContentItem, Job, Pool
from autopilot.timeutil import zone

_WEEKDAYS = {
    "zh-CN": ("星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
_MONTHS_EN = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


@dataclass(frozen=True)
class PostContext:
    """Everything a provider may use to compute its fields."""

    community: Community
    job: Job
    pool: Pool
    item: ContentItem
    at_utc: datetime


Provider = Callable[[PostContext], Mapping[str, Any]]
_providers: dict[str, tuple[frozenset[str], Provider]] = {}


def register_provider(
    fields: frozenset[str] | set[str], provider: Provider, name: str | None = None
) -> None:
    """Register ``provider`` as the source of ``fields`` for every post template.

    Registering again under the same ``name`` replaces the provider (each new
    container wires its own stores).
    """
    _providers[name or f"{provider.__module__}.{provider.__qualname__}"] = (
        frozenset(fields),
        provider,
    )


def declare_fields(name: str, fields: frozenset[str] | set[str]) -> None:
    """Declare template fields whose provider a container binds later (with its stores).

    Validation accepts the fields at once; rendering before the binding fails
    loudly instead of printing made-up numbers.
    """
    if name in _providers:
        return

    def unbound(ctx: PostContext) -> Mapping[str, Any]:
        raise RuntimeError(
            f"template fields {sorted(fields)} need the {name!r} provider, "
            "which this container has not wired"
        )

    _providers[name] = (frozenset(fields), unbound)


def known_fields() -> frozenset[str]:
    """Every template field some provider declares."""
    out: frozenset[str] = frozenset()
    for fields, _ in _providers.values():
        out |= fields
    return out


def build_fields(
    ctx: PostContext, needed: set[str] | frozenset[str] | None = None
) -> dict[str, Any]:
    """Run the providers of the ``needed`` fields (all if None) and merge their fields.

    Only providers a template actually uses run, so a post that shows no live
    data costs no extra request.
    """
    values: dict[str, Any] = {}
    for fields, provider in _providers.values():
        if needed is None or fields & needed:
            values.update(provider(ctx))
    return values


def date_words(day: date, locale: str) -> tuple[str, str]:
    """The ``{date}`` and ``{weekday}`` template values of ``day`` in ``locale``
    (``2026年3月2日`` / ``星期一``, ``March 2, 2026`` / ``Monday``)."""
    weekday = _WEEKDAYS.get(locale, _WEEKDAYS["en"])[day.weekday()]
    if locale == "zh-CN":
        return f"{day.year}年{day.month}月{day.day}日", weekday
    return f"{_MONTHS_EN[day.month - 1]} {day.day}, {day.year}", weekday


def _builtin(ctx: PostContext) -> dict[str, Any]:
    local = ctx.at_utc.astimezone(zone(ctx.community.timezone))
    date_text, weekday = date_words(local.date(), ctx.community.locale)
    return {
        "community": ctx.community.name,
        "date": date_text,
        "date_iso": local.date().isoformat(),
        "weekday": weekday,
        "time": local.strftime("%H:%M"),
        "day_of_year": local.timetuple().tm_yday,
        "content": ctx.item.text,
        "content_id": ctx.item.id,
        "title": ctx.item.title or "",
        "pool": ctx.pool.id,
    }


register_provider(POST_FIELDS, _builtin)
