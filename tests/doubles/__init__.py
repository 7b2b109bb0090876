"""Test doubles, only for parts absent here: NVML (no GPU) and vLLM (cannot run here),
and subsystems that hang (no real one does once its blocking work is off the event
loop, yet the daemon must survive one). Each mirrors the real interface exactly
(see shared REFERENCE.md; agent/subsystem.py)."""
