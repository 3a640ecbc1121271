"""Every layer module imports on its own, first, in a fresh interpreter: no import
cycle depends on which module a function happens to import first."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

LAYER = Path(__file__).resolve().parents[2] / "layers" / "autopilot"


def test_each_layer_module_imports_first_in_a_fresh_interpreter() -> None:
    modules = sorted(
        ".".join(path.relative_to(LAYER).with_suffix("").parts)
        for path in (LAYER / "autopilot").rglob("*.py")
        if path.name != "__init__.py" and "__pycache__" not in path.parts
    )
    assert len(modules) > 30
    script = (
        "import importlib, subprocess, sys\n"
        "failed = []\n"
        "for name in sys.argv[1:]:\n"
        "    run = subprocess.run([sys.executable, '-c', f'import {name}'],\n"
        "                         capture_output=True, text=True)\n"
        "    if run.returncode:\n"
        "        failed.append(name + ': ' + run.stderr.strip().splitlines()[-1])\n"
        "print('\\n'.join(failed))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, *modules],
        capture_output=True,
        text=True,
        cwd=LAYER,
        env={"PYTHONPATH": str(LAYER), "PATH": "/usr/bin:/bin"},
        check=True,
    )
    assert result.stdout.strip() == ""
