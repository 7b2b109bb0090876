"""The kernel's CPU list format ("0-3,8,10-11"), parsed and printed. Pure."""

from __future__ import annotations

from typing import Iterable


class CpuListError(ValueError):
    pass


def parse_cpulist(text: str) -> frozenset[int]:
    cpus: set[int] = set()
    text = text.strip()
    if not text:
        return frozenset()
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                lo_s, hi_s = part.split("-", 1)
                lo, hi = int(lo_s), int(hi_s)
                if lo > hi:
                    raise CpuListError(f"{text!r}: range {part!r} runs backwards")
                cpus.update(range(lo, hi + 1))
            else:
                cpus.add(int(part))
        except ValueError:
            raise CpuListError(f"{text!r}: expected CPU numbers and ranges like 0-3,8") from None
    if any(c < 0 for c in cpus):
        raise CpuListError(f"{text!r}: CPU numbers are non-negative")
    return frozenset(cpus)


def format_cpulist(cpus: Iterable[int]) -> str:
    ordered = sorted(set(cpus))
    out: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(out)
