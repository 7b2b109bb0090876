"""Turns samples into the Prometheus text format or OpenMetrics.

Families are built from the catalog (HELP, TYPE, unit), so a name the catalog does
not declare cannot be exposed. Exemplars reach the wire only in OpenMetrics, which
a scraper asks for with its Accept header.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest as _text
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE
from prometheus_client.openmetrics.exposition import generate_latest as _openmetrics
from prometheus_client.samples import Exemplar as PromExemplar
from prometheus_client.samples import Sample as PromSample

from agent.catalog import Catalog, MetricType
from agent.samples import Exemplar, HistogramValue, Sample

# Text format 0.0.4, which every Prometheus parses. (prometheus_client's "latest"
# is 1.0.0, the UTF-8-names variant; our names are all legacy-valid.)
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class UndeclaredMetricError(KeyError):
    pass


def _prom_exemplar(ex: Exemplar | None) -> PromExemplar | None:
    if ex is None:
        return None
    return PromExemplar(dict(ex.labels), ex.value, ex.timestamp)


def _fmt_bound(b: float) -> str:
    if b == float("inf"):
        return "+Inf"
    return repr(float(b))


def build_families(samples: Iterable[Sample], catalog: Catalog) -> list[Metric]:
    grouped: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        grouped[s.name].append(s)
    families: list[Metric] = []
    for name in sorted(grouped):
        spec = catalog.get(name)
        if spec is None:
            passthrough = catalog.passthrough_for(name)
            if passthrough is None:
                raise UndeclaredMetricError(name)
            families.append(_passthrough_family(name, passthrough.help, grouped[name]))
            continue
        label_names = list(spec.labels)
        if spec.type is MetricType.COUNTER:
            fam: Metric = CounterMetricFamily(spec.family, spec.help, labels=label_names)
            for s in grouped[name]:
                fam.add_metric([s.labels[k] for k in label_names], s.value, exemplar=_prom_exemplar(s.exemplar))
        elif spec.type is MetricType.GAUGE:
            fam = GaugeMetricFamily(spec.family, spec.help, labels=label_names)
            for s in grouped[name]:
                fam.add_metric([s.labels[k] for k in label_names], s.value)
        else:
            fam = HistogramMetricFamily(spec.family, spec.help, labels=label_names)
            for s in grouped[name]:
                hv = s.value
                assert isinstance(hv, HistogramValue)
                buckets = [
                    (_fmt_bound(b), c, _prom_exemplar(hv.exemplars.get(b))) if hv.exemplars else (_fmt_bound(b), c)
                    for b, c in hv.buckets
                ]
                fam.add_metric([s.labels[k] for k in label_names], buckets, hv.sum)
        families.append(fam)
    return families


def _passthrough_family(name: str, help_text: str, samples: list[Sample]) -> Metric:
    """Re-exposed families keep their original type; collectors pass it in the
    `__type__` label-less convention: a passthrough Sample carries prebuilt series
    as HistogramValue (histograms) or plain values (counters use the _total name)."""
    if any(isinstance(s.value, HistogramValue) for s in samples):
        label_names = sorted(samples[0].labels)
        fam: Metric = HistogramMetricFamily(name, help_text, labels=label_names)
        for s in samples:
            hv = s.value
            assert isinstance(hv, HistogramValue)
            fam.add_metric([s.labels[k] for k in label_names], [(_fmt_bound(b), c) for b, c in hv.buckets], hv.sum)
        return fam
    if name.endswith("_total"):
        fam = Metric(name[: -len("_total")], help_text, "counter")
        for s in samples:
            fam.samples.append(PromSample(name, dict(s.labels), float(s.value)))  # type: ignore[arg-type]
        return fam
    fam = Metric(name, help_text, "gauge")
    for s in samples:
        fam.samples.append(PromSample(name, dict(s.labels), float(s.value)))  # type: ignore[arg-type]
    return fam


class _Families:
    """Adapter so prometheus_client's encoders can walk prebuilt families."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def wants_openmetrics(accept: str | None) -> bool:
    """OpenMetrics when the Accept header ranks it at least as high as the text
    format (Prometheus sends openmetrics q=0.5 over text/plain q=0.3); q=0
    means "not this one"."""
    if not accept:
        return False
    best = {"openmetrics": -1.0, "text": -1.0}
    for part in accept.split(","):
        media, *params = [p.strip() for p in part.split(";")]
        q = 1.0
        for p in params:
            key, _, val = p.partition("=")
            if key.strip() == "q":
                try:
                    q = float(val)
                except ValueError:
                    q = 0.0
        kind = {"application/openmetrics-text": "openmetrics", "text/plain": "text"}.get(media.lower())
        if kind:
            best[kind] = max(best[kind], q)
    return best["openmetrics"] > 0 and best["openmetrics"] >= best["text"]


def render(samples: Iterable[Sample], catalog: Catalog, openmetrics: bool = False) -> tuple[bytes, str]:
    """Encode samples; returns (body, content type)."""
    fams = _Families(build_families(samples, catalog))
    if openmetrics:
        return _openmetrics(fams), OPENMETRICS_CONTENT_TYPE  # type: ignore[arg-type]
    return _text(fams), TEXT_CONTENT_TYPE  # type: ignore[arg-type]
