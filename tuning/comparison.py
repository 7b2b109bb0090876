"""Our profiles beside Red Hat tuned's (Debian `tuned` 2.20, /usr/lib/tuned/<name>/tuned.conf),
key by key, with the reason for each difference. Data for docs/tuning.md; a unit
test checks the tuned values below against the installed tuned.conf files."""

from __future__ import annotations

import configparser

TUNED_PROFILES = ("latency-performance", "network-latency", "throughput-performance", "accelerator-performance",
                  "cpu-partitioning")

# tuned's effective values (includes resolved) for the options we map, as the
# 2.20 files write them; absent: the profile does not set the option.
TUNED_VALUES: dict[str, dict[str, str]] = {
    "latency-performance": {
        "cpu.governor": "performance", "cpu.energy_perf_bias": "performance",
        "cpu.force_latency": "cstate.id_no_zero:1|3",
        "sysctl.vm.dirty_ratio": "10", "sysctl.vm.dirty_background_ratio": "3", "sysctl.vm.swappiness": "10",
    },
    "network-latency": {
        "cpu.governor": "performance", "cpu.energy_perf_bias": "performance",
        "cpu.force_latency": "cstate.id_no_zero:1|3",
        "sysctl.vm.dirty_ratio": "10", "sysctl.vm.dirty_background_ratio": "3", "sysctl.vm.swappiness": "10",
        "vm.transparent_hugepages": "never",
        "sysctl.net.core.busy_read": "50", "sysctl.net.core.busy_poll": "50",
        "sysctl.net.ipv4.tcp_fastopen": "3", "sysctl.kernel.numa_balancing": "0",
        "bootloader.cmdline:skew_tick": "1",
    },
    "throughput-performance": {
        "cpu.governor": "performance", "cpu.energy_perf_bias": "performance",
        "disk.readahead": ">4096",
        "sysctl.vm.dirty_ratio": "40", "sysctl.vm.dirty_background_ratio": "10", "sysctl.vm.swappiness": "10",
        "sysctl.net.core.somaxconn": ">2048",
    },
    "accelerator-performance": {
        "cpu.governor": "performance", "cpu.energy_perf_bias": "performance", "cpu.force_latency": "99",
        "disk.readahead": ">4096",
        "sysctl.vm.dirty_ratio": "40", "sysctl.vm.dirty_background_ratio": "10", "sysctl.vm.swappiness": "10",
    },
    # network-latency's values (it includes it) and its own [sysctl], [sysfs], [systemd]
    # and [irqbalance]; ${...} are tuned's variables over its isolated_cores.
    "cpu-partitioning": {
        "cpu.governor": "performance", "cpu.energy_perf_bias": "performance",
        "cpu.force_latency": "cstate.id_no_zero:1|3",
        "sysctl.vm.dirty_ratio": "10", "sysctl.vm.dirty_background_ratio": "3", "sysctl.vm.swappiness": "10",
        "vm.transparent_hugepages": "never",
        "sysctl.net.core.busy_read": "50", "sysctl.net.core.busy_poll": "50",
        "sysctl.net.ipv4.tcp_fastopen": "3", "sysctl.kernel.numa_balancing": "0",
        "sysctl.kernel.hung_task_timeout_secs": "600", "sysctl.kernel.nmi_watchdog": "0",
        "sysctl.vm.stat_interval": "10", "sysctl.kernel.timer_migration": "0",
        "sysfs./sys/bus/workqueue/devices/writeback/cpumask": "${not_isolated_cpumask}",
        "sysfs./sys/devices/virtual/workqueue/cpumask": "${not_isolated_cpumask}",
        "systemd.cpu_affinity": "${not_isolated_cores_expanded}",
        "irqbalance.banned_cpus": "${isolated_cores}",
        "scheduler.isolated_cores": "${isolated_cores}",
        "bootloader.cmdline:skew_tick": "1",
        "bootloader.cmdline:isolcpus": "${no_balance_cores}", "bootloader.cmdline:nohz_full": "${isolated_cores}",
        "bootloader.cmdline:rcu_nocbs": "${isolated_cores}",
        "bootloader.cmdline:intel_pstate": "disable", "bootloader.cmdline:nosoftlockup": "on",
    },
}

# Our key -> (tuned option, why ours is what it is where it differs from tuned).
MAPPING: dict[str, tuple[str, str]] = {
    "cpu.governor": ("cpu.governor", "Same as every tuned performance profile."),
    "cpu.energy_performance_preference": (
        "cpu.energy_perf_bias",
        "tuned sets the older EPB; HWP CPUs (intel_pstate, amd-pstate active) follow EPP, so we set EPP."),
    "cpu.dma_latency_us": (
        "cpu.force_latency",
        "Latency: `<=2` µs, about C1's exit latency, like tuned's cstate.id_no_zero:1 but stated in µs "
        "so verify can compare it. Throughput: `<=99` as accelerator-performance. Held only while the daemon runs."),
    "thp.enabled": (
        "vm.transparent_hugepages",
        "network-latency turns THP off for everyone; we keep huge pages for processes that "
        "madvise (PyTorch's CPU allocator with THP_MEM_ALLOC_ENABLE=1) and spare the rest compaction stalls."),
    "thp.defrag": ("", "tuned leaves defrag alone; we keep direct compaction to madvised regions."),
    "hugepages.2m_per_node": (
        "", "Not in the shipped profiles: only servers that use hugetlbfs need a pool; size it per site."),
    "hugepages.1g_per_node": (
        "", "Not in the shipped profiles; 1 GiB pools are best reserved at boot (the error names the parameter)."),
    "vm.swappiness": ("sysctl.vm.swappiness", "Same as tuned."),
    "vm.dirty_ratio": (
        "sysctl.vm.dirty_ratio",
        "Latency takes latency-performance's 10; throughput takes accelerator-performance's 40."),
    "vm.dirty_background_ratio": (
        "sysctl.vm.dirty_background_ratio", "As vm.dirty_ratio: 3 for latency, 10 for throughput."),
    "vm.zone_reclaim_mode": (
        "", "tuned does not set it; 0 avoids reclaim stalls on the local node (pinning does the placement)."),
    "kernel.numa_balancing": (
        "sysctl.kernel.numa_balancing",
        "As network-latency: workers are pinned to their GPUs' node, so balancing only adds faults."),
    "net.core.somaxconn": (
        "sysctl.net.core.somaxconn", "throughput-performance asks >2048; request bursts want >=4096."),
    "net.core.rmem_max": ("", "tuned does not set it; large buffers for prompt uploads and collective traffic."),
    "net.core.wmem_max": ("", "tuned does not set it; large buffers for streamed responses."),
    "net.core.netdev_max_backlog": ("", "tuned does not set it; 100G NICs overrun the default 1000."),
    "net.core.busy_read": (
        "sysctl.net.core.busy_read", "Latency: as network-latency. Throughput: 0, busy polling burns CPU."),
    "net.core.busy_poll": (
        "sysctl.net.core.busy_poll", "Latency: as network-latency. Throughput: 0, busy polling burns CPU."),
    "net.ipv4.tcp_rmem": ("", "tuned does not set it; raises the autotuning ceiling only."),
    "net.ipv4.tcp_wmem": ("", "tuned does not set it; raises the autotuning ceiling only."),
    "net.ipv4.tcp_fastopen": ("sysctl.net.ipv4.tcp_fastopen", "As network-latency."),
    "nic.mtu": ("", "Not in the shipped profiles: jumbo frames must match the switch fabric; set it per site."),
    "nic.channels": ("", "tuned has no NIC queue tuning in these profiles; one queue per vector."),
    "nic.rings": ("", "Throughput only: big rings absorb bursts but queue packets (latency)."),
    "nic.irq_affinity": (
        "", "tuned's cpu-partitioning isolates cores by boot parameters; we steer NIC IRQs to the "
            "NIC-local housekeeping CPUs at run time instead."),
    "irqbalance.banned_cpus": (
        "irqbalance.banned_cpus",
        "As cpu-partitioning, with the inference CPU set as the isolated cores."),
    "kernel.timer_migration": ("sysctl.kernel.timer_migration", "As cpu-partitioning (inference-isolated)."),
    "vm.stat_interval": ("sysctl.vm.stat_interval", "As cpu-partitioning (inference-isolated)."),
    "kernel.nmi_watchdog": ("sysctl.kernel.nmi_watchdog", "As cpu-partitioning (inference-isolated)."),
    "kernel.hung_task_timeout_secs": (
        "sysctl.kernel.hung_task_timeout_secs",
        "As cpu-partitioning (inference-isolated), as a floor: a site's longer timeout is kept."),
    "workqueue.cpumask": (
        "sysfs./sys/devices/virtual/workqueue/cpumask",
        "As cpu-partitioning, over the housekeeping CPUs (its non-isolated cores)."),
    "workqueue.writeback_cpumask": (
        "sysfs./sys/bus/workqueue/devices/writeback/cpumask",
        "As cpu-partitioning, over the housekeeping CPUs."),
    "systemd.cpu_affinity": (
        "systemd.cpu_affinity",
        "As cpu-partitioning, over the housekeeping CPUs; the worker unit's own CPUAffinity= keeps it on "
        "the inference CPUs."),
    "boot.isolcpus": (
        "bootloader.cmdline:isolcpus",
        "As cpu-partitioning's no_balance_cores, over the inference CPUs and with managed_irq "
        "(inference-partitioned)."),
    "boot.nohz_full": ("bootloader.cmdline:nohz_full", "As cpu-partitioning, over the inference CPUs."),
    "boot.rcu_nocbs": ("bootloader.cmdline:rcu_nocbs", "As cpu-partitioning, over the inference CPUs."),
    "boot.skew_tick": ("bootloader.cmdline:skew_tick", "As network-latency and cpu-partitioning."),
    "boot.iommu": ("", "None of tuned's profiles sets it; off by default, a site's choice with its platform."),
    "boot.hugepages_1g": ("", "tuned reserves no huge pages; for models that use 1 GiB pages, set at boot."),
    "boot.intel_pstate": (
        "bootloader.cmdline:intel_pstate",
        "cpu-partitioning boots with disable (acpi-cpufreq); our profiles keep intel_pstate active for the "
        "EPP hint, and a profile that sets disable with cpu.energy_performance_preference is refused."),
    "boot.amd_pstate": ("", "tuned leaves amd_pstate's mode; active (the default on recent kernels) keeps EPP."),
    "boot.nosoftlockup": ("bootloader.cmdline:nosoftlockup", "As cpu-partitioning (inference-partitioned)."),
    "boot.mitigations": (
        "", "tuned's profiles leave mitigations on, and so do ours: off is an explicit opt-in in tuning.overrides."),
    "systemd.slice_allowed_cpus": (
        "", "tuned sets no cgroup limits; on cgroup v2 hosts the kernel's cpuset keeps system.slice and "
            "user.slice on the housekeeping CPUs, running processes included."),
    "processes.cpu_affinity": (
        "scheduler.isolated_cores",
        "As cpu-partitioning's process moving, over the housekeeping CPUs; the workers (inference.slice) and "
        "threads pinned to inference CPUs stay."),
    "irq.affinity": (
        "", "cpu-partitioning leaves device interrupts to irqbalance's banned CPUs and its initrd; we place "
            "every non-NIC interrupt on the housekeeping CPUs at run time, managed ones reported as refused."),
    "block.scheduler": ("", "tuned leaves the scheduler; NVMe needs none."),
    "block.read_ahead_kb": ("disk.readahead", "As throughput/accelerator-performance (KiB, >4096 there, >=4096 here)."),
}


# Options of those five profiles that no tunable maps, and why (a test checks that
# every option of the installed files is mapped, explained or one of tuned's variables).
EXPLAINED: dict[str, str] = {
    "cpu.min_perf_pct": (
        "Not set: intel_pstate's floor at 100% keeps idle cores at full frequency; with the performance "
        "governor and EPP a loaded core already runs at its maximum, and an idle node waiting for traffic "
        "saves the power."),
    "scheduler.sched_min_granularity_ns": (
        "Gone from the kernels inference nodes run: moved to debugfs in 5.13 and removed with EEVDF in 6.6."),
    "scheduler.sched_wakeup_granularity_ns": "As sched_min_granularity_ns.",
    "scheduler.ps_blacklist": (
        "tuned spares processes by name from its moving (DPDK, qemu); infernode spares inference.slice and "
        "threads already pinned to inference CPUs only (processes.cpu_affinity), whatever their names."),
    "sysfs./sys/devices/virtual/workqueue/*/cpumask": (
        "Covered by workqueue.cpumask: the global unbound mask limits every unbound workqueue's own mask."),
    "sysfs./sys/devices/system/machinecheck/machinecheck*/ignore_ce": (
        "Left alone: ignoring corrected machine-check errors removes the early warning of a failing DIMM or "
        "cache, and the poll it saves runs once every 5 minutes per CPU."),
    "bootloader.cmdline:nohz": (
        "nohz=on is the kernel's default wherever it is built with NO_HZ (every distribution kernel); "
        "nohz_full does the work."),
    "bootloader.cmdline:tuned.non_isolcpus": (
        "Not a kernel parameter: tuned's note to its own initrd script (irqbalance's banned CPUs early at "
        "boot); infernode sets irqbalance.banned_cpus."),
    "bootloader.initrd_add_dir": (
        "cpu-partitioning's own initrd, which carries its irqbalance settings into early boot; infernode "
        "writes the kernel command line only."),
    "bootloader.initrd_dst_img": "As bootloader.initrd_add_dir.",
    "bootloader.initrd_remove_dir": "As bootloader.initrd_add_dir.",
    "bootloader.priority": "tuned's plugin ordering, not a setting.",
    "script.script": "cpu-partitioning's script.sh builds that initrd; infernode runs no scripts.",
    "script.priority": "tuned's plugin ordering, not a setting.",
    "sysctl.thunderx.cpuinfo_regex": (
        "throughput-performance's section for Cavium ThunderX (aarch64) CPUs only."),
    "sysctl.thunderx.kernel.numa_balancing": "As sysctl.thunderx.cpuinfo_regex.",
    "sysctl.thunderx.type": "As sysctl.thunderx.cpuinfo_regex.",
    "sysctl.thunderx.uname_regex": "As sysctl.thunderx.cpuinfo_regex.",
    "vm.thunderx.cpuinfo_regex": "As sysctl.thunderx.cpuinfo_regex.",
    "vm.thunderx.transparent_hugepages": "As sysctl.thunderx.cpuinfo_regex.",
    "vm.thunderx.type": "As sysctl.thunderx.cpuinfo_regex.",
    "vm.thunderx.uname_regex": "As sysctl.thunderx.cpuinfo_regex.",
}


def split_bootloader(values: dict[str, str]) -> dict[str, str]:
    """tuned's `[bootloader] cmdline_*` options, one key per kernel parameter
    ("bootloader.cmdline:nohz_full"), so parameters are counted one by one; a flag
    reads "on". `${cmd_isolcpus}` is cpu-partitioning's conditional
    " isolcpus=${no_balance_cores}" (tuned.conf, [variables]). Other keys unchanged."""
    out: dict[str, str] = {}
    for key, value in values.items():
        if not key.startswith("bootloader.cmdline"):
            out[key] = value
            continue
        text = value.lstrip("+").replace("${cmd_isolcpus}", " isolcpus=${no_balance_cores}")
        for word in text.split():
            name, _, arg = word.partition("=")
            out[f"bootloader.cmdline:{name}"] = arg if "=" in word else "on"
    return out


def parse_tuned_conf(text: str) -> tuple[list[str], dict[str, str]]:
    """A tuned.conf → (included profiles, {"section.option": value}). Pure."""
    parser = configparser.RawConfigParser(delimiters=("=",), strict=False, inline_comment_prefixes=None)
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    parser.read_string(text)
    includes: list[str] = []
    values: dict[str, str] = {}
    for section in parser.sections():
        for option, value in parser.items(section):
            if section == "main" and option == "include":
                includes = [v.strip() for v in value.split(",") if v.strip()]
            elif section != "main":
                values[f"{section}.{option}"] = value.strip()
    return includes, values
