#!/usr/bin/env python3
"""Generates the Grafana dashboards in this folder from one description.

    python dashboards/build.py          # rewrite the *.json files
    python dashboards/build.py --check  # exit 1 when a committed file is stale

Every dashboard shares the same layout (two panels per row, 12 columns wide,
8 high, a collapsed-free row header per section), the `datasource` variable
(every panel uses `${datasource}`) and an `instance` variable. Each panel says in
its description what it shows. Panels whose data only real hardware produces
(e.g. NVLink, GPM counters) carry `"infernode": {"needs_real_hardware": "<why>"}`
so the query test knows not to expect data from the test doubles.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
DS = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"
INST = 'instance=~"$instance"'
GPU = f'{INST}, gpu=~"$gpu"'
WORKER = f'{INST}, worker=~"$worker"'
QUANTILES = (0.5, 0.9, 0.99)


@dataclass(frozen=True)
class Q:
    expr: str
    legend: str = ""
    heatmap: bool = False  # format=heatmap: one series per `le` bucket


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    queries: tuple[Q, ...]
    unit: str = "short"
    kind: str = "timeseries"  # timeseries | heatmap | stat | table
    exemplars: bool = False
    needs_real_hardware: str = ""
    stacked: bool = False


@dataclass(frozen=True)
class Section:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    sections: tuple[Section, ...]
    variables: tuple[str, ...] = ("instance",)
    tags: tuple[str, ...] = field(default=("infernode",))


def quantiles(metric: str, selector: str, by: str = "") -> tuple[Q, ...]:
    grouping = f"le{', ' + by if by else ''}"
    legend_by = "".join(f" {{{{{b.strip()}}}}}" for b in by.split(",") if b.strip())
    return tuple(
        Q(f"histogram_quantile({q}, sum by ({grouping}) (rate({metric}_bucket{{{selector}}}[{RATE}])))",
          f"p{int(q * 100)}{legend_by}")
        for q in QUANTILES
    )


def heatmap(metric: str, selector: str) -> tuple[Q, ...]:
    return (Q(f"sum by (le) (increase({metric}_bucket{{{selector}}}[{RATE}]))", "{{le}}", heatmap=True),)


# --- node overview -------------------------------------------------------------------

NODE = Dashboard(
    "infernode-node", "infernode / Node overview",
    "Agent health, collectors, host CPU, memory, pressure, disks, network and the inference slice.",
    (
        Section("Agent", (
            Panel("Agent running", "1 per agent that serves /metrics (infernode_build_info), with its version.",
                  (Q(f"infernode_build_info{{{INST}}}", "{{instance}} {{version}}"),), kind="stat"),
            Panel("Agent uptime", "Seconds since the agent process started.",
                  (Q(f"time() - infernode_start_time_seconds{{{INST}}}", "{{instance}}"),), unit="s"),
            Panel("Collectors up", "1 when the collector's last run succeeded, 0 when it failed, timed out or found "
                  "no data (`infernode doctor` says why).",
                  (Q(f"infernode_collector_up{{{INST}}}", "{{instance}} {{collector}}"),)),
            Panel("Collector run time", "Wall time of each collector's last run; compare with the scrape timeout.",
                  (Q(f"infernode_collector_duration_seconds{{{INST}}}", "{{instance}} {{collector}}"),), unit="s"),
            Panel("Dropped samples", "Samples per second a collector produced that did not match the metric catalog "
                  "(a bug in the collector).",
                  (Q(f"sum by (instance, collector) (rate(infernode_collector_dropped_samples_total{{{INST}}}[{RATE}]))",
                     "{{instance}} {{collector}}"),)),
            Panel("Agent CPU and memory", "CPU cores the agent uses and its resident memory.",
                  (Q(f"rate(infernode_process_cpu_seconds_total{{{INST}}}[{RATE}])", "{{instance}} cpu cores"),
                   Q(f"infernode_process_resident_memory_bytes{{{INST}}} / 2^30", "{{instance}} RSS GiB"))),
            Panel("Event store", "Events held in the agent's bounded event store, and evictions per second.",
                  (Q(f"infernode_events_stored{{{INST}}}", "{{instance}} stored"),
                   Q(f"rate(infernode_events_evicted_total{{{INST}}}[{RATE}])", "{{instance}} evicted/s"))),
            Panel("Config reloads", "Whether the last config reload succeeded (1) and rejected reloads so far.",
                  (Q(f"infernode_config_last_reload_success{{{INST}}}", "{{instance}} last ok"),
                   Q(f"infernode_config_reload_failures_total{{{INST}}}", "{{instance}} failures"))),
        )),
        Section("Host", (
            Panel("CPU by mode", "CPU cores busy in each mode (idle excluded), summed over all CPUs.",
                  (Q(f'sum by (instance, mode) (rate(infernode_host_cpu_seconds_total{{{INST}, mode!="idle"}}[{RATE}]))',
                     "{{instance}} {{mode}}"),), stacked=True),
            Panel("Load average", "Runnable plus uninterruptible tasks over 1, 5 and 15 minutes.",
                  (Q(f"infernode_host_load{{{INST}}}", "{{instance}} {{window}}"),)),
            Panel("Memory", "Used (total minus available), page cache and available memory.",
                  (Q(f"infernode_host_memory_total_bytes{{{INST}}} - infernode_host_memory_available_bytes{{{INST}}}",
                     "{{instance}} used"),
                   Q(f"infernode_host_memory_cached_bytes{{{INST}}}", "{{instance}} cached"),
                   Q(f"infernode_host_memory_available_bytes{{{INST}}}", "{{instance}} available")), unit="bytes"),
            Panel("Hugepages", "Configured and free hugepages per page size.",
                  (Q(f"infernode_host_hugepages_configured{{{INST}}}", "{{instance}} {{page_size}} configured"),
                   Q(f"infernode_host_hugepages_free{{{INST}}}", "{{instance}} {{page_size}} free"))),
            Panel("Pressure (PSI)", "Fraction of time some or all non-idle tasks stalled on CPU, memory or I/O.",
                  (Q(f"rate(infernode_host_pressure_stall_seconds_total{{{INST}}}[{RATE}])",
                     "{{instance}} {{resource}} {{scope}}"),), unit="percentunit"),
            Panel("Disk throughput", "Bytes per second read and written per block device.",
                  (Q(f"rate(infernode_host_disk_read_bytes_total{{{INST}}}[{RATE}])", "{{instance}} {{device}} read"),
                   Q(f"rate(infernode_host_disk_written_bytes_total{{{INST}}}[{RATE}])", "{{instance}} {{device}} write")),
                  unit="Bps"),
            Panel("Disk busy and queue", "Fraction of time each device had I/O in flight, and its average queue size.",
                  (Q(f"rate(infernode_host_disk_io_time_seconds_total{{{INST}}}[{RATE}])", "{{instance}} {{device}} busy"),
                   Q(f"rate(infernode_host_disk_io_time_weighted_seconds_total{{{INST}}}[{RATE}])",
                     "{{instance}} {{device}} queue"))),
            Panel("Network throughput", "Bytes per second received and transmitted per interface.",
                  (Q(f"rate(infernode_host_network_bytes_total{{{INST}}}[{RATE}])",
                     "{{instance}} {{device}} {{direction}}"),), unit="Bps"),
            Panel("Network errors and drops", "Packets per second dropped or errored per interface and direction.",
                  (Q(f"rate(infernode_host_network_errors_total{{{INST}}}[{RATE}])",
                     "{{instance}} {{device}} {{direction}} errors"),
                   Q(f"rate(infernode_host_network_drops_total{{{INST}}}[{RATE}])",
                     "{{instance}} {{device}} {{direction}} drops"))),
        )),
        Section("Inference slice", (
            Panel("Slice CPU", "CPU cores used by the inference slice and each unit in it.",
                  (Q(f"rate(infernode_cgroup_cpu_usage_seconds_total{{{INST}}}[{RATE}])", "{{instance}} {{unit}}"),)),
            Panel("Slice CPU throttling", "Fraction of CFS periods in which the cgroup hit its CPU quota.",
                  (Q(f"rate(infernode_cgroup_cpu_throttled_periods_total{{{INST}}}[{RATE}]) / "
                     f"rate(infernode_cgroup_cpu_periods_total{{{INST}}}[{RATE}])", "{{instance}} {{unit}}"),),
                  unit="percentunit"),
            Panel("Slice memory", "Memory charged to each cgroup, and its hard limit where one is set.",
                  (Q(f"infernode_cgroup_memory_current_bytes{{{INST}}}", "{{instance}} {{unit}}"),
                   Q(f"infernode_cgroup_memory_max_bytes{{{INST}}}", "{{instance}} {{unit}} max")), unit="bytes"),
            Panel("Slice memory events", "Memory events per second (high, max, oom, oom_kill) of each cgroup.",
                  (Q(f"rate(infernode_cgroup_memory_events_total{{{INST}}}[{RATE}])", "{{instance}} {{unit}} {{event}}"),)),
            Panel("Slice I/O", "Bytes per second each cgroup read or wrote, per device.",
                  (Q(f"sum by (instance, unit, direction) (rate(infernode_cgroup_io_bytes_total{{{INST}}}[{RATE}]))",
                     "{{instance}} {{unit}} {{direction}}"),), unit="Bps"),
            Panel("Slice pressure (PSI)", "Fraction of time the cgroup's tasks stalled on CPU, memory or I/O (needs "
                  "PSI in the cgroup v2 tree).",
                  (Q(f"rate(infernode_cgroup_pressure_stall_seconds_total{{{INST}}}[{RATE}])",
                     "{{instance}} {{unit}} {{resource}} {{scope}}"),), unit="percentunit"),
        )),
    ),
)

# --- GPUs ----------------------------------------------------------------------------

_NVLINK = "NVLink exists only on SXM/NVSwitch boards."
_GPM = "GPM (GPU performance monitoring) counters need a Hopper or newer GPU."
_SXID = "SXids come only from NVSwitch systems, with the first one the kernel logs."
_MIG = "Only GPUs in MIG mode have instances."

GPUS = Dashboard(
    "infernode-gpus", "infernode / GPUs",
    "Per-GPU utilisation, memory, power, thermals, clocks, throttling, errors and interconnects from NVML.",
    (
        Section("Health", (
            Panel("GPU up", "1 when the GPU answered the last NVML poll within max age, 0 when lost or stale.",
                  (Q(f"infernode_gpu_up{{{GPU}}}", "{{instance}} gpu{{gpu}}"),)),
            Panel("NVML and GPU count", "Whether NVML initialised, and how many GPUs it enumerates.",
                  (Q(f"infernode_gpu_nvml_up{{{INST}}}", "{{instance}} nvml up"),
                   Q(f"infernode_gpu_count{{{INST}}}", "{{instance}} gpus")), kind="stat"),
            Panel("XID errors by recommended action", "XID errors the driver reported in the interval, by XID and "
                  "NVIDIA's recommended action (restart_app, reset_gpu, reboot_node, informational).",
                  (Q(f"sum by (instance, gpu, xid, action) (increase(infernode_gpu_xid_errors_total{{{GPU}}}[{RATE}]))",
                     "{{instance}} gpu{{gpu}} xid {{xid}} {{action}}"),)),
            Panel("ECC errors", "ECC errors in the interval, corrected and uncorrected, volatile and aggregate.",
                  (Q(f"increase(infernode_gpu_ecc_errors_total{{{GPU}}}[{RATE}])",
                     "{{instance}} gpu{{gpu}} {{type}} {{scope}}"),)),
            Panel("Row remapping", "Rows remapped by cause; remap pending (needs a GPU reset) and remap failure "
                  "(replace the GPU).",
                  (Q(f"infernode_gpu_remapped_rows{{{GPU}}}", "{{instance}} gpu{{gpu}} {{cause}}"),
                   Q(f"infernode_gpu_row_remap_pending{{{GPU}}}", "{{instance}} gpu{{gpu}} pending"),
                   Q(f"infernode_gpu_row_remap_failure{{{GPU}}}", "{{instance}} gpu{{gpu}} failure"))),
            Panel("NVML read errors", "NVML calls per second that failed for a GPU (other than not supported).",
                  (Q(f"rate(infernode_gpu_read_errors_total{{{GPU}}}[{RATE}])", "{{instance}} gpu{{gpu}}"),)),
            Panel("GPU reads stuck", "1 while a GPU's read has been inside one NVML call past stuck_after (a hung "
                  "GPU, often a GSP timeout, XID 119/120); the node's other GPUs are read as usual.",
                  (Q(f"infernode_gpu_read_stuck{{{GPU}}}", "{{instance}} gpu{{gpu}}"),)),
            Panel("XID sources", "Whether NVML's event set delivers XID/ECC events and whether the agent follows "
                  "the kernel log (the only source of XIDs 79, 119 and 120).",
                  (Q(f"infernode_gpu_event_thread_up{{{INST}}}", "{{instance}} NVML events"),
                   Q(f"infernode_gpu_kernel_log_up{{{INST}}}", "{{instance}} kernel log")), kind="stat"),
            Panel("Fabric and recovery action", "NVLink-fabric registration per GPU (0: not registered, CUDA "
                  "fails; HGX only) and NVIDIA's recovery action where it is not none.",
                  (Q(f"infernode_gpu_fabric_up{{{GPU}}}", "{{instance}} gpu{{gpu}} fabric up"),
                   Q(f"infernode_gpu_recovery_action{{{GPU}}} == 1", "{{instance}} gpu{{gpu}} {{action}}"))),
            Panel("NVSwitch SXid errors", "SXid errors the NVSwitches logged in the interval, by switch, SXid "
                  "and severity. " + _SXID,
                  (Q(f"sum by (instance, switch, sxid, severity) "
                     f"(increase(infernode_nvswitch_sxid_errors_total{{{INST}}}[{RATE}]))",
                     "{{instance}} switch{{switch}} sxid {{sxid}} {{severity}}"),), needs_real_hardware=_SXID),
        )),
        Section("Utilisation and memory", (
            Panel("Utilisation", "Fraction of the sample period each engine was busy (NVML's coarse utilisation).",
                  (Q(f"infernode_gpu_utilization_ratio{{{GPU}}}", "{{instance}} gpu{{gpu}} {{engine}}"),),
                  unit="percentunit"),
            Panel("SM and tensor activity (GPM)", "Fraction of SMs busy, of time tensor cores ran, DRAM bandwidth "
                  "used and SM occupancy, from GPM. " + _GPM,
                  (Q(f"infernode_gpu_sm_active_ratio{{{GPU}}}", "{{instance}} gpu{{gpu}} sm"),
                   Q(f"infernode_gpu_tensor_active_ratio{{{GPU}}}", "{{instance}} gpu{{gpu}} tensor"),
                   Q(f"infernode_gpu_dram_active_ratio{{{GPU}}}", "{{instance}} gpu{{gpu}} dram"),
                   Q(f"infernode_gpu_sm_occupancy_ratio{{{GPU}}}", "{{instance}} gpu{{gpu}} occupancy"),
                   Q(f"infernode_gpu_graphics_active_ratio{{{GPU}}}", "{{instance}} gpu{{gpu}} graphics")),
                  unit="percentunit", needs_real_hardware=_GPM),
            Panel("Framebuffer memory", "Used and total framebuffer memory per GPU.",
                  (Q(f"infernode_gpu_memory_used_bytes{{{GPU}}}", "{{instance}} gpu{{gpu}} used"),
                   Q(f"infernode_gpu_memory_total_bytes{{{GPU}}}", "{{instance}} gpu{{gpu}} total")), unit="bytes"),
            Panel("Process memory by unit", "GPU memory used by compute processes, summed per systemd unit.",
                  (Q(f"infernode_gpu_process_memory_bytes{{{GPU}}}", "{{instance}} gpu{{gpu}} {{unit}}"),),
                  unit="bytes", stacked=True),
        )),
        Section("Power, thermals and clocks", (
            Panel("Power", "Board power draw and the enforced power limit.",
                  (Q(f"infernode_gpu_power_watts{{{GPU}}}", "{{instance}} gpu{{gpu}}"),
                   Q(f"infernode_gpu_power_limit_watts{{{GPU}}}", "{{instance}} gpu{{gpu}} limit")), unit="watt"),
            Panel("Temperature", "GPU die and HBM memory temperature.",
                  (Q(f"infernode_gpu_temperature_celsius{{{GPU}}}", "{{instance}} gpu{{gpu}} {{sensor}}"),),
                  unit="celsius"),
            Panel("Clocks", "Current SM and memory clocks against their maximum.",
                  (Q(f"infernode_gpu_clock_hertz{{{GPU}}}", "{{instance}} gpu{{gpu}} {{clock}}"),
                   Q(f"infernode_gpu_clock_max_hertz{{{GPU}}}", "{{instance}} gpu{{gpu}} {{clock}} max")),
                  unit="hertz"),
            Panel("Throttle reasons", "Clock-event reasons active now (1), e.g. sw_power_cap, hw_thermal_slowdown.",
                  (Q(f"infernode_gpu_clock_event_reason_active{{{GPU}}} == 1",
                     "{{instance}} gpu{{gpu}} {{reason}}"),)),
            Panel("Throttled time", "Fraction of time a power or thermal policy held the clocks below target.",
                  (Q(f"rate(infernode_gpu_violation_seconds_total{{{GPU}}}[{RATE}])",
                     "{{instance}} gpu{{gpu}} {{policy}}"),), unit="percentunit"),
            Panel("Performance state", "P-state (0 fastest) and persistence mode per GPU.",
                  (Q(f"infernode_gpu_performance_state{{{GPU}}}", "{{instance}} gpu{{gpu}} P-state"),
                   Q(f"infernode_gpu_persistence_mode{{{GPU}}}", "{{instance}} gpu{{gpu}} persistence"))),
        )),
        Section("Interconnects", (
            Panel("PCIe throughput", "Bytes per second the GPU moved over PCIe, tx and rx.",
                  (Q(f"rate(infernode_gpu_pcie_data_bytes_total{{{GPU}}}[{RATE}])",
                     "{{instance}} gpu{{gpu}} {{direction}}"),), unit="Bps"),
            Panel("PCIe link degraded", "1 when, while busy, the GPU's link ran below the GPU's own generation "
                  "or width (a x8 slot, a Gen4 path); compare with the link panel's device_max and upstream_max.",
                  (Q(f"infernode_gpu_pcie_link_degraded{{{GPU}}}", "{{instance}} gpu{{gpu}}"),)),
            Panel("PCIe link and replays", "Current link generation and width against the maximum; replays per "
                  "second (a degraded link retrains or replays).",
                  (Q(f"infernode_gpu_pcie_link_generation{{{GPU}}}", "{{instance}} gpu{{gpu}} gen {{state}}"),
                   Q(f"infernode_gpu_pcie_link_width{{{GPU}}}", "{{instance}} gpu{{gpu}} width {{state}}"),
                   Q(f"rate(infernode_gpu_pcie_replays_total{{{GPU}}}[{RATE}])", "{{instance}} gpu{{gpu}} replays/s"))),
            Panel("NVLink links up", "Active (1) NVLink links per GPU. " + _NVLINK,
                  (Q(f"sum by (instance, gpu) (infernode_gpu_nvlink_up{{{GPU}}})", "{{instance}} gpu{{gpu}}"),),
                  needs_real_hardware=_NVLINK),
            Panel("NVLink throughput", "NVLink payload bytes per second, tx and rx. " + _NVLINK,
                  (Q(f"rate(infernode_gpu_nvlink_data_bytes_total{{{GPU}}}[{RATE}])",
                     "{{instance}} gpu{{gpu}} {{direction}}"),), unit="Bps", needs_real_hardware=_NVLINK),
            Panel("NVLink errors", "NVLink data-link errors per second by counter (replay, recovery, crc, "
                  "ecc_data). " + _NVLINK,
                  (Q(f"sum by (instance, gpu, counter) (rate(infernode_gpu_nvlink_errors_total{{{GPU}}}[{RATE}]))",
                     "{{instance}} gpu{{gpu}} {{counter}}"),), needs_real_hardware=_NVLINK),
            Panel("MIG instance memory", "Memory used per MIG instance (GPU instance / compute instance) "
                  "against its size. " + _MIG,
                  (Q(f"infernode_gpu_mig_memory_used_bytes{{{GPU}}}",
                     "{{instance}} gpu{{gpu}} gi{{gpu_instance}} ci{{compute_instance}} used"),
                   Q(f"infernode_gpu_mig_memory_total_bytes{{{GPU}}}",
                     "{{instance}} gpu{{gpu}} gi{{gpu_instance}} ci{{compute_instance}} size")),
                  unit="bytes", needs_real_hardware=_MIG),
            Panel("Energy", "Average power from the energy counter (joules per second).",
                  (Q(f"rate(infernode_gpu_energy_joules_total{{{GPU}}}[{RATE}])", "{{instance}} gpu{{gpu}}"),),
                  unit="watt"),
        )),
    ),
    variables=("instance", "gpu"),
)

# --- requests ------------------------------------------------------------------------

_REQ = "From the workers' llm_request spans via the agent's OTLP receiver; exemplars link to the trace."
_VLLM = "Re-exposed from the vLLM worker's /metrics, as on vLLM's reference dashboard."

REQUESTS = Dashboard(
    "infernode-requests", "infernode / Requests",
    "Request latency (TTFT, TPOT, end-to-end, queue) with trace exemplars, and vLLM's engine metrics.",
    (
        Section("Latency", tuple(
            p for metric, name, what in (
                ("infernode_request_ttft_seconds", "TTFT", "time to first token"),
                ("infernode_request_tpot_seconds", "TPOT", "time per output token after the first"),
                ("infernode_request_e2e_seconds", "End-to-end", "end-to-end latency, arrival to finish"),
                ("infernode_request_queue_seconds", "Queue", "time waiting in the scheduler queue"),
            ) for p in (
                Panel(f"{name} quantiles", f"p50, p90 and p99 {what} per worker. " + _REQ,
                      quantiles(metric, WORKER, "worker"), unit="s", exemplars=True),
                Panel(f"{name} heatmap", f"Distribution of {what} over all selected workers. " + _REQ,
                      heatmap(metric, WORKER), unit="s", kind="heatmap", exemplars=True),
            )
        )),
        Section("Throughput and slow requests", (
            Panel("Requests per second", "Finished requests per second per worker (count of TTFT observations).",
                  (Q(f"sum by (worker) (rate(infernode_request_ttft_seconds_count{{{WORKER}}}[{RATE}]))",
                     "{{worker}}"),), unit="reqps"),
            Panel("Token throughput", "Prompt and completion tokens per second per worker.",
                  (Q(f"sum by (worker) (rate(infernode_request_prompt_tokens_total{{{WORKER}}}[{RATE}]))",
                     "{{worker}} prompt"),
                   Q(f"sum by (worker) (rate(infernode_request_completion_tokens_total{{{WORKER}}}[{RATE}]))",
                     "{{worker}} completion"))),
            Panel("Slow requests by phase", "Requests per second over their phase's SLO or the rolling p99.",
                  (Q(f"sum by (worker, phase) (rate(infernode_request_slow_total{{{WORKER}}}[{RATE}]))",
                     "{{worker}} {{phase}}"),), unit="reqps"),
            Panel("Slow requests by cause", "Slow requests per second by the kind of their top-ranked cause "
                  "(`infernode explain` shows one).",
                  (Q(f"sum by (worker, kind) (rate(infernode_request_causes_total{{{WORKER}}}[{RATE}]))",
                     "{{worker}} {{kind}}"),), unit="reqps"),
            Panel("Latency share by cause", "Share of the selected workers' request latency each kind of cause "
                  "explains, slow requests or not: the kernel's, the GPU's and the engine's own (queueing, "
                  "batch interference, preemption, KV cache, long prompts; `infernode explain` tells one "
                  "request's).",
                  (Q(f"sum by (worker, kind) (rate(infernode_request_cause_seconds_total{{{WORKER}}}[{RATE}])) "
                     f"/ on (worker) group_left sum by (worker) "
                     f"(rate(infernode_request_e2e_seconds_sum{{{WORKER}}}[{RATE}]))",
                     "{{worker}} {{kind}}"),), unit="percentunit"),
            Panel("OTLP receiver", "Spans received per second by kind, and whether each transport listens.",
                  (Q(f"rate(infernode_otlp_received_spans_total{{{INST}}}[{RATE}])", "{{instance}} {{kind}}"),
                   Q(f"infernode_otlp_receiver_up{{{INST}}}", "{{instance}} {{transport}} up"))),
        )),
        Section("vLLM engine", (
            Panel("Running and waiting requests", "Requests in the engine's batches and in its queue. " + _VLLM,
                  (Q(f"sum by (worker) (vllm:num_requests_running{{{WORKER}}})", "{{worker}} running"),
                   Q(f"sum by (worker) (vllm:num_requests_waiting{{{WORKER}}})", "{{worker}} waiting"))),
            Panel("KV-cache usage", "Fraction of the KV cache in use (1 = full). " + _VLLM,
                  (Q(f"vllm:kv_cache_usage_perc{{{WORKER}}}", "{{worker}}"),), unit="percentunit"),
            Panel("vLLM token throughput", "Prompt and generation tokens per second. " + _VLLM,
                  (Q(f"sum by (worker) (rate(vllm:prompt_tokens_total{{{WORKER}}}[{RATE}]))", "{{worker}} prompt"),
                   Q(f"sum by (worker) (rate(vllm:generation_tokens_total{{{WORKER}}}[{RATE}]))",
                     "{{worker}} generation"))),
            Panel("vLLM TTFT quantiles", "vLLM's own time-to-first-token histogram. " + _VLLM,
                  quantiles("vllm:time_to_first_token_seconds", WORKER, "worker"), unit="s"),
            Panel("Preemptions", "Requests per second the engine preempted (KV cache pressure). " + _VLLM,
                  (Q(f"sum by (worker) (rate(vllm:num_preemptions_total{{{WORKER}}}[{RATE}]))", "{{worker}}"),)),
            Panel("Finished requests", "Requests per second vLLM finished, by finish reason. " + _VLLM,
                  (Q(f"sum by (worker, finished_reason) (rate(vllm:request_success_total{{{WORKER}}}[{RATE}]))",
                     "{{worker}} {{finished_reason}}"),), unit="reqps"),
        )),
    ),
    variables=("instance", "worker"),
)

# --- kernel events -------------------------------------------------------------------

_BPF = "From the agent's eBPF tracepoint programs; scope is inference (threads of the inference cgroups) or other."

KERNEL = Dashboard(
    "infernode-kernel", "infernode / Kernel events",
    "Scheduler, block I/O, TCP, OOM and reclaim events from eBPF, split by inference and other scope.",
    (
        Section("Scheduler", (
            Panel("Run-queue latency p99", "p99 time threads waited runnable before running, by scope. " + _BPF,
                  (Q(f"histogram_quantile(0.99, sum by (le, scope) (rate(infernode_runqueue_latency_seconds_bucket"
                     f"{{{INST}}}[{RATE}])))", "{{scope}}"),), unit="s"),
            Panel("Run-queue latency heatmap", "Distribution of run-queue waits of inference threads. " + _BPF,
                  heatmap("infernode_runqueue_latency_seconds", f'{INST}, scope="inference"'), unit="s",
                  kind="heatmap"),
            Panel("Off-CPU time p99", "p99 time threads spent off CPU, blocked (voluntary) or preempted. " + _BPF,
                  (Q(f"histogram_quantile(0.99, sum by (le, scope, kind) (rate(infernode_offcpu_seconds_bucket"
                     f"{{{INST}}}[{RATE}])))", "{{scope}} {{kind}}"),), unit="s"),
            Panel("IRQ time", "Fraction of CPU time in hard and soft interrupt handlers, summed over CPUs. " + _BPF,
                  (Q(f"sum by (instance, kind) (rate(infernode_irq_time_seconds_total{{{INST}}}[{RATE}]))",
                     "{{instance}} {{kind}}"),), unit="percentunit"),
        )),
        Section("I/O, network and memory", (
            Panel("Block I/O latency p99", "p99 block request latency per device and operation. " + _BPF,
                  (Q(f"histogram_quantile(0.99, sum by (le, device, op) (rate(infernode_block_io_latency_seconds_bucket"
                     f"{{{INST}}}[{RATE}])))", "{{device}} {{op}}"),), unit="s"),
            Panel("Inference block I/O wait", "Seconds per second inference threads' block requests waited, "
                  "submission to completion, per device (about the number of their requests in flight; the "
                  "time `infernode explain` names as I/O stall), and their requests per second. " + _BPF,
                  (Q(f"rate(infernode_block_io_inference_wait_seconds_total{{{INST}}}[{RATE}])",
                     "{{instance}} {{device}} wait"),
                   Q(f"rate(infernode_block_io_inference_requests_total{{{INST}}}[{RATE}])",
                     "{{instance}} {{device}} requests/s"))),
            Panel("TCP retransmits", "Segments per second retransmitted, by local port range. " + _BPF,
                  (Q(f"rate(infernode_tcp_retransmits_total{{{INST}}}[{RATE}])", "{{instance}} {{local_ports}}"),)),
            Panel("OOM kills", "Processes the kernel OOM killer chose in the interval (node-wide, eBPF) and OOM "
                  "kills per cgroup of the inference slice.",
                  (Q(f"increase(infernode_oom_kills_total{{{INST}}}[{RATE}])", "{{instance}} node"),
                   Q(f'increase(infernode_cgroup_memory_events_total{{{INST}, event="oom_kill"}}[{RATE}])',
                     "{{instance}} {{unit}}"))),
            Panel("Direct reclaim stalls", "Fraction of time allocating threads stalled in direct reclaim, and "
                  "stalls per second, by scope and kind (global or cgroup limit). " + _BPF,
                  (Q(f"rate(infernode_reclaim_stall_seconds_total{{{INST}}}[{RATE}])", "{{scope}} {{kind}} time"),
                   Q(f"rate(infernode_reclaim_stalls_total{{{INST}}}[{RATE}])", "{{scope}} {{kind}} stalls/s"))),
        )),
        Section("eBPF programs", (
            Panel("Programs attached", "1 when the eBPF program is loaded and attached (`infernode ebpf status`).",
                  (Q(f"infernode_ebpf_program_up{{{INST}}}", "{{instance}} {{program}}"),)),
            Panel("Events lost", "Outlier events per second dropped because the ring buffer was full. " + _BPF,
                  (Q(f"rate(infernode_ebpf_events_lost_total{{{INST}}}[{RATE}])", "{{instance}} {{program}}"),)),
            Panel("Inference threads in scope", "Threads of the inference cgroups the programs count as inference.",
                  (Q(f"infernode_ebpf_scope_threads{{{INST}}}", "{{instance}}"),)),
        )),
    ),
)

# --- tuning and bootstrap ------------------------------------------------------------

_BOOT = ("Boot parameters need a node whose boot loader infernode writes (GRUB or BLS entries) and a "
         "profile that sets them.")

STATE = Dashboard(
    "infernode-state", "infernode / Tuning and bootstrap",
    "Whether the node's tuning profile and NVIDIA stack are in their desired state.",
    (
        Section("Tuning", (
            Panel("Tunables drifted", "Tunables whose target is not at the profile's value (0 = none); boot "
                  "parameters waiting for a reboot are counted apart.",
                  (Q(f"count by (instance) (infernode_tuning_in_desired_state{{{INST}}} == 0 unless on(instance, "
                     f"tunable, target) infernode_tuning_pending_reboot{{{INST}}} == 1) or "
                     f"count by (instance) (infernode_tuning_in_desired_state{{{INST}}}) * 0", "{{instance}}"),),
                  kind="stat"),
            Panel("Boot parameters pending reboot", "Boot parameters written to the boot loader that the running "
                  "kernel was not booted with (0 = none); they take effect at the next reboot.",
                  (Q(f"sum by (instance) (infernode_tuning_pending_reboot{{{INST}}})", "{{instance}}"),),
                  kind="stat", needs_real_hardware=_BOOT),
            Panel("Tuning state per tunable", "1 in desired state, 0 drifted, per tunable and target.",
                  (Q(f"infernode_tuning_in_desired_state{{{INST}}}", "{{instance}} {{tunable}} {{target}}"),),
                  kind="table"),
            Panel("Since last verification", "Seconds since the tuning profile was last verified.",
                  (Q(f"time() - infernode_tuning_last_verify_timestamp_seconds{{{INST}}}", "{{instance}}"),), unit="s"),
            Panel("Re-applied knobs", "Knobs set back to their desired value after drift, in the interval.",
                  (Q(f"increase(infernode_tuning_reapplied_total{{{INST}}}[{RATE}])", "{{instance}}"),)),
        )),
        Section("Bootstrap", (
            Panel("Components in desired state", "1 when a component is at its pinned version and held, per "
                  "component.", (Q(f"infernode_bootstrap_in_desired_state{{{INST}}}", "{{instance}} {{component}}"),),
                  kind="table"),
            Panel("Installed versions", "Installed and pinned version of each NVIDIA stack component.",
                  (Q(f"infernode_bootstrap_component_info{{{INST}}}",
                     "{{instance}} {{component}} {{installed}} / {{pinned}}"),), kind="table"),
            Panel("Since last bootstrap check", "Seconds since the node was last compared with the manifest.",
                  (Q(f"time() - infernode_bootstrap_last_check_timestamp_seconds{{{INST}}}", "{{instance}}"),),
                  unit="s"),
            Panel("NVIDIA PCI devices", "GPUs and NVSwitches on the PCI bus, against the GPUs NVML sees.",
                  (Q(f"infernode_bootstrap_pci_devices{{{INST}}}", "{{instance}} {{kind}}"),
                   Q(f"infernode_gpu_count{{{INST}}}", "{{instance}} nvml gpus"))),
            Panel("Driver version", "NVIDIA driver and CUDA driver version NVML reports.",
                  (Q(f"infernode_gpu_driver_info{{{INST}}}", "{{instance}} {{driver_version}} cuda {{cuda_driver_version}}"),),
                  kind="table"),
        )),
    ),
)

# --- worker health -------------------------------------------------------------------

WORKERS = Dashboard(
    "infernode-workers", "infernode / Worker health",
    "Inference workers the agent supervises: up, restarts, scrape health and node schedulability.",
    (
        Section("Workers", (
            Panel("Worker up", "1 when the worker's unit is active and its health probes pass.",
                  (Q(f"infernode_worker_up{{{WORKER}}}", "{{instance}} {{worker}}"),)),
            Panel("Restarts by reason", "Restarts by the agent in the interval, by reason (exited, unhealthy, "
                  "generation_probe).",
                  (Q(f"increase(infernode_worker_restarts_total{{{WORKER}}}[{RATE}])",
                     "{{instance}} {{worker}} {{reason}}"),)),
            Panel("Node schedulable", "1 when the node should receive inference traffic; reason says why not.",
                  (Q(f"infernode_node_schedulable{{{INST}}}", "{{instance}} {{reason}}"),)),
            Panel("Worker scrape", "Whether the agent's last scrape of the worker's /metrics succeeded, and "
                  "malformed scrapes dropped.",
                  (Q(f"infernode_worker_scrape_up{{{WORKER}}}", "{{instance}} {{worker}} up"),
                   Q(f"infernode_worker_scrape_malformed_total{{{WORKER}}}", "{{instance}} {{worker}} malformed"))),
            Panel("Worker GPU memory", "GPU memory of each worker's unit (per systemd unit).",
                  (Q(f"sum by (instance, unit) (infernode_gpu_process_memory_bytes{{{INST}}})",
                     "{{instance}} {{unit}}"),), unit="bytes"),
            Panel("Worker requests", "Requests per second each vLLM worker finished. " + _VLLM,
                  (Q(f"sum by (instance, worker) (rate(vllm:request_success_total{{{WORKER}}}[{RATE}]))",
                     "{{instance}} {{worker}}"),), unit="reqps"),
        )),
    ),
    variables=("instance", "worker"),
)


_BY_W = "instance, worker, model_name"
_TOKENS = (f"(sum by ({_BY_W}) (rate(infernode_request_prompt_tokens_total{{{WORKER}}}[{RATE}])) "
           f"+ sum by ({_BY_W}) (rate(infernode_request_completion_tokens_total{{{WORKER}}}[{RATE}])) > 0)")
_COST = f"sum by ({_BY_W}) (rate(infernode_worker_cost_total{{{WORKER}}}[{RATE}]))"
_ENERGY = "Energy per worker needs the GPU collector (NVML) on the node that runs the worker."

COST = Dashboard(
    "infernode-cost", "infernode / Cost and efficiency",
    "What each worker's tokens cost at the configured list prices (cost: in the agent's config), and where "
    "GPU time is held but idle. docs/cost.md says how each figure is computed; dashboards/recording.yml has "
    "the same figures as recording rules.",
    (
        Section("Cost", (
            Panel("Cost per million tokens", "Cost of the worker's GPUs (hours and energy) per million tokens "
                  "(prompt + completion), and per million completion tokens.",
                  (Q(f"{_COST} / {_TOKENS} * 1e6", "{{instance}} {{worker}} {{model_name}} all tokens"),
                   Q(f"{_COST} / (sum by ({_BY_W}) (rate(infernode_request_completion_tokens_total{{{WORKER}}}"
                     f"[{RATE}])) > 0) * 1e6", "{{instance}} {{worker}} {{model_name}} completion"))),
            Panel("Cost per hour", "What each worker's GPUs cost per hour, by component (GPU-hours, energy).",
                  (Q(f"sum by (instance, worker, component) (rate(infernode_worker_cost_total{{{WORKER}}}[{RATE}]))"
                     " * 3600", "{{instance}} {{worker}} {{component}}"),)),
            Panel("Requests per unit of currency", "Requests finished per unit of the configured currency.",
                  (Q(f"sum by ({_BY_W}) (rate(infernode_request_e2e_seconds_count{{{WORKER}}}[{RATE}])) "
                     f"/ ({_COST} > 0)", "{{instance}} {{worker}} {{model_name}}"),)),
            Panel("Tokens per joule", "Tokens (prompt + completion) per joule of the worker's GPUs. " + _ENERGY,
                  (Q(f"{_TOKENS} / (sum by ({_BY_W}) (rate(infernode_worker_energy_joules_total{{{WORKER}}}"
                     f"[{RATE}])) > 0)", "{{instance}} {{worker}} {{model_name}}"),),
                  needs_real_hardware=_ENERGY),
        )),
        Section("GPU time", (
            Panel("GPUs held, busy and idle", "GPUs each worker holds (GPU-seconds per second), the busy part "
                  "(utilization-weighted) and the idle part (serving no request).",
                  (Q(f"sum by (instance, worker) (rate(infernode_worker_gpu_seconds_total{{{WORKER}}}[{RATE}]))",
                     "{{instance}} {{worker}} held"),
                   Q(f"sum by (instance, worker) (rate(infernode_worker_gpu_busy_seconds_total{{{WORKER}}}[{RATE}]))",
                     "{{instance}} {{worker}} busy"),
                   Q(f"sum by (instance, worker) (rate(infernode_worker_gpu_idle_seconds_total{{{WORKER}}}[{RATE}]))",
                     "{{instance}} {{worker}} idle"))),
            Panel("Idle share", "Share of held GPU time in which the worker served no request, per worker and "
                  "per node.",
                  (Q(f"sum by (instance, worker) (rate(infernode_worker_gpu_idle_seconds_total{{{WORKER}}}[{RATE}])) "
                     f"/ (sum by (instance, worker) (rate(infernode_worker_gpu_seconds_total{{{WORKER}}}[{RATE}])) "
                     "> 0)", "{{instance}} {{worker}}"),
                   Q(f"sum by (instance) (rate(infernode_worker_gpu_idle_seconds_total{{{INST}}}[{RATE}])) "
                     f"/ (sum by (instance) (rate(infernode_worker_gpu_seconds_total{{{INST}}}[{RATE}])) > 0)",
                     "{{instance}} node")), unit="percentunit"),
            Panel("Idle GPU-hours", "GPU-hours held while serving nothing, over the dashboard's range.",
                  (Q(f"sum by (instance, worker) (increase(infernode_worker_gpu_idle_seconds_total{{{WORKER}}}"
                     f"[$__range])) / 3600", "{{instance}} {{worker}}"),), kind="stat"),
            Panel("GPUs held by a worker", "1 when an active worker holds the GPU, 0 when none does (paid for, "
                  "given to nobody).",
                  (Q(f"infernode_gpu_held{{{INST}}}", "{{instance}} gpu{{gpu}}"),)),
        )),
    ),
    variables=("instance", "worker"),
)

DASHBOARDS = (NODE, GPUS, REQUESTS, KERNEL, STATE, WORKERS, COST)

# --- rendering -----------------------------------------------------------------------

_VARIABLES = {
    "instance": ("Instance", "label_values(infernode_build_info, instance)"),
    "gpu": ("GPU", 'label_values(infernode_gpu_up{instance=~"$instance"}, gpu)'),
    "worker": ("Worker", 'label_values(infernode_worker_up{instance=~"$instance"}, worker)'),
}


def _variable(name: str) -> dict:
    label, query = _VARIABLES[name]
    return {
        "name": name, "label": label, "type": "query", "datasource": DS,
        "query": {"query": query, "refId": f"{name}-var"}, "definition": query,
        "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2, "sort": 1,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
    }


def _panel(p: Panel, pid: int, x: int, y: int) -> dict:
    targets = []
    for i, q in enumerate(p.queries):
        t = {"datasource": DS, "refId": chr(ord("A") + i), "expr": q.expr, "legendFormat": q.legend,
             "range": True, "instant": p.kind == "table", "exemplar": p.exemplars}
        if q.heatmap:
            t["format"] = "heatmap"
        elif p.kind == "table":
            t["format"] = "table"
        targets.append(t)
    out: dict = {
        "id": pid, "type": p.kind, "title": p.title, "datasource": DS,
        "description": p.description + (f" Needs real hardware: {p.needs_real_hardware}"
                                        if p.needs_real_hardware else ""),
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y}, "targets": targets,
        "fieldConfig": {"defaults": {"unit": p.unit}, "overrides": []},
        "infernode": {"needs_real_hardware": p.needs_real_hardware or None},
    }
    if p.kind == "timeseries":
        out["fieldConfig"]["defaults"]["custom"] = {"stacking": {"mode": "normal" if p.stacked else "none"}}
        out["options"] = {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]},
                          "tooltip": {"mode": "multi"}}
    elif p.kind == "heatmap":
        out["options"] = {"calculate": False, "yAxis": {"unit": p.unit}, "exemplars": {"color": "rgba(255,0,255,0.7)"},
                          "cellGap": 1, "color": {"scheme": "Spectral", "mode": "scheme"}}
    elif p.kind == "stat":
        out["options"] = {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value"}
    return out


def render(d: Dashboard) -> dict:
    panels, pid, y = [], 1, 0
    for section in d.sections:
        panels.append({"id": pid, "type": "row", "title": section.title, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        pid, y = pid + 1, y + 1
        for i, p in enumerate(section.panels):
            panels.append(_panel(p, pid, 12 * (i % 2), y + 8 * (i // 2)))
            pid += 1
        y += 8 * ((len(section.panels) + 1) // 2)
    datasource_var = {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
                      "current": {}, "hide": 0}
    return {
        "uid": d.uid, "title": d.title, "description": d.description, "tags": list(d.tags),
        "editable": True, "schemaVersion": 39, "version": 1, "timezone": "browser",
        "time": {"from": "now-1h", "to": "now"}, "refresh": "30s", "graphTooltip": 1,
        "templating": {"list": [datasource_var, *(_variable(v) for v in d.variables)]},
        "annotations": {"list": []}, "links": [{"type": "dashboards", "tags": ["infernode"], "asDropdown": True,
                                                "title": "infernode"}],
        "panels": panels,
    }


def files() -> dict[str, str]:
    return {f"{d.uid.removeprefix('infernode-')}.json": json.dumps(render(d), indent=2) + "\n" for d in DASHBOARDS}


def main(argv: list[str]) -> int:
    stale = []
    for name, text in files().items():
        path = HERE / name
        if "--check" in argv:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"stale dashboards (run python dashboards/build.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
