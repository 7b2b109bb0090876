import pytest

from tests.harness.agent import Agent, only_collectors


@pytest.fixture
def agent(tmp_path):
    """The daemon with only the loadavg collector, on a free loopback port."""
    with Agent.start(tmp_path / "agent", {"collectors": only_collectors("loadavg")}) as a:
        yield a


@pytest.fixture
def hung_root(tmp_path):
    """A host root whose /proc/loadavg is a FIFO nobody writes: the real loadavg
    collector blocks in open() for ever, as a read of a wedged procfs/sysfs file would."""
    import os

    root = tmp_path / "hung-root"
    (root / "proc").mkdir(parents=True)
    os.mkfifo(root / "proc" / "loadavg")
    return root
