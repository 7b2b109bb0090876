"""Names for what the agent handles but cannot type: values of libraries that ship
no type information, and documents decoded from JSON or YAML by key.

Each is `Any`, and each says why. They are the only `Any` annotations of
parameters and returns in the product (ruff's ANN401 refuses a bare one), so this
file is the list of where the type checker cannot help.
"""

from __future__ import annotations

from typing import Any

# The pynvml module (nvidia-ml-py ships no stubs and builds its functions at run
# time), or the test double that mirrors it function by function.
Nvml = Any
# What pynvml hands back and takes again: device handles, event sets, event data
# and GPM samples (ctypes pointers and structures).
NvmlObject = Any
# bcc's BPF object and its tables (python3-bpfcc has no stubs), and the raw
# pointers its perf-buffer callbacks receive.
Bpf = Any
# pyudev's Context and Monitor (no stubs).
Udev = Any
# grpc.aio's method handlers and the continuation of a server interceptor
# (grpcio ships no stubs).
GrpcHandler = Any
# A JSON document read by key (a worker's /version and /v1/models answers); its
# reader checks each field it takes.
JsonDocument = Any
# An OTLP attribute's value as Python data: str, bool, int, float, bytes, None, or
# lists and string-keyed dicts of them (array and kvlist values). The recursive
# union would make every reader narrow what it already checks by key.
OtlpAttribute = Any
