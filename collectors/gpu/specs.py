"""The GPU collector's metric declarations (the catalog's one source for them)."""

from __future__ import annotations

from agent.catalog import MetricSpec, MetricType

G = MetricType.GAUGE
C = MetricType.COUNTER
GPU = ("gpu", "uuid", "pci_bus_id", "model_name")


def _g(name: str, help: str, unit: str = "", labels: tuple[str, ...] = (), source: str = "NVML") -> MetricSpec:
    return MetricSpec(name, G, help, unit=unit, labels=GPU + labels, source=source)


def _c(name: str, help: str, unit: str = "", labels: tuple[str, ...] = (), source: str = "NVML") -> MetricSpec:
    return MetricSpec(name, C, help, unit=unit, labels=GPU + labels, source=source)


GPU_NVML_UP = MetricSpec(
    "infernode_gpu_nvml_up", G,
    "Whether NVML initialised (1) or the driver or library is missing (0).",
    source="nvmlInit"
)
GPU_DRIVER_INFO = MetricSpec(
    "infernode_gpu_driver_info", G, "NVIDIA driver and CUDA driver versions; constant 1.",
    unit="info", labels=("driver_version", "cuda_driver_version"),
    source="nvmlSystemGetDriverVersion, nvmlSystemGetCudaDriverVersion_v2"
)
GPU_COUNT = MetricSpec("infernode_gpu_count", G, "GPUs NVML enumerates on this node.", source="nvmlDeviceGetCount")
GPU_CACHE_AGE_SECONDS = MetricSpec(
    "infernode_gpu_cache_age_seconds", G,
    "Age of the newest GPU poll the scrape served from; values older than max_age are never served.",
    unit="seconds", source="agent GPU poller"
)
GPU_UP = _g(
    "infernode_gpu_up", "Whether the GPU answered the last poll within max age (1) or is lost or stale (0).",
    source="NVML (GpuIsLost, poll age)"
)
GPU_UTILIZATION_RATIO = _g(
    "infernode_gpu_utilization_ratio",
    "Fraction of the last sample period an engine was busy (gpu, memory_copy, encoder, decoder).",
    unit="ratio", labels=("engine",),
    source="nvmlDeviceGetUtilizationRates, nvmlDeviceGetEncoderUtilization, nvmlDeviceGetDecoderUtilization"
)
GPU_MEMORY_TOTAL_BYTES = _g(
    "infernode_gpu_memory_total_bytes", "Framebuffer memory size.", "bytes",
    source="nvmlDeviceGetMemoryInfo (v2)"
)
GPU_MEMORY_USED_BYTES = _g(
    "infernode_gpu_memory_used_bytes", "Framebuffer memory allocated by processes.", "bytes",
    source="nvmlDeviceGetMemoryInfo (v2)"
)
GPU_MEMORY_FREE_BYTES = _g(
    "infernode_gpu_memory_free_bytes", "Framebuffer memory free for allocation.", "bytes",
    source="nvmlDeviceGetMemoryInfo (v2)"
)
GPU_MEMORY_RESERVED_BYTES = _g(
    "infernode_gpu_memory_reserved_bytes", "Framebuffer memory reserved by the driver and firmware.", "bytes",
    source="nvmlDeviceGetMemoryInfo (v2)"
)
GPU_POWER_WATTS = _g("infernode_gpu_power_watts", "Board power draw.", "watts", source="nvmlDeviceGetPowerUsage (mW)")
GPU_POWER_LIMIT_WATTS = _g(
    "infernode_gpu_power_limit_watts", "Power limit the driver enforces.", "watts",
    source="nvmlDeviceGetEnforcedPowerLimit (mW)"
)
GPU_ENERGY_JOULES_TOTAL = _c(
    "infernode_gpu_energy_joules_total", "Energy the GPU consumed since the driver loaded.", "joules",
    source="nvmlDeviceGetFieldValues NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION (mJ)"
)
GPU_TEMPERATURE_CELSIUS = _g(
    "infernode_gpu_temperature_celsius", "Temperature of a sensor (gpu die, memory for HBM).", "celsius",
    labels=("sensor",),
    source="nvmlDeviceGetTemperatureV, nvmlDeviceGetFieldValues NVML_FI_DEV_MEMORY_TEMP"
)
GPU_CLOCK_HERTZ = _g(
    "infernode_gpu_clock_hertz", "Current clock frequency (sm, memory).", "hertz", labels=("clock",),
    source="nvmlDeviceGetClockInfo (MHz)"
)
GPU_CLOCK_MAX_HERTZ = _g(
    "infernode_gpu_clock_max_hertz", "Maximum clock frequency (sm, memory).", "hertz", labels=("clock",),
    source="nvmlDeviceGetMaxClockInfo (MHz)"
)
GPU_CLOCK_EVENT_REASON_ACTIVE = _g(
    "infernode_gpu_clock_event_reason_active",
    "Whether a clock-event (throttle) reason is active (1) or not (0).", labels=("reason",),
    source="nvmlDeviceGetCurrentClocksEventReasons"
)
GPU_VIOLATION_SECONDS_TOTAL = _c(
    "infernode_gpu_violation_seconds_total",
    "Time a performance policy (power, thermal, ...) held the clocks below their target.", "seconds",
    labels=("policy",), source="nvmlDeviceGetViolationStatus (ns)"
)
GPU_PERFORMANCE_STATE = _g(
    "infernode_gpu_performance_state", "Performance state P0 (fastest) to P15, as its number.",
    source="nvmlDeviceGetPerformanceState"
)
GPU_PERSISTENCE_MODE = _g(
    "infernode_gpu_persistence_mode", "Whether persistence mode is on (1) or off (0).",
    source="nvmlDeviceGetPersistenceMode"
)
GPU_PCIE_REPLAYS_TOTAL = _c(
    "infernode_gpu_pcie_replays_total", "PCIe replays (link-level retransmissions).",
    source="nvmlDeviceGetPcieReplayCounter"
)
GPU_PCIE_LINK_GENERATION = _g(
    "infernode_gpu_pcie_link_generation",
    "PCIe link generation: current; max (NVML: possible with this GPU and this slot); device_max "
    "(the GPU's own capability); upstream_max (the upstream port's capability).",
    labels=("state",),
    source="nvmlDeviceGetCurrPcieLinkGeneration, nvmlDeviceGetMaxPcieLinkGeneration, "
           "nvmlDeviceGetGpuMaxPcieLinkGeneration, sysfs max_link_speed"
)
GPU_PCIE_LINK_WIDTH = _g(
    "infernode_gpu_pcie_link_width",
    "PCIe link width in lanes: current; max (NVML: possible with this GPU and this slot); device_max "
    "(the GPU's own capability); upstream_max (the upstream port's capability).",
    labels=("state",),
    source="nvmlDeviceGetCurrPcieLinkWidth, nvmlDeviceGetMaxPcieLinkWidth, sysfs max_link_width"
)
GPU_PCIE_LINK_DEGRADED = _g(
    "infernode_gpu_pcie_link_degraded",
    "Whether the PCIe link ran below the GPU's own generation or width (1) the last time the GPU was "
    "busy; links downshift at idle, so idle passes do not change it. Absent until judged once.",
    source="NVML current link against the GPU's capability (NVML, sysfs)"
)
GPU_ECC_ERRORS_TOTAL = _c(
    "infernode_gpu_ecc_errors_total",
    "ECC errors, corrected (single-bit) or uncorrected (double-bit); volatile since driver load, "
    "aggregate over the board's life.",
    labels=("type", "scope"), source="nvmlDeviceGetFieldValues NVML_FI_DEV_ECC_{SBE,DBE}_{VOL,AGG}_TOTAL"
)
GPU_REMAPPED_ROWS = _g(
    "infernode_gpu_remapped_rows", "Memory rows remapped because of correctable or uncorrectable errors.",
    labels=("cause",), source="nvmlDeviceGetRemappedRows"
)
GPU_ROW_REMAP_PENDING = _g(
    "infernode_gpu_row_remap_pending", "Whether a row remap is pending a GPU reset (1) or not (0).",
    source="nvmlDeviceGetRemappedRows"
)
GPU_ROW_REMAP_FAILURE = _g(
    "infernode_gpu_row_remap_failure", "Whether a row remap has failed (1) or not (0).",
    source="nvmlDeviceGetRemappedRows"
)
GPU_NVLINK_UP = _g(
    "infernode_gpu_nvlink_up", "Whether an NVLink link is active (1) or not (0).", labels=("link",),
    source="nvmlDeviceGetNvLinkState"
)
GPU_NVLINK_ERRORS_TOTAL = _c(
    "infernode_gpu_nvlink_errors_total", "NVLink data-link errors per link (replay, recovery, crc_flit, crc_data).",
    labels=("link", "counter"), source="nvmlDeviceGetNvLinkErrorCounter"
)
GPU_NVLINK_DATA_BYTES_TOTAL = _c(
    "infernode_gpu_nvlink_data_bytes_total", "NVLink payload bytes over all of the GPU's links (tx, rx).",
    "bytes", labels=("direction",),
    source="nvmlDeviceGetFieldValues NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_{TX,RX} per link (KiB)"
)
GPU_PCIE_DATA_BYTES_TOTAL = _c(
    "infernode_gpu_pcie_data_bytes_total", "PCIe bytes transferred by the GPU (tx, rx).", "bytes",
    labels=("direction",), source="nvmlDeviceGetFieldValues NVML_FI_DEV_PCIE_COUNT_{TX,RX}_BYTES"
)
GPU_GRAPHICS_ACTIVE_RATIO = _g(
    "infernode_gpu_graphics_active_ratio", "Fraction of time any graphics or compute engine was active.",
    "ratio", source="NVML GPM (nvmlGpmMetricsGet GRAPHICS_UTIL)"
)
GPU_SM_ACTIVE_RATIO = _g(
    "infernode_gpu_sm_active_ratio", "Fraction of SMs busy, averaged over the sample period.",
    "ratio", source="NVML GPM (nvmlGpmMetricsGet SM_UTIL)"
)
GPU_SM_OCCUPANCY_RATIO = _g(
    "infernode_gpu_sm_occupancy_ratio", "Resident warps as a fraction of the SMs' maximum.",
    "ratio", source="NVML GPM (nvmlGpmMetricsGet SM_OCCUPANCY)"
)
GPU_TENSOR_ACTIVE_RATIO = _g(
    "infernode_gpu_tensor_active_ratio", "Fraction of time the SMs ran any tensor-core instruction.",
    "ratio", source="NVML GPM (nvmlGpmMetricsGet ANY_TENSOR_UTIL)"
)
GPU_DRAM_ACTIVE_RATIO = _g(
    "infernode_gpu_dram_active_ratio", "Device memory bandwidth used as a fraction of its maximum.",
    "ratio", source="NVML GPM (nvmlGpmMetricsGet DRAM_BW_UTIL)"
)
GPU_XID_ERRORS_TOTAL = _c(
    "infernode_gpu_xid_errors_total",
    "XID errors the driver reported, by XID and NVIDIA's recommended action.",
    labels=("xid", "action"),
    source="nvmlEventSetWait_v2 (nvmlEventTypeXidCriticalError) and the kernel log (NVRM: Xid), counted once"
)
GPU_EVENTS_UNATTRIBUTED_TOTAL = MetricSpec(
    "infernode_gpu_events_unattributed_total", C,
    "GPU events and kernel-log XIDs whose GPU is none NVML enumerated (counted here, not per GPU).",
    labels=("source",), source="nvmlEventSetWait_v2, /dev/kmsg"
)
GPU_EVENT_THREAD_UP = MetricSpec(
    "infernode_gpu_event_thread_up", G,
    "Whether NVML XID/ECC events flow (1): an event set is registered and its last wait did not fail.",
    source="nvmlEventSetWait_v2"
)
GPU_KERNEL_LOG_UP = MetricSpec(
    "infernode_gpu_kernel_log_up", G,
    "Whether the agent follows /dev/kmsg for NVIDIA XID and SXid lines (1).",
    source="/dev/kmsg"
)
GPU_KERNEL_LOG_LOST_TOTAL = MetricSpec(
    "infernode_gpu_kernel_log_records_lost_total", C,
    "Kernel-log records overwritten before the agent read them (gaps in their sequence numbers).",
    source="/dev/kmsg"
)
NVSWITCH_SXID_ERRORS_TOTAL = MetricSpec(
    "infernode_nvswitch_sxid_errors_total", C,
    "NVSwitch SXid errors the driver logged, by switch, SXid and severity (fatal, non_fatal, unknown).",
    labels=("switch", "pci_bus_id", "sxid", "severity"), source="/dev/kmsg (nvidia-nvswitchN: SXid)"
)
GPU_PROCESS_MEMORY_BYTES = _g(
    "infernode_gpu_process_memory_bytes",
    "GPU memory used by compute processes, summed per systemd unit (or cgroup) of the process.",
    "bytes", labels=("unit",),
    source="nvmlDeviceGetComputeRunningProcesses, /proc/<pid>/cgroup"
)
GPU_READ_ERRORS_TOTAL = _c(
    "infernode_gpu_read_errors_total",
    "NVML calls for this GPU that failed with an error other than not supported.",
    source="NVML"
)
GPU_READ_STUCK = _g(
    "infernode_gpu_read_stuck",
    "Whether this GPU's read has been inside one NVML call for longer than stuck_after (1): "
    "the GPU is hung (often a GSP timeout, XID 119/120); the other GPUs are read as usual.",
    source="agent GPU poller (one reader thread per GPU)"
)
GPU_FABRIC_UP = _g(
    "infernode_gpu_fabric_up",
    "Whether the GPU's NVLink-fabric registration completed without error (1); absent on GPUs on no "
    "fabric. 0 on HGX usually means the fabric manager is stopped or mismatched: CUDA fails there.",
    source="nvmlDeviceGetGpuFabricInfoV (state, status)"
)
GPU_FABRIC_STATE = _g(
    "infernode_gpu_fabric_state",
    "The GPU's fabric registration state (not_started, in_progress, completed): 1 for the current one.",
    labels=("state",), source="nvmlDeviceGetGpuFabricInfoV"
)
GPU_RECOVERY_ACTION = _g(
    "infernode_gpu_recovery_action",
    "NVIDIA's recommended recovery for the GPU now (none, gpu_reset, node_reboot, drain_p2p, "
    "drain_and_reset, ...); constant 1, the action in the label.",
    labels=("action",), source="nvmlDeviceGetFieldValues NVML_FI_DEV_GET_GPU_RECOVERY_ACTION"
)
GPU_MIG_MODE = _g(
    "infernode_gpu_mig_mode",
    "Whether MIG mode is on (1), now (current) and after the next GPU reset (pending).",
    labels=("state",), source="nvmlDeviceGetMigMode"
)
GPU_MIG_MEMORY_USED_BYTES = _g(
    "infernode_gpu_mig_memory_used_bytes", "Memory allocated in one MIG instance.", "bytes",
    labels=("gpu_instance", "compute_instance"),
    source="nvmlDeviceGetMigDeviceHandleByIndex, nvmlDeviceGetMemoryInfo (v2) of the MIG device"
)
GPU_MIG_MEMORY_TOTAL_BYTES = _g(
    "infernode_gpu_mig_memory_total_bytes", "Memory size of one MIG instance.", "bytes",
    labels=("gpu_instance", "compute_instance"),
    source="nvmlDeviceGetMigDeviceHandleByIndex, nvmlDeviceGetMemoryInfo (v2) of the MIG device"
)
GPU_INVENTORY_INFO = _g(
    "infernode_gpu_inventory_info",
    "The board's identity for an RMA: serial, VBIOS, InfoROM image and board part number (empty when "
    "NVML does not say); constant 1.",
    unit="info", labels=("serial", "vbios_version", "inforom_image_version", "board_part_number"),
    source="nvmlDeviceGetSerial, nvmlDeviceGetVbiosVersion, nvmlDeviceGetInforomImageVersion, "
           "nvmlDeviceGetBoardPartNumber"
)
GPU_POWER_LIMIT_BOUND_WATTS = _g(
    "infernode_gpu_power_limit_bound_watts",
    "The board's default power limit and the range an operator may set it within (default, min, max).",
    "watts", labels=("bound",),
    source="nvmlDeviceGetPowerManagementDefaultLimit, nvmlDeviceGetPowerManagementLimitConstraints (mW)"
)
GPU_TEMPERATURE_THRESHOLD_CELSIUS = _g(
    "infernode_gpu_temperature_threshold_celsius",
    "GPU temperature at which the board slows down (slowdown) or shuts down (shutdown).",
    "celsius", labels=("threshold",), source="nvmlDeviceGetTemperatureThreshold"
)
SPECS = (
    GPU_NVML_UP,
    GPU_DRIVER_INFO,
    GPU_COUNT,
    GPU_CACHE_AGE_SECONDS,
    GPU_UP,
    GPU_UTILIZATION_RATIO,
    GPU_MEMORY_TOTAL_BYTES,
    GPU_MEMORY_USED_BYTES,
    GPU_MEMORY_FREE_BYTES,
    GPU_MEMORY_RESERVED_BYTES,
    GPU_POWER_WATTS,
    GPU_POWER_LIMIT_WATTS,
    GPU_ENERGY_JOULES_TOTAL,
    GPU_TEMPERATURE_CELSIUS,
    GPU_CLOCK_HERTZ,
    GPU_CLOCK_MAX_HERTZ,
    GPU_CLOCK_EVENT_REASON_ACTIVE,
    GPU_VIOLATION_SECONDS_TOTAL,
    GPU_PERFORMANCE_STATE,
    GPU_PERSISTENCE_MODE,
    GPU_PCIE_REPLAYS_TOTAL,
    GPU_PCIE_LINK_GENERATION,
    GPU_PCIE_LINK_WIDTH,
    GPU_PCIE_LINK_DEGRADED,
    GPU_ECC_ERRORS_TOTAL,
    GPU_REMAPPED_ROWS,
    GPU_ROW_REMAP_PENDING,
    GPU_ROW_REMAP_FAILURE,
    GPU_NVLINK_UP,
    GPU_NVLINK_ERRORS_TOTAL,
    GPU_NVLINK_DATA_BYTES_TOTAL,
    GPU_PCIE_DATA_BYTES_TOTAL,
    GPU_GRAPHICS_ACTIVE_RATIO,
    GPU_SM_ACTIVE_RATIO,
    GPU_SM_OCCUPANCY_RATIO,
    GPU_TENSOR_ACTIVE_RATIO,
    GPU_DRAM_ACTIVE_RATIO,
    GPU_XID_ERRORS_TOTAL,
    GPU_PROCESS_MEMORY_BYTES,
    GPU_READ_ERRORS_TOTAL,
    GPU_READ_STUCK,
    GPU_FABRIC_UP,
    GPU_FABRIC_STATE,
    GPU_RECOVERY_ACTION,
    GPU_EVENTS_UNATTRIBUTED_TOTAL,
    GPU_EVENT_THREAD_UP,
    GPU_KERNEL_LOG_UP,
    GPU_KERNEL_LOG_LOST_TOTAL,
    NVSWITCH_SXID_ERRORS_TOTAL,
    GPU_MIG_MODE,
    GPU_MIG_MEMORY_USED_BYTES,
    GPU_MIG_MEMORY_TOTAL_BYTES,
    GPU_INVENTORY_INFO,
    GPU_POWER_LIMIT_BOUND_WATTS,
    GPU_TEMPERATURE_THRESHOLD_CELSIUS,
)
