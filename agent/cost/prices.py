"""Which price applies to a GPU, and what to warn about (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from agent.cost.settings import CostSettings


@dataclass
class PriceBook:
    settings: CostSettings
    # GPU models priced at the default because the table does not name them.
    defaulted: set[str] = field(default_factory=set)
    # GPU models with no price at all (not in the table, and no default).
    unpriced: set[str] = field(default_factory=set)

    def gpu_hour(self, model: str) -> float | None:
        s = self.settings
        price = s.gpu_hour_price.get(model)
        if price is not None:
            return price
        if s.default_gpu_hour_price is not None:
            if s.gpu_hour_price:
                self.defaulted.add(model)
            return s.default_gpu_hour_price
        self.unpriced.add(model)
        return None

    @property
    def kwh(self) -> float | None:
        return self.settings.energy_kwh_price

    def unknown_models(self, on_node: Iterable[str]) -> list[str]:
        """Table keys that name no GPU on this node (a typo, or another node's price)."""
        present = set(on_node)
        return sorted(k for k in self.settings.gpu_hour_price if k not in present)
