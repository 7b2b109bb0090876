"""The generated dashboards: fresh, consistent, documented, and only about
metrics the catalog declares."""

from __future__ import annotations

import importlib.util
import re
import sys

import pytest

from agent.catalog import MetricType
from agent.plugins import build_catalog
from tests.harness.grafana import DASHBOARDS, alert_rules, load_dashboards, panels, recording_rules
from tests.harness.promql import metric_names

ALL = list(panels())
IDS = [str(p) for p in ALL]


def _build_module():
    spec = importlib.util.spec_from_file_location("dashboards_build", DASHBOARDS / "build.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses resolve string annotations through sys.modules
    spec.loader.exec_module(mod)
    return mod


def test_committed_json_is_what_build_py_generates():
    generated = _build_module().files()
    on_disk = {p.name: p.read_text() for p in DASHBOARDS.glob("*.json")}
    assert set(on_disk) == set(generated), "dashboards/*.json and build.py disagree on the files"
    stale = [n for n in generated if on_disk[n] != generated[n]]
    assert not stale, f"stale: {stale}; run `python dashboards/build.py`"


def test_check_mode_reports_a_stale_file(tmp_path, monkeypatch):
    build = _build_module()
    monkeypatch.setattr(build, "HERE", tmp_path)
    assert build.main([]) == 0
    assert build.main(["--check"]) == 0
    (tmp_path / "gpus.json").write_text("{}\n")
    assert build.main(["--check"]) == 1


def test_seven_dashboards_with_unique_uids():
    ds = load_dashboards()
    assert set(ds) == {"node.json", "gpus.json", "requests.json", "kernel.json", "state.json", "workers.json",
                       "cost.json"}
    assert len({d["uid"] for d in ds.values()}) == len(ds)


@pytest.mark.parametrize("name", sorted(load_dashboards()))
def test_datasource_and_variables(name):
    d = load_dashboards()[name]
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert "instance" in variables
    text = "\n".join(t["expr"] for p in d["panels"] for t in p.get("targets", []))
    for used in set(re.findall(r"\$(?!__)([a-z_]+)", text)):
        assert used in variables, f"{name}: ${used} used but not defined"
    for p in d["panels"]:
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert all(t["datasource"]["uid"] == "${datasource}" for t in p["targets"]), p["title"]


@pytest.mark.parametrize("name", sorted(load_dashboards()))
def test_layout_ids_unique_and_no_overlap(name):
    d = load_dashboards()[name]
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    cells = set()
    for p in d["panels"]:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & mine, f"{name}: {p['title']} overlaps another panel"
        cells |= mine


@pytest.mark.parametrize("panel", ALL, ids=IDS)
def test_panel_is_described_and_hardware_marked_consistently(panel):
    desc = panel.panel["description"]
    assert len(desc) > 20 and desc.rstrip().endswith("."), desc
    assert panel.exprs and all(e.strip() for e in panel.exprs)
    hw = panel.needs_real_hardware
    assert hw is None or (isinstance(hw, str) and hw.strip())
    assert ("Needs real hardware" in desc) == bool(hw)


def test_request_latency_panels_show_exemplars():
    latency = [p for p in ALL if p.dashboard == "requests.json"
               and any(re.search(r"infernode_request_\w+_seconds_bucket", e) for e in p.exprs)]
    assert len(latency) >= 8  # quantiles and heatmap for TTFT, TPOT, e2e, queue
    for p in latency:
        assert all(t["exemplar"] is True for t in p.panel["targets"]), str(p)
    assert {p.panel["type"] for p in latency} == {"timeseries", "heatmap"}


def test_hardware_marked_panels_are_the_nvlink_gpm_sxid_mig_energy_and_boot_loader_ones():
    marked = {p.title for p in ALL if p.needs_real_hardware}
    assert marked == {"NVLink links up", "NVLink throughput", "NVLink errors", "SM and tensor activity (GPM)",
                      "NVSwitch SXid errors", "MIG instance memory", "Tokens per joule",
                      "Boot parameters pending reboot"}


# --- the metric catalog -----------------------------------------------------------------

_SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*\{([^{}]*)\}")
_MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!=|!~|=)")
_TARGET_LABELS = {"instance", "job"}


def _references() -> dict[str, list[tuple[str, str]]]:
    """{source file: [(panel or alert, expression)]}."""
    out: dict[str, list[tuple[str, str]]] = {}
    for p in ALL:
        out.setdefault(p.dashboard, []).extend((p.title, e) for e in p.exprs)
    out["alerts.yml"] = [(r["alert"], r["expr"]) for r in alert_rules()]
    out["recording.yml"] = [(r["record"], r["expr"]) for r in recording_rules()]
    return out


# Series the recording rules write: known to alerts and panels besides the catalog's.
RECORDED = {r["record"] for r in recording_rules()}


REFS = _references()


@pytest.mark.parametrize("source", sorted(REFS))
def test_every_metric_is_in_the_catalog(source):
    """Fails until the ebpf, tracing and bootstrap branches are merged: their
    metrics are declared there."""
    catalog = build_catalog()
    unknown = []
    for where, expr in REFS[source]:
        names = metric_names(expr)
        assert names, f"{source}: {where}: no metric found in {expr!r}"
        unknown += [f"{where}: {n}" for n in sorted(names) if not catalog.knows(n) and n not in RECORDED]
    assert not unknown, f"{source}: not in the metric catalog:\n" + "\n".join(unknown)


@pytest.mark.parametrize("source", sorted(REFS))
def test_selector_labels_exist_on_the_metric(source):
    catalog = build_catalog()
    wrong = []
    for where, expr in REFS[source]:
        for name, matchers in _SELECTOR.findall(expr):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            spec = catalog.get(name) or catalog.get(base)
            if spec is None and name in RECORDED:
                continue  # its labels are its expression's (checked as recording.yml)
            if spec is None:
                passthrough = catalog.passthrough_for(name)
                if passthrough is None:
                    continue  # unknown names fail test_every_metric_is_in_the_catalog
                # vLLM's own labels on the families the dashboards use, plus the added ones
                allowed = set(passthrough.added_labels) | _TARGET_LABELS | {"model_name", "engine", "finished_reason", "le"}
            else:
                allowed = set(spec.labels) | _TARGET_LABELS
                if spec.type is MetricType.HISTOGRAM:
                    allowed.add("le")
            used = {m for m, _ in _MATCHER.findall(matchers)}
            if used - allowed:
                wrong.append(f"{where}: {name} has no label(s) {sorted(used - allowed)}")
    assert not wrong, f"{source}:\n" + "\n".join(wrong)


def test_provisioned_datasource_links_exemplars_to_traces_by_trace_id():
    import yaml

    doc = yaml.safe_load((DASHBOARDS / "provisioning" / "datasources.yml").read_text())
    (ds,) = doc["datasources"]
    assert ds["type"] == "prometheus"
    (dest,) = ds["jsonData"]["exemplarTraceIdDestinations"]
    assert dest["name"] == "trace_id" and dest["datasourceUid"]
