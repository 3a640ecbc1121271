"""Template fields the check-in capability offers to posts (bound by ``autopilot.app``)."""

from autopilot.posts.context import declare_fields

CHECKIN_FIELDS = frozenset({"checkins_today", "checkins_yesterday"})
declare_fields("checkins", CHECKIN_FIELDS)
