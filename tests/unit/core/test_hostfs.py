"""Host file I/O: reads that name the file, writes that replace atomically, and
one Absent type for "not on this host"."""

from __future__ import annotations

import os
import stat

import pytest

from agent.absent import Absent
from agent.hostfs import read_if_readable, read_optional, read_text, temp_path, write_atomic, write_if_changed


def test_reads(tmp_path) -> None:
    (tmp_path / "ok").write_text("1\n")
    (tmp_path / "bin").write_bytes(b"\xff\xfe")
    assert read_text(tmp_path / "ok") == "1\n"
    with pytest.raises(ValueError, match="bin: not text"):
        read_text(tmp_path / "bin")
    assert read_optional(tmp_path / "nonesuch") is None
    assert read_optional(tmp_path / "ok" / "below-a-file") is None
    assert read_if_readable(tmp_path / "bin") is None and read_if_readable(tmp_path / "nonesuch") is None


def test_write_atomic_replaces_with_the_mode_asked_for_and_leaves_no_temporary(tmp_path) -> None:
    target = tmp_path / "d" / "state.json"
    old_umask = os.umask(0o077)
    try:
        write_atomic(target, "one", mode=0o644)
    finally:
        os.umask(old_umask)
    assert target.read_text() == "one" and stat.S_IMODE(target.stat().st_mode) == 0o644
    write_atomic(target, b"two", mode=0o600)
    assert target.read_text() == "two" and stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in target.parent.iterdir()) == ["state.json"]


def test_a_failed_write_leaves_the_target_as_it_was(tmp_path) -> None:
    target = tmp_path / "dropin.conf"
    target.write_text("old")
    temp_path(target).mkdir()  # the temporary cannot be opened for writing
    with pytest.raises(IsADirectoryError):
        write_atomic(target, "new")
    assert target.read_text() == "old"


def test_write_if_changed(tmp_path) -> None:
    target = tmp_path / "x"
    assert write_if_changed(target, "a") is True
    mtime = target.stat().st_mtime_ns
    assert write_if_changed(target, b"a") is False and target.stat().st_mtime_ns == mtime
    assert write_if_changed(target, "b") is True and target.read_text() == "b"


def test_absent_is_one_type() -> None:
    from agent.collector import NoDataError
    from agent.paths import Paths
    from collectors.ebpf.probe import check_tracepoints
    from collectors.ebpf.programs import BY_NAME
    from collectors.gpu.nvml_reader import NvmlUnavailable
    from tuning.tunable import Unsupported

    for e in (NoDataError("no PSI", "boot with psi=1"), NvmlUnavailable("no driver", "install it"),
              Unsupported("no cpufreq")):
        assert isinstance(e, Absent) and e.reason and str(e) == e.reason
    verdict = check_tracepoints(Paths("/nonexistent"), BY_NAME["oom"])
    assert not verdict.ok and isinstance(verdict.absent, Absent) and verdict.reason == verdict.absent.reason
