"""CPU lists as sets, for the tuning engine's set arithmetic (the parser is agent.cpulist)."""

from __future__ import annotations

from agent.cpulist import CpuListError, format_cpulist
from agent.cpulist import parse_cpulist as _parse

__all__ = ["CpuListError", "format_cpulist", "parse_cpulist"]


def parse_cpulist(text: str) -> frozenset[int]:
    return frozenset(_parse(text))
