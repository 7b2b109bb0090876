"""Test double for the part of `pynvml` (nvidia-ml-py) that bootstrap verify uses:
nvmlInit, nvmlDeviceGetCount, nvmlShutdown and the NVMLError classes, with the same
names and signatures. Configure it by constructing it; it has no GPU behind it."""

from __future__ import annotations


class NVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return {9: "Driver Not Loaded", 12: "NVML Shared Library Not Found"}.get(self.value, f"NVML error {self.value}")


class NVMLError_DriverNotLoaded(NVMLError):  # noqa: N801 - pynvml's spelling
    def __init__(self) -> None:
        super().__init__(9)


class FakePynvml:
    """Stands in for the `pynvml` module: `FakePynvml(count=8)` or `FakePynvml(init_error=...)`."""

    NVMLError = NVMLError
    NVMLError_DriverNotLoaded = NVMLError_DriverNotLoaded

    def __init__(self, count: int = 0, init_error: NVMLError | None = None) -> None:
        self._count = count
        self._init_error = init_error
        self.refs = 0

    def nvmlInit(self) -> None:  # noqa: N802
        if self._init_error is not None:
            raise self._init_error
        self.refs += 1

    def nvmlShutdown(self) -> None:  # noqa: N802
        if self.refs == 0:
            raise NVMLError(1)  # NVML_ERROR_UNINITIALIZED
        self.refs -= 1

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        if self.refs == 0:
            raise NVMLError(1)
        return self._count
