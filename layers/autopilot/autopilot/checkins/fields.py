"""Template fields the check-in capability offers to posts (bound by ``autopilot.app``)."""

from autopilot.config.fields import CHECKIN_FIELDS
from autopilot.posts.context import declare_fields

__all__ = ["CHECKIN_FIELDS"]

declare_fields("checkins", CHECKIN_FIELDS)
