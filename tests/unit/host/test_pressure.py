import pytest

from agent.collector import NoDataError
from collectors.host.pressure import PressureCollector, parse_pressure
from tests.unit.collector_helpers import make_collector, series

CPU = "some avg10=0.03 avg60=0.06 avg300=0.20 total=6299554\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"


def test_total_is_microseconds():
    assert parse_pressure(CPU) == {"some": 6.299554, "full": 0.0}


def test_kernels_before_5_13_print_no_cpu_full_line():
    assert parse_pressure("some avg10=0.00 avg60=0.00 avg300=0.00 total=12\n") == {"some": 0.000012}


@pytest.mark.parametrize("text", [
    "<html>502</html>\n",
    "some avg10=0.03 avg60=0.0",  # truncated before total=
    "some avg10=0.03 total=12x\n",
    "full avg10=0 total=1\n",  # no some line
])
def test_garbage_raises(text):
    with pytest.raises(ValueError):
        parse_pressure(text, "/proc/pressure/cpu")


def test_collector(tree):
    root = tree({"proc/pressure/cpu": CPU,
                 "proc/pressure/io": "some avg10=0 avg60=0 avg300=0 total=5\nfull avg10=0 avg60=0 avg300=0 total=4\n"})
    got = series(make_collector(PressureCollector, root).collect())
    assert got == {
        ("infernode_host_pressure_stall_seconds_total", (("resource", "cpu"), ("scope", "some"))): 6.299554,
        ("infernode_host_pressure_stall_seconds_total", (("resource", "cpu"), ("scope", "full"))): 0.0,
        ("infernode_host_pressure_stall_seconds_total", (("resource", "io"), ("scope", "some"))): 5e-6,
        ("infernode_host_pressure_stall_seconds_total", (("resource", "io"), ("scope", "full"))): 4e-6,
    }


def test_kernel_without_psi_is_no_data_with_a_fix(tmp_path):
    (tmp_path / "proc").mkdir()
    with pytest.raises(NoDataError) as e:
        list(make_collector(PressureCollector, tmp_path).collect())
    assert "psi=1" in e.value.fix
