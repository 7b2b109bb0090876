"""The TCP ports a process listens on, from procfs: its socket inodes
(/proc/<pid>/fd -> socket:[inode]) matched against the LISTEN rows of its network
namespace's /proc/<pid>/net/tcp and tcp6.

For a worker the agent does not supervise, this is how its requests' TCP
retransmits are told from other flows' (a supervised worker's port is in its
settings). Parsing is separate from reading, and both are bounded: a process
with a hundred thousand descriptors costs one directory listing.
"""

from __future__ import annotations

import os

from agent.hostfs import read_if_readable
from agent.paths import Paths

LISTEN = "0A"  # include/net/tcp_states.h TCP_LISTEN


def parse_proc_net_tcp(text: str) -> dict[int, int]:
    """{socket inode: local port} of the LISTEN rows of /proc/net/tcp or tcp6;
    rows that do not parse are skipped."""
    out: dict[int, int] = {}
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != LISTEN:
            continue
        _, _, port_hex = fields[1].rpartition(":")
        try:
            port, inode = int(port_hex, 16), int(fields[9])
        except ValueError:
            continue
        if 0 < port < 65536 and inode > 0:
            out[inode] = port
    return out


def socket_inodes(paths: Paths, pid: int) -> set[int]:
    """Inodes of the sockets `pid` holds open; empty when it is gone or hidden."""
    fd_dir = paths.proc(pid, "fd")
    out: set[int] = set()
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return out
    for name in names:
        try:
            target = os.readlink(fd_dir / name)
        except OSError:
            continue
        if target.startswith("socket:[") and target.endswith("]"):
            try:
                out.add(int(target[8:-1]))
            except ValueError:
                continue
    return out


def listening_ports(paths: Paths, pid: int) -> frozenset[int]:
    """The TCP ports `pid` listens on (IPv4 and IPv6), from its own network namespace."""
    inodes = socket_inodes(paths, pid)
    if not inodes:
        return frozenset()
    listening: dict[int, int] = {}
    for table in ("tcp", "tcp6"):
        listening.update(parse_proc_net_tcp(read_if_readable(paths.proc(pid, "net", table)) or ""))
    return frozenset(port for inode, port in listening.items() if inode in inodes)
