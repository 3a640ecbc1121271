"""Reading a coupon code upload: every refused line named, repeats kept once, no AWS."""

from __future__ import annotations

import pytest
from autopilot.lottery.codes import (
    MAX_CODE_CHARS,
    MAX_PROBLEMS_SHOWN,
    MAX_UPLOAD_LINES,
    code_problem,
    code_sk,
    parse_codes,
)


def test_codes_in_file_order_with_crlf_final_newline_and_bom():
    parsed = parse_codes("\ufeffCOFFEE-1\r\nCOFFEE-2\r\n咖啡-3\n".encode())
    assert parsed.ok
    assert parsed.codes == ("COFFEE-1", "COFFEE-2", "咖啡-3")
    assert parsed.repeated_lines == () and parsed.problems == ()


def test_last_line_without_newline_is_a_code():
    assert parse_codes(b"A\nB").codes == ("A", "B")


def test_repeated_codes_are_kept_once_at_their_first_line():
    parsed = parse_codes(b"A\nB\nA\nC\nB\nA\n")
    assert parsed.ok
    assert parsed.codes == ("A", "B", "C")
    assert parsed.repeated_lines == (3, 5, 6)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"", "blank line"),
        (b"   ", "blank line"),
        (b" ABC", "spaces around it"),
        (b"ABC\t", "spaces around it"),
        (b"AB\tC", "U+0009"),
        (b"AB\x00C", "U+0000"),
        (b"AB\x1bC", "U+001B"),
        (b"AB\rC", "U+000D"),
        ("AB\u200bC".encode(), "U+200B"),  # zero-width space
        ("AB\u202eC".encode(), "U+202E"),  # right-to-left override
        ("AB\u00a0C".encode(), "U+00A0"),  # no-break space
        ("AB\u2028C".encode(), "U+2028"),  # line separator
        ("AB\x85C".encode(), "U+0085"),  # C1 control (NEL)
        (b"AB\xffC", "not UTF-8"),
        (b"X" * (MAX_CODE_CHARS + 1), f"at most {MAX_CODE_CHARS}"),
    ],
)
def test_refused_lines_are_named_with_their_line_number(line, message):
    parsed = parse_codes(b"GOOD-1\n" + line + b"\nGOOD-2\n")
    assert not parsed.ok
    assert len(parsed.problems) == 1
    number, text = parsed.problems[0]
    assert number == 2 and message in text
    assert parsed.describe_problems("codes.txt")[0].startswith("codes.txt:2: ")


def test_inner_plain_spaces_and_the_longest_code_are_accepted():
    assert code_problem("ABCD EFGH") is None
    assert code_problem("X" * MAX_CODE_CHARS) is None
    assert code_problem("优惠券#12") is None  # a code is a value, not a key: '#' is fine


def test_every_problem_is_reported_and_the_list_is_capped_for_reading():
    parsed = parse_codes(b"\n" * 30 + b"OK\n")
    assert [n for n, _ in parsed.problems] == list(range(1, 31))
    shown = parsed.describe_problems("f")
    assert len(shown) == MAX_PROBLEMS_SHOWN + 1 and shown[-1] == "f: ... and 10 more problem(s)"


def test_an_empty_file_has_no_codes():
    assert parse_codes(b"").problems == ((0, "the file has no codes"),)
    only_bom = parse_codes("\ufeff\n".encode())  # a spreadsheet's empty export
    assert not only_bom.ok and "blank line" in only_bom.problems[0][1]


def test_too_many_lines_are_refused_before_reading_them():
    parsed = parse_codes(b"C\n" * (MAX_UPLOAD_LINES + 1))
    assert not parsed.ok and parsed.codes == ()
    assert f"at most {MAX_UPLOAD_LINES}" in parsed.problems[0][1]


def test_sort_keys_keep_pool_order_as_byte_order():
    keys = [code_sk(n) for n in (1, 2, 10, 100, 99_999_999)]
    assert keys == sorted(keys) and keys[0] == "CODE#00000001"
