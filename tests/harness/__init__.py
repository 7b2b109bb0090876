"""Helpers that start real parts for tests: network namespaces, Prometheus, systemd roots."""
