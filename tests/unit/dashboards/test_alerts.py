"""Alert rules: promtool accepts them, every alert is unit-tested firing and not
firing, and each carries severity, summary, description and a runbook hint."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from tests.harness.grafana import ALERT_TESTS, ALERTS, RECORDING, alert_rules, recording_rules

PROMTOOL = "/usr/bin/promtool"
RULES = alert_rules()
NAMES = [r["alert"] for r in RULES]


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=120)


def test_promtool_check_rules():
    p = _promtool("check", "rules", str(ALERTS))
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"SUCCESS: {len(RULES)} rules found" in p.stdout


def test_promtool_check_recording_rules():
    p = _promtool("check", "rules", str(RECORDING))
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"SUCCESS: {len(recording_rules())} rules found" in p.stdout


def test_promtool_test_rules():
    p = _promtool("test", "rules", str(ALERT_TESTS))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "SUCCESS" in p.stdout


def test_promtool_test_rules_catches_a_broken_rule(tmp_path):
    """The unit tests are sharp: raising the fast-burn factor makes them fail."""
    rules = ALERTS.read_text().replace("(14.4 * 0.01)", "(40 * 0.01)")
    (tmp_path / "alerts.yml").write_text(rules)
    (tmp_path / "recording.yml").write_text(RECORDING.read_text())
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "alerts_test.yml").write_text(ALERT_TESTS.read_text())
    p = _promtool("test", "rules", str(tmp_path / "tests" / "alerts_test.yml"))
    assert p.returncode != 0
    assert "InfernodeTtftSloBurnFast" in p.stdout + p.stderr


def test_alert_names_unique():
    assert len(NAMES) == len(set(NAMES))


@pytest.mark.parametrize("rule", RULES, ids=NAMES)
def test_alert_has_severity_and_annotations(rule):
    assert rule["labels"]["severity"] in {"critical", "warning", "info"}
    for key in ("summary", "description", "runbook"):
        assert rule["annotations"].get(key, "").strip(), f"{rule['alert']}: no {key}"


def _cases() -> dict[str, dict[str, int]]:
    doc = yaml.safe_load(ALERT_TESTS.read_text())
    seen: dict[str, dict[str, int]] = {}
    for t in doc["tests"]:
        for case in t.get("alert_rule_test", []):
            kind = "firing" if case.get("exp_alerts") else "silent"
            seen.setdefault(case["alertname"], {"firing": 0, "silent": 0})[kind] += 1
    return seen


@pytest.mark.parametrize("name", NAMES)
def test_every_alert_is_tested_firing_and_not_firing(name):
    cases = _cases().get(name)
    assert cases, f"{name} has no promtool test case"
    assert cases["firing"] >= 1 and cases["silent"] >= 1, f"{name}: {cases}"


def test_required_alerts_exist():
    required = {"InfernodeGpuLost", "InfernodeXidRebootNode", "InfernodeXidResetGpu", "InfernodeXidRestartApp",
                "InfernodeGpuThermalThrottling", "InfernodeGpuPowerThrottling", "InfernodeGpuUncorrectableEcc",
                "InfernodeGpuRowRemapFailure", "InfernodeTtftSloBurnFast", "InfernodeTtftSloBurnSlow",
                "InfernodeWorkerRestarting", "InfernodeTuningDrift", "InfernodeCollectorDown",
                "InfernodeEbpfEventsLost", "InfernodeNodeUnschedulable"}
    assert required <= set(NAMES)
