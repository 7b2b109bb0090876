"""The layering, read from the source: core never imports a plugin or the root,
plugins never import the root, and there is no import cycle, counting imports
inside functions and under TYPE_CHECKING. Plus the same at run time: importing a
core module in a fresh interpreter loads no plugin."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.architecture.import_graph import cycles, edges, product_modules

REPO = Path(__file__).resolve().parents[3]

# The composition root and what sits with it (it names plugins, or runs them).
ROOT = {"agent.plugins", "agent.config", "agent.config_docs", "agent.telemetry", "agent.daemon", "agent.server",
        "agent.cli", "agent.doctor", "agent.docs"}
PLUGIN_PACKAGES = ("collectors", "tuning", "agent.worker", "agent.tracing", "agent.bootstrap", "agent.cost")


def layer(module: str) -> str:
    if module in ROOT:
        return "root"
    if any(module == p or module.startswith(p + ".") for p in PLUGIN_PACKAGES):
        return "plugin"
    return "core"


MODULES = product_modules(REPO)
EDGES = edges(REPO)
CORE = sorted(m for m in MODULES if layer(m) == "core")


def test_the_layers_are_as_declared() -> None:
    assert "agent.collector" in CORE and "agent.subsystem" in CORE and "agent.services" in CORE
    assert not set(ROOT) - set(MODULES), "a root module was renamed: update ROOT"


def test_no_import_cycle_counting_every_import() -> None:
    assert cycles(list(MODULES), EDGES) == []


@pytest.mark.parametrize("src_layer,forbidden", [("core", {"plugin", "root"}), ("plugin", {"root"})])
def test_no_import_runs_up_the_layers(src_layer: str, forbidden: set[str]) -> None:
    bad = [f"{e.src}:{e.line} -> {e.dst} ({e.kind})" for e in EDGES
           if layer(e.src) == src_layer and layer(e.dst) in forbidden]
    assert bad == []


def test_importing_a_core_module_loads_no_plugin() -> None:
    code = (
        "import importlib, json, sys\n"
        f"for m in {CORE!r}:\n"
        "    importlib.import_module(m)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    loaded = [m for m in json.loads(out.stdout) if m in MODULES]
    assert set(CORE) <= set(loaded)
    assert [m for m in loaded if layer(m) != "core"] == []
