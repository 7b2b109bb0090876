"""Supervision of the local vLLM workers under systemd."""
