"""The kernel's CPU list format ("0-3,8,10-11", ranges may carry a ":stride"),
parsed and printed. Pure; the one implementation everything shares (the host
topology, the tuning engine, the worker drop-ins, the config's validators)."""

from __future__ import annotations

from collections.abc import Iterable


class CpuListError(ValueError):
    pass


# The kernel's largest NR_CPUS (CONFIG_NR_CPUS tops out at 8192): no CPU number is higher.
MAX_CPU = 8191


def parse_cpulist(text: str) -> frozenset[int]:
    """The CPUs; empty text -> the empty set. Raises CpuListError naming the bad part."""
    cpus: set[int] = set()
    text = text.strip()
    if not text:
        return frozenset()
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            continue
        stride = 1
        try:
            if ":" in part:
                part, s = part.split(":", 1)
                stride = int(s.split("/")[0])
                if stride < 1:
                    raise CpuListError(f"{text!r}: stride in {raw.strip()!r} must be positive")
            if "-" in part:
                lo_s, hi_s = part.split("-", 1)
                lo, hi = _cpu(lo_s, text), _cpu(hi_s, text)
                if lo > hi:
                    raise CpuListError(f"{text!r}: range {part!r} runs backwards")
                cpus.update(range(lo, hi + 1, stride))
            else:
                cpus.add(_cpu(part, text))
        except CpuListError:
            raise
        except ValueError:
            raise CpuListError(f"{text!r}: expected CPU numbers and ranges like 0-3,8") from None
    if any(c < 0 for c in cpus):
        raise CpuListError(f"{text[:60]!r}: CPU numbers are non-negative")
    return frozenset(cpus)


def _cpu(word: str, text: str) -> int:
    word = word.strip()
    if not (word.isascii() and word.isdigit()) or len(word) > 5 or int(word) > MAX_CPU:
        if word.isascii() and word.isdigit():
            raise CpuListError(f"{text[:60]!r}: CPU {word[:12]} is past the kernel's highest ({MAX_CPU})")
        raise ValueError(word)
    return int(word)


def format_cpulist(cpus: Iterable[int], sep: str = ",") -> str:
    """[0,1,2,3,8] -> "0-3,8" (the kernel's form); sep=" " gives systemd's."""
    ordered = sorted(set(cpus))
    out: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return sep.join(out)
