"""Template fields a post may use: the names config validation accepts.

A leaf module (it imports nothing from the project) so that the config model,
the posts capability that renders the fields and the capabilities that provide
them (check-ins) all depend on it and never on each other. A capability that
provides new fields adds their names here and registers its provider with
:mod:`autopilot.posts.context`; a test checks the two agree.
"""

from __future__ import annotations

import re
import string

#: Fields every post offers (date and time in the community's locale, the content).
POST_FIELDS = frozenset(
    {
        "community",
        "date",
        "date_iso",
        "weekday",
        "time",
        "day_of_year",
        "content",
        "content_id",
        "title",
        "pool",
    }
)
#: Live check-in counts (bound by ``autopilot.app``; they cost a query per post).
CHECKIN_FIELDS = frozenset({"checkins_today", "checkins_yesterday"})
#: Every field a template may name.
TEMPLATE_FIELDS = POST_FIELDS | CHECKIN_FIELDS
#: The date and time fields of every post, which lottery posts offer too.
POST_FIELDS_BASE = frozenset({"community", "date", "date_iso", "weekday", "time"})
#: Fields of lottery posts (announce, closed, winners, claim_dm), rendered by the
#: lottery service from the draw's data: the lottery's ``title`` and id, the draw
#: id, the seed's ``commitment``, the cycle's local ``opens``/``closes``/``draws``
#: ("YYYY-MM-DD HH:MM"), ``cost_points`` and the first entry ``keyword``; after the
#: close ``entrants`` and ``entrants_hash``; after the draw ``winners`` (one
#: "prize: member" line each), ``winner_count``, the revealed ``seed``,
#: ``external_value`` and ``record`` (where the draw record is); in a winner's
#: direct message ``prize``, ``claim_by`` (local time) and ``claim_keyword``.
LOTTERY_FIELDS = frozenset(
    {
        "lottery",
        "lottery_id",
        "draw_id",
        "commitment",
        "opens",
        "closes",
        "draws",
        "cost_points",
        "keyword",
        "entrants",
        "entrants_hash",
        "winners",
        "winner_count",
        "seed",
        "external_value",
        "record",
        "prize",
        "claim_by",
        "claim_keyword",
    }
)
#: Every field a lottery post template may name.
LOTTERY_TEMPLATE_FIELDS = POST_FIELDS_BASE | LOTTERY_FIELDS

_FIELD_NAME = re.compile(r"[a-z_][a-z0-9_]*")


def template_fields(template: str) -> list[str]:
    """The field names a ``str.format``-style template refers to (raises on bad syntax)."""
    names = []
    for _, name, spec, conversion in string.Formatter().parse(template):
        if name is not None:
            if not name or not _FIELD_NAME.fullmatch(name):
                raise ValueError(f"invalid placeholder {{{name}}}: use {{name}} with a-z, 0-9, _")
            if spec or conversion:
                # Fields are rendered as text; a spec or conversion would fail at post time.
                raise ValueError(
                    f"placeholder {{{name}}} may not have a format spec or "
                    "conversion: write plain {name}"
                )
            names.append(name)
    return names
