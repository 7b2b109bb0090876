"""Metric names referenced by a PromQL expression (for the catalog checks of
dashboards and alert rules). A small lexer, not a full parser: it removes string
literals, label matchers, grouping clauses, ranges and Grafana variables, then
keeps identifiers that are not followed by "(" and are not keywords."""

from __future__ import annotations

import re

_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "offset", "bool", "inf", "nan", "atan2",
}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_VARIABLE = re.compile(r"\$\{?[A-Za-z_][A-Za-z0-9_]*(:[a-z]+)?\}?")
_IDENT = re.compile(r"(?<![A-Za-z0-9_:.])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")
# Not inside a name: recorded series such as infernode:worker_cost:rate5m end in digits.
_NUMBER_UNIT = re.compile(r"(?<![A-Za-z0-9_:])\d+(\.\d+)?(e[+-]?\d+)?(ms|s|m|h|d|w|y)?\b")


def metric_names(expr: str) -> set[str]:
    s = _STRING.sub(" ", expr)
    s = _VARIABLE.sub(" ", s)
    s = _MATCHERS.sub(" ", s)
    s = _GROUPING.sub(" ", s)
    s = _RANGE.sub(" ", s)
    s = _NUMBER_UNIT.sub(" ", s)
    out = set()
    for m in _IDENT.finditer(s):
        name, call = m.group(1), m.group(2)
        if call or name.lower() in _KEYWORDS:
            continue
        out.add(name)
    return out
