"""`infernode doctor`: one table of every subsystem, with the fix for what is wrong."""

from __future__ import annotations

import os
from collections.abc import Iterable

from agent.collector import DoctorRow
from agent.node import Node
from agent.paths import Paths
from agent.table import format_rows


def cgroup_layout(paths: Paths) -> tuple[str, list[str]]:
    """("v2" | "hybrid" | "v1" | "none", controllers) from the mounted hierarchy."""
    root = paths.cgroup()
    if (root / "cgroup.controllers").exists():
        return "v2", (root / "cgroup.controllers").read_text().split()
    v1 = sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "cgroup.procs").exists()) if root.is_dir() else []
    unified = root / "unified" / "cgroup.controllers"
    if unified.exists():
        v2c = unified.read_text().split()
        return "hybrid", [f"{c} (v1)" for c in v1 if c not in ("unified", "systemd")] + [f"{c} (v2)" for c in v2c]
    if v1:
        return "v1", v1
    return "none", []


def host_rows(paths: Paths) -> Iterable[DoctorRow]:
    euid = os.geteuid() if paths.is_real_root() else 0
    yield DoctorRow(
        "agent", "privileges", "ok" if euid == 0 else "warn",
        "running as root" if euid == 0 else f"running as uid {euid}",
        "" if euid == 0 else "run as root (or with CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN, CAP_NET_ADMIN) for eBPF and tuning",
    )
    layout, ctrls = cgroup_layout(paths)
    yield DoctorRow(
        "host", "cgroup hierarchy", "ok" if layout in ("v2", "hybrid", "v1") else "fail",
        f"{layout}: {', '.join(ctrls) or 'no controllers'}",
        "" if layout != "none" else "mount cgroup2 at /sys/fs/cgroup",
    )
    psi = paths.proc("pressure", "cpu")
    yield DoctorRow(
        "host", "PSI", "ok" if psi.exists() else "warn",
        "available" if psi.exists() else f"{psi} missing",
        "" if psi.exists() else "boot with psi=1 (CONFIG_PSI) for pressure metrics",
    )


def doctor_rows(node: Node, extra: Iterable[DoctorRow] = ()) -> list[DoctorRow]:
    rows = list(host_rows(node.paths))
    node.runtime.scrape()
    for c in node.runtime.collectors:
        st = node.runtime.status[c.name]
        status = "ok" if st.up else ("warn" if st.state == "no data" else "fail")
        detail = "collecting" if st.up else f"{st.state}: {st.reason}"
        rows.append(DoctorRow("collector", c.name, status, detail, st.fix))
        try:
            rows.extend(c.doctor())
        except Exception as e:  # noqa: BLE001 - doctor must report, not crash
            rows.append(DoctorRow("collector", c.name, "fail", f"doctor check failed: {e}"))
    rows.extend(extra)
    return rows


def healthy(rows: Iterable[DoctorRow]) -> bool:
    return all(r.status != "fail" for r in rows)


def format_table(rows: list[DoctorRow]) -> str:
    headers = ("SUBSYSTEM", "ITEM", "STATUS", "DETAIL", "FIX")
    data = [(r.subsystem, r.item, r.status.upper(), r.detail, r.fix) for r in rows]
    # Long details (a list of drifted knobs) wrap inside their column so the table
    # stays readable in an 80-160 column terminal.
    return format_rows(headers, data, max_widths={3: 60, 4: 50})
