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

import os
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

# `make test-moved-clock` runs the suite with the wall clock moved to
# $AUTOPILOT_TEST_WALL_CLOCK (an ISO instant with offset): time-machine replaces
# time.time, datetime.now, date.today, localtime... process-wide, and the clock
# keeps running from there (tick=True); the monotonic clock stays real. Started
# here, before the project is imported, so collection sees the moved clock too.
# (libfaketime cannot do this job: Debian 12's 0.9.10 breaks time.sleep on the
# real monotonic clock, wolfcw/libfaketime#426, and its pthread_cond_timedwait
# wrapper, the GIL's wait, calls getenv() while other threads change the
# environment, as LocalRuntime does per invocation: SIGSEGV with many threads.)
MOVED_WALL_CLOCK_ENV = "AUTOPILOT_TEST_WALL_CLOCK"
_moved_wall_clock: datetime | None = None
if os.environ.get(MOVED_WALL_CLOCK_ENV):
    import time_machine

    _moved_wall_clock = datetime.fromisoformat(os.environ[MOVED_WALL_CLOCK_ENV])
    if _moved_wall_clock.tzinfo is None:
        raise pytest.UsageError(f"${MOVED_WALL_CLOCK_ENV} needs an offset, e.g. ...T16:30:00Z")
    # A timestamp, not the aware datetime: time-machine would also switch the local
    # zone to the datetime's tzinfo, and the run keeps the TZ it was given.
    time_machine.travel(_moved_wall_clock.timestamp(), tick=True).start()


def pytest_report_header() -> str | None:
    """Say so at the top of the run when the wall clock is moved."""
    if _moved_wall_clock is None:
        return None
    return (
        f"wall clock moved to {_moved_wall_clock.isoformat()} (time-machine, running); "
        f"now {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}, local {time.strftime('%Y-%m-%d %H:%M %Z')}"
    )


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
