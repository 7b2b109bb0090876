"""The engine's record of originals, under /run/infernode/tuning/state.json.

Written atomically (temporary file, fsync, rename, fsync of the directory)
before the first knob is touched, so a crash at any point leaves either no
record or a complete one. It lives under /run because runtime knobs reset at
reboot, and so does the record of their originals.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from agent.hostfs import write_atomic
from agent.paths import Paths

APPLYING = "applying"
APPLIED = "applied"


@dataclass
class Original:
    tunable: str
    target: str
    original: str


@dataclass
class TuningState:
    status: str
    profile: str
    pid: int
    originals: list[Original] = field(default_factory=list)

    def has(self, tunable: str, target: str) -> bool:
        return any(o.tunable == tunable and o.target == target for o in self.originals)


def state_path(paths: Paths) -> Path:
    return paths.run("infernode", "tuning", "state.json")


def load_state(paths: Paths) -> TuningState | None:
    path = state_path(paths)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise RuntimeError(f"{path}: unreadable tuning state ({e}); inspect it, then remove it") from None
    return TuningState(
        status=data["status"], profile=data["profile"], pid=data.get("pid", 0),
        originals=[Original(**o) for o in data["originals"]],
    )


def save_state(paths: Paths, state: TuningState) -> None:
    path = state_path(paths)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(path, json.dumps(asdict(state), indent=2), mode=0o600)


def clear_state(paths: Paths) -> None:
    state_path(paths).unlink(missing_ok=True)
