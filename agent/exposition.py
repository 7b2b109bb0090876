"""Turns samples into the Prometheus text format or OpenMetrics.

Families are built from the catalog (HELP, TYPE, unit), so a name the catalog does
not declare cannot be exposed. Exemplars reach the wire only in OpenMetrics, which
a scraper asks for with its Accept header.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from agent.catalog import Catalog, MetricType
from agent.samples import Exemplar, HistogramValue, Sample

if TYPE_CHECKING:
    from prometheus_client.core import Metric
    from prometheus_client.samples import Exemplar as PromExemplar

# prometheus_client is imported only by build_families(): the daemon's render()
# does not need it, and it costs the daemon ~10 MB of resident memory.
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"

# Text format 0.0.4, which every Prometheus parses. (prometheus_client's "latest"
# is 1.0.0, the UTF-8-names variant; our names are all legacy-valid.)
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class UndeclaredMetricError(KeyError):
    pass


def _prom_exemplar(ex: Exemplar | None) -> PromExemplar | None:
    if ex is None:
        return None
    from prometheus_client.samples import Exemplar as PromExemplar

    return PromExemplar(dict(ex.labels), ex.value, ex.timestamp)


def _fmt_bound(b: float) -> str:
    if b == float("inf"):
        return "+Inf"
    return repr(float(b))


def build_families(samples: Iterable[Sample], catalog: Catalog) -> list[Metric]:
    """The same exposition as prometheus_client metric families (for code that
    feeds prometheus_client; render() writes identical bytes without them)."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

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
            counter = CounterMetricFamily(spec.family, spec.help, labels=label_names)
            for s in grouped[name]:
                counter.add_metric([s.labels[k] for k in label_names], _scalar(s),
                                   exemplar=_prom_exemplar(s.exemplar))
            families.append(counter)
        elif spec.type is MetricType.GAUGE:
            gauge = GaugeMetricFamily(spec.family, spec.help, labels=label_names)
            for s in grouped[name]:
                gauge.add_metric([s.labels[k] for k in label_names], _scalar(s))
            families.append(gauge)
        else:
            hist = HistogramMetricFamily(spec.family, spec.help, labels=label_names)
            for s in grouped[name]:
                hv = s.value
                assert isinstance(hv, HistogramValue)
                buckets: list[tuple[str, float] | tuple[str, float, PromExemplar]] = []
                for b, c in hv.buckets:
                    ex = _prom_exemplar(hv.exemplars.get(b)) if hv.exemplars else None
                    buckets.append((_fmt_bound(b), c) if ex is None else (_fmt_bound(b), c, ex))
                hist.add_metric([s.labels[k] for k in label_names], buckets, hv.sum)
            families.append(hist)
    return families


def _scalar(s: Sample) -> float:
    # The runtime's validation lets through only numbers for counters and gauges.
    if isinstance(s.value, HistogramValue):
        raise TypeError(f"{s.name} is declared a counter or gauge but carries a histogram")
    return float(s.value)


def _passthrough_family(name: str, help_text: str, samples: list[Sample]) -> Metric:
    """A re-exposed family (agent/worker/scrape.py's convention): HistogramValue
    samples are a histogram named `name`; float samples named `<family>_total` are a
    counter; other float samples a gauge. Each series keeps its own label set, so
    series of one family may carry different labels, as in the source."""
    from prometheus_client.core import Metric
    from prometheus_client.samples import Sample as PromSample

    if any(isinstance(s.value, HistogramValue) for s in samples):
        fam = Metric(name, help_text, "histogram")
        for s in samples:
            hv = s.value
            if not isinstance(hv, HistogramValue):
                continue  # a float under a histogram's name cannot be encoded; the runtime counts it
            labels = dict(s.labels)
            for bound, count in hv.buckets:
                fam.samples.append(PromSample(f"{name}_bucket", {**labels, "le": _value(bound)}, float(count)))
            fam.samples.append(PromSample(f"{name}_count", labels, float(hv.count)))
            fam.samples.append(PromSample(f"{name}_sum", labels, float(hv.sum)))
        return fam
    kind = "counter" if name.endswith("_total") else "gauge"
    fam = Metric(name[: -len("_total")] if kind == "counter" else name, help_text, kind)
    for s in samples:
        fam.samples.append(PromSample(name, dict(s.labels), float(s.value)))  # type: ignore[arg-type]
    return fam


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
    """Encode samples; returns (body, content type).

    Writes the bytes prometheus_client's encoders would write for
    build_families(), directly: the object model costs several times more CPU
    per scrape, and its OpenMetrics encoder mangles names with a colon
    (vLLM's `vllm:*`) in sample lines but not in HELP/TYPE."""
    grouped: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        grouped[s.name].append(s)
    out: list[str] = []
    for name in sorted(grouped):
        _encode_family(out, name, grouped[name], catalog, openmetrics)
    if openmetrics:
        out.append("# EOF\n")
        return "".join(out).encode(), OPENMETRICS_CONTENT_TYPE
    return "".join(out).encode(), TEXT_CONTENT_TYPE


def _encode_family(out: list[str], name: str, samples: list[Sample], catalog: Catalog, om: bool) -> None:
    spec = catalog.get(name)
    if spec is None:
        passthrough = catalog.passthrough_for(name)
        if passthrough is None:
            raise UndeclaredMetricError(name)
        help_text = passthrough.help
        if any(isinstance(s.value, HistogramValue) for s in samples):
            out.append(f"# HELP {name} {_escape_help(help_text, om)}\n# TYPE {name} histogram\n")
            for s in samples:
                if isinstance(s.value, HistogramValue):  # a float here cannot be encoded; the runtime counts it
                    _encode_histogram(out, name, s, om, _value, always_count=True)
            return
        elif name.endswith("_total"):
            kind, family = "counter", name[: -len("_total")]
        else:
            kind, family = "gauge", name
    else:
        help_text, kind, family = spec.help, spec.type.value, spec.family
    # The text format names a counter family with its _total, OpenMetrics without.
    head = family + "_total" if kind == "counter" and not om else family
    out.append(f"# HELP {head} {_escape_help(help_text, om)}\n# TYPE {head} {kind}\n")
    if kind == "histogram":
        for s in samples:
            _encode_histogram(out, family, s, om, _fmt_bound)
        return
    sample_name = family + "_total" if kind == "counter" else family
    exemplars = om and kind == "counter"
    for s in samples:
        line = f"{sample_name}{_labels(s.labels)} {_value(s.value)}"  # type: ignore[arg-type]
        if exemplars and s.exemplar is not None:
            line += _exemplar(s.exemplar)
        out.append(line + "\n")


def _encode_histogram(out: list[str], family: str, s: Sample, om: bool,
                      fmt_bound: Callable[[float], str], always_count: bool = False) -> None:
    hv = s.value
    assert isinstance(hv, HistogramValue)
    for bound, count in hv.buckets:
        labels = dict(s.labels)
        labels["le"] = fmt_bound(bound)
        line = f"{family}_bucket{_labels(labels)} {_value(count)}"
        if om and hv.exemplars:
            ex = hv.exemplars.get(bound)
            if ex is not None:
                line += _exemplar(ex)
        out.append(line + "\n")
    # Like prometheus_client's HistogramMetricFamily: no _count/_sum when a bucket
    # bound is negative (re-exposed families keep whatever their source had).
    if always_count or (hv.buckets and hv.buckets[0][0] >= 0):
        labels_text = _labels(s.labels)
        out.append(f"{family}_count{labels_text} {_value(hv.count)}\n")
        out.append(f"{family}_sum{labels_text} {_value(hv.sum)}\n")


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape_label(labels[k])}"' for k in sorted(labels)) + "}"


def _escape_label(v: str) -> str:
    if "\\" in v or "\n" in v or '"' in v:
        return v.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')
    return v


def _escape_help(h: str, om: bool) -> str:
    h = h.replace("\\", r"\\").replace("\n", r"\n")
    return h.replace('"', r'\"') if om else h


_SPECIAL = {"inf": "+Inf", "-inf": "-Inf", "nan": "NaN"}


def _value(v: float) -> str:
    """prometheus_client's floatToGoString, with a cheaper common path (the
    hottest call of a scrape: once per sample)."""
    s = repr(v if type(v) is float else float(v))
    if s[-1] in "fn":
        return _SPECIAL[s]
    dot = s.find(".")
    # Go switches to an exponent from 1e6 up, Python from 1e16.
    if dot > 6 and s[0] != "-":
        mantissa = f"{s[0]}.{s[1:dot]}{s[dot + 1:]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return s


def _exemplar(ex: Exemplar) -> str:
    labels = ",".join(f'{k}="{_escape_label(ex.labels[k])}"' for k in sorted(ex.labels))
    text = f" # {{{labels}}} {_value(ex.value)}"
    return text if ex.timestamp is None else f"{text} {ex.timestamp}"
