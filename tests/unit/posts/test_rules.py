"""Content rotation and template rendering."""

from __future__ import annotations

from datetime import UTC, datetime, time
from itertools import pairwise

import pytest
from autopilot.config.model import Community, ContentItem, Job, MisfirePolicy, Pool
from autopilot.posts.context import PostContext, build_fields, known_fields
from autopilot.posts.rules import RotationState, cycle_order, pick_next, render
from hypothesis import given
from hypothesis import strategies as st


@given(
    n=st.integers(min_value=1, max_value=30),
    picks=st.integers(min_value=1, max_value=120),
    seed=st.text(max_size=8),
)
def test_rotation_never_repeats_before_the_pool_is_exhausted(n, picks, seed):
    ids = [f"i{k}" for k in range(n)]
    state = RotationState()
    served = []
    for _ in range(picks):
        chosen, state = pick_next(ids, state, seed)
        served.append(chosen)
    for start in range(0, len(served), n):
        cycle = served[start : start + n]
        assert len(cycle) == len(set(cycle))  # each cycle is a permutation prefix
    if n > 1:
        assert all(a != b for a, b in pairwise(served))


def test_rotation_is_deterministic_and_differs_between_cycles():
    ids = [f"i{k}" for k in range(10)]
    assert cycle_order(ids, "seed", 0) == cycle_order(ids, "seed", 0)
    assert cycle_order(ids, "seed", 0) != cycle_order(ids, "seed", 1)
    assert sorted(cycle_order(ids, "seed", 3)) == sorted(ids)


def test_items_added_mid_cycle_join_it_and_removed_items_are_skipped():
    state = RotationState(cycle=0, served=("gone", "a"), last="a")
    seen = set()
    for _ in range(2):
        chosen, state = pick_next(["a", "b", "c"], state, "s")
        seen.add(chosen)
    assert seen == {"b", "c"} and state.cycle == 0
    chosen, state = pick_next(["a", "b", "c"], state, "s")
    assert state.cycle == 1


def test_empty_pool_is_refused():
    with pytest.raises(ValueError, match="empty pool"):
        pick_next([], RotationState(), "s")


def test_render_fills_fields_and_names_a_missing_one():
    assert (
        render("早安，{community}！{content}", {"community": "晨读社", "content": "加油"})
        == "早安，晨读社！加油"
    )
    with pytest.raises(KeyError, match="nope"):
        render("{nope}", {})


def _community(locale: str, tz: str) -> Community:
    return Community(
        id="c",
        name="晨读社",
        timezone=tz,
        locale=locale,
        day_boundary=time(4),
        quiet_hours=None,
        channels=(),
        pools=(),
        jobs=(),
    )


@pytest.mark.parametrize(
    ("locale", "tz", "date", "weekday", "clock"),
    [
        ("zh-CN", "Asia/Shanghai", "2026年11月27日", "星期五", "07:30"),
        ("en", "America/New_York", "November 26, 2026", "Thursday", "18:30"),
    ],
)
def test_builtin_fields_use_the_community_zone_and_locale(locale, tz, date, weekday, clock):
    item = ContentItem("m1", "text", "title")
    pool = Pool("morning", (item,))
    the_job = Job("j", "30 7 * * *", "post", {}, MisfirePolicy(), "defer")
    # Only the built-in fields: live-data providers (check-in counts) need stores.
    needed = {"date", "weekday", "time", "content", "content_id"}
    fields = build_fields(
        PostContext(
            _community(locale, tz), the_job, pool, item, datetime(2026, 11, 26, 23, 30, tzinfo=UTC)
        ),
        needed,
    )
    assert (fields["date"], fields["weekday"], fields["time"]) == (date, weekday, clock)
    assert fields["content"] == "text" and fields["content_id"] == "m1"
    assert set(fields) <= known_fields()
