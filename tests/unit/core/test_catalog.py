from click.testing import CliRunner

from agent.catalog import Catalog, MetricSpec, MetricType, lint
from agent.cli import main
from agent.docs import METRICS_DOC, render_metrics_doc
from agent.plugins import build_catalog


def test_full_catalog_has_no_lint_problems():
    problems = lint(build_catalog())
    assert problems == [], "\n".join(problems)


def test_lint_catches_each_kind_of_mistake():
    c = Catalog()
    c.add("bad", [
        MetricSpec("infernode_host_thing", MetricType.COUNTER, "A counter.", source="x"),
        MetricSpec("infernode_host_gauge_total", MetricType.GAUGE, "A gauge.", source="x"),
        MetricSpec("infernode_host_time_ms", MetricType.GAUGE, "Time.", unit="milliseconds", source="x"),
        MetricSpec("infernode_host_size", MetricType.GAUGE, "Size.", unit="bytes", source="x"),
        MetricSpec("infernode_host_quiet", MetricType.GAUGE, "", source=""),
        MetricSpec("infernode_host_lbl", MetricType.GAUGE, "Labels.", labels=("Bad", "le"), source="x"),
        MetricSpec("node_cpu", MetricType.GAUGE, "Other prefix.", source="x"),
    ])
    text = "\n".join(lint(c))
    for fragment in ("infernode_host_thing (bad): counters end in _total",
                     "infernode_host_gauge_total (bad): only counters end in _total",
                     "unit 'milliseconds' is not a base unit",
                     "infernode_host_size (bad): unit bytes must be the name's suffix",
                     "help must be a non-empty sentence", "source must say",
                     "label 'Bad'", "label 'le'", "node_cpu (bad): name must match"):
        assert fragment in text


def test_committed_metrics_doc_is_generated_from_the_catalog(repo):
    want = render_metrics_doc(build_catalog())
    got = (repo / METRICS_DOC).read_text()
    assert got == want, "docs/metrics.md is stale: run `infernode docs --write`"


def test_docs_check_exit_status(repo, tmp_path):
    runner = CliRunner()
    assert runner.invoke(main, ["docs", "--check", "--repo", str(repo)]).exit_code == 0
    (tmp_path / "docs").mkdir()
    (tmp_path / METRICS_DOC).write_text("# old\n")
    stale = runner.invoke(main, ["docs", "--check", "--repo", str(tmp_path)])
    assert stale.exit_code == 1
    assert "docs/metrics.md" in stale.output


def test_collectors_emit_through_their_specs_never_by_a_name_string() -> None:
    """A metric renamed in its declaration must fail where it is emitted, at import:
    no product module builds a Sample from an infernode_* literal."""
    import ast
    from pathlib import Path

    repo = Path(__file__).resolve().parents[3]
    offenders = []
    for pkg in ("agent", "collectors", "tuning"):
        for path in sorted((repo / pkg).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Sample" and node.args:
                    first = node.args[0]
                    literal = isinstance(first, ast.Constant) or isinstance(first, ast.JoinedStr)
                    if literal:
                        offenders.append(f"{path.relative_to(repo)}:{node.lineno}")
    assert offenders == []


def test_a_derived_name_that_is_not_declared_fails_at_lookup() -> None:
    import pytest

    from agent.catalog import CatalogError, spec_named
    from collectors.host.netdev import SPECS

    assert spec_named(SPECS, "infernode_host_network_bytes_total").labels == ("device", "direction")
    with pytest.raises(CatalogError, match="infernode_host_network_byte_total is not declared"):
        spec_named(SPECS, "infernode_host_network_byte_total")
