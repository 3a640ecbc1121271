"""The split-or-truncate rule for long messages."""

from __future__ import annotations

from autopilot.channels.split import ELLIPSIS, TextLimit, split_text, utf8_bytes, utf16_units
from hypothesis import given, settings
from hypothesis import strategies as st


def test_short_text_is_one_part():
    assert split_text("早安", TextLimit(10, utf8_bytes), 3) == ["早安"]


def test_splits_at_paragraphs_then_lines_then_spaces():
    text = "a" * 40 + "\n\n" + "b" * 20 + "\n" + "c" * 30
    assert split_text(text, TextLimit(70), 5) == ["a" * 40, "b" * 20 + "\n" + "c" * 30]
    # A paragraph break early in the window would waste it: the last line break wins.
    text = "a" * 10 + "\n\n" + "b" * 50 + "\n" + "c" * 30
    assert split_text(text, TextLimit(70), 5) == ["a" * 10 + "\n\n" + "b" * 50, "c" * 30]
    words = " ".join(["word"] * 30)  # 149 characters
    parts = split_text(words, TextLimit(50), 5)
    assert all(len(p) <= 50 and not p.startswith(" ") and not p.endswith(" ") for p in parts)
    assert " ".join(parts) == words


def test_byte_limits_never_cut_a_character():
    text = "早安" * 1000  # 6000 bytes
    parts = split_text(text, TextLimit(2048, utf8_bytes), 5)
    assert all(utf8_bytes(p) <= 2048 for p in parts)
    assert "".join(parts) == text


def test_too_long_text_is_truncated_with_an_ellipsis_in_the_last_allowed_part():
    text = "x" * 10_000
    parts = split_text(text, TextLimit(2000), 2)
    assert len(parts) == 2 and parts[1].endswith(ELLIPSIS)
    assert all(len(p) <= 2000 for p in parts)


def test_utf16_counts_astral_characters_twice():
    assert utf16_units("😀") == 2
    parts = split_text("😀" * 3000, TextLimit(4096, utf16_units), 3)
    assert all(utf16_units(p) <= 4096 for p in parts) and "".join(parts) == "😀" * 3000


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet=st.sampled_from("ab 早😀\n"), max_size=600),
    st.integers(min_value=8, max_value=120),
    st.integers(min_value=1, max_value=6),
    st.sampled_from([utf8_bytes, utf16_units, len]),
)
def test_every_part_fits_and_nothing_is_lost_unless_truncated(text, size, max_parts, measure):
    limit = TextLimit(size, measure)
    parts = split_text(text, limit, max_parts)
    assert 1 <= len(parts) <= max_parts
    assert all(measure(p) <= size for p in parts)
    if not parts[-1].endswith(ELLIPSIS) or text.endswith(ELLIPSIS):
        # Without truncation only whitespace at the cut points may go.
        assert "".join(parts).replace(" ", "").replace("\n", "") == text.replace(" ", "").replace(
            "\n", ""
        )
