"""Membership and zone changes through the HTTP API, in ONE warm API container.

The container caches accounts. Ops change members through the same container
(or another one) without telling that cache; nothing here clears it by hand. The
cache must never act on stale facts: a member who left earns and spends
nothing, a member who rejoined is welcome, a zone change credits no day twice.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from .api_support import T0, Api, make_api, token

SUNRISE = {"community": "sunrise"}
OPS = ("olga", "ops")


@pytest.fixture
def api(stack) -> Api:
    return make_api(stack)


def check_in(api: Api, member: str = "alice") -> Any:
    return api.call("POST", "/checkins", auth=token(member), body=SUNRISE)


def ops_put(api: Api, member: str, **profile: Any) -> None:
    answer = api.call("PUT", f"/members/{member}", auth=token(*OPS), body={**SUNRISE, **profile})
    assert answer.status == 200, answer.body


def ops_leave(api: Api, member: str) -> None:
    answer = api.call("DELETE", f"/members/{member}", auth=token(*OPS), query=SUNRISE)
    assert answer.status == 200, answer.body


def me(api: Api, member: str = "alice") -> dict[str, Any]:
    answer = api.call("GET", "/me", auth=token(member), query=SUNRISE)
    assert answer.status == 200, answer.body
    return dict(answer.json())


def entries_of(api: Api, member: str = "alice") -> list[str]:
    return sorted(i["sk"]["S"] for i in api.ledger_items() if member in i["pk"]["S"])


@pytest.mark.parametrize("look_first", [False, True], ids=["after-check-in", "after-me"])
def test_a_member_who_left_cannot_check_in_through_a_warm_container(api, look_first):
    assert check_in(api).status == 200  # the container caches alice
    if look_first:
        me(api)
    ops_leave(api, "alice")
    api.stack.clock.set(T0 + timedelta(days=1))
    before = api.ledger_items()
    refused = check_in(api)
    assert refused.status == 403 and refused.json()["error"] == "MemberLeft"
    assert api.ledger_items() == before  # nothing written, no +10
    assert me(api)["balance"] == 10


def test_a_member_who_rejoined_can_check_in_through_a_warm_container(api):
    assert check_in(api).status == 200
    ops_leave(api, "alice")
    assert me(api)["profile"]["left_at"]  # the container now caches "left"
    ops_put(api, "alice", display_name="Alice")  # back
    api.stack.clock.set(T0 + timedelta(days=1))
    again = check_in(api)
    assert again.status == 200, again.body
    assert (again.json()["streak"], again.json()["balance"]) == (2, 20)


def test_a_zone_change_the_cache_missed_credits_one_day_not_two(api):
    ops_put(api, "alice", timezone="Etc/GMT+12")  # UTC-12
    first = check_in(api)  # 01:00 UTC on the 26th: 13:00 on the 25th in UTC-12
    assert first.json()["day"] == "2026-11-25"
    api.stack.clock.set(datetime(2026, 11, 26, 16, 0, tzinfo=UTC))  # 04:00 on the 26th there
    me(api)  # cached in UTC-12
    ops_put(api, "alice", timezone="Etc/GMT-14")  # UTC+14: 06:00 on the 27th
    answers = [check_in(api).json()]
    api.stack.clock.advance(timedelta(seconds=1))
    answers.append(check_in(api).json())
    assert [a["repeat"] for a in answers] == [False, True]
    # The day is the member's current zone's; the jump east is not a missed day.
    assert (answers[0]["day"], answers[0]["streak"], answers[0]["balance"]) == (
        "2026-11-27",
        2,
        20,
    )
    assert me(api)["balance"] == 20


def test_moving_west_after_a_check_in_answers_the_check_in_not_a_500(api):
    ops_put(api, "alice", timezone="Etc/GMT-14")  # UTC+14: 15:00 on the 26th
    first = check_in(api)
    assert first.json()["day"] == "2026-11-26"
    ops_put(api, "alice", timezone="Etc/GMT+12")  # UTC-12: 13:00 on the 25th
    me(api)  # the container learns the new zone
    api.stack.clock.advance(timedelta(seconds=1))
    before = api.ledger_items()
    again = check_in(api)
    assert again.status == 200, again.body
    assert again.json() == {**first.json(), "repeat": True}
    assert api.ledger_items() == before
    made_up = api.call("POST", "/checkins", auth=token("alice"), body={**SUNRISE, "makeup": True})
    assert made_up.status == 400 and api.ledger_items() == before


def test_redemptions_by_members_who_left_are_refused_in_a_warm_container(api):
    assert check_in(api).status == 200
    me(api)
    ops_leave(api, "alice")
    before = api.ledger_items()
    refused = api.call(
        "POST",
        "/redemptions",
        auth=token("alice"),
        body={**SUNRISE, "reward": "badge", "request_id": "after-leaving"},
    )
    assert refused.status == 403 and refused.json()["error"] == "MemberLeft"
    assert api.ledger_items() == before


def test_a_member_timezone_sets_the_check_in_day(api):
    # 01:00 UTC on the 26th is 09:00 in Shanghai (the community) but 20:00 on the
    # 25th in New York: the member's own zone decides.
    ops_put(api, "alice", timezone="America/New_York")
    answer = check_in(api)
    assert answer.status == 200, answer.body
    assert answer.json()["day"] == "2026-11-25"
    api.stack.clock.set(datetime(2026, 11, 26, 9, 0, tzinfo=UTC))  # 04:00 in New York
    assert check_in(api).json()["day"] == "2026-11-26"
