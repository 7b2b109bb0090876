"""Bad input in `cost:` exits 2 naming the key; good input loads."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from agent.cli import main


@pytest.mark.parametrize("body,key,words", [
    ("cost:\n  default_gpu_hour_price: -1\n", "cost.default_gpu_hour_price", "greater than 0"),
    ("cost:\n  default_gpu_hour_price: 0\n", "cost.default_gpu_hour_price", "greater than 0"),
    ("cost:\n  energy_kwh_price: cheap\n", "cost.energy_kwh_price", "number"),
    ("cost:\n  energy_kwh_price: '0.12'\n", "cost.energy_kwh_price", "number"),
    ("cost:\n  gpu_hour_price:\n    NVIDIA H100 80GB HBM3: -2.49\n", "cost.gpu_hour_price", "greater than 0"),
    ("cost:\n  gpu_hour_price:\n    NVIDIA H100 80GB HBM3: .nan\n", "cost.gpu_hour_price", "finite"),
    ("cost:\n  currency: dollars\n", "cost.currency", "pattern"),
    ("cost:\n  currency: usd\n", "cost.currency", "pattern"),
    ("cost:\n  price: 2\n", "cost.price", "unknown key"),
])
def test_bad_cost_config_exits_2_naming_the_key(tmp_path, body: str, key: str, words: str) -> None:
    f = tmp_path / "infernode.yaml"
    f.write_text(body)
    r = CliRunner().invoke(main, ["config", "check", str(f)])
    assert r.exit_code == 2, r.output
    assert key in r.output and words in r.output, r.output
    assert "Traceback" not in r.output


def test_good_cost_config_loads(tmp_path) -> None:
    f = tmp_path / "infernode.yaml"
    f.write_text("cost:\n  currency: EUR\n  gpu_hour_price:\n    NVIDIA H100 80GB HBM3: 2.49\n"
                 "  default_gpu_hour_price: 2\n  energy_kwh_price: 0.12\n  budget_per_million_tokens: 0.5\n")
    r = CliRunner().invoke(main, ["config", "check", str(f)])
    assert r.exit_code == 0, r.output
