"""Issue 14, item 1: older nvidia-ml-py releases and Python-level failures of the
bindings. The poll never dies; a device whose read fails is counted and goes stale
alone; an entry point the bindings lack is "not supported", not an error."""

from __future__ import annotations

import json

import pytest

from tests.doubles.fake_pynvml import OLDER_RELEASES, SCENARIOS, FakePynvml
from tests.unit.gpu.helpers import make_collector


def _scenario(name: str = "h100_sxm_8x") -> dict:
    return json.loads((SCENARIOS / f"{name}.json").read_text())


def value(samples, name: str, **labels: str) -> float:
    found = [s for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, f"{name}{labels}: {len(found)} series"
    return found[0].value


def two_passes(fake: FakePynvml, **settings: float) -> list:
    """The collector's samples after its first poll and one more; the poll thread is
    still alive after both."""
    c, _, _ = make_collector(fake, **settings)
    c.start()
    try:
        assert c.wait_first_poll(5)
        c.refresh()
        assert c._thread is not None and c._thread.is_alive()  # noqa: SLF001
        return list(c.collect())
    finally:
        c.stop()


@pytest.mark.parametrize("release", sorted(OLDER_RELEASES))
def test_an_older_binding_release_still_reads_every_gpu(release: str) -> None:
    fake = FakePynvml.of_release(release, _scenario())
    assert not hasattr(fake, "nvmlDeviceGetTemperatureV")
    s = two_passes(fake)
    assert value(s, "infernode_gpu_nvml_up") == 1
    for gpu in range(8):
        assert value(s, "infernode_gpu_up", gpu=str(gpu)) == 1
        # The fallback nvmlDeviceGetTemperature answers; a missing entry point is no read error.
        temp = _scenario()["devices"][gpu]["temperature_c"]
        assert value(s, "infernode_gpu_temperature_celsius", gpu=str(gpu), sensor="gpu") == temp
        assert value(s, "infernode_gpu_read_errors_total", gpu=str(gpu)) == 0


def test_topology_without_numa_node_id_comes_from_sysfs() -> None:
    from agent.paths import Paths
    from collectors.gpu.topology import gpu_topology
    from tests.unit.gpu.helpers import FIXTURE_ROOT

    fake = FakePynvml.of_release("12.535.161", _scenario())
    gpus = gpu_topology(Paths(FIXTURE_ROOT), nvml=fake)
    assert [g.numa_node for g in gpus] == [0, 0, 0, 0, 1, 1, 1, 1]


def test_a_python_error_in_one_devices_read_is_counted_and_costs_only_that_device() -> None:
    scenario = _scenario()
    scenario["devices"][3]["python_error"] = {"nvmlDeviceGetPowerUsage": "TypeError"}
    s = two_passes(FakePynvml(scenario), max_age=0.5)
    assert value(s, "infernode_gpu_up", gpu="3") == 0
    assert value(s, "infernode_gpu_read_errors_total", gpu="3") == 2  # both passes
    for gpu in (0, 1, 2, 4, 5, 6, 7):
        assert value(s, "infernode_gpu_up", gpu=str(gpu)) == 1
        assert value(s, "infernode_gpu_read_errors_total", gpu=str(gpu)) == 0
