"""docs/metrics.md, generated from the metric catalog (the one source)."""

from __future__ import annotations

from pathlib import Path

from agent.catalog import Catalog

METRICS_DOC = Path("docs/metrics.md")

HEADER = """# infernode metrics

Generated from the metric catalog by `infernode docs --write`; do not edit by hand.
`make test` fails when this file is stale.

Units are base units (seconds, bytes, watts, joules, hertz, celsius, ratio).
Counters end in `_total`. Every series is served on the agent's `/metrics`
(Prometheus text by default, OpenMetrics with exemplars when the scraper asks).
"""


def render_metrics_doc(catalog: Catalog) -> str:
    by_owner: dict[str, list[str]] = {}
    for name, owner in catalog.owners.items():
        by_owner.setdefault(owner, []).append(name)
    out = [HEADER]
    for owner in sorted(by_owner, key=lambda o: (o != "agent", o)):
        out.append(f"\n## {owner}\n")
        out.append("| metric | type | unit | labels | help | source |")
        out.append("|---|---|---|---|---|---|")
        for name in sorted(by_owner[owner]):
            s = catalog.specs[name]
            labels = ", ".join(f"`{label}`" for label in s.labels) or "—"
            out.append(
                f"| `{name}` | {s.type.value} | {s.unit or '—'} | {labels} | {_cell(s.help)} | {_cell(s.source)} |"
            )
    if catalog.passthrough:
        out.append("\n## Re-exposed families\n")
        out.append("| prefix | added labels | help | source |")
        out.append("|---|---|---|---|")
        for p in catalog.passthrough:
            labels = ", ".join(f"`{label}`" for label in p.added_labels) or "—"
            out.append(f"| `{p.prefix}*` | {labels} | {_cell(p.help)} | {_cell(p.source)} |")
    return "\n".join(out) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def generated_docs(catalog: Catalog) -> dict[Path, str]:
    """Every generated document, by path relative to the repository root."""
    from agent.config_docs import CONFIG_DOC, render_config_doc
    from agent.event_docs import EVENTS_DOC, render_events_doc
    from tuning.docs import TUNING_DOC, render_tuning_doc

    return {
        METRICS_DOC: render_metrics_doc(catalog),
        TUNING_DOC: render_tuning_doc(),
        CONFIG_DOC: render_config_doc(),
        EVENTS_DOC: render_events_doc(),
    }
