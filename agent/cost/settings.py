"""The `cost:` section: what a GPU-hour and a kWh cost, in one currency."""

from __future__ import annotations

from typing import Annotated, Protocol

from pydantic import Field

from agent.config_types import Duration
from agent.settings import Section, ServerSettings
from agent.worker.settings import WorkerSettings

# A price is a plain number above 0 in the config file: a quoted "2.49" is a string
# and is refused, so is 0 (leave the key out instead: the agent never reports a
# cost of 0), a negative number, NaN or infinity.
Price = Annotated[float, Field(gt=0, allow_inf_nan=False, strict=True)]


class CostSettings(Section):
    # ISO 4217 code, e.g. USD, EUR: the unit of every cost the agent reports.
    currency: str = Field("USD", pattern=r"^[A-Z]{3}$")
    # Price of one GPU-hour by GPU model as NVML names it ("NVIDIA H100 80GB HBM3": 2.49).
    gpu_hour_price: dict[str, Price] = Field(default_factory=dict)
    # For a GPU model the table does not name (or every GPU, without a table).
    default_gpu_hour_price: Price | None = None
    # Price of a kWh of the GPUs' energy (from their energy counters), when it is billed apart.
    energy_kwh_price: Price | None = None
    # Cost per million tokens (prompt + completion) above which InfernodeCostPerTokenOverBudget fires.
    budget_per_million_tokens: Price | None = None
    # How often GPU time, energy and tokens are booked.
    interval: Duration = Field(5.0, gt=0, le=60)
    # How far back `infernode cost --since` can look (kept in memory, one bucket a minute).
    history: Duration = Field(86400.0, ge=60, le=7 * 86400)

    @property
    def priced(self) -> bool:
        return bool(self.gpu_hour_price) or self.default_gpu_hour_price is not None \
            or self.energy_kwh_price is not None


class CostConfig(Protocol):
    """The part of the agent's config the cost ledger and `infernode cost` read."""

    @property
    def cost(self) -> CostSettings: ...
    @property
    def workers(self) -> list[WorkerSettings]: ...
    @property
    def server(self) -> ServerSettings: ...
