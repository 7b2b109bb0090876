"""Telemetry collectors, one module (or package) per source."""
