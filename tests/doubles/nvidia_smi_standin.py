"""A stand-in for the `nvidia-smi` binary, answering the three queries `make gpu-check`
makes, from an NVML double's scenario. It exists so that gpu_check.main() (which
otherwise runs only on scarce GPU machines) is exercised end to end here: its
values agree with the double by construction, so it proves the tool's plumbing,
never the collector's fidelity; that is what running it on hardware is for.

    write_standin(directory, scenario) -> path of an executable named nvidia-smi
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

_SCRIPT = '''#!{python}
import json, sys
sc = json.load(open({scenario!r}))
args = sys.argv[1:]
devs = sc["devices"]
if args[:2] == ["topo", "-m"]:
    # Affinity unknown to the stand-in: nvidia-smi prints N/A where it cannot tell.
    head = "\\t" + "\\t".join(f"GPU{{i}}" for i in range(len(devs))) + "\\tCPU Affinity\\tNUMA Affinity\\tGPU NUMA ID"
    print(head)
    for i in range(len(devs)):
        cells = [" X " if j == i else "NV18" for j in range(len(devs))]
        print(f"GPU{{i}}\\t" + "\\t".join(cells) + "\\tN/A\\tN/A\\t\\tN/A")
    sys.exit(0)
query = next((a.split("=", 1)[1] for a in args if a.startswith("--query-gpu=")), None)
if query is None:
    sys.exit(2)
for i, d in enumerate(devs):
    m = d["memory"]
    values = {{
        "index": i, "utilization.gpu": d["utilization"]["gpu"],
        "memory.used": (m["used"] + m["reserved"]) // 2**20, "memory.total": m["total"] // 2**20,
        "power.draw": d["power_mw"] / 1000, "temperature.gpu": d["temperature_c"],
        "clocks.sm": d["clocks_mhz"]["sm"], "clocks.mem": d["clocks_mhz"]["mem"], "pstate": f"P{{d['pstate']}}",
        "pcie.link.gen.current": d["pcie"]["gen"], "pcie.link.gen.max": d["pcie"]["max_gen"],
        "pcie.link.width.current": d["pcie"]["width"], "pcie.link.width.max": d["pcie"]["max_width"],
    }}
    print(", ".join(str(values[k]) for k in query.split(",")))
'''


def write_standin(directory: Path, scenario: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    data = directory / "scenario.json"
    data.write_text(json.dumps(scenario))
    exe = directory / "nvidia-smi"
    exe.write_text(_SCRIPT.format(python=sys.executable, scenario=str(data)))
    exe.chmod(0o755)
    return exe
