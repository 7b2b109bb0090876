"""Reads the generated Grafana dashboards and alert rules for the tests: every
panel with its queries, every rule expression, and PromQL made concrete by
replacing Grafana's variables (a query test runs them against Prometheus)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = REPO / "dashboards"
ALERTS = DASHBOARDS / "alerts.yml"
ALERT_TESTS = DASHBOARDS / "tests" / "alerts_test.yml"
RECORDING = DASHBOARDS / "recording.yml"


@dataclass(frozen=True)
class PanelRef:
    dashboard: str
    panel: dict[str, Any]

    @property
    def title(self) -> str:
        return self.panel["title"]

    @property
    def exprs(self) -> list[str]:
        return [t["expr"] for t in self.panel.get("targets", [])]

    @property
    def needs_real_hardware(self) -> str | None:
        return (self.panel.get("infernode") or {}).get("needs_real_hardware")

    def __str__(self) -> str:
        return f"{self.dashboard}: {self.title}"


def load_dashboards(folder: Path = DASHBOARDS) -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def panels(dashboards: dict[str, dict[str, Any]] | None = None) -> Iterator[PanelRef]:
    for name, d in (dashboards or load_dashboards()).items():
        for p in d["panels"]:
            if p["type"] != "row":
                yield PanelRef(name, p)


def alert_rules(path: Path = ALERTS) -> list[dict[str, Any]]:
    doc = yaml.safe_load(path.read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def recording_rules(path: Path = RECORDING) -> list[dict[str, Any]]:
    return alert_rules(path)


_GRAFANA_VARS = {
    "$__rate_interval": "30s",
    "$__interval": "15s",
    "$__range": "5m",
}
_TEMPLATE_VAR = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")


def concrete(expr: str, rate_interval: str = "30s") -> str:
    """The expression with Grafana's interval variables set and every template
    variable (`$instance`, `$gpu`, `$worker`) replaced by its "All" value, `.*`."""
    out = expr.replace("$__rate_interval", rate_interval).replace("$__interval", _GRAFANA_VARS["$__interval"])
    out = out.replace("$__range", _GRAFANA_VARS["$__range"])
    return _TEMPLATE_VAR.sub(".*", out)
