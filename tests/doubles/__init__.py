"""Test doubles, only for parts absent here: NVML (no GPU), vLLM (cannot run here) and a
disk whose contention a test controls (this VM's shared virtual disk barely slows under load).
Each mirrors the real interface exactly (see shared REFERENCE.md)."""
