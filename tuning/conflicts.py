"""Profile keys that cannot both hold on one host, refused when a profile loads. Pure.

Each rule names two tunables and the values of the first that rule out the second:
- intel_pstate in `passive`, `no_hwp` or `disable` mode has no
  energy_performance_preference file (kernel admin-guide pm/intel_pstate.rst: the
  EPP attribute exists in active mode with HWP only);
- amd_pstate outside `active` mode runs without the EPP driver (amd-pstate-epp),
  so the same file is absent (admin-guide pm/amd-pstate.rst);
- 1 GiB pages reserved at boot and resized at run time would fight over one pool.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tuning.desired import Desired


@dataclass(frozen=True)
class Conflict:
    first: str
    values: tuple[str, ...] | None  # None: any value of `first`
    second: str
    why: str


CONFLICTS: tuple[Conflict, ...] = (
    Conflict("boot.intel_pstate", ("passive", "no_hwp", "disable"), "cpu.energy_performance_preference",
             "intel_pstate outside active mode has no energy_performance_preference to set"),
    Conflict("boot.amd_pstate", ("passive", "guided", "disable"), "cpu.energy_performance_preference",
             "amd_pstate outside active mode (amd-pstate-epp) has no energy_performance_preference to set"),
    Conflict("boot.hugepages_1g", None, "hugepages.1g_per_node",
             "1 GiB pages are reserved at boot or resized at run time, not both: the run-time knob "
             "would shrink or grow the pool the boot parameter reserved"),
)


def find_conflicts(desired: Mapping[str, tuple[Desired, str]]) -> list[str]:
    """One message per conflicting pair in a profile ({key: (desired, where set)})."""
    problems = []
    for rule in CONFLICTS:
        if rule.first not in desired or rule.second not in desired:
            continue
        want, where = desired[rule.first]
        if rule.values is not None and not set(want.options) & set(rule.values):
            continue
        other_where = desired[rule.second][1]
        problems.append(f"{where} ({want.text}) conflicts with {other_where}: {rule.why}; drop one of them")
    return problems
