"""GPU telemetry, events and topology through NVML (nvidia-ml-py's `pynvml`).

Nothing here imports pynvml at import time: the collector imports it in start()
unless a module object is passed in (tests pass the NVML test double).
"""
