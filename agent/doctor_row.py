"""One row of `infernode doctor`: a part of the agent, an item checked, its status
(ok, warn, fail or off), what was found and how to fix it. Collectors and
subsystems return rows; the doctor (agent/doctor.py) gathers and prints them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DoctorRow:
    subsystem: str
    item: str
    status: str  # ok | warn | fail | off
    detail: str = ""
    fix: str = ""

    def to_json(self) -> dict[str, str]:
        return {
            "subsystem": self.subsystem,
            "item": self.item,
            "status": self.status,
            "detail": self.detail,
            "fix": self.fix,
        }
