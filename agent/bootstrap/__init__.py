"""Node bring-up: NVIDIA driver and libraries pinned by a manifest (plan, apply, verify)."""
