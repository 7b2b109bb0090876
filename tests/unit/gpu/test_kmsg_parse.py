"""The kernel-log XID/SXid parser (collectors/gpu/kmsg.py), and the de-duplication of
one XID seen by NVML and by the kernel log."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.gpu.kmsg import SxidLine, XidLine, matches_gpu, parse_line, parse_record
from collectors.gpu.xid_dedup import XidDedup


def test_xid_lines_as_drivers_print_them() -> None:
    line = parse_line("NVRM: Xid (PCI:0000:3b:00): 79, pid='<unknown>', name=<unknown>, "
                      "GPU has fallen off the bus.")
    assert line == XidLine("0000:3b:00", 79, "pid='<unknown>', name=<unknown>, GPU has fallen off the bus.")
    gsp = parse_line("NVRM: Xid (PCI:0000:C2:00): 119, pid=1582259, name=nvc:[driver], Timeout after 6s of "
                     "waiting for RPC response from GPU1 GSP! Expected function 76 (GSP_RM_CONTROL)")
    assert isinstance(gsp, XidLine) and gsp.xid == 119 and gsp.pci == "0000:c2:00"
    old = parse_line("NVRM: Xid (0000:03:00): 13, 0003 00000000 0000a097 00001b0c 00000001 00000000")
    assert isinstance(old, XidLine) and old.xid == 13 and old.pci == "0000:03:00"


def test_sxid_lines_with_and_without_severity() -> None:
    fatal = parse_line("nvidia-nvswitch3: SXid (PCI:0000:c1:00.0): 20034, Fatal, Link 30 LTSSM Fault Up")
    assert fatal == SxidLine("3", "0000:c1:00.0", 20034, True, "Fatal, Link 30 LTSSM Fault Up")
    nonfatal = parse_line("nvidia-nvswitch0: SXid (PCI:0000:89:00.0): 12028, Non-fatal, Link 47 egress "
                          "non-posted PRIV error (First)")
    assert isinstance(nonfatal, SxidLine) and nonfatal.fatal is False and nonfatal.sxid == 12028
    bare = parse_line("nvidia-nvswitch1: SXid (PCI:0000:8a:00.0): 24007, Data 0x0")
    assert isinstance(bare, SxidLine) and bare.fatal is None


def test_other_kernel_lines_are_not_xids() -> None:
    for text in ("NVRM: loading NVIDIA UNIX x86_64 Kernel Module  550.90.07",
                 "nvidia-nvswitch0: probe of 0000:05:00.0 failed", "Xid 79", "NVRM: Xid (PCI:zz:00:00): 79, x",
                 "NVRM: Xid (PCI:0000:3b:00): , missing number"):
        assert parse_line(text) is None, text


def test_kmsg_records_and_their_continuation_lines() -> None:
    rec = parse_record(b"4,1234,5678901,-;NVRM: Xid (PCI:0000:3b:00): 79, x\n SUBSYSTEM=pci\n DEVICE=+pci:0000:3b:00.0\n")
    assert rec is not None and rec.seq == 1234 and rec.usec == 5678901
    assert rec.message == "NVRM: Xid (PCI:0000:3b:00): 79, x"
    assert parse_record(b"garbage without a separator") is None
    assert parse_record(b"4,x,y,-;text") is None
    assert parse_record(b"4;text") is None


def test_line_address_matches_the_gpu_with_or_without_function() -> None:
    assert matches_gpu("0000:3b:00", "0000:3b:00.0")
    assert matches_gpu("0000:3b:00.0", "0000:3b:00.0")
    assert not matches_gpu("0000:3b:00", "0000:3c:00.0")
    assert not matches_gpu("0000:3b:00.1", "0000:3b:00.0")


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_records_never_raise(raw: bytes) -> None:
    rec = parse_record(raw)
    if rec is not None:
        parse_line(rec.message)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=200), st.integers(0, 10**7), st.text(max_size=200))
def test_fuzz_lines_never_raise_and_keep_the_number(prefix: str, n: int, rest: str) -> None:
    line = parse_line(f"{prefix}NVRM: Xid (PCI:0000:3b:00): {n}, {rest}")
    if isinstance(line, XidLine) and n < 10**6:
        assert line.xid == n or line.pci != "0000:3b:00"


def test_dedup_counts_one_xid_from_two_sources_once_and_repeats_from_one_source_twice() -> None:
    d = XidDedup(window=10)
    key = ("GPU-a", 48)
    assert not d.is_duplicate(key, "nvml", 100.0)
    assert d.is_duplicate(key, "kernel_log", 101.0), "the log's copy of the NVML event"
    assert not d.is_duplicate(key, "nvml", 102.0), "a second error: no unmatched copy left"
    assert not d.is_duplicate(key, "nvml", 103.0), "two errors from one source are two"
    assert d.is_duplicate(key, "kernel_log", 104.0)
    assert d.is_duplicate(key, "kernel_log", 104.5)
    assert not d.is_duplicate(key, "kernel_log", 105.0), "both NVML reports already matched"
    assert not d.is_duplicate(("GPU-b", 48), "nvml", 105.0), "another GPU is another error"
    assert not d.is_duplicate(key, "nvml", 200.0), "outside the window: a new error"
    d.prune(500.0)
    assert not d._pending
