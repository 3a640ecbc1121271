"""`--faults SPEC`: parsing, errors that say what and where, presets."""

from __future__ import annotations

import pytest

from autopilot_cli.local.faults import FAULT_KINDS, PRESETS, FaultSpec, InvocationClock


def test_kind_rate_pairs() -> None:
    spec = FaultSpec.parse("throttle=0.05, crash=0.01,channel_hang=0.02")
    assert spec.rate("throttle") == 0.05
    assert spec.rate("crash") == 0.01
    assert spec.rate("duplicate") == 0.0
    assert spec.text() == "throttle=0.05,crash=0.01,channel_hang=0.02"
    assert FaultSpec.parse(spec.text()) == spec


def test_the_issue_example_parses() -> None:
    text = (
        "throttle=0.05,timeout_after_commit=0.02,crash=0.01,duplicate=0.1,"
        "channel_5xx=0.05,channel_hang=0.02"
    )
    assert set(FaultSpec.parse(text).rates) == {
        "throttle",
        "timeout_after_commit",
        "crash",
        "duplicate",
        "channel_5xx",
        "channel_hang",
    }


def test_presets_name_every_kind() -> None:
    standard = FaultSpec.parse("standard")
    assert set(standard.rates) == set(FAULT_KINDS)
    assert standard == FaultSpec.parse(PRESETS["standard"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "empty fault spec"),
        ("throttle", "item 1 ('throttle'): expected kind=rate"),
        ("throttle=0.1,lightning=0.2", "item 2 ('lightning=0.2'): unknown fault kind 'lightning'"),
        ("crash=lots", "rate 'lots' is not a number"),
        ("crash=1.5", "rate 1.5 must be between 0 and 1"),
        ("crash=-0.1", "must be between 0 and 1"),
        ("crash=nan", "must be between 0 and 1"),
        ("crash=0.1,crash=0.2", "crash is given twice"),
    ],
)
def test_bad_specs_say_what_and_where(text: str, expected: str) -> None:
    with pytest.raises(ValueError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        FaultSpec.parse(text)


def test_unknown_kind_lists_the_known_ones() -> None:
    with pytest.raises(ValueError) as caught:
        FaultSpec.parse("network=0.1")
    assert all(kind in str(caught.value) for kind in FAULT_KINDS)


def test_zero_rates_are_no_faults() -> None:
    assert not FaultSpec.parse("crash=0,throttle=0")
    assert FaultSpec.parse("crash=0.001")


def test_an_invocation_clock_waits_without_moving_the_world() -> None:
    from datetime import UTC, datetime

    from autopilot.clock import ManualClock

    world = ManualClock(datetime(2027, 3, 8, 12, tzinfo=UTC))
    clock = InvocationClock(world.now())
    start = clock.monotonic()
    clock.sleep(4.0)
    clock.sleep(4.0)
    assert clock.monotonic() - start == 8.0
    assert (clock.now() - world.now()).total_seconds() == 8.0
    clock.sleep(-1)  # never backwards
    assert clock.monotonic() - start == 8.0
