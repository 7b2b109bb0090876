"""vLLM's /metrics, re-exposed on the agent's: parse, keep `vllm:*`, add labels.

Pure: text in, Samples out. The passthrough convention the exposition reads back
(agent/exposition.py): a histogram series is one Sample named after its family
with a HistogramValue; a counter series is a Sample named `<family>_total`; a
gauge series is a Sample named after its family. `_created` series are dropped
(the agent's own scrape time would be wrong for them and Prometheus ignores them).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample as PromSample

from agent.samples import HistogramValue, Sample

PREFIX = "vllm:"
# vLLM's HTTP server families kept besides vllm:* (family names as the parser gives
# them: a counter's without _total). Their summaries and the unlabelled "highr"
# histogram are left out.
HTTP_FAMILIES = frozenset({"http_requests", "http_request_duration_seconds"})
ADDED_LABELS = ("worker", "gpus")


@dataclass
class ParsedExposition:
    samples: list[Sample] = field(default_factory=list)
    # Families of a type the passthrough cannot round-trip (summary, untyped, ...).
    skipped_families: list[str] = field(default_factory=list)


class MalformedExposition(ValueError):
    pass


def _relabel(labels: dict[str, str], added: dict[str, str]) -> dict[str, str]:
    out = {}
    for k, v in labels.items():
        # Prometheus' honor_labels=false convention: the scraper's label wins.
        out[f"exported_{k}" if k in added else k] = v
    out.update(added)
    return out


def parse_vllm_metrics(text: str, worker: str, gpus: str) -> ParsedExposition:
    """Samples for every `vllm:*` family in `text`, with worker and gpus labels.

    Raises MalformedExposition for text the Prometheus parser rejects or a histogram
    that is not cumulative; the caller drops the whole scrape (a partial one would
    make rates lie)."""
    added = {"worker": worker, "gpus": gpus}
    out = ParsedExposition()
    try:
        families = list(text_string_to_metric_families(text))
    except Exception as e:  # noqa: BLE001 - the parser raises ValueError, IndexError, KeyError... on bad input
        raise MalformedExposition(f"unparseable exposition: {type(e).__name__}: {e}") from None
    # The 0.0.4 text format has no _created of its own: prometheus_client writes a
    # counter's or histogram's creation time as a separate gauge family "<name>_created".
    created = {f"{f.name}_created" for f in families if f.type in ("counter", "histogram")}
    for fam in families:
        if not (fam.name.startswith(PREFIX) or fam.name in HTTP_FAMILIES) or fam.name in created:
            continue
        if fam.type == "counter":
            for s in fam.samples:
                if s.name.endswith("_total"):
                    out.samples.append(Sample(s.name, _relabel(s.labels, added), float(s.value)))
        elif fam.type == "gauge":
            for s in fam.samples:
                out.samples.append(Sample(s.name, _relabel(s.labels, added), float(s.value)))
        elif fam.type == "histogram":
            out.samples.extend(_histograms(fam.name, fam.samples, added))
        else:
            out.skipped_families.append(fam.name)
    return out


def _histograms(name: str, samples: Iterable[PromSample], added: dict[str, str]) -> list[Sample]:
    series: dict[tuple, dict] = {}
    for s in samples:
        labels = {k: v for k, v in s.labels.items() if k != "le"}
        key = tuple(sorted(labels.items()))
        entry = series.setdefault(key, {"labels": labels, "buckets": [], "sum": None, "count": None})
        if s.name == f"{name}_bucket":
            try:
                bound = float(s.labels["le"])
            except (KeyError, ValueError):
                raise MalformedExposition(f"{name}_bucket without a numeric le label") from None
            entry["buckets"].append((bound, float(s.value)))
        elif s.name == f"{name}_sum":
            entry["sum"] = float(s.value)
        elif s.name == f"{name}_count":
            entry["count"] = float(s.value)
    out = []
    for entry in series.values():
        buckets = sorted(entry["buckets"])
        if not buckets or buckets[-1][0] != math.inf:
            raise MalformedExposition(f"{name}: histogram series {entry['labels']} has no +Inf bucket")
        counts = [c for _, c in buckets]
        if counts != sorted(counts):
            raise MalformedExposition(f"{name}: buckets of {entry['labels']} are not cumulative")
        if entry["count"] is not None and entry["count"] != counts[-1]:
            raise MalformedExposition(f"{name}: _count of {entry['labels']} differs from its +Inf bucket")
        out.append(Sample(name, _relabel(entry["labels"], added), HistogramValue(buckets, entry["sum"] or 0.0)))
    return out
