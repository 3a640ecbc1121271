"""The HTML report in a real headless Chromium: every chart is drawn by the inlined
plotly.js with no network at all (host lookups are made to fail), with the right
number of traces and points, Chinese text included; and a screenshot is taken.

Chromium is Debian's ``chromium`` package (``make browser``, which ``make test``
runs, installs it with apt-get when it is missing). These tests never skip: without
a browser they fail saying how to install one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from datetime import date, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from autopilot_cli.main import main
from autopilot_cli.report import CHART_IDS

CHROMIUM_ENV = "AUTOPILOT_CHROMIUM"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
COMMUNITY_NAME = "晨读社·早起的人们"
DAYS = 7
CHANNELS = ("console", "群日志")
# Every host name resolves to nothing: a chart that needed the network stays empty.
NO_NETWORK = "--host-resolver-rules=MAP * ~NOTFOUND"


def find_chromium() -> str:
    """The browser to run: ``$AUTOPILOT_CHROMIUM``, else the first of CHROMIUM_NAMES."""
    configured = os.environ.get(CHROMIUM_ENV)
    if configured:
        if not os.access(configured, os.X_OK):
            pytest.fail(f"${CHROMIUM_ENV}={configured} is not an executable file")
        return configured
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        "Chromium is needed for the report's browser tests and was not found "
        f"(looked for {', '.join(CHROMIUM_NAMES)} on PATH and ${CHROMIUM_ENV}). "
        "Install it with `make browser` (Debian: `apt-get install -y chromium`), "
        f"or set ${CHROMIUM_ENV} to a Chromium/Chrome executable."
    )


@pytest.fixture(scope="module")
def chromium() -> str:
    return find_chromium()


def run_chromium(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--hide-scrollbars",
        NO_NETWORK,
        f"--user-data-dir={profile}",
        "--virtual-time-budget=10000",
        *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stderr[-3000:]}"
    return result


def synthetic_week(start: date = date(2027, 3, 8)) -> list[dict[str, Any]]:
    """Seven snapshots of docs/metrics.md with figures that change every day."""
    snapshots = []
    for n in range(DAYS):
        wau = 170 + n
        snapshots.append(
            {
                "community": "sunrise-readers",
                "day": (start + timedelta(days=n)).isoformat(),
                "version": 1,
                "members": {"total": 200 + n, "joined": 2, "left": 1},
                "active": {"dau": 120 + n, "wau": wau, "mau": 190 + n},
                "checkins": {
                    "count": 120 + n,
                    "rate": round((120 + n) / wau, 3),
                    "new_streaks": 9 + n,
                    "makeups": n % 2,
                },
                "streaks": {"1-2": 40 - n, "3-6": 50, "7-29": 24 + n, "30-99": 6, "100+": n // 2},
                "points": {
                    "awarded_total": 1300 + 20 * n,
                    "redeemed_total": -200 - 10 * n,
                    "adjusted_total": 0,
                    "net": 1100 + 10 * n,
                    "outstanding": 20000 + 1100 * n,
                },
                "lottery": {
                    "entries": 80 + n,
                    "entrants": 80 + n,
                    "participation": round((80 + n) / wau, 3),
                },
                "posts": {
                    "published": {CHANNELS[0]: 3, CHANNELS[1]: 3 - n % 2},
                    "failed": {CHANNELS[1]: n % 2},
                },
                "reminders": {"sent": 25, "converted": 10 + n % 3},
            }
        )
    return snapshots


class ChartCensus(HTMLParser):
    """Counts, per chart div, the SVG elements plotly drew inside it (by class)."""

    VOID = frozenset(
        {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, str | None]] = []  # (tag, chart id it is in)
        self.classes: dict[str, Counter[str]] = {chart: Counter() for chart in CHART_IDS}
        self.texts: dict[str, list[str]] = {chart: [] for chart in CHART_IDS}

    def _chart(self) -> str | None:
        return self.stack[-1][1] if self.stack else None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        chart = self._chart()
        if attributes.get("id") in CHART_IDS:
            chart = attributes["id"]
        if chart is not None:
            classes = (attributes.get("class") or "").split()
            for name in classes:
                self.classes[chart][name] += 1
            if classes[:2] == ["trace", "scatter"] or classes[:2] == ["trace", "bars"]:
                self.classes[chart][" ".join(classes[:2])] += 1
        if tag not in self.VOID:
            self.stack.append((tag, chart))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in self.VOID:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self.stack) - 1, -1, -1):
            if self.stack[index][0] == tag:
                del self.stack[index:]
                return

    def handle_data(self, data: str) -> None:
        chart = self._chart()
        if chart is not None and data.strip():
            self.texts[chart].append(data.strip())


def png_facts(data: bytes) -> tuple[int, int, int]:
    """``(width, height, distinct byte values of the image data)`` of a PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    position, idat = 8, b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        if kind == b"IDAT":
            idat += data[position + 8 : position + 8 + length]
        position += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report `autopilot report --local-dir` writes for the synthetic week."""
    base = tmp_path_factory.mktemp("report")
    (base / "sim").mkdir()
    (base / "sim" / "summary.json").write_text(
        json.dumps({"snapshots": synthetic_week()}, ensure_ascii=False), encoding="utf-8"
    )
    (base / "communities.yaml").write_text(
        "version: 1\ncommunities:\n"
        f"  - id: sunrise-readers\n    name: {COMMUNITY_NAME}\n    locale: zh-CN\n",
        encoding="utf-8",
    )
    argv = ["report", "--community", "sunrise-readers", "--from", "2027-03-08"]
    argv += ["--to", "2027-03-14", "--local-dir", str(base / "sim")]
    argv += ["--out", str(base / "out"), "--config", str(base / "communities.yaml")]
    assert main(argv) == 0
    path = base / "out" / "report-sunrise-readers-2027-03-08-2027-03-14.html"
    assert path.exists()
    return path


def test_the_file_needs_no_network(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*\bsrc\s*=", text, flags=re.I)
    assert not re.search(r"<(link|img|iframe)[^>]*\b(href|src)\s*=\s*[\"']?https?:", text, re.I)
    assert "plotly.js v" in text  # inlined


def test_every_chart_is_drawn_in_chromium(chromium: str, report: Path, tmp_path: Path) -> None:
    dom = run_chromium(chromium, tmp_path / "profile", "--dump-dom", report.as_uri()).stdout
    assert "</html>" in dom
    census = ChartCensus()
    census.feed(dom)
    census.close()
    # (scatter traces, bar traces, points: markers + bars) per chart, 7 days each
    expected = {
        "chart-checkins": (1, 1, 2 * DAYS),
        "chart-active": (3, 0, 3 * DAYS),
        "chart-streaks": (0, 5, 5 * DAYS),
        "chart-points": (1, 2, 3 * DAYS),
        "chart-lottery": (1, 1, 2 * DAYS),
        "chart-posts": (0, 2 * len(CHANNELS), 2 * len(CHANNELS) * DAYS),
    }
    for chart, (scatters, bars, points) in expected.items():
        counted = census.classes[chart]
        assert counted["main-svg"] >= 1, f"{chart}: plotly drew nothing"
        assert counted["trace scatter"] == scatters, (chart, counted)
        assert counted["trace bars"] == bars, (chart, counted)
        assert counted["point"] == points, (chart, counted)
    # The Chinese titles and legend entries were rendered as SVG text.
    assert "每日打卡与打卡率" in census.texts["chart-checkins"]
    assert "日活" in census.texts["chart-active"]
    assert "群日志 失败" in census.texts["chart-posts"]
    assert COMMUNITY_NAME in dom


def test_a_screenshot_of_the_report(chromium: str, report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    run_chromium(
        chromium,
        tmp_path / "profile",
        f"--screenshot={shot}",
        "--window-size=1400,3000",
        report.as_uri(),
    )
    data = shot.read_bytes()
    width, height, distinct = png_facts(data)
    assert (width, height) == (1400, 3000)
    assert len(data) > 50_000, "a blank page compresses to a few kB"
    assert distinct > 64, "the screenshot has almost no colours: nothing was drawn"
