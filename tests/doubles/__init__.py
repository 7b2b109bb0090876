"""Test doubles, only for parts absent here: NVML (no GPU), vLLM (cannot run here), a
disk whose contention a test controls (this VM's shared virtual disk barely slows under
load), and subsystems that hang (no real one does once its blocking work is off the
event loop, yet the daemon must survive one). Each mirrors the real interface exactly
(see shared REFERENCE.md; agent/subsystem.py)."""
