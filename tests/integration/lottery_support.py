"""Helpers for the lottery integration tests: a lottery, its occurrences, a stack app."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from autopilot.app import App
from autopilot.config.model import (
    Community,
    Job,
    Lottery,
    LotteryPosts,
    MisfirePolicy,
    Reward,
    lottery_job_id,
)
from autopilot.lottery.eligibility import EligibilityRules, Weighting
from autopilot.lottery.prizes import parse_plan
from autopilot.scheduler.rules import Occurrence
from autopilot.scheduler.service import ActionContext
from autopilot.timeutil import local_wall, zone

from .conftest import Stack, make_config

# The week of 2026-11-30 in Asia/Shanghai (UTC+8): opens Monday 00:00, closes Friday
# 19:55, draws Friday 20:00.
OPENS = datetime(2026, 11, 29, 16, 0, tzinfo=UTC)
CLOSES = datetime(2026, 12, 4, 11, 55, tzinfo=UTC)
DRAWS = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
DRAW_ID = "weekly-20261130T0000"
CRONS = {
    "open": "0 0 * * 1",
    "close": "55 19 * * 5",
    "draw": "0 20 * * 5",
    "expire": "*/15 * * * *",
}

POSTS = LotteryPosts(
    channels=("group",),
    announce="{lottery} 开始报名，承诺 {commitment}，回复 {keyword} 参加",
    closed="{lottery} 截止：{entrants} 人，名单哈希 {entrants_hash}",
    winners="{lottery} 开奖：\n{winners}\n记录 {record}",
    claim_dm="恭喜获得 {prize}，{claim_by} 前回复 {claim_keyword} 领奖",
)


def prize_plan(tiers: list[dict[str, Any]] | None = None) -> Any:
    plan, problems = parse_plan(
        tiers
        or [
            {"id": "first", "title": "一等奖", "count": 1, "points": 200},
            {"id": "second", "title": "二等奖", "count": 3, "points": 50},
        ]
    )
    assert plan is not None, problems
    return plan


def make_lottery(**overrides: Any) -> Lottery:
    """The weekly lottery of the spec (enter by keyword, free, min 1 check-in)."""
    values: dict[str, Any] = {
        "id": "weekly",
        "title": "周五抽奖",
        "opens": CRONS["open"],
        "closes": CRONS["close"],
        "draws": CRONS["draw"],
        "entry": "enter",
        "keywords": ("抽奖",),
        "rules": EligibilityRules.of(min_checkins=1, not_left=True),
        "weighting": Weighting(),
        "plan": prize_plan(),
        "posts": POSTS,
        "claim_keywords": ("领奖",),
    }
    values.update(overrides)
    return Lottery(**values)


def community_with(app: App, *lotteries: Lottery, **fields: Any) -> Community:
    """The stack's community with ``lotteries`` (until the config section lands)."""
    community = app.config().communities[0]
    return replace(community, lotteries=tuple(lotteries), **fields)


def push_config(stack: Stack, **community: Any) -> None:
    stack.push(make_config(jobs=[], **community))


def ctx(community: Community, lottery: Lottery, step: str, scheduled: datetime) -> ActionContext:
    """The dispatcher's context for one lottery step scheduled at ``scheduled``."""
    job = Job(
        id=lottery_job_id(lottery.id, step),
        cron=CRONS[step],
        action=f"lottery_{step}",
        params={"lottery": lottery.id},
        misfire=MisfirePolicy("all", timedelta(days=2)),
        quiet_hours="ignore",
    )
    nominal = local_wall(scheduled, zone(community.timezone)).replace(tzinfo=None)
    occ = Occurrence(community.id, job.id, nominal, scheduled, scheduled)
    return ActionContext(community, job, occ, now_utc=scheduled, attempt=1)


def check_in_days(app: App, community: Community, member: str, days: int, start: datetime) -> None:
    """``days`` daily check-ins of ``member`` from ``start`` (10:00 local each day)."""
    for offset in range(days):
        app.checkins.check_in(community, member, start + timedelta(days=offset, hours=2))


def run_auto_cycle(app: App, stack: Stack, *, weeks: int = 0) -> Community:
    """One automatic-entry week (``weeks`` after the first) with a points and a reward
    prize, run as the dispatcher runs it (open, check-ins, close, draw): exercises every
    lottery call of the dispatcher for the least-privilege tests."""
    plan = prize_plan(
        [
            {"id": "first", "title": "一等奖", "count": 1, "points": 100},
            {"id": "second", "title": "二等奖", "count": 1, "reward": "mug"},
        ]
    )
    lottery = make_lottery(entry="auto", keywords=(), plan=plan)
    community = community_with(app, lottery, rewards=(Reward("mug", "马克杯", 100, stock=5),))
    shift = timedelta(weeks=weeks)
    opens, closes, draws = OPENS + shift, CLOSES + shift, DRAWS + shift
    stack.clock.set(opens)
    assert app.lotteries.open(ctx(community, lottery, "open", opens)).ok
    for member in ("ann", "bob", "cyd"):
        check_in_days(app, community, member, 1, opens + timedelta(hours=1))
    stack.clock.set(closes)
    assert app.lotteries.close(ctx(community, lottery, "close", closes)).ok
    stack.clock.set(draws)
    result = app.lotteries.draw(ctx(community, lottery, "draw", draws))
    assert result.ok, result.error
    assert len(result.detail["winners"]) == 2
    return community
