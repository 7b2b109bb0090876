"""The tuning engine on the real kernel: network sysctls, MTU and channels in a
fresh network namespace with a veth pair; THP and 2 MiB hugepages on this VM; the
C-state latency cap. Every test restores what it changed."""

import json
import struct
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from agent.paths import Paths
from tests.conftest import REPO, need_root
from tests.harness.netns import veth_pair
from tuning.engine import build_engine, rollback
from tuning.settings import TuningSettings
from tuning.state import state_path
from tuning.tunable import TuneContext
from tuning.tunables.cpu import CpuDmaLatency, LatencyHolder
from tuning.tunables.nic import device_msi_irqs

pytestmark = pytest.mark.integration

HOST = Paths("/")


@pytest.fixture
def host_state_free():
    need_root()
    # The engine's record lives in the host's /run; never disturb a real one.
    if state_path(HOST).exists():
        pytest.skip(f"{state_path(HOST)} exists: this host is tuned for real")
    yield
    leftover = state_path(HOST)
    if leftover.exists():
        leftover.unlink()
        pytest.fail("a test left tuning state behind")


NET_PROFILE = """\
description: network knobs a namespace owns
tunables:
  net.core.somaxconn: ">=8192"
  net.core.rmem_max: ">=16777216"
  net.core.busy_read: 50
  net.ipv4.tcp_rmem: 4096 131072 >=67108864
  net.ipv4.tcp_wmem: 4096 16384 >=16777216
  net.ipv4.tcp_fastopen: 3
  nic.mtu: 9000
  nic.channels: 2
  nic.rings: max
"""


def host_value(key: str) -> str:
    return (Path("/proc/sys") / key.replace(".", "/")).read_text()


def test_network_knobs_in_a_fresh_namespace(tmp_path, host_state_free):
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "nettest.yaml").write_text(NET_PROFILE)
    tag = uuid.uuid4().hex[:5]
    ifname = f"tunq{tag}"
    (tmp_path / "c.yaml").write_text(
        f"tuning:\n  profile: nettest\n  profile_dirs: [{tmp_path / 'profiles'}]\n  nics: [{ifname}]\n")
    keys = ["net.core.somaxconn", "net.core.rmem_max", "net.ipv4.tcp_rmem", "net.ipv4.tcp_fastopen"]
    host_before = {k: host_value(k) for k in keys}

    with veth_pair(prefix="tun", subnet="10.231.77") as pair:
        # A multi-queue veth, so there are channels to change.
        pair.run_a("ip", "link", "add", ifname, "numtxqueues", "4", "numrxqueues", "4", "type", "veth",
                   "peer", "name", f"tunp{tag}", "numtxqueues", "4", "numrxqueues", "4")

        def tune(*args: str) -> subprocess.CompletedProcess:
            return pair.run_a(sys.executable, "-c", "import sys; sys.path.insert(0, %r); from agent.cli import main; main()"
                              % str(REPO), "tune", *args, "--config", str(tmp_path / "c.yaml"), check=False)

        def ns_read(path: str) -> str:
            return pair.run_a("cat", path).stdout

        before = {p: ns_read(p) for p in (
            "/proc/sys/net/core/somaxconn", "/proc/sys/net/core/rmem_max", "/proc/sys/net/ipv4/tcp_rmem",
            "/proc/sys/net/ipv4/tcp_fastopen", f"/sys/class/net/{ifname}/mtu")}
        channels_before = pair.run_a("ethtool", "-l", ifname).stdout
        try:
            plan = json.loads(tune("plan", "--json").stdout)
            actions = {r["tunable"]: r for r in plan["rows"]}
            assert actions["nic.rings"]["action"] == "unsupported"
            assert actions["net.core.busy_read"]["action"] == "unsupported"  # global: not in a child netns
            assert actions["net.core.rmem_max"]["action"] == "unsupported"  # read-only in a child netns
            assert "read-only" in actions["net.core.rmem_max"]["note"]
            assert actions["nic.channels"]["current"] == "rx=4 tx=4"
            assert actions["nic.channels"]["desired"] == "rx=2 tx=2"

            applied = tune("apply")
            assert applied.returncode == 0, applied.stderr + applied.stdout
            verify = tune("verify")
            assert verify.returncode == 0, verify.stdout + verify.stderr
            assert ns_read("/proc/sys/net/core/somaxconn") == "8192\n"
            assert ns_read("/proc/sys/net/ipv4/tcp_rmem") == "4096\t131072\t67108864\n"
            assert ns_read("/proc/sys/net/ipv4/tcp_fastopen") == "3\n"
            assert ns_read(f"/sys/class/net/{ifname}/mtu") == "9000\n"
            current = pair.run_a("ethtool", "-l", ifname).stdout.split("Current hardware settings:")[1]
            assert "RX:\t\t2" in current and "TX:\t\t2" in current
            # Per-namespace knobs: the host's own values did not move.
            assert {k: host_value(k) for k in keys} == host_before

            # Drift behind the engine's back is seen by verify.
            pair.run_a("sysctl", "-qw", "net.core.somaxconn=128")
            drift = tune("verify")
            assert drift.returncode == 1 and "drift net.core.somaxconn system: current 128" in drift.stdout
        finally:
            rolled = tune("rollback")
        assert rolled.returncode == 0, rolled.stderr
        assert {p: ns_read(p) for p in before} == before
        assert pair.run_a("ethtool", "-l", ifname).stdout == channels_before
    assert {k: host_value(k) for k in keys} == host_before


THP = Path("/sys/kernel/mm/transparent_hugepage")


def node_hugepages() -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(Path("/sys/devices/system/node").glob(
        "node*/hugepages/hugepages-2048kB/nr_hugepages"))}


def test_thp_and_2m_hugepages_on_this_vm(tmp_path, host_state_free):
    from tuning.tunable import selected

    enabled_raw, defrag_raw = (THP / "enabled").read_bytes(), (THP / "defrag").read_bytes()
    pages_raw = node_hugepages()
    want_enabled = "never" if selected(enabled_raw.decode()) != "never" else "madvise"
    want_defrag = "defer" if selected(defrag_raw.decode()) != "defer" else "madvise"
    want_pages = max(int(b) for b in pages_raw.values()) + 2
    (tmp_path / "mem.yaml").write_text(
        f"tunables:\n  thp.enabled: {want_enabled}\n  thp.defrag: {want_defrag}\n"
        f"  hugepages.2m_per_node: {want_pages}\n")
    engine = build_engine(HOST, TuningSettings(profile="mem", profile_dirs=[str(tmp_path)]))
    try:
        changed, _ = engine.apply()
        assert {r.tunable for r in changed} == {"thp.enabled", "thp.defrag", "hugepages.2m_per_node"}
        assert selected((THP / "enabled").read_text()) == want_enabled
        assert selected((THP / "defrag").read_text()) == want_defrag
        assert all(int(p.read_text()) == want_pages for p in pages_raw)
        assert engine.verify() == []
        assert len(rollback(engine)) == 2 + len(pages_raw)
    finally:
        # Whatever happened above, the VM gets its own values back.
        for path, raw in ((THP / "enabled", enabled_raw), (THP / "defrag", defrag_raw)):
            if path.read_bytes() != raw:
                path.write_text(selected(raw.decode()))
        for path, raw in pages_raw.items():
            if path.read_bytes() != raw:
                path.write_bytes(raw)
    # The kernel renders these files itself: byte-for-byte equal means truly restored.
    assert (THP / "enabled").read_bytes() == enabled_raw
    assert (THP / "defrag").read_bytes() == defrag_raw
    assert node_hugepages() == pages_raw


def test_latency_cap_holds_only_while_the_file_is_open():
    need_root()
    knob = CpuDmaLatency(TuneContext(HOST, TuningSettings()))
    before = int(knob.read("system"))
    holder = LatencyHolder(HOST)
    try:
        holder.hold(7)
        assert int(knob.read("system")) <= 7
    finally:
        holder.release()
    assert int(knob.read("system")) == before
    assert struct.calcsize("=i") == 4


ISOLATION_FILES = (Path("/sys/devices/virtual/workqueue/cpumask"), Path("/sys/bus/workqueue/devices/writeback/cpumask"),
                   Path("/proc/sys/kernel/timer_migration"), Path("/proc/sys/vm/stat_interval"),
                   Path("/proc/sys/kernel/hung_task_timeout_secs"))


def test_workqueue_masks_and_housekeeping_sysctls_on_this_kernel(tmp_path, host_state_free):
    """The kernel renders these files itself: restored byte for byte means restored."""
    present = [p for p in ISOLATION_FILES if p.exists()]
    if len(present) < 4:
        pytest.skip("this kernel lacks the workqueue masks or the sysctls")
    raw = {p: p.read_bytes() for p in present}
    (tmp_path / "iso.yaml").write_text(
        "tunables:\n  workqueue.cpumask: \"0\"\n  workqueue.writeback_cpumask: \"0\"\n"
        "  kernel.timer_migration: 0\n  vm.stat_interval: 10\n  kernel.hung_task_timeout_secs: \">=600\"\n")
    engine = build_engine(HOST, TuningSettings(profile="iso", profile_dirs=[str(tmp_path)]))
    try:
        changed, _ = engine.apply()
        assert Path("/sys/devices/virtual/workqueue/cpumask").read_text().strip().lstrip("0,") == "1"
        assert Path("/proc/sys/vm/stat_interval").read_text() == "10\n"
        assert engine.verify() == []
        assert {r.tunable for r in changed} <= {"workqueue.cpumask", "workqueue.writeback_cpumask",
                                                "kernel.timer_migration", "vm.stat_interval",
                                                "kernel.hung_task_timeout_secs"}
        rollback(engine)
    finally:
        for p, b in raw.items():
            if p.read_bytes() != b:
                p.write_bytes(b)
    assert {p: p.read_bytes() for p in present} == raw


def _probe_managed(irqs: list[Path]) -> set[str]:
    """The interrupts this kernel will not let user space move, found independently of
    the product: write each one's own value back and see which writes are refused."""
    managed = set()
    for d in irqs:
        path = d / "smp_affinity_list"
        try:
            path.write_text(path.read_text())
        except OSError:
            managed.add(f"irq{d.name}")
    return managed


def test_irq_affinity_moves_what_it_may_and_records_managed_interrupts_as_refused(tmp_path, host_state_free):
    """Every interrupt of this VM that is not a NIC's to CPU 0 (virtio-net's are the
    NIC's: found on the PCI function under its virtio device); the virtio-blk queue
    interrupts the driver manages are
    refused by the kernel (EPERM on 6.18): recorded as refused, not drift, not an
    aborted apply; rollback restores every file byte for byte."""
    from tuning.engine import REFUSED

    irqs = sorted((d for d in Path("/proc/irq").iterdir() if d.name.isdigit()), key=lambda d: int(d.name))
    raw = {d: (d / "smp_affinity_list").read_bytes() for d in irqs}
    managed = _probe_managed(irqs)
    (tmp_path / "irq.yaml").write_text('tunables:\n  irq.affinity: "0"\n')
    engine = build_engine(HOST, TuningSettings(profile="irq", profile_dirs=[str(tmp_path)]))
    try:
        planned = {r.target for r in engine.plan()}
        nic_irqs = {f"irq{n}" for iface in Path("/sys/class/net").iterdir()
                    for n in device_msi_irqs(iface / "device")}
        assert not planned & nic_irqs
        changed, _ = engine.apply()
        moved = {r.target for r in changed}
        assert moved and moved <= planned
        for target in moved:
            assert Path(f"/proc/irq/{target[3:]}/smp_affinity_list").read_text() == "0\n"
        rows = {r.target: r for r in engine.plan()}
        refused = {t for t, r in rows.items() if r.action == REFUSED}
        assert refused == managed & planned
        assert all("kernel-managed interrupt" in rows[t].note for t in refused)
        assert engine.verify() == []  # refused is not drift
        rollback(engine)
        assert not [r for r in engine.plan() if r.action == REFUSED]  # a rollback forgets them
    finally:
        for d, b in raw.items():
            if d.exists() and (d / "smp_affinity_list").read_bytes() != b:
                try:
                    (d / "smp_affinity_list").write_bytes(b)
                except OSError:
                    pass
    assert {d: (d / "smp_affinity_list").read_bytes() for d in irqs if d.exists()} == {
        d: b for d, b in raw.items() if d.exists()}
