"""The NVIDIA driver's XID and NVSwitch SXid lines in the kernel log: parsing only
(the follower thread is kmsg_follower.py).

NVML's event API cannot deliver XID 79, 119 or 120 (a DCGM maintainer,
NVIDIA/DCGM#162; shared/reference/nvml-dcgm.md D3), and never delivers NVSwitch
SXids; the driver logs every one of them. Formats, as the driver prints them:

    NVRM: Xid (PCI:0000:3b:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.
    NVRM: Xid (PCI:0000:c2:00): 119, pid=1582259, name=nvc:[driver], Timeout after 6s of waiting ...
    NVRM: Xid (0000:03:00): 13, 0003 00000000 ...            (older drivers: no "PCI:")
    nvidia-nvswitch3: SXid (PCI:0000:c1:00.0): 20034, Fatal, Link 30 LTSSM Fault Up
    nvidia-nvswitch0: SXid (PCI:0000:89:00.0): 12028, Non-fatal, Link 47 egress non-posted PRIV error

A /dev/kmsg record is "<prio>,<seq>,<usec>,<flags>[,...];<message>\\n" followed by
continuation lines that start with a space (dictionary KEY=value pairs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_XID = re.compile(r"NVRM: Xid \((?:PCI:)?(?P<pci>[0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}(?:\.[0-7])?)\): "
                  r"(?P<xid>\d{1,6}),\s*(?P<rest>.*)")
_SXID = re.compile(r"nvidia-nvswitch(?P<switch>\d+): SXid \(PCI:(?P<pci>[0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:"
                   r"[0-9a-fA-F]{2}(?:\.[0-7])?)\): (?P<sxid>\d{1,6}),\s*(?P<rest>.*)")
MAX_DETAIL = 160


@dataclass(frozen=True)
class KmsgRecord:
    seq: int
    usec: int  # CLOCK_MONOTONIC at the time of logging, microseconds
    message: str


@dataclass(frozen=True)
class XidLine:
    pci: str  # as normalize_pci gives it: "0000:3b:00" or "0000:3b:00.0"
    xid: int
    detail: str


@dataclass(frozen=True)
class SxidLine:
    switch: str
    pci: str
    sxid: int
    fatal: bool | None  # None when the line does not say
    detail: str


def parse_record(raw: bytes) -> KmsgRecord | None:
    """One read() of /dev/kmsg -> its record, or None for anything malformed."""
    text = raw.decode("utf-8", "replace")
    head, sep, body = text.partition(";")
    if not sep:
        return None
    fields = head.split(",")
    if len(fields) < 3:
        return None
    try:
        seq, usec = int(fields[1]), int(fields[2])
    except ValueError:
        return None
    message = body.split("\n", 1)[0]  # continuation lines carry dictionary pairs only
    return KmsgRecord(seq, usec, message)


def normalize_pci(pci: str) -> str:
    """"00000000:3B:00" -> "0000:3b:00"; a function suffix is kept."""
    pci = pci.lower()
    domain, rest = pci.split(":", 1)
    return f"{domain[-4:].rjust(4, '0')}:{rest}"


def parse_line(message: str) -> XidLine | SxidLine | None:
    m = _XID.search(message)
    if m:
        return XidLine(normalize_pci(m["pci"]), int(m["xid"]), m["rest"].strip()[:MAX_DETAIL])
    m = _SXID.search(message)
    if m:
        rest = m["rest"].strip()
        first = rest.split(",", 1)[0].strip().lower()
        fatal = True if first == "fatal" else False if first == "non-fatal" else None
        return SxidLine(m["switch"], normalize_pci(m["pci"]), int(m["sxid"]), fatal, rest[:MAX_DETAIL])
    return None


def matches_gpu(line_pci: str, gpu_bdf: str) -> bool:
    """Whether the XID line's address (with or without the function) names the GPU at
    `gpu_bdf` (sysfs form, "0000:3b:00.0")."""
    return gpu_bdf == line_pci or gpu_bdf.rsplit(".", 1)[0] == line_pci
