"""The config is defined once: the committed schema is generated; no import circles."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from autopilot.config import document
from autopilot.config.fields import TEMPLATE_FIELDS
from autopilot.config.schema import DEFAULT_PATH, main, render_schema

ROOT = Path(__file__).resolve().parents[3]
LAYER = ROOT / "layers" / "autopilot"
PACKAGE = LAYER / "autopilot"


def test_the_committed_schema_is_the_generated_one() -> None:
    # Fails when config/document.py changed without `make schema`.
    assert DEFAULT_PATH == ROOT / "config" / "schema.json"
    assert DEFAULT_PATH.read_text(encoding="utf-8") == render_schema(), (
        "config/schema.json is stale: run `make schema` "
        "(python -m autopilot.config.schema) and commit it"
    )


def test_check_mode_fails_on_a_stale_schema_and_write_mode_fixes_it(tmp_path: Path) -> None:
    stale = tmp_path / "schema.json"
    schema = json.loads(render_schema())
    schema["$defs"]["ItemDoc"]["properties"].pop("title")  # as if edited by hand
    stale.write_text(json.dumps(schema, indent=2), encoding="utf-8")

    assert main(["--check", str(stale)]) == 1
    assert main([str(stale)]) == 0
    assert main(["--check", str(stale)]) == 0


def test_the_schema_describes_what_the_structs_accept() -> None:
    schema = json.loads(render_schema())
    channel = schema["$defs"]["CommunityDoc"]["properties"]["channels"]["items"]
    job = schema["$defs"]["CommunityDoc"]["properties"]["jobs"]["items"]

    assert channel["properties"]["type"]["enum"] == list(document.CHANNEL_TYPES)
    assert job["properties"]["action"]["enum"] == list(document.ACTIONS)
    assert set(document.SECRET_CHANNEL_KEYS) <= set(schema["$defs"]["WecomChannel"]["properties"])


def test_posts_render_exactly_the_fields_validation_accepts() -> None:
    import autopilot.checkins.fields  # noqa: F401  (declares its fields)
    from autopilot.posts.context import known_fields

    assert known_fields() == TEMPLATE_FIELDS


def _module_name(path: Path) -> str:
    parts = path.relative_to(LAYER).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, module: str, modules: set[str]) -> set[str]:
    """Project modules ``path`` imports anywhere (``import x``, ``from x import y``).

    ``from package import submodule`` is an edge to the submodule only: the package
    ``__init__`` runs first for any submodule, it is not a dependency of the importer.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    # Imports inside functions count too: deferring one hides a circle, it does not
    # remove it (the old config model imported posts.context inside a function).
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base.startswith("autopilot"):
                submodules = {f"{base}.{alias.name}" for alias in node.names} & modules
                if len(submodules) < len(node.names):
                    out.add(base)  # some names are attributes of ``base`` itself
                out |= submodules
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("autopilot"))
    return out


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    names = set(modules)
    return {name: _imports(path, name, names) & names for name, path in modules.items()}


def _cycle_through(graph: dict[str, set[str]], start: str) -> list[str] | None:
    stack = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, trail = stack.pop()
        for nxt in sorted(graph.get(node, ())):
            if nxt == start:
                return [*trail, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*trail, nxt]))
    return None


@pytest.mark.parametrize(
    "module",
    [
        "autopilot.config.model",
        "autopilot.config.document",
        "autopilot.config.fields",
        "autopilot.posts.context",
        "autopilot.checkins.fields",
    ],
)
def test_config_posts_and_checkin_fields_import_in_no_circle(module: str) -> None:
    graph = _graph()
    assert module in graph
    assert _cycle_through(graph, module) is None


def test_the_cycle_finder_finds_a_cycle() -> None:
    # The check above must be able to fail.
    assert _cycle_through({"a": {"b"}, "b": {"c"}, "c": {"a"}}, "a") == ["a", "b", "c", "a"]


@pytest.mark.parametrize(
    "module", ["autopilot.config.model", "autopilot.posts.context", "autopilot.checkins.fields"]
)
def test_each_module_imports_alone_in_a_fresh_interpreter(module: str) -> None:
    subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        check=True,
        env={"PYTHONPATH": str(LAYER), "PATH": "/usr/bin:/bin"},
    )
