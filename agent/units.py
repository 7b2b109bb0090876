"""Parsing of human-friendly durations, sizes and listen addresses in config."""

from __future__ import annotations

import ipaddress
import math
import re

# ASCII digits only ("\d" takes Devanagari and other scripts' digits too), and few
# enough of them that the number stays finite and exact.
_DURATION_RE = re.compile(r"^\s*([0-9]{1,15}(?:\.[0-9]{1,9})?)\s*(ns|us|µs|ms|s|m|h|d)?\s*$")
# Past these no setting makes sense, and a bigger number would overflow what it feeds.
MAX_DURATION_S = 365 * 86400.0
MAX_SIZE_BYTES = 1 << 50
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE_RE = re.compile(r"^\s*([0-9]{1,15}(?:\.[0-9]{1,9})?)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "ki": 1024, "kib": 1024,
    "m": 1000**2, "mb": 1000**2, "mi": 1024**2, "mib": 1024**2,
    "g": 1000**3, "gb": 1000**3, "gi": 1024**3, "gib": 1024**3,
    "t": 1000**4, "tb": 1000**4, "ti": 1024**4, "tib": 1024**4,
}


def parse_duration(value: object) -> float:
    """Seconds from 15, 1.5, "15s", "500ms", "5m"; raises ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 15s, 500ms or 5m")
    seconds: float | None = None
    if isinstance(value, (int, float)):
        try:
            seconds = float(value)
        except OverflowError:
            seconds = math.inf
    elif isinstance(value, str):
        m = _DURATION_RE.match(value)
        if m:
            seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2) or "s"]
    if seconds is None:
        raise ValueError("expected a duration like 15s, 500ms or 5m")
    if not math.isfinite(seconds):
        raise ValueError("a duration must be a finite number of seconds")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    if seconds > MAX_DURATION_S:
        raise ValueError(f"a duration cannot exceed {MAX_DURATION_S / 86400:g} days")
    return seconds


def parse_size(value: object) -> int:
    """Bytes from 1024, "64MiB", "1G"; raises ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("expected a size like 64MiB or 1GiB")
    size: int | None = None
    if isinstance(value, int):
        size = value
    elif isinstance(value, str):
        m = _SIZE_RE.match(value)
        if m:
            size = int(float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "").lower()])
    if size is None:
        raise ValueError("expected a size like 64MiB or 1GiB")
    if size < 0:
        raise ValueError("a size cannot be negative")
    if size > MAX_SIZE_BYTES:
        raise ValueError(f"a size cannot exceed {MAX_SIZE_BYTES} bytes (1 PiB)")
    return size


def parse_listen(value: object) -> tuple[str, int]:
    """(host, port) from ":9480", "127.0.0.1:9480", "[::1]:9480", "localhost:9480".
    An empty host means all addresses."""
    if not isinstance(value, str) or ":" not in value:
        raise ValueError("expected HOST:PORT, e.g. :9480 or 127.0.0.1:9480")
    if value.startswith("["):
        host, sep, port = value[1:].partition("]:")
        if not sep:
            raise ValueError("expected [IPv6]:PORT, e.g. [::1]:9480")
        ipaddress.IPv6Address(host)
    else:
        host, _, port = value.rpartition(":")
        if host and not _valid_host(host):
            raise ValueError(f"{host!r} is not an IP address or host name")
    if not (port.isascii() and port.isdigit() and len(port) <= 5) or not 0 <= int(port) <= 65535:
        raise ValueError(f"port {port!r} is not a number from 0 to 65535")
    return host, int(port)


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    if re.match(r"^\d+(\.\d+)*$", host):
        return False  # looks numeric but is no valid IPv4 address
    label = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    return bool(re.match(rf"^(?=.{{1,253}}$){label}(\.{label})*$", host))


def short_duration(seconds: float) -> str:
    """A duration in a cause's words: "1.25 s" from one second, else "340 ms"."""
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1000:.0f} ms"
