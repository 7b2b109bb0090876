"""A profile's desired value and how a current value is judged against it.

Forms (DESIGN.md): exact `performance`, any-of `madvise|never`, at-least `>=4096`,
at-most `<=2`. A value of several whitespace-separated fields (net.ipv4.tcp_rmem
`4096 131072 >=16777216`) is matched field by field, each field in any form.
Parsing is pure; no I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass


class DesiredValueError(ValueError):
    pass


@dataclass(frozen=True)
class Desired:
    text: str
    kind: str  # exact | anyof | atleast | atmost | fields
    options: tuple[str, ...] = ()
    bound: int = 0
    fields: tuple[Desired, ...] = ()

    def matches(self, current: str | None) -> bool:
        if current is None:
            return False
        if self.kind == "fields":
            parts = current.split()
            return len(parts) == len(self.fields) and all(f.matches(p) for f, p in zip(self.fields, parts, strict=False))
        if self.kind == "exact":
            return current == self.options[0]
        if self.kind == "anyof":
            return current in self.options
        number = _int_or_none(current)
        if number is None:
            return False
        return number >= self.bound if self.kind == "atleast" else number <= self.bound

    def value_to_write(self, current: str | None = None) -> str:
        """What to write so that `matches` holds: the first option of an any-of,
        the bound of an at-least/at-most; fields that already match are kept."""
        if self.kind == "fields":
            parts = current.split() if current else []
            if len(parts) != len(self.fields):
                parts = [""] * len(self.fields)
            return " ".join(
                p if f.matches(p) else f.value_to_write(p) for f, p in zip(self.fields, parts, strict=False)
            )
        if self.kind in ("exact", "anyof"):
            return self.options[0]
        return str(self.bound)

    def __str__(self) -> str:
        return self.text


def parse_desired(value: object) -> Desired:
    """Parse a profile value (YAML may give an int or a bool-free string)."""
    if isinstance(value, bool) or value is None or isinstance(value, (list, dict, float)):
        raise DesiredValueError(
            f"expected a string or integer (exact, a|b, >=N, <=N), got {type(value).__name__} {value!r}"
        )
    text = str(value).strip()
    if not text:
        raise DesiredValueError("expected a value, got an empty string")
    parts = text.split()
    if len(parts) > 1:
        return Desired(" ".join(parts), "fields", fields=tuple(_parse_one(p) for p in parts))
    return _parse_one(text)


def _parse_one(text: str) -> Desired:
    for prefix, kind in ((">=", "atleast"), ("<=", "atmost")):
        if text.startswith(prefix):
            bound = _int_or_none(text[2:])
            if bound is None:
                raise DesiredValueError(f"{text!r}: {prefix} needs an integer")
            return Desired(text, kind, bound=bound)
    if "|" in text:
        options = tuple(o for o in text.split("|"))
        if any(not o for o in options):
            raise DesiredValueError(f"{text!r}: empty alternative in a|b")
        return Desired(text, "anyof", options=options)
    return Desired(text, "exact", options=(text,))


def _int_or_none(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        return None
