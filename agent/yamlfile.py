"""YAML files an operator writes (config, tuning profiles, manifest), read so that
bad input is a clear one-line error, never a traceback, a hang or a memory blow-up.

Parsing (`parse_yaml`) is apart from the file I/O (`read_yaml_file`). Bounds, each
far past any real file: 1 MiB of text, nesting 64 deep, 100,000 nodes once aliases
are expanded (a 374-byte "billion laughs" expands to 10^9), integers of at most 4,300
digits (Python's own int limit, reported instead of raised).
"""

from __future__ import annotations

import stat
from pathlib import Path

import yaml

MAX_BYTES = 1 << 20
MAX_DEPTH = 64
MAX_NODES = 100_000
# What an error message quotes of a value, at most.
QUOTE_CHARS = 80


class YamlFileError(ValueError):
    """One line saying what is wrong with the file (its path is added by the caller)."""


def quote(value: object, limit: int = QUOTE_CHARS) -> str:
    """repr() of a value for an error message, cut to `limit` characters."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # an int too long to print, a cycle
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses deep nesting and alias expansion past MAX_NODES."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._sizes: dict[int, int] = {}

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise YamlFileError(f"line {mark.line + 1}: nested more than {MAX_DEPTH} levels deep")
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if node is not None:
            self._size(node)
        return node

    def _size(self, node: yaml.Node) -> int:
        key = id(node)
        size = self._sizes.get(key)
        if size is not None:
            return size
        if isinstance(node, yaml.SequenceNode):
            size = 1 + sum(self._sizes.get(id(c), 1) for c in node.value)
        elif isinstance(node, yaml.MappingNode):
            size = 1 + sum(self._sizes.get(id(k), 1) + self._sizes.get(id(v), 1) for k, v in node.value)
        else:
            size = 1
        if size > MAX_NODES:
            raise YamlFileError(f"line {node.start_mark.line + 1}: expands to more than {MAX_NODES} values "
                                "(aliases repeated inside aliases?)")
        self._sizes[key] = size
        return size


def parse_yaml(text: str) -> object:
    """The document in `text`; raises YamlFileError."""
    if len(text) > MAX_BYTES:
        raise YamlFileError(f"larger than {MAX_BYTES} bytes")
    try:
        return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 - a SafeLoader subclass
    except YamlFileError:
        raise
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = " ".join(str(getattr(e, "problem", None) or e).split())
        raise YamlFileError(f"{where}invalid YAML: {problem[:200]}") from None
    except ValueError as e:  # an integer past Python's digit limit, from the int resolver
        raise YamlFileError(f"invalid value: {str(e).split(';')[0]}") from None
    except RecursionError:
        raise YamlFileError("nested too deeply") from None


def decode_text(raw: bytes) -> str:
    """UTF-8 text (a UTF-8 byte-order mark is dropped); raises YamlFileError."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise YamlFileError("is UTF-16 (starts with its byte-order mark); save it as UTF-8")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise YamlFileError(f"not UTF-8 text: byte 0x{raw[e.start]:02x} at offset {e.start}; save it as UTF-8") \
            from None


def read_yaml_file(path: Path, regular_only: bool = True) -> object:
    """Read and parse one YAML file; raises YamlFileError. With `regular_only`, only
    regular files are read (a FIFO or a device would block or never end)."""
    try:
        st = path.stat()
        if regular_only and not stat.S_ISREG(st.st_mode):
            raise YamlFileError("is not a regular file")
        if stat.S_ISREG(st.st_mode) and st.st_size > MAX_BYTES:
            raise YamlFileError(f"larger than {MAX_BYTES} bytes")
        with path.open("rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise YamlFileError(f"cannot read: {e.strerror or e}") from None
    if len(raw) > MAX_BYTES:
        raise YamlFileError(f"larger than {MAX_BYTES} bytes")
    return parse_yaml(decode_text(raw))
