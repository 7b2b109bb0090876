# The eBPF tests' loaded programs and inference cgroup, for the correlation tests
# on the real kernel (one clang run per session for this directory).
from tests.integration.ebpf.conftest import ebpf, inference_cgroup  # noqa: F401
