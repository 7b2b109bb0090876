"""`infernode doctor`: one table of every subsystem, with the fix for what is wrong."""

from __future__ import annotations

import os
from collections.abc import Iterable

from agent.doctor_row import DoctorRow
from agent.hostfs import read_if_readable
from agent.paths import Paths
from agent.table import format_rows
from agent.telemetry import Telemetry


def cgroup_layout(paths: Paths) -> tuple[str, list[str]]:
    """("v2" | "hybrid" | "v1" | "none", controllers mounted). The kind is the
    cgroup collector's own reading (collectors.cgroup.detect_layout), so the doctor
    never reports a layout the collector would not use; the controllers listed are
    every one mounted, for the person reading the table."""
    from collectors.cgroup import detect_layout

    layout = detect_layout(paths)
    root = paths.cgroup()
    v2 = (read_if_readable(layout.unified / "cgroup.controllers") or "").split() if layout.unified else []
    mounted = sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "cgroup.procs").exists()) \
        if root.is_dir() and layout.kind != "v2" else []
    if layout.kind == "v2":
        return "v2", v2
    if layout.kind == "hybrid":
        return "hybrid", [f"{c} (v1)" for c in mounted if c not in ("unified", "systemd")] + [f"{c} (v2)" for c in v2]
    return layout.kind, mounted


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


def doctor_rows(telemetry: Telemetry, extra: Iterable[DoctorRow] = ()) -> list[DoctorRow]:
    rows = list(host_rows(telemetry.paths))
    telemetry.runtime.scrape()
    for c in telemetry.runtime.collectors:
        st = telemetry.runtime.status[c.name]
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
