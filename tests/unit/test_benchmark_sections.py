"""``make bench`` rewrites its own sections of docs/benchmarks.md and keeps the others."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "docsections.py"
_SPEC = importlib.util.spec_from_file_location("docsections", _PATH)
assert _SPEC and _SPEC.loader
docsections = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(docsections)

GENERATED = "# Benchmarks\n\nrun\n\n## AWS requests\n\nnew A\n\n## Cold start\n\nnew cold\n"
EXISTING = (
    "# Benchmarks\n\nolder run\n\n## AWS requests\n\nold A\n\n"
    "## Cold start: handler import vs boto3\n\nold cold\n\n"
    "## Dispatcher at scale\n\nH4 table\n| a |\n\n## Simulated month\n\nH6 figures\n"
)


def test_other_benchmarks_sections_survive_a_rerun_in_their_order():
    text = docsections.keep_other_sections(GENERATED, EXISTING)
    assert text == (
        "# Benchmarks\n\nrun\n\n## AWS requests\n\nnew A\n\n## Cold start\n\nnew cold\n\n"
        "## Dispatcher at scale\n\nH4 table\n| a |\n\n## Simulated month\n\nH6 figures\n"
    )


def test_own_sections_are_replaced_even_when_renamed_after_a_colon():
    text = docsections.keep_other_sections(GENERATED, EXISTING)
    assert "old cold" not in text and "old A" not in text
    assert docsections.keep_other_sections(GENERATED, GENERATED) == GENERATED
