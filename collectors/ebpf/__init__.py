"""Kernel-event telemetry with eBPF (bcc), from tracepoints only."""
