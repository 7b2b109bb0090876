"""`infernode topology`: each GPU's and NIC's NUMA node and local CPUs."""

from __future__ import annotations

import json
from pathlib import Path

import click

from agent.cli_options import root_option


@click.command("topology")
@root_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def command(root: Path, as_json: bool) -> None:
    """Print GPU and NIC placement: NUMA node and local CPUs (NVML, sysfs fallback)."""
    from agent.cpulist import format_cpulist
    from agent.paths import Paths
    from agent.table import format_rows
    from collectors.gpu.topology import node_topology

    topo = node_topology(Paths(root))
    if as_json:
        click.echo(json.dumps(topo.to_json(), indent=2))
        return

    def numa(n: int | None) -> str:
        return "-" if n is None else str(n)

    gpus = [(str(g.index), g.uuid or "-", g.pci_bus_id, g.model_name or "-", numa(g.numa_node),
             format_cpulist(g.local_cpus) or "-", numa(g.memory_node), g.source) for g in topo.gpus]
    nics = [(n.name, n.pci_bus_id, numa(n.numa_node), format_cpulist(n.local_cpus) or "-") for n in topo.nics]
    # GPU MEM NODE: the GPU's own memory as a NUMA node (coherent platforms only).
    click.echo(format_rows(("GPU", "UUID", "PCI BUS ID", "MODEL", "NUMA", "LOCAL CPUS", "GPU MEM NODE", "SOURCE"), gpus)
               if gpus else "no NVIDIA GPUs found")
    click.echo("")
    click.echo(format_rows(("NIC", "PCI BUS ID", "NUMA", "LOCAL CPUS"), nics) if nics else "no PCI network interfaces found")
