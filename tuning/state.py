"""The engine's record of originals, under /run/infernode/tuning/state.json.

Written atomically (temporary file, fsync, rename, fsync of the directory)
before the first knob is touched, so a crash at any point leaves either no
record or a complete one. It lives under /run because runtime knobs reset at
reboot, and so does the record of their originals. The originals of knobs that
outlive a reboot (boot parameters, systemd's drop-in) are written first to
/var/lib/infernode/tuning/persistent.json as well: after a reboot /run is empty,
and that copy is the record `tune rollback` and the next apply start from.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from agent.hostfs import write_atomic
from agent.paths import Paths

APPLYING = "applying"


class StateError(ValueError):
    """The record cannot be read: nothing is changed until someone looks at it."""

APPLIED = "applied"


@dataclass
class Original:
    tunable: str
    target: str
    original: str
    # Survives a reboot (a file under /etc), so its record must too.
    persistent: bool = False


@dataclass
class TuningState:
    status: str
    profile: str
    pid: int
    originals: list[Original] = field(default_factory=list)
    # [tunable, target, why] the kernel refused for good in this boot (tunable.Refused).
    refused: list[list[str]] = field(default_factory=list)

    def has(self, tunable: str, target: str) -> bool:
        return any(o.tunable == tunable and o.target == target for o in self.originals)


def state_path(paths: Paths) -> Path:
    return paths.run("infernode", "tuning", "state.json")


def persistent_state_path(paths: Paths) -> Path:
    return paths.host("/var/lib/infernode/tuning/persistent.json")


def load_state(paths: Paths) -> TuningState | None:
    """This boot's record; after a reboot, the persistent knobs' record."""
    for path in (state_path(paths), persistent_state_path(paths)):
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as e:
            raise StateError(f"{path}: unreadable tuning state ({e}); inspect it, then remove it") from None
        try:
            return TuningState(
                status=data["status"], profile=data["profile"], pid=data.get("pid", 0),
                originals=[Original(**o) for o in data["originals"]],
                refused=[list(map(str, r)) for r in data.get("refused", [])],
            )
        except (KeyError, TypeError) as e:
            raise StateError(f"{path}: malformed tuning state ({e}); inspect it, then remove it") from None
    return None


def _write(path: Path, state: TuningState) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(path, json.dumps(asdict(state), indent=2), mode=0o600)


def save_state(paths: Paths, state: TuningState) -> None:
    # /run first: when it cannot be written nothing is, and the apply stops before
    # its first change. Each copy is atomic on its own; the engine saves before it
    # writes a knob, so neither copy ever lacks the original of a changed knob.
    _write(state_path(paths), state)
    lasting = [o for o in state.originals if o.persistent]
    if lasting:
        # Refusals are of this boot: not carried across a reboot.
        _write(persistent_state_path(paths), TuningState(state.status, state.profile, state.pid, lasting))
    else:
        persistent_state_path(paths).unlink(missing_ok=True)


def clear_state(paths: Paths) -> None:
    state_path(paths).unlink(missing_ok=True)
    persistent_state_path(paths).unlink(missing_ok=True)
