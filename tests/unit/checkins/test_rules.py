"""Check-in rules: streaks, freezes, milestones, caps, make-ups and tiers.

The property test compares ``check_in``/``make_up`` with a small reference model
written straight from the documented rules, simulating missed days one by one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import pytest
from autopilot.checkins.rules import (
    AccountState,
    AlreadyCheckedIn,
    Award,
    CheckinOutcome,
    CheckinRules,
    MakeupNotAllowed,
    Milestone,
    Tier,
    check_in,
    make_up,
    tier_for,
)
from hypothesis import given, settings
from hypothesis import strategies as st

D0 = date(2026, 11, 1)
ONE = timedelta(days=1)


def day(n: int) -> date:
    return D0 + n * ONE


def run(rules: CheckinRules, *days: int, state: AccountState | None = None) -> CheckinOutcome:
    """Check in on each of ``days`` (offsets from D0) and return the last outcome."""
    current = state or AccountState()
    outcome: CheckinOutcome | None = None
    for n in days:
        outcome = check_in(current, day(n), rules)
        current = outcome.state
    assert outcome is not None
    return outcome


def pairs(outcome: CheckinOutcome) -> list[tuple[str, int]]:
    return [(a.reason, a.amount) for a in outcome.awards]


# --- streaks -----------------------------------------------------------------------------


def test_first_checkin_starts_a_streak() -> None:
    outcome = check_in(AccountState(), D0, CheckinRules())
    assert outcome.day == D0
    assert outcome.state == AccountState(
        balance=10, lifetime_points=10, streak=1, longest_streak=1, last_day=D0, checkins=1
    )
    assert outcome.awards == (Award("checkin", 10, "check-in 2026-11-01"),)
    assert outcome.freezes_used == 0
    assert not outcome.freeze_earned
    assert outcome.tier_change is None
    assert not outcome.made_up
    assert outcome.points_awarded == 10


def test_consecutive_days_extend_the_streak() -> None:
    outcome = run(CheckinRules(), 0, 1, 2)
    assert outcome.state.streak == 3
    assert outcome.state.longest_streak == 3
    assert outcome.state.checkins == 3
    assert outcome.state.balance == 30


def test_version_is_left_to_the_store() -> None:
    outcome = check_in(AccountState(version=7), D0, CheckinRules())
    assert outcome.state.version == 7


def test_repeat_same_day_is_refused() -> None:
    state = run(CheckinRules(), 0).state
    with pytest.raises(AlreadyCheckedIn) as info:
        check_in(state, D0, CheckinRules())
    assert info.value.day == D0


def test_day_going_back_is_a_repeat_of_the_last_check_in_day() -> None:
    # The check-in day never goes back (a zone moved west): already checked in.
    state = run(CheckinRules(), 5).state
    with pytest.raises(AlreadyCheckedIn) as info:
        check_in(state, day(4), CheckinRules())
    assert info.value.day == day(5)


def test_missed_day_without_freeze_restarts_and_keeps_longest() -> None:
    outcome = run(CheckinRules(), 0, 1, 2, 4)
    assert outcome.state.streak == 1
    assert outcome.state.longest_streak == 3
    assert outcome.freezes_used == 0


# --- milestones and caps --------------------------------------------------------------------


def test_milestone_bonus_on_exactly_that_day() -> None:
    rules = CheckinRules(milestones=(Milestone(3, 50), Milestone(5, 100)))
    outcomes = []
    state = AccountState()
    for n in range(6):
        outcome = check_in(state, day(n), rules)
        outcomes.append(outcome)
        state = outcome.state
    assert [pairs(o) for o in outcomes] == [
        [("checkin", 10)],
        [("checkin", 10)],
        [("checkin", 10), ("streak_bonus", 50)],
        [("checkin", 10)],
        [("checkin", 10), ("streak_bonus", 100)],
        [("checkin", 10)],
    ]
    assert outcomes[2].awards[1].detail == "3-day milestone"
    assert state.balance == state.lifetime_points == 60 + 150


@pytest.mark.parametrize(
    ("cap", "expected"),
    [
        (None, [("checkin", 10), ("streak_bonus", 50)]),
        (60, [("checkin", 10), ("streak_bonus", 50)]),
        (30, [("checkin", 10), ("streak_bonus", 20)]),  # bonus truncated first
        (10, [("checkin", 10)]),  # bonus gone entirely: no zero award
        (4, [("checkin", 4)]),  # then the base
        (0, []),
    ],
)
def test_daily_cap_truncates_bonus_first(cap: int | None, expected: list[tuple[str, int]]) -> None:
    rules = CheckinRules(daily_cap=cap, milestones=(Milestone(1, 50),))
    outcome = check_in(AccountState(), D0, rules)
    assert pairs(outcome) == expected
    assert outcome.state.balance == sum(a for _, a in expected)
    assert outcome.state.checkins == 1  # a check-in counts even when it earns nothing


def test_zero_base_points_award_only_bonus() -> None:
    rules = CheckinRules(base_points=0, milestones=(Milestone(2, 5),))
    assert pairs(run(rules, 0)) == []
    assert pairs(run(rules, 0, 1)) == [("streak_bonus", 5)]


# --- freezes ---------------------------------------------------------------------------------


def test_freeze_earned_every_n_days_up_to_the_limit() -> None:
    rules = CheckinRules(freeze_every_days=2, freeze_max_held=2)
    state = AccountState()
    earned = []
    for n in range(8):
        outcome = check_in(state, day(n), rules)
        earned.append(outcome.freeze_earned)
        state = outcome.state
    assert earned == [False, True, False, True, False, False, False, False]
    assert state.freezes == 2


def test_no_freeze_when_max_held_is_zero() -> None:
    rules = CheckinRules(freeze_every_days=1, freeze_max_held=0)
    assert run(rules, 0, 1).state.freezes == 0


def test_freeze_bridges_one_missed_day() -> None:
    rules = CheckinRules()
    state = AccountState(streak=5, longest_streak=5, last_day=day(0), freezes=1)
    outcome = check_in(state, day(2), rules)
    assert outcome.freezes_used == 1
    assert outcome.state.freezes == 0
    assert outcome.state.streak == 6  # the frozen day itself does not count


def test_freezes_bridge_two_missed_days() -> None:
    state = AccountState(streak=5, longest_streak=5, last_day=day(0), freezes=3)
    outcome = check_in(state, day(3), CheckinRules())
    assert outcome.freezes_used == 2
    assert outcome.state.freezes == 1
    assert outcome.state.streak == 6


def test_too_few_freezes_restart_without_spending() -> None:
    state = AccountState(streak=5, longest_streak=5, last_day=day(0), freezes=1)
    outcome = check_in(state, day(3), CheckinRules())
    assert outcome.freezes_used == 0
    assert outcome.state.freezes == 1
    assert outcome.state.streak == 1
    assert outcome.state.longest_streak == 5


def test_freeze_counted_after_use_when_earning() -> None:
    # Holding the maximum, spending one and reaching a multiple of N earns it back.
    rules = CheckinRules(freeze_every_days=3, freeze_max_held=1)
    state = AccountState(streak=2, longest_streak=2, last_day=day(0), freezes=1)
    outcome = check_in(state, day(2), rules)
    assert outcome.state.streak == 3
    assert outcome.freezes_used == 1
    assert outcome.freeze_earned
    assert outcome.state.freezes == 1


def test_frozen_streak_reaches_milestone() -> None:
    rules = CheckinRules(milestones=(Milestone(7, 70),))
    state = AccountState(streak=6, longest_streak=6, last_day=day(0), freezes=1)
    assert pairs(check_in(state, day(2), rules)) == [("checkin", 10), ("streak_bonus", 70)]


# --- make-up (补签) ---------------------------------------------------------------------------


def test_makeup_checks_in_yesterday_and_charges_first() -> None:
    rules = CheckinRules(makeup_cost=15)
    state = run(rules, 0, 1).state
    # Day 2 missed; on day 3 the member makes it up, then checks in for today.
    outcome = make_up(state, day(3), rules)
    assert outcome.day == day(2)
    assert outcome.made_up
    assert pairs(outcome) == [("makeup", -15), ("checkin", 10)]
    assert outcome.awards[0].detail == "make-up for 2026-11-03"
    assert outcome.state.streak == 3
    assert outcome.state.balance == 20 - 15 + 10
    assert outcome.state.lifetime_points == 30  # the cost is not "unearned"
    today = check_in(outcome.state, day(3), rules)
    assert today.state.streak == 4


def test_makeup_first_ever_checkin() -> None:
    rules = CheckinRules(makeup_cost=0)
    outcome = make_up(AccountState(), day(1), rules)
    assert outcome.day == day(0)
    assert pairs(outcome) == [("checkin", 10)]  # a free make-up writes no cost entry
    assert outcome.made_up


def test_makeup_follows_freeze_and_milestone_rules() -> None:
    rules = CheckinRules(
        makeup_cost=5, milestones=(Milestone(4, 40),), freeze_every_days=4, freeze_max_held=1
    )
    state = AccountState(balance=5, streak=3, longest_streak=3, last_day=day(0), freezes=1)
    outcome = make_up(state, day(3), rules)  # day 1 frozen, day 2 made up
    assert outcome.freezes_used == 1
    assert outcome.state.streak == 4
    assert outcome.freeze_earned
    assert pairs(outcome) == [("makeup", -5), ("checkin", 10), ("streak_bonus", 40)]


@pytest.mark.parametrize(
    ("rules", "state", "today", "code"),
    [
        (CheckinRules(), AccountState(balance=100, last_day=day(0)), day(3), "disabled"),
        (
            CheckinRules(makeup_cost=5),
            AccountState(balance=100, last_day=day(2)),
            day(3),
            "nothing_to_make_up",
        ),
        (
            CheckinRules(makeup_cost=5),
            AccountState(balance=100, last_day=day(3)),
            day(3),
            "already_checked_in_today",
        ),
        # 9 < 10: the made-up day's own 10 points cannot pay for it.
        (
            CheckinRules(makeup_cost=10),
            AccountState(balance=9, last_day=day(0)),
            day(3),
            "insufficient_balance",
        ),
    ],
)
def test_makeup_refusals(rules: CheckinRules, state: AccountState, today: date, code: str) -> None:
    with pytest.raises(MakeupNotAllowed) as info:
        make_up(state, today, rules)
    assert info.value.code == code
    assert str(info.value)


def test_makeup_with_today_before_last_day_is_already_checked_in_today() -> None:
    with pytest.raises(MakeupNotAllowed) as info:
        make_up(AccountState(balance=50, last_day=day(5)), day(3), CheckinRules(makeup_cost=1))
    assert info.value.code == "already_checked_in_today"


# --- tiers -----------------------------------------------------------------------------------

TIERS = (Tier("bronze", "Bronze", 0), Tier("silver", "Silver", 25), Tier("gold", "Gold", 60))


def test_tier_for() -> None:
    assert tier_for(0, ()) is None
    assert tier_for(0, TIERS) == "bronze"
    assert tier_for(24, TIERS) == "bronze"
    assert tier_for(25, TIERS) == "silver"
    assert tier_for(10_000, TIERS) == "gold"
    assert tier_for(5, (Tier("vip", "VIP", 10),)) is None


def test_tiers_go_up_with_lifetime_points() -> None:
    rules = CheckinRules(tiers=TIERS)
    state = AccountState()
    changes = []
    for n in range(7):
        outcome = check_in(state, day(n), rules)
        changes.append(outcome.tier_change)
        state = outcome.state
    # Lifetime 10, 20, 30, 40, 50, 60, 70: silver at 25, gold at 60.
    assert changes == [
        (None, "bronze"),
        None,
        ("bronze", "silver"),
        None,
        None,
        ("silver", "gold"),
        None,
    ]
    assert state.tier == "gold"


def test_makeup_cost_never_lowers_the_tier() -> None:
    rules = CheckinRules(tiers=TIERS, makeup_cost=20)
    state = AccountState(balance=30, lifetime_points=30, tier="silver", last_day=day(0))
    outcome = make_up(state, day(3), rules)
    assert outcome.state.tier == "silver"
    assert outcome.tier_change is None


# --- rules validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_points": -1},
        {"daily_cap": -1},
        {"milestones": (Milestone(0, 5),)},
        {"milestones": (Milestone(7, 5), Milestone(7, 9))},
        {"milestones": (Milestone(7, -5),)},
        {"freeze_every_days": 0},
        {"freeze_max_held": -1},
        {"makeup_cost": -1},
        {"tiers": (Tier("a", "A", 10), Tier("b", "B", 10))},
        {"tiers": (Tier("a", "A", 0), Tier("a", "A2", 10))},
    ],
)
def test_invalid_rules_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="invalid check-in rules"):
        CheckinRules(**kwargs)  # type: ignore[arg-type]


# --- property test against a reference model -----------------------------------------------


@dataclass
class Model:
    """The documented rules, written plainly and independently of the code."""

    rules: CheckinRules
    balance: int = 0
    lifetime: int = 0
    streak: int = 0
    longest: int = 0
    last: date | None = None
    freezes: int = 0
    tier: str | None = None
    checkins: int = 0
    log: list[object] = field(default_factory=list)

    def tier_of(self, lifetime: int) -> str | None:
        found = None
        for tier in self.rules.tiers:  # ascending
            if lifetime >= tier.min_lifetime_points:
                found = tier.id
        return found

    def check_in(self, today: date, cost: int = 0) -> object:
        """Returns an error name or the expected observable outcome."""
        if self.last == today:
            return "already"
        used = 0
        if self.last is None:
            streak = 1
        else:
            missed = []
            d = self.last + ONE
            while d < today:
                missed.append(d)
                d += ONE
            if self.freezes >= len(missed):
                used = len(missed)
                self.freezes -= used
                streak = self.streak + 1
            else:
                streak = 1
        base = self.rules.base_points
        bonus = 0
        for m in self.rules.milestones:
            if m.days == streak:
                bonus = m.bonus
        if self.rules.daily_cap is not None:
            base = min(base, self.rules.daily_cap)
            bonus = min(bonus, self.rules.daily_cap - base)
        awards = []
        if cost:
            awards.append(("makeup", -cost))
        if base:
            awards.append(("checkin", base))
        if bonus:
            awards.append(("streak_bonus", bonus))
        earned = False
        every = self.rules.freeze_every_days
        if every and streak % every == 0 and self.freezes < self.rules.freeze_max_held:
            self.freezes += 1
            earned = True
        for _, amount in awards:
            self.balance += amount
            if amount > 0:
                self.lifetime += amount
        old_tier = self.tier
        self.tier = self.tier_of(self.lifetime)
        change = (old_tier, self.tier) if self.tier != old_tier else None
        self.streak = streak
        self.longest = max(self.longest, streak)
        self.last = today
        self.checkins += 1
        return (today, awards, used, earned, change)

    def make_up(self, today: date) -> object:
        cost = self.rules.makeup_cost
        if cost is None:
            return "disabled"
        if self.last == today:
            return "already_checked_in_today"
        if self.last == today - ONE:
            return "nothing_to_make_up"
        if self.balance < cost:
            return "insufficient_balance"
        return self.check_in(today - ONE, cost)

    def state(self) -> AccountState:
        return AccountState(
            balance=self.balance,
            lifetime_points=self.lifetime,
            streak=self.streak,
            longest_streak=self.longest,
            last_day=self.last,
            freezes=self.freezes,
            tier=self.tier,
            checkins=self.checkins,
        )


@st.composite
def rules_strategy(draw: st.DrawFn) -> CheckinRules:
    milestone_days = draw(st.sets(st.integers(1, 12), max_size=4))
    thresholds = sorted(draw(st.sets(st.integers(1, 300), max_size=3)))
    if draw(st.booleans()):
        thresholds = [0, *thresholds]
    return CheckinRules(
        base_points=draw(st.integers(0, 20)),
        daily_cap=draw(st.none() | st.integers(0, 60)),
        milestones=tuple(Milestone(d, draw(st.integers(0, 50))) for d in sorted(milestone_days)),
        freeze_every_days=draw(st.none() | st.integers(1, 5)),
        freeze_max_held=draw(st.integers(0, 3)),
        makeup_cost=draw(st.none() | st.integers(0, 30)),
        tiers=tuple(Tier(f"t{i}", f"T{i}", t) for i, t in enumerate(thresholds)),
    )


OPS = st.lists(
    st.tuples(st.integers(0, 4), st.sampled_from(["checkin", "checkin", "makeup"])),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(rules=rules_strategy(), ops=OPS)
def test_matches_reference_model(rules: CheckinRules, ops: list[tuple[int, str]]) -> None:
    model = Model(rules)
    state = AccountState()
    today = D0
    for advance, kind in ops:
        today += advance * ONE
        expected = model.check_in(today) if kind == "checkin" else model.make_up(today)
        try:
            outcome = (
                check_in(state, today, rules) if kind == "checkin" else make_up(state, today, rules)
            )
        except AlreadyCheckedIn:
            assert expected == "already"
            continue
        except MakeupNotAllowed as refused:
            assert expected == refused.code
            continue
        assert isinstance(expected, tuple)
        got = (
            outcome.day,
            pairs(outcome),
            outcome.freezes_used,
            outcome.freeze_earned,
            outcome.tier_change,
        )
        assert got == expected
        assert outcome.made_up == (kind == "makeup")
        state = outcome.state
        assert state == model.state()
        assert state.balance >= 0
        assert state.lifetime_points >= state.balance
