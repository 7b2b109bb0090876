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
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.exposition import generate_latest as _text
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE
from prometheus_client.openmetrics.exposition import generate_latest as _openmetrics
from prometheus_client.samples import Exemplar as PromExemplar
from prometheus_client.samples import Sample as PromSample
from prometheus_client.utils import floatToGoString

from agent.catalog import Catalog, MetricType
from agent.samples import Exemplar, HistogramValue, Sample

TEXT_CONTENT_TYPE = CONTENT_TYPE_LATEST

try:  # prometheus_client >= 0.22 escapes names in OpenMetrics; older versions never did
    from prometheus_client.openmetrics.exposition import ALLOWUTF8

    _OM_ESCAPING = {"escaping": ALLOWUTF8}
except ImportError:  # pragma: no cover - old prometheus_client
    _OM_ESCAPING = {}


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
    """A re-exposed family (agent/worker/scrape.py's convention): HistogramValue
    samples are a histogram named `name`; float samples named `<family>_total` are a
    counter; other float samples a gauge. Each series keeps its own label set, so
    series of one family may carry different labels, as in the source."""
    if any(isinstance(s.value, HistogramValue) for s in samples):
        fam = Metric(name, help_text, "histogram")
        for s in samples:
            hv = s.value
            if not isinstance(hv, HistogramValue):
                continue  # a float under a histogram's name cannot be encoded; the runtime counts it
            labels = dict(s.labels)
            for bound, count in hv.buckets:
                fam.samples.append(PromSample(f"{name}_bucket", {**labels, "le": floatToGoString(bound)}, float(count)))
            fam.samples.append(PromSample(f"{name}_count", labels, float(hv.count)))
            fam.samples.append(PromSample(f"{name}_sum", labels, float(hv.sum)))
        return fam
    kind = "counter" if name.endswith("_total") else "gauge"
    fam = Metric(name[: -len("_total")] if kind == "counter" else name, help_text, kind)
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
    if not accept:
        return False
    for part in accept.split(","):
        media = part.split(";")[0].strip()
        if media == "application/openmetrics-text":
            return True
    return False


def render(samples: Iterable[Sample], catalog: Catalog, openmetrics: bool = False) -> tuple[bytes, str]:
    """Encode samples; returns (body, content type)."""
    fams = _Families(build_families(samples, catalog))
    if openmetrics:
        # prometheus_client 0.26's default (underscores) escaping turns the colon of
        # re-exposed vLLM sample names into "_" while keeping it in # TYPE, so the
        # samples no longer belong to their family; allow-utf-8 leaves valid names
        # (colons included) exactly as they are.
        return _openmetrics(fams, **_OM_ESCAPING), OPENMETRICS_CONTENT_TYPE  # type: ignore[arg-type]
    return _text(fams), TEXT_CONTENT_TYPE  # type: ignore[arg-type]
