"""Test doubles, only for parts absent here: NVML (no GPU) and vLLM (cannot run here).
Each mirrors the real interface exactly (see shared REFERENCE.md)."""
