"""Fitting a message into a platform's size limit: split, then truncate.

The rule (docs/channels.md, "Long messages"):

1. A text within the limit is sent as one message.
2. A longer text is split into parts, each within the limit, cutting at the last
   paragraph break (blank line) in the second half of the window; failing that at
   the last line break there, then at the last space, and only then inside a
   word (never inside a character: limits in bytes cut between UTF-8 sequences).
3. At most ``max_parts`` parts are sent; if the text needs more, the last part is
   cut to fit with a trailing ``…`` — so a platform never rejects a message for
   its length, and a runaway template cannot flood a group.

Limits are measured in the platform's own unit: UTF-8 bytes (WeCom, DingTalk,
Feishu), or UTF-16 code units (Slack, Discord, Telegram count JavaScript-style
characters; an emoji outside the BMP counts twice, so this is never too lenient).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

ELLIPSIS = "…"


def utf8_bytes(text: str) -> int:
    """Length in UTF-8 bytes."""
    return len(text.encode("utf-8"))


def utf16_units(text: str) -> int:
    """Length in UTF-16 code units (what JavaScript's ``length`` counts)."""
    return len(text.encode("utf-16-le")) // 2


@dataclass(frozen=True)
class TextLimit:
    """A platform's limit for one message's text."""

    max_length: int
    measure: Callable[[str], int] = utf16_units
    unit: str = "characters"

    def fits(self, text: str) -> bool:
        return self.measure(text) <= self.max_length


def _longest_prefix(text: str, limit: TextLimit, budget: int) -> int:
    """The largest ``n`` with ``measure(text[:n]) <= budget`` (binary search)."""
    low, high = 0, len(text)
    while low < high:
        mid = (low + high + 1) // 2
        if limit.measure(text[:mid]) <= budget:
            low = mid
        else:
            high = mid - 1
    return low


def _cut_point(window: str) -> tuple[int, int]:
    """Where to cut ``window`` (end of this part, start of the next), preferring breaks."""
    half = len(window) // 2
    for separator in ("\n\n", "\n", " "):
        index = window.rfind(separator, half)
        if index > 0:
            return index, index + len(separator)
    return len(window), len(window)


def split_text(text: str, limit: TextLimit, max_parts: int) -> list[str]:
    """``text`` as at most ``max_parts`` parts, each within ``limit`` (see the module rule)."""
    if max_parts < 1:
        raise ValueError("max_parts must be at least 1")
    if limit.fits(text):
        return [text]
    parts: list[str] = []
    rest = text
    while rest and len(parts) < max_parts - 1:
        if limit.fits(rest):
            parts.append(rest)
            return parts
        window = rest[: _longest_prefix(rest, limit, limit.max_length)]
        end, start = _cut_point(window)
        part = window[:end].rstrip()
        if not part:  # only whitespace before the cut: take the window as it is
            part, start = window, len(window)
        parts.append(part)
        rest = rest[start:].lstrip("\n")
    if rest:
        if limit.fits(rest):
            parts.append(rest)
        else:
            keep = _longest_prefix(rest, limit, limit.max_length - limit.measure(ELLIPSIS))
            parts.append(rest[:keep].rstrip() + ELLIPSIS)
    return parts
