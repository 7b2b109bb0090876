"""A pydantic validation error in words a person can act on: the key path, what
was expected and the value given (cut short), one line per problem. Shared by the
config and the bootstrap manifest, so both read the same way."""

from __future__ import annotations

from pydantic_core import ErrorDetails

from agent.yamlfile import quote


def describe(err: ErrorDetails) -> str:
    path = ".".join(str(p) for p in err["loc"]) or "top level"
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return f"{path}: unknown key"
    msg = str(err.get("msg", ""))
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    value = err.get("input")
    # A missing key has no value to show; a mapping's problems are its keys'.
    shown = "" if kind == "missing" or isinstance(value, dict) else f" (got {quote(value)})"
    return f"{path}: {msg}{shown}"
