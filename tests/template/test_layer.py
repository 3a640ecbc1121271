"""The Lambda layer is self-contained and lean: it imports only what it ships."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

LAYER = Path(__file__).resolve().parents[2] / "layers" / "autopilot"
# Import names of the layer's pinned requirements (requirements.txt holds dist names).
SHIPPED = {
    "boto3",
    "botocore",
    "aws_lambda_powertools",
    "pynamodb",
    "croniter",
    "msgspec",
    "tzdata",
    "autopilot",
}
DIST_TO_IMPORT = {
    "boto3": "boto3",
    "aws-lambda-powertools": "aws_lambda_powertools",
    "pynamodb": "pynamodb",
    "croniter": "croniter",
    "msgspec": "msgspec",
    "tzdata": "tzdata",
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_layer_imports_only_the_standard_library_and_its_requirements():
    used = set()
    for path in (LAYER / "autopilot").rglob("*.py"):
        used |= _imports(path)
    third_party = {name for name in used if name not in sys.stdlib_module_names}
    assert third_party <= SHIPPED, f"layer imports {sorted(third_party - SHIPPED)} it does not ship"


def test_requirements_are_pinned_and_exactly_the_runtime_set():
    lines = [
        line.split("#")[0].strip() for line in (LAYER / "requirements.txt").read_text().splitlines()
    ]
    pins = dict(line.split("==") for line in lines if line)
    assert set(pins) == set(DIST_TO_IMPORT)
    assert all(version and version[0].isdigit() for version in pins.values())


def test_handlers_import_only_the_layer_and_the_standard_library():
    root = LAYER.parents[1] / "functions"
    for path in root.rglob("*.py"):
        third_party = {n for n in _imports(path) if n not in sys.stdlib_module_names}
        assert third_party <= SHIPPED, f"{path}: imports {sorted(third_party - SHIPPED)}"
