"""Fixtures shared by every test level.

* ``repo_root`` - the repository root (where template.yaml lives);
* ``aws_env`` - dummy credentials and region in ``os.environ`` for one test,
  so that nothing can reach a real AWS account;
* ``local_runtime`` - a :class:`~autopilot_cli.local.runtime.LocalRuntime`
  over ``template.yaml`` (moto resources built from the template), one per
  test;
* ``request_counter`` - a running
  :class:`~autopilot_cli.metering.RequestCounter`.

Every test runs without ``$AUTOPILOT_NOW`` (the CLI's fixed clock), so that a
value left in a developer's shell cannot replace the clock a test installs.
"""

from __future__ import annotations

import errno
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def _sleep_is_broken() -> bool:
    try:
        time.sleep(1e-6)
    except OSError as exc:
        return exc.errno == errno.EINVAL
    return False


# `make test-moved-clock` runs the suite under libfaketime with the real monotonic
# clock (FAKETIME_DONT_FAKE_MONOTONIC=1). libfaketime 0.9.10 (Debian 12) then breaks
# Python's time.sleep, which sleeps with clock_nanosleep(CLOCK_MONOTONIC,
# TIMER_ABSTIME): the deadline is shifted by the fake offset and the kernel answers
# EINVAL (wolfcw/libfaketime#426). A timed wait on an event measures the same
# monotonic interval through sem_clockwait, which libfaketime leaves alone. Done
# before the project is imported, so that sleep functions bound as default
# arguments get the replacement too.
if _sleep_is_broken():

    def _monotonic_sleep(seconds: float) -> None:
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        threading.Event().wait(seconds)

    time.sleep = _monotonic_sleep

REPO_ROOT = Path(__file__).resolve().parent.parent

# The project is installed in the venv in editable mode (`make setup`); these
# entries only matter when tests run from a checkout that is not installed.
for _path in (REPO_ROOT / "src", REPO_ROOT / "layers" / "autopilot"):
    if str(_path) not in sys.path:
        sys.path.append(str(_path))

# Imported before any boto3/PynamoDB session exists, so that every session
# created by the tests inherits the request-counting hook.
from autopilot_cli import metering  # noqa: E402
from autopilot_cli.local.runtime import LocalRuntime  # noqa: E402

_DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


@pytest.fixture(autouse=True)
def _no_fixed_cli_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTOPILOT_NOW", raising=False)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root."""
    return REPO_ROOT


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Dummy AWS credentials and region us-east-1 for the test (restored afterwards)."""
    for name, value in _DUMMY_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    return dict(_DUMMY_AWS_ENV)


@pytest.fixture
def local_runtime(aws_env: dict[str, str], repo_root: Path) -> Iterator[LocalRuntime]:
    """The stack of template.yaml on moto, with its functions invocable in-process."""
    with LocalRuntime(repo_root / "template.yaml") as runtime:
        yield runtime


@pytest.fixture
def request_counter() -> Iterator[metering.RequestCounter]:
    """Counts the AWS requests the test makes (``.total``, ``.count(service, operation)``)."""
    with metering.RequestCounter() as counter:
        yield counter
