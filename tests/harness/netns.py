"""Network namespaces joined by a veth pair, for tests on the real kernel network stack."""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, capture_output=True, text=True)


@dataclass
class VethPair:
    ns_a: str
    ns_b: str
    if_a: str
    if_b: str
    addr_a: str
    addr_b: str

    def run_a(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sh("ip", "netns", "exec", self.ns_a, *cmd, check=check)

    def run_b(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sh("ip", "netns", "exec", self.ns_b, *cmd, check=check)

    def popen_b(self, *cmd: str, **kw) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", self.ns_b, *cmd], **kw)

    def popen_a(self, *cmd: str, **kw) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", self.ns_a, *cmd], **kw)


@contextlib.contextmanager
def veth_pair(prefix: str = "in", subnet: str = "10.231.0") -> Iterator[VethPair]:
    """Two fresh namespaces `<prefix>a-<id>`/`<prefix>b-<id>` with a veth pair
    (addresses <subnet>.1/24 and .2/24), removed on exit. Needs root."""
    if os.geteuid() != 0:
        raise PermissionError("network namespaces need root")
    tag = uuid.uuid4().hex[:6]
    ns_a, ns_b = f"{prefix}a-{tag}", f"{prefix}b-{tag}"
    if_a, if_b = f"{prefix}A{tag}"[:15], f"{prefix}B{tag}"[:15]
    sh("ip", "netns", "add", ns_a)
    sh("ip", "netns", "add", ns_b)
    try:
        sh("ip", "link", "add", if_a, "netns", ns_a, "type", "veth", "peer", "name", if_b, "netns", ns_b)
        pair = VethPair(ns_a, ns_b, if_a, if_b, f"{subnet}.1", f"{subnet}.2")
        pair.run_a("ip", "addr", "add", f"{pair.addr_a}/24", "dev", if_a)
        pair.run_b("ip", "addr", "add", f"{pair.addr_b}/24", "dev", if_b)
        for run, ifname in ((pair.run_a, if_a), (pair.run_b, if_b)):
            run("ip", "link", "set", "lo", "up")
            run("ip", "link", "set", ifname, "up")
        yield pair
    finally:
        sh("ip", "netns", "del", ns_a, check=False)
        sh("ip", "netns", "del", ns_b, check=False)


@contextlib.contextmanager
def host_link(prefix: str, subnet_base: str = "10.251", subnet: str | None = None,
              prefix_len: int = 30) -> Iterator[tuple[str, str, str]]:
    """A fresh namespace `<prefix>-<id>` joined to this host by a veth pair:
    (namespace, this host's address <subnet>.1, the namespace's <subnet>.2), where
    `subnet` defaults to `<subnet_base>.<from the id>`; removed on exit (deleting the
    namespace destroys its veth end, and with it the peer here). Needs root."""
    tag = uuid.uuid4().hex[:6]
    ns, host_if, ns_if = f"{prefix}-{tag}", f"{prefix}H{tag}"[:15], f"{prefix}N{tag}"[:15]
    subnet = subnet or f"{subnet_base}.{int(tag[:2], 16)}"
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if, "netns", ns)
        sh("ip", "addr", "add", f"{subnet}.1/{prefix_len}", "dev", host_if)
        sh("ip", "link", "set", host_if, "up")
        for args in (("ip", "addr", "add", f"{subnet}.2/{prefix_len}", "dev", ns_if), ("ip", "link", "set", ns_if, "up"),
                     ("ip", "link", "set", "lo", "up")):
            sh("ip", "netns", "exec", ns, *args)
        yield ns, f"{subnet}.1", f"{subnet}.2"
    finally:
        sh("ip", "link", "del", host_if, check=False)
        sh("ip", "netns", "del", ns, check=False)
