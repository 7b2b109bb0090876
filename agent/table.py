"""Plain-text tables for the command line: columns padded to their widest cell,
chosen columns wrapped at a width, no trailing blanks."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence


def format_rows(headers: tuple[str, ...], data: Sequence[tuple[object, ...]],
                max_widths: dict[int, int] | None = None) -> str:
    caps = max_widths or {}
    cells = [[textwrap.wrap(str(v), caps[i]) or [""] if i in caps else [str(v)] for i, v in enumerate(row)]
             for row in data]
    widths = [max([len(h)] + [len(line) for row in cells for line in row[i]]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=False)).rstrip()]
    for row in cells:
        for k in range(max(len(c) for c in row)):
            parts = [(c[k] if k < len(c) else "").ljust(w) for c, w in zip(row, widths, strict=False)]
            lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)
