"""The kernel command line and infernode's GRUB drop-in, parsed and printed. Pure.

The command line is split as the kernel's own `next_arg()` (lib/cmdline.c) splits
it: words separated by whitespace, double quotes group a value with spaces in it
and are removed, and `--` ends the kernel's parameters (what follows goes to init).
Parameter names compare with `-` and `_` as one character, as the kernel's
`parameq()` does.

The drop-in (`/etc/default/grub.d/99-infernode.cfg`) holds one line per boot
tunable, each appending that tunable's parameters to GRUB_CMDLINE_LINUX_DEFAULT,
which grub-mkconfig puts on the kernel line of every normal (not recovery) entry.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# A parameter is (name, value); a flag such as `nosoftlockup` has the value None.
Param = tuple[str, str | None]


def split_cmdline(text: str) -> list[Param]:
    """The kernel's parameters in order, up to `--`."""
    params: list[Param] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            return params
        start, in_quote, equals = i, False, -1
        while i < n and (in_quote or not text[i].isspace()):
            if text[i] == '"':
                in_quote = not in_quote
            elif text[i] == "=" and equals < 0:
                equals = i
            i += 1
        word = text[start:i]
        if word == "--":
            return params
        if equals < 0:
            params.append((word.replace('"', ""), None))
        else:
            name = text[start:equals].replace('"', "")
            value = text[equals + 1:i]
            if value.startswith('"'):
                value = value[1:]
                if value.endswith('"'):
                    value = value[:-1]
            params.append((name, value))


def same_name(a: str, b: str) -> bool:
    return a.replace("-", "_") == b.replace("-", "_")


def last_value(params: list[Param], name: str) -> str | None:
    """The value the kernel acts on (the last occurrence): "" for a flag, None when absent."""
    found: str | None = None
    for key, value in params:
        if same_name(key, name):
            found = "" if value is None else value
    return found


def memparse(text: str) -> int:
    """The kernel's memparse(): a number with an optional K/M/G/T suffix, in bytes.
    Raises ValueError."""
    match = re.fullmatch(r"(0x[0-9a-fA-F]+|[0-9]+)([kKmMgGtT]?)", text)
    if not match:
        raise ValueError(f"not a size: {text!r}")
    number = int(match.group(1), 0)
    return number << {"": 0, "k": 10, "m": 20, "g": 30, "t": 40}[match.group(2).lower()]


GIB = 1 << 30


def hugepages_of_size(params: list[Param], size: int) -> str | None:
    """The `hugepages=` value that follows `hugepagesz=<size>` (its page count, or the
    per-node form `0:4,1:4`); None when no pages of that size are reserved at boot."""
    current: int | None = None
    found: str | None = None
    for key, value in params:
        if same_name(key, "hugepagesz") and value is not None:
            try:
                current = memparse(value)
            except ValueError:
                current = None
        elif same_name(key, "hugepages") and value is not None and current == size:
            found = value
    return found


# What a boot tunable may write: shell-safe words only, since the drop-in is sourced.
_SAFE_WORDS = re.compile(r"[A-Za-z0-9_.,:=/+-]+( [A-Za-z0-9_.,:=/+-]+)*")
DROPIN_HEADER = (
    "# Written by infernode (tuning: boot.* tunables); `infernode tune rollback` restores\n"
    "# what was here before. Read by grub-mkconfig (update-grub); one tunable a line.\n"
)
_LINE = re.compile(
    r'GRUB_CMDLINE_LINUX_DEFAULT="\$GRUB_CMDLINE_LINUX_DEFAULT (?P<params>[^"$`\\]*)" # (?P<name>boot\.[a-z0-9_]+)'
)


class DropInError(ValueError):
    pass


def shell_safe(params: str) -> bool:
    return bool(_SAFE_WORDS.fullmatch(params))


def parse_dropin(text: str) -> dict[str, str]:
    """Our drop-in -> {tunable: its parameters}. Raises DropInError on a line we did
    not write (someone edited the file: we will not guess what it means)."""
    entries: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.fullmatch(line.strip())
        if match is None or not shell_safe(match.group("params")):
            raise DropInError(f"line {number} was not written by infernode: {line[:80]!r}")
        entries[match.group("name")] = match.group("params")
    return entries


def render_dropin(entries: Mapping[str, str]) -> str:
    """{tunable: parameters} -> the drop-in's text; raises DropInError on unsafe words."""
    lines = [DROPIN_HEADER]
    for name, params in entries.items():
        if not shell_safe(params):
            raise DropInError(f"{name}: {params!r} is not a list of plain kernel parameters")
        lines.append(f'GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT {params}" # {name}\n')
    return "".join(lines)
