"""The bootstrap subsystem's metric declarations (see agent/catalog.py)."""

from __future__ import annotations

from agent.catalog import MetricSpec, MetricType

BOOTSTRAP_COMPONENT_INFO = MetricSpec(
    "infernode_bootstrap_component_info", MetricType.GAUGE,
    "Installed and pinned package version of each NVIDIA stack component (constant 1).",
    unit="info", labels=("component", "installed", "pinned"),
    source="dpkg-query or rpm, and the bootstrap manifest",
)
BOOTSTRAP_IN_DESIRED_STATE = MetricSpec(
    "infernode_bootstrap_in_desired_state", MetricType.GAUGE,
    "Whether a component is installed at its pinned version and held (1) or not (0).",
    labels=("component",), source="dpkg-query or rpm compared with the bootstrap manifest",
)
BOOTSTRAP_PCI_DEVICES = MetricSpec(
    "infernode_bootstrap_pci_devices", MetricType.GAUGE,
    "NVIDIA devices on PCI by kind (gpu or nvswitch).",
    labels=("kind",), source="pyudev PCI enumeration, vendor 0x10de",
)
BOOTSTRAP_LAST_CHECK_TIMESTAMP_SECONDS = MetricSpec(
    "infernode_bootstrap_last_check_timestamp_seconds", MetricType.GAUGE,
    "Unix time of the last completed comparison of the node with the manifest.",
    unit="seconds", source="bootstrap subsystem",
)
BOOTSTRAP_SPECS = (
    BOOTSTRAP_COMPONENT_INFO,
    BOOTSTRAP_IN_DESIRED_STATE,
    BOOTSTRAP_PCI_DEVICES,
    BOOTSTRAP_LAST_CHECK_TIMESTAMP_SECONDS,
)
