"""Absent: what the agent looked for does not exist on this host. Not a failure:
no GPU on a CPU node, no cpufreq in a VM, no kernel headers for eBPF. Every part
of the agent says it the same way: a `reason` a person can read and, where there
is one, the `fix` that `infernode doctor` shows beside it.

Collectors raise NoDataError (agent/collector.py), tunables Unsupported
(tuning/tunable.py), the GPU collector NvmlUnavailable, and the eBPF probe's
Verdict carries one; all are Absent.
"""

from __future__ import annotations


class Absent(Exception):
    def __init__(self, reason: str, fix: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.fix = fix
