"""The parsing rules that keep hostile input from ever reaching a 500 (no AWS).

Each rule is the one shared mechanism for the API and the chat webhooks:
bounded JSON depth, strict text, one member-id rule, strict percent-decoding,
bounded dates and integers, and ``zone()`` failing with one clear error.
"""

from __future__ import annotations

import contextlib
import json
import re
from datetime import date

import pytest
from autopilot.api import requests as req
from autopilot.api.requests import Field
from autopilot.errors import BadRequest
from autopilot.timeutil import parse_iso, zone
from autopilot.webhooks.service import chat_member_id
from hypothesis import given
from hypothesis import strategies as st


@pytest.mark.parametrize(
    "name",
    [
        "America",
        "Etc",
        "America/Argentina",
        "Asia/",
        "..",
        ".",
        "/etc/passwd",
        "Asia//Tokyo",
        "America/../Asia/Tokyo",
        "Asia/Shang\x00hai",
        "\ud800",
        "x" * 300,
        "Asia/" + "y" * 250,
        "zone1970.tab",
        "tzdata.zi",
        "",
    ],
)
def test_zone_refuses_every_bad_name_with_one_clear_error(name):
    with pytest.raises(ValueError, match="unknown time zone"):
        zone(name)


def test_zone_still_knows_real_zones():
    assert str(zone("Asia/Shanghai")) == "Asia/Shanghai"
    assert str(zone("Etc/GMT+12")) == "Etc/GMT+12"


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("{}", 1),
        ('{"a": [1, {"b": []}]}', 4),
        ('"[[[[["', 0),  # brackets inside strings do not count
        ('["\\"[[[", []]', 2),  # nor after an escaped quote
        ("[" * 5000 + "]" * 5000, 5000),
        ("", 0),
    ],
)
def test_json_depth(text, depth):
    assert req.json_depth(text) == depth


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"[" * 5000 + b"]" * 5000, "deeper than 64"),
        (b'{"a":' * 2000 + b"1" + b"}" * 2000, "deeper than 64"),
        (b"[" * 100000, "deeper than 64"),  # unbalanced: refused before parsing
        (b"NaN", "NaN"),
        (b'{"x": Infinity}', "Infinity"),
        (b'{"x": 1e309}', "out of range"),
        (b'{"x": ' + b"9" * 5000 + b"}", "not valid JSON"),
        (b'{"x": "\\ud800"}', "at x, contains"),
        (b'{"x": ["ok", "\\udc00"]}', "at x[1]"),
        (b'{"\\u0000": 1}', "field name"),
        (b'{"x": "a\\u0085b"}', "control character"),
        (b'\xef\xbb\xbf{"x": 1}', "byte order mark"),
        ('{"x": 1}'.encode("utf-16"), "not UTF-8"),
        (b'{"x": "\xff"}', "not UTF-8"),
    ],
)
def test_json_document_refuses_hostile_documents(data, text):
    with pytest.raises(BadRequest, match=re.escape(text)):
        req.json_document(data)


def test_json_document_keeps_ordinary_text():
    document = req.json_document('{"n": "小明 👩‍👩‍👧 Zoë", "t": "a\\tb\\nc", "f": 1.5}'.encode())
    assert document == {"n": "小明 👩‍👩‍👧 Zoë", "t": "a\tb\nc", "f": 1.5}
    assert req.json_document(("[" * 64 + "]" * 64).encode()) == json.loads("[" * 64 + "]" * 64)


@given(st.binary(max_size=300))
def test_json_document_raises_only_bad_request(data):
    with contextlib.suppress(BadRequest):
        req.json_document(data)


@given(st.text(max_size=200))
def test_json_document_of_any_text_raises_only_bad_request(text):
    with contextlib.suppress(BadRequest):
        req.json_document(text.encode("utf-8", "surrogatepass"))


@pytest.mark.parametrize(
    "member",
    [
        "a#b",
        "a b",
        "a\tb",
        "a\x00b",
        "a\x7fb",
        "a\x80b",  # C1
        "a\x85b",
        "a\x9fb",
        "a\u00a0b",  # no-break space
        "a\u2028b",  # line separator
        "a\u200bb",  # zero-width space (format)
        "a\u202eb",  # right-to-left override
        "\ufeffa",
        "a\ud800",
        "a\ufdd0",  # noncharacters
        "a\uffff",
        "a\U0001fffe",
        "",
        "m" * 129,
    ],
)
def test_member_id_one_rule(member):
    with pytest.raises(BadRequest, match="member"):
        req.member_id("member", member)


@pytest.mark.parametrize("member", ["alice", "slack:U024BE7LH", "王小明", "m" * 128, "a.b-c_d@e"])
def test_member_id_accepts_ordinary_ids(member):
    assert req.member_id("member", member) == member


@pytest.mark.parametrize(
    "key", ["r\x001", "r\t1", "r\n", "r\x85", "r\u200b", "r#1", " r1", "r1 ", "", "k" * 129]
)
def test_request_key_refuses_control_characters_hash_and_padding(key):
    with pytest.raises(BadRequest, match="request_id"):
        req.request_key("request_id", key)


def test_request_key_accepts_uuids_and_inner_spaces():
    assert req.request_key("ref", "INC 42") == "INC 42"
    assert req.request_key("ref", "0b8f6c1e-3a5d-4f7e-9c2a-1d2e3f4a5b6c")


@pytest.mark.parametrize("raw", ["a%FF", "a%E2%80", "a%ED%A0%80", "a%C0%AF", "%80"])
def test_path_parameter_decodes_strictly(raw):
    with pytest.raises(BadRequest, match="percent-encoded UTF-8"):
        req.path_parameter("member_id", raw)


def test_path_parameter_decodes_utf8():
    assert req.path_parameter("m", "%E7%8E%8B%20x%23") == "王 x#"


@pytest.mark.parametrize(
    "text",
    ["9999-12-31", "0001-01-01", "1969-12-31", "3000-01-01", "２０２６-11-01", "+1000-01-01"],
)
def test_day_is_bounded_to_a_sane_range(text):
    with pytest.raises(BadRequest, match="since must be a date"):
        req.day("since", text)


def test_day_range_ends_are_accepted():
    assert req.day("since", "1970-01-01") == req.MIN_DAY == date(1970, 1, 1)
    assert req.day("until", "2999-12-31") == req.MAX_DAY


@pytest.mark.parametrize("text", ["0" * 5000 + "1", "1" * 50, "١٠", "-1", "1.0", ""])
def test_integer_parameters_refuse_long_or_foreign_digits(text):
    with pytest.raises(BadRequest, match="limit"):
        req.integer("limit", text, 1, 500)


@pytest.mark.parametrize("value", [2**64, 10**60, -(2**64), 1_000_000_001, -1_000_000_001])
def test_integer_fields_are_bounded(value):
    with pytest.raises(BadRequest, match="amount must be an integer from"):
        req.fields({"amount": value}, {"amount": Field(int)})


def test_integer_field_bounds_and_bools():
    assert req.fields({"n": 1_000_000_000}, {"n": Field(int)}) == {"n": 1_000_000_000}
    with pytest.raises(BadRequest, match="n must be an integer"):
        req.fields({"n": True}, {"n": Field(int)})
    with pytest.raises(BadRequest, match="from 1 to 3"):
        req.fields({"n": 4}, {"n": Field(int, low=1, high=3)})


@pytest.mark.parametrize(
    ("params", "text"),
    [
        ({"community": "a\x00"}, "control characters"),
        ({"community": "a\x85"}, "control characters"),
        ({"community": "c" * 1025}, "at most 1024"),
    ],
)
def test_query_values_are_checked(params, text):
    with pytest.raises(BadRequest, match=text):
        req.query({"queryStringParameters": params}, {"community"})


@pytest.mark.parametrize("user", ["U 1", "U#1", "U\u200b", "U\x85", "", "u" * 123])
def test_chat_member_ids_follow_the_member_id_rule_and_are_never_truncated(user):
    with pytest.raises(BadRequest, match="slack user id must be 1-122 characters"):
        chat_member_id("slack", user)


def test_chat_member_id_at_the_limit():
    assert chat_member_id("slack", "u" * 122) == "slack:" + "u" * 122


@pytest.mark.parametrize(
    "text", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00", "2026-01-01T00:00:00"]
)
def test_parse_iso_turns_every_bad_instant_into_value_error(text):
    with pytest.raises(ValueError):
        parse_iso(text)


def test_a_lone_surrogate_in_an_event_body_is_a_400_not_an_encoding_crash():
    with pytest.raises(BadRequest, match="not UTF-8"):
        req.json_object({"body": '{"community": "\ud800"}'})
