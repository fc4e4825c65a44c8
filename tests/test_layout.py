"""The package is arranged by stage, and the stages keep to what they may import.

sound -> training -> bundle -> live engine -> control surfaces, with `analysis` (the measures) beside them: torch
lives in `training` only, so `serve`, `render` and the control path can run where torch is not installed; `live`
never reaches back into `training` or forward into `control`; `control` reaches the engine only through the
parameter table, the engine, its scheduling and the set list. One arrow runs back: `training.calibrate` plays the
bundle it has just written through the live engine's generator, as `serve` will, and measures it with `analysis`,
so `training` imports `live` and `analysis`; neither of them imports `training`.
"""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import liveshtr

PACKAGE = Path(liveshtr.__file__).parent
TORCH_FREE = ("liveshtr.sound", "liveshtr.live", "liveshtr.control", "liveshtr.bundle")
# Loads a module in a fresh interpreter and prints whether torch came with it (directly or through our modules).
PROBE = "import importlib, sys; importlib.import_module(sys.argv[1]); print('torch' in sys.modules)"


def modules_of(name: str) -> list[str]:
    """A module, or a subpackage and every module below it."""
    module = __import__(name, fromlist=["_"])
    if not hasattr(module, "__path__"):
        return [name]
    return [name] + [m.name for m in pkgutil.walk_packages(module.__path__, prefix=name + ".")]


def loads_torch(modules: list[str]) -> dict[str, bool]:
    """Import each module in its own fresh interpreter, all at once; which of them brought torch in."""
    procs = {
        m: subprocess.Popen([sys.executable, "-c", PROBE, m], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for m in modules
    }
    result = {}
    for m, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"{m} does not import: {err.strip().splitlines()[-1:]}"
        result[m] = out.strip() == "True"
    return result


def test_serving_modules_never_import_torch():
    serving = [m for name in TORCH_FREE for m in modules_of(name)]
    assert len(serving) > 20  # every module of the three stages, not an empty walk
    # The probe itself must be able to see torch: the training model imports it.
    found = loads_torch(serving + ["liveshtr.training.magnitude_model"])
    assert found.pop("liveshtr.training.magnitude_model") is True
    assert [m for m, torch_loaded in found.items() if torch_loaded] == []


def our_imports(path: Path) -> set[str]:
    """Every liveshtr module a file imports, at top level or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)  # `from liveshtr.live import engine`
    return {n for n in names if n == "liveshtr" or n.startswith("liveshtr.")}


def stage_files(stage: str) -> list[Path]:
    files = sorted((PACKAGE / stage).glob("*.py"))
    assert files, stage
    return files


def offending(stage: str, allowed) -> list[str]:
    return [
        f"{path.relative_to(PACKAGE.parent)} imports {name}"
        for path in stage_files(stage)
        for name in sorted(our_imports(path))
        if not allowed(name)
    ]


def within(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


LEAVES = ("liveshtr.config", "liveshtr.errors", "liveshtr.atomic")
MODULES = {m.name for m in pkgutil.walk_packages(liveshtr.__path__, prefix="liveshtr.")}


@pytest.mark.parametrize(
    "stage, allowed",
    [
        ("sound", lambda n: within(n, "liveshtr.sound", *LEAVES)),
        ("live", lambda n: not within(n, "liveshtr.training", "liveshtr.control", "liveshtr.commands", "liveshtr.cli")),
        (
            "control",
            lambda n: (
                not within(n, "liveshtr.training", "liveshtr.commands", "liveshtr.cli", "liveshtr.live")
                or within(
                    n, "liveshtr.live.params", "liveshtr.live.engine", "liveshtr.live.sched", "liveshtr.live.setlist"
                )
            ),
        ),
        ("training", lambda n: not within(n, "liveshtr.control", "liveshtr.commands", "liveshtr.cli")),
        (
            "analysis",
            lambda n: not within(n, "liveshtr.training", "liveshtr.control", "liveshtr.commands", "liveshtr.cli"),
        ),
    ],
)
def test_stages_import_only_what_they_may(stage, allowed):
    assert offending(stage, allowed) == []


def test_the_import_rules_see_real_imports():
    # The walk finds the imports that are there, including ones inside functions, so a rule can fail.
    assert "liveshtr.live.engine" in our_imports(PACKAGE / "control" / "telemetry.py")
    assert "liveshtr.live.generator" in our_imports(PACKAGE / "analysis" / "report.py")  # imported inside a function
    assert offending("control", lambda n: not within(n, "liveshtr.live")) != []
    # Every name the rules see is a module or a name in one of ours: a misspelt rule prefix would match nothing.
    for stage in ("sound", "live", "control", "training", "analysis"):
        for path in stage_files(stage):
            for name in our_imports(path):
                assert name in MODULES or name.rsplit(".", 1)[0] in MODULES | {"liveshtr"}, (path, name)
