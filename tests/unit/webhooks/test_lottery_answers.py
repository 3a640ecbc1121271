"""Which lottery a chat keyword names, and how the bot words entries and refusals (pure)."""

from __future__ import annotations

from typing import Any

import pytest
from autopilot.config import parse_config
from autopilot.errors import LotteryNotOpen, NotEligible, NothingToClaim
from autopilot.lottery.service import EntryResult
from autopilot.webhooks.service import (
    ChatMessage,
    LotteryAction,
    entry_weight,
    lottery_answer_text,
    lottery_keyword,
    lottery_refusal_text,
)

SCHEDULE = {"opens": "0 0 * * 1", "closes": "55 19 * * 5", "draws": "0 20 * * 5"}
PRIZES = [{"id": "first", "title": "一等奖", "count": 1, "points": 100}]


def lottery(id_: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": id_,
        "title": f"抽奖 {id_}",
        "schedule": SCHEDULE,
        "prizes": PRIZES,
        "posts": {"channels": ["group"]},
        **fields,
    }


def community(*lotteries: dict[str, Any], locale: str = "zh-CN") -> Any:
    doc = {
        "version": 1,
        "communities": [
            {
                "id": "sunrise",
                "name": "晨读社",
                "timezone": "Asia/Shanghai",
                "locale": locale,
                "channels": [{"id": "group", "type": "console"}],
                "pools": [],
                "jobs": [],
                "lotteries": list(lotteries),
            }
        ],
    }
    return parse_config(doc).communities[0]


def said(text: str) -> ChatMessage:
    return ChatMessage(user_id="1", display_name=None, texts=(text,))


def entry(**fields: Any) -> EntryResult:
    values: dict[str, Any] = {
        "community": "sunrise",
        "lottery": "weekly",
        "draw_id": "weekly-20261130T0000",
        "member": "telegram:1",
        "tickets": 1,
        "cost_points": 0,
        "entered_at": "2026-11-30T02:00:00Z",
    }
    values.update(fields)
    return EntryResult(**values)


def test_entry_and_claim_keywords_name_their_lottery():
    c = community(
        lottery("weekly", entry={"mode": "enter", "keywords": ["抽奖"]}, claim={"window": "1d"}),
        lottery("monthly", entry={"mode": "enter", "keywords": ["月抽"]}),
        lottery("auto", entry={"mode": "auto"}, claim={"window": "1d", "keywords": ["auto领奖"]}),
    )
    weekly, monthly, auto = c.lotteries
    assert lottery_keyword(c, said(" 抽奖 ")) == (weekly, LotteryAction.ENTER)
    assert lottery_keyword(c, said("月抽")) == (monthly, LotteryAction.ENTER)
    assert lottery_keyword(c, said("领奖")) == (weekly, LotteryAction.CLAIM)  # the default
    assert lottery_keyword(c, said("/claim@Bot")) == (weekly, LotteryAction.CLAIM)
    assert lottery_keyword(c, said("auto领奖")) == (auto, LotteryAction.CLAIM)
    assert lottery_keyword(c, said("抽奖吧")) is None
    # monthly has no claim window: its default claim keywords do nothing.
    assert all(
        found is None or found[0] is not monthly
        for found in (lottery_keyword(c, said(w)) for w in ("领奖", "/claim"))
    )


def test_a_disabled_lottery_answers_to_no_keyword():
    c = community(lottery("weekly", entry={"mode": "enter", "keywords": ["抽奖"]}, enabled=False))
    assert lottery_keyword(c, said("抽奖")) is None


@pytest.mark.parametrize(
    ("weight", "fields", "expected"),
    [
        ("equal", {"tickets": 3}, 1),
        ("tickets", {"tickets": 3}, 3),
        ("checkins", {"tickets": 1}, None),
    ],
)
def test_the_weight_known_at_entry(weight, fields, expected):
    # More than one ticket only with weight: tickets (config validation).
    entry_rules = {"mode": "enter", "max_tickets": 5} if weight == "tickets" else {"mode": "enter"}
    c = community(lottery("weekly", entry=entry_rules, weight=weight))
    assert entry_weight(c.lotteries[0], entry(**fields)) == expected


def test_the_weight_is_capped():
    c = community(
        lottery("weekly", entry={"mode": "enter", "max_tickets": 5}, weight="tickets", weight_cap=2)
    )
    assert entry_weight(c.lotteries[0], entry(tickets=5)) == 2


def test_entry_answers_in_chinese_and_english():
    zh = community(lottery("weekly", entry={"mode": "enter", "cost_points": 5}))
    text = lottery_answer_text(
        zh, zh.lotteries[0], entry(cost_points=5, pending=("1 check-in needed",))
    )
    assert (
        text == "已参加「抽奖 weekly」（1 张券，权重 1）。花费 5 积分。"
        "截止前还需满足：1 check-in needed。"
    )
    assert lottery_answer_text(zh, zh.lotteries[0], entry(repeat=True)).startswith("你已经参加过")
    en = community(lottery("weekly", entry={"mode": "enter"}, weight="checkins"), locale="en")
    text = lottery_answer_text(en, en.lotteries[0], entry())
    assert text == (
        "Entered: 抽奖 weekly (1 ticket, weight = your check-ins in the window, "
        "counted at the close)."
    )


def test_claim_answers():
    c = community(lottery("weekly", entry={"mode": "enter"}, claim={"window": "1d"}))
    paid = {"status": "paid", "prize": "一等奖", "code": "COFFEE-7"}
    assert lottery_answer_text(c, c.lotteries[0], paid) == "领奖成功：一等奖。兑换码：COFFEE-7"
    short = {"status": "short", "prize": "马克杯", "code": None}
    assert "库存暂时不足" in lottery_answer_text(c, c.lotteries[0], short)
    pending = {"status": "pending", "prize": "咖啡券", "code": None}
    assert lottery_answer_text(c, c.lotteries[0], pending) == (
        "已领取 咖啡券，兑换码稍后发放，届时再发送「领奖」即可查看。"
    )


def test_refusals_say_why():
    c = community(lottery("weekly", entry={"mode": "enter"}))
    weekly = c.lotteries[0]
    refused = NotEligible("no", reasons=["left the community", "joined late"])
    assert lottery_refusal_text(c, weekly, refused) == (
        "暂不符合「抽奖 weekly」的参加条件：left the community; joined late"
    )
    assert "不接受报名" in lottery_refusal_text(c, weekly, LotteryNotOpen("closed"))
    assert "没有可领取的奖品" in lottery_refusal_text(c, weekly, NothingToClaim("none"))
