"""`infernode doctor` on this machine and on broken host roots."""

import json
import time

import pytest

from tests.harness.agent import run_cli

pytestmark = pytest.mark.integration

STATUSES = {"ok", "warn", "fail", "off"}


def doctor(*args):
    table = run_cli("doctor", *args, timeout=60)
    as_json = run_cli("doctor", "--json", *args, timeout=60)
    assert table.returncode in (0, 1), table.stderr
    assert "Traceback" not in table.stderr + as_json.stderr
    return table, as_json.returncode, json.loads(as_json.stdout)


def table_rows(stdout):
    lines = stdout.splitlines()
    assert lines[0].split() == ["SUBSYSTEM", "ITEM", "STATUS", "DETAIL", "FIX"]
    status_col = lines[0].index("STATUS")
    # A row's long DETAIL/FIX wraps onto continuation lines whose first columns are blank.
    return [(line[:status_col].split(None, 1), line[status_col:].split()[0])
            for line in lines[1:] if line[:status_col].strip()]


def test_doctor_on_this_machine_is_coherent():
    table, json_rc, report = doctor()
    rows = table_rows(table.stdout)
    checks = report["checks"]
    assert len(rows) == len(checks) >= 4
    assert {c["status"] for c in checks} <= STATUSES
    assert [s.lower() for _, s in rows] == [c["status"] for c in checks]
    assert report["healthy"] == all(c["status"] != "fail" for c in checks)
    assert table.returncode == json_rc == (0 if report["healthy"] else 1)
    items = {(c["subsystem"], c["item"]) for c in checks}
    assert {("agent", "privileges"), ("host", "cgroup hierarchy"), ("host", "PSI"), ("collector", "loadavg")} <= items
    cgroup = next(c for c in checks if c["item"] == "cgroup hierarchy")
    assert cgroup["detail"].split(":")[0] in ("v2", "hybrid", "v1")


def test_doctor_on_an_empty_root_fails_with_fixes(tmp_path):
    table, json_rc, report = doctor("--root", str(tmp_path))
    assert table.returncode == json_rc == 1
    assert report["healthy"] is False
    by_item = {c["item"]: c for c in report["checks"]}
    assert by_item["cgroup hierarchy"]["status"] == "fail"
    assert by_item["cgroup hierarchy"]["fix"]
    assert by_item["loadavg"]["status"] == "warn"
    assert "does not exist" in by_item["loadavg"]["detail"]
    assert "FAIL" in table.stdout


def test_doctor_reports_a_hung_collector_and_exits(tmp_path, hung_root):
    cfg = tmp_path / "infernode.yaml"
    cfg.write_text("server:\n  collector_timeout: 1s\n")
    t0 = time.monotonic()
    p = run_cli("doctor", "--json", "--config", str(cfg), "--root", str(hung_root), timeout=30)
    elapsed = time.monotonic() - t0
    assert p.returncode == 1, p.stderr
    loadavg = next(c for c in json.loads(p.stdout)["checks"] if c["item"] == "loadavg")
    assert loadavg["status"] == "fail"
    assert loadavg["detail"] == "timeout: no answer within 1s"
    assert elapsed < 15, f"doctor took {elapsed:.1f}s"
