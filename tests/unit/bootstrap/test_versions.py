import shutil
import subprocess

import pytest

from agent.bootstrap.versions import compare_debian, compare_rpm, split_evr

PAIRS = [
    ("580.95.05-1", "580.95.05-1"),
    ("580.95.05-1", "580.82.07-1"),
    ("580.65.06-1", "580.95.05-1"),
    ("1:4.4.1-1", "4.9.9-1"),
    ("1:4.4.1-1", "1:4.4.2-1"),
    ("2.28.3-1+cuda13.0", "2.28.3-1+cuda12.9"),
    ("2.28.3-1+cuda13.0", "2.28.3-1"),
    ("1.0~rc1-1", "1.0-1"),
    ("1.0-1~bpo12+1", "1.0-1"),
    ("9.14.0.64-1", "9.9.0.52-1"),
    ("13.0.2-1", "13.0.10-1"),
    ("1.0a", "1.0+"),
    ("1.0", "1.0-0"),
    ("0010", "10"),
    ("1.18.0-1", "1.18.0~rc.1-1"),
]


def _sign(n: int) -> int:
    return (n > 0) - (n < 0)


@pytest.mark.parametrize("a,b", PAIRS)
def test_debian_compare_agrees_with_dpkg(a, b):
    if not shutil.which("dpkg"):
        pytest.skip("dpkg not installed")
    ours = _sign(compare_debian(a, b))
    for op, want in (("lt", -1), ("eq", 0), ("gt", 1)):
        rc = subprocess.run(["dpkg", "--compare-versions", a, op, b]).returncode
        assert (rc == 0) == (ours == want), f"{a} {op} {b}: dpkg rc={rc}, ours={ours}"


def test_debian_epoch_beats_upstream():
    assert compare_debian("1:4.4.1-1", "4.9.9-1") > 0


@pytest.mark.parametrize("a,b,want", [
    ("580.95.05-1.el9", "580.95.05-1.el9", 0),
    ("580.95.05-1.el9", "580.82.07-1.el9", 1),
    ("1:4.4.1-1", "4.9.9-1", 1),
    ("2.28.3-1+cuda13.0", "2.28.3-1+cuda12.9", 1),
    ("1.0~rc1-1", "1.0-1", -1),
    ("1.0^git1-1", "1.0-1", 1),
    ("13.0.2", "13.0.2-1.el9", 0),
    ("1.0a-1", "1.0-1", 1),
    ("10-1", "9-1", 1),
])
def test_rpm_compare(a, b, want):
    assert _sign(compare_rpm(a, b)) == want
    assert _sign(compare_rpm(b, a)) == -want


def test_split_evr():
    assert split_evr("1:4.4.1-1.el9") == (1, "4.4.1", "1.el9")
    assert split_evr("580.95.05") == (0, "580.95.05", "")
