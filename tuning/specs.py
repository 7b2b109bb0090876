"""The tuning subsystem's metric declarations (see agent/catalog.py)."""

from __future__ import annotations

from agent.catalog import MetricSpec, MetricType

TUNING_IN_DESIRED_STATE = MetricSpec(
    "infernode_tuning_in_desired_state", MetricType.GAUGE,
    "Whether a tunable's target is at the profile's desired value (1) or has drifted (0).",
    labels=("tunable", "target"), source="tuning engine verify: sysfs, procfs, ethtool",
)
TUNING_PENDING_REBOOT = MetricSpec(
    "infernode_tuning_pending_reboot", MetricType.GAUGE,
    "Whether a boot parameter is written where the boot loader reads it but the running kernel was "
    "booted without it (1: takes effect at the next reboot; in_desired_state is 0 meanwhile, and it is not drift).",
    labels=("tunable", "target"), source="tuning engine verify: GRUB configuration and /proc/cmdline",
)
TUNING_REAPPLIED_TOTAL = MetricSpec(
    "infernode_tuning_reapplied_total", MetricType.COUNTER,
    "Knobs the agent set back to their desired value after drift (enforce mode).",
    source="tuning engine apply",
)
TUNING_LAST_VERIFY_TIMESTAMP_SECONDS = MetricSpec(
    "infernode_tuning_last_verify_timestamp_seconds", MetricType.GAUGE,
    "Unix time of the last completed verification of the tuning profile.",
    unit="seconds", source="tuning engine verify",
)
TUNING_SPECS = (
    TUNING_IN_DESIRED_STATE,
    TUNING_PENDING_REBOOT,
    TUNING_REAPPLIED_TOTAL,
    TUNING_LAST_VERIFY_TIMESTAMP_SECONDS,
)
