"""Run INSIDE the test container, as a systemd unit: the agent (`infernode run`) with
the NVML test double in place of the pynvml module, since the container has no GPU.
The double is put where `import pynvml` finds it; nothing in the product changes.

Its node: the first two H100s of tests/doubles/nvml_scenarios/h100_sxm_8x.json
(GPU 0 at 90% utilization and 520 W), with the energy counter following power."""

from __future__ import annotations

import json
import sys

from tests.doubles.fake_pynvml import SCENARIOS, FakePynvml


def main() -> None:
    scenario = json.loads((SCENARIOS / "h100_sxm_8x.json").read_text())
    scenario["devices"] = scenario["devices"][:2]
    scenario["energy_follows_power"] = True
    sys.modules["pynvml"] = FakePynvml(scenario)  # type: ignore[assignment]
    from agent.cli import main as cli

    sys.argv = ["infernode", "run"]
    cli()


if __name__ == "__main__":
    main()
