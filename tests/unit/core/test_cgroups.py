from pathlib import Path

import pytest

from agent.cgroups import canonical_cgroup, cgroup_of_pid, parse_proc_cgroup, unit_of_cgroup
from agent.paths import Paths

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"

# This VM's own /proc/self/cgroup (hybrid: v1 controllers, name=systemd, and 0::).
HYBRID = """9:name=systemd:/inference.slice/infernode-worker@llama.service
8:pids:/inference.slice/infernode-worker@llama.service
7:blkio:/inference.slice/infernode-worker@llama.service
4:memory:/inference.slice/infernode-worker@llama.service
3:cpuset:/
2:cpuacct:/inference.slice/infernode-worker@llama.service
1:cpu:/inference.slice/infernode-worker@llama.service
0::/
"""
V1_COMOUNTED = "4:cpu,cpuacct:/system.slice/ssh.service\n3:memory:/system.slice/ssh.service\n"


def test_parse_v2():
    assert parse_proc_cgroup("0::/inference.slice/w.service\n") == {"": "/inference.slice/w.service"}


def test_parse_hybrid_and_co_mounted_controllers():
    got = parse_proc_cgroup(HYBRID)
    assert got[""] == "/" and got["cpuset"] == "/"
    assert got["name=systemd"] == got["memory"] == "/inference.slice/infernode-worker@llama.service"
    v1 = parse_proc_cgroup(V1_COMOUNTED)
    assert v1["cpu"] == v1["cpuacct"] == "/system.slice/ssh.service"


def test_paths_with_colons_survive():
    assert parse_proc_cgroup("0::/a.slice/b:c.scope\n") == {"": "/a.slice/b:c.scope"}


def test_garbage_lines_are_skipped():
    assert parse_proc_cgroup("garbage\n\n0::/x.slice\n") == {"": "/x.slice"}


@pytest.mark.parametrize("text,path", [
    ("0::/inference.slice/w.service\n", "/inference.slice/w.service"),
    (HYBRID, "/inference.slice/infernode-worker@llama.service"),  # v2 path is "/": systemd's wins
    (V1_COMOUNTED, "/system.slice/ssh.service"),
    ("0::/\n", "/"),
    ("", "/"),
])
def test_canonical_path(text, path):
    assert canonical_cgroup(parse_proc_cgroup(text)) == path


@pytest.mark.parametrize("path,unit", [
    ("/inference.slice/infernode-worker@llama.service", "infernode-worker@llama.service"),
    ("/inference.slice/infernode-worker@llama.service/payload", "infernode-worker@llama.service"),
    ("/user.slice/user-0.slice/session-3.scope", "session-3.scope"),
    ("/inference.slice", "inference.slice"),
    ("/", "/"),
    ("/odd", "/odd"),
])
def test_unit_of_cgroup(path, unit):
    assert unit_of_cgroup(path) == unit


def test_cgroup_of_pid_on_the_gpu_node_tree():
    paths = Paths(FIXTURES / "gpu-node-2s8g")
    assert cgroup_of_pid(paths, 41872) == "/inference.slice/infernode-worker@llama.service"
    assert cgroup_of_pid(paths, 42355) == "/inference.slice/infernode-worker@qwen.service"
    assert cgroup_of_pid(paths, 999999) is None
