"""Per-request telemetry: the OTLP receiver, request metrics and correlation."""
