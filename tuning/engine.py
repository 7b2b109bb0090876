"""plan / apply / verify / rollback, and recovery after a crash.

apply is a transaction: the original of every knob it will change is saved (atomic
JSON under /run) before the first write; each write is read back; any failure
restores, in reverse order, what this run changed, and the run fails. The state
file of a completed apply keeps the host's originals for `rollback`. A run that
dies midway leaves its state marked "applying"; the next engine start restores
those originals before doing anything else. One run at a time (flock).
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.paths import Paths
from tuning.desired import Desired
from tuning.profiles import Profile, load_profile
from tuning.registry import tunables_by_name
from tuning.settings import TuningSettings
from tuning.state import (
    APPLIED,
    APPLYING,
    Original,
    StateError,
    TuningState,
    clear_state,
    load_state,
    save_state,
)
from tuning.tunable import LatencyCap, Refused, Tunable, TunableError, TuneContext, Unsupported

OK, SET, HOLD, UNSUPPORTED, ERROR = "ok", "set", "hold", "unsupported", "error"
# Written where the boot loader reads it, not yet what the running kernel booted with.
PENDING = "pending-reboot"
# The kernel refused this target for good at an earlier apply (tunable.Refused).
REFUSED = "refused"


@dataclass
class Row:
    tunable: str
    target: str
    current: str | None
    desired: str
    action: str
    note: str = ""
    # Boot parameters: what the running kernel was booted with (None: not booted, an image).
    booted: str | None = None
    knob: Tunable | None = field(default=None, repr=False, compare=False)
    want: Desired | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("tunable", "target", "current", "desired", "action", "note")}
        if self.knob is not None and self.knob.takes_effect_at_boot:
            out["booted"] = self.booted
        return out


@dataclass
class Change:
    """What one apply changed, enough to take back just that (`Engine.undo`): the
    rows it set, each knob's value just before, and which originals it added to
    the state file (a knob an earlier apply already recorded keeps that record)."""

    rows: list[Row]
    before: dict[tuple[str, str], str]
    added: set[tuple[str, str]]
    prior_profile: str | None  # whose record the state file was before this apply


class EngineError(Exception):
    """apply or rollback failed; the message says what and what was restored."""


class EngineBusy(EngineError):
    pass


def _record(paths: Paths) -> TuningState | None:
    """The record, or EngineError (nothing changed) when it cannot be read."""
    try:
        return load_state(paths)
    except StateError as e:
        raise EngineError(f"nothing changed: {e}") from None


class _Lock:
    """An exclusive flock beside the state file: released by the kernel when its
    holder dies, so a crashed run never blocks the next one."""

    def __init__(self, paths: Paths) -> None:
        self.path = paths.run("infernode", "tuning", "lock")
        self.fd: int | None = None

    def __enter__(self) -> _Lock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise EngineError(f"nothing changed; cannot take the tuning lock {self.path}: {e.strerror or e}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise EngineBusy(f"another tuning run holds {self.path}") from None
        self.fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class Engine:
    def __init__(self, ctx: TuneContext, profile: Profile) -> None:
        self.ctx = ctx
        self.profile = profile
        self._classes = tunables_by_name()
        self._knobs: dict[str, Tunable] = {}
        self.last_change: Change | None = None

    def knob(self, name: str) -> Tunable:
        if name not in self._knobs:
            self._knobs[name] = self._classes[name](self.ctx)
        return self._knobs[name]

    # -- plan / verify -------------------------------------------------------

    def _refusals(self) -> dict[tuple[str, str], str]:
        try:
            state = load_state(self.ctx.paths)
        except StateError:
            return {}
        return {(r[0], r[1]): r[2] for r in state.refused} if state else {}

    def plan(self) -> list[Row]:
        # What knobs share (the boot loader and what it read) is read afresh each plan:
        # the daemon plans every verify_interval, and files change in between.
        self.ctx.shared.clear()
        rows: list[Row] = []
        refused = self._refusals()
        for name, (desired, _where) in self.profile.desired.items():
            knob = self.knob(name)
            try:
                targets = knob.targets()
            except (OSError, ValueError) as e:
                rows.append(Row(name, "-", None, desired.text, ERROR, f"cannot list targets: {e}"))
                continue
            for target in targets:
                row = self._row(knob, target, desired)
                why = refused.get((name, target))
                if why is not None and row.action == SET:
                    row.action, row.note = REFUSED, f"refused at the last apply: {why}"
                rows.append(row)
        return rows

    def _row(self, knob: Tunable, target: str, desired: Desired) -> Row:
        try:
            want = knob.resolve(target, desired)
            current = knob.read(target)
        except Unsupported as e:
            return Row(knob.name, target, None, desired.text, UNSUPPORTED, str(e))
        except (TunableError, OSError, ValueError) as e:
            return Row(knob.name, target, None, desired.text, ERROR, str(e))
        booted: str | None = None
        if knob.takes_effect_at_boot:
            try:
                booted = knob.booted(target)
            except (Unsupported, OSError) as e:
                return Row(knob.name, target, current, want.text, ERROR, f"cannot read the booted value: {e}")
        note = ""
        if want.matches(current):
            action = OK
            if knob.takes_effect_at_boot and not want.matches(booted):
                action = PENDING
                note = ("not booted yet: takes effect when this image boots" if booted is None else
                        f"booted with {booted or '(unset)'}: takes effect at the next reboot")
        elif knob.process_held and self.ctx.holder is None:
            action = HOLD
            note = "held by the agent daemon while it runs"
        else:
            action = SET
            if knob.takes_effect_at_boot:
                note = "takes effect at the next reboot"
        return Row(knob.name, target, current, want.text, action, note, booted, knob, want)

    def verify(self) -> list[Row]:
        """The rows not in their desired state (drift), empty when clean. A boot
        parameter waiting for a reboot is not drift (see `pending`)."""
        return [r for r in self.plan() if r.action in (SET, ERROR)]

    # -- apply ---------------------------------------------------------------

    def apply(self) -> tuple[list[Row], list[Original]]:
        """Apply the plan; returns (changed rows, originals restored by crash recovery)."""
        with _Lock(self.ctx.paths):
            recovered = _recover(self.ctx, self)
            rows = self.plan()
            broken = [r for r in rows if r.action == ERROR]
            if broken:
                raise EngineError(
                    "nothing changed; cannot plan: "
                    + "; ".join(f"{r.tunable} {r.target}: {r.note}" for r in broken)
                )
            todo = [r for r in rows if r.action == SET]
            if not todo:
                return [], recovered
            try:
                tx = Transaction(self, todo)
            except (TunableError, OSError, Unsupported, ValueError) as e:
                raise EngineError(f"nothing changed; cannot record the originals: {e}") from e
            try:
                for row in todo:
                    try:
                        tx.step(row)
                    except Refused as e:
                        tx.refuse(row, e)
                tx.finish()
            except Exception as e:  # noqa: BLE001 - whatever went wrong, undo this run
                tx.abort(e)
            tx.commit()
            changed = [r for r in todo if r.action != REFUSED]
            self.last_change = Change(changed, dict(tx.before), tx.added, tx.prior.profile if tx.prior else None)
            return changed, recovered

    def undo(self, change: Change) -> None:
        """Put back what `change` set, in reverse order, and drop the originals it
        added, leaving whatever an earlier apply recorded (the node's own profile)
        as it was. Raises EngineError naming every knob it could not put back."""
        with _Lock(self.ctx.paths):
            failures = []
            for row in reversed(change.rows):
                key = (row.tunable, row.target)
                if row.knob is None or key not in change.before:
                    continue
                try:
                    row.knob.restore(row.target, change.before[key])
                except Exception as e:  # noqa: BLE001 - report every knob that stayed changed
                    failures.append(f"{row.tunable} {row.target}: {e}")
            try:
                self.ctx.finish()
            except Exception as e:  # noqa: BLE001
                failures.append(f"after restoring: {e}")
            if failures:
                raise EngineError("could not undo: " + "; ".join(failures) + " (`infernode tune rollback` "
                                  "restores every recorded original)")
            state = _record(self.ctx.paths)
            if state is not None:
                state.originals = [o for o in state.originals if (o.tunable, o.target) not in change.added]
                state.profile = change.prior_profile or state.profile
                if state.originals:
                    save_state(self.ctx.paths, state)
                else:
                    clear_state(self.ctx.paths)

    def begin(self, todo: list[Row]) -> Transaction:
        """A transaction outside `apply`'s lock, for callers that drive the steps
        themselves (the crash-recovery tests do, to die between steps)."""
        return Transaction(self, todo)


class Transaction:
    def __init__(self, engine: Engine, todo: list[Row]) -> None:
        self.engine = engine
        self.paths = engine.ctx.paths
        self.done: list[Row] = []
        self.added: set[tuple[str, str]] = set()
        self.where = "before the first write"
        self.before: dict[tuple[str, str], str] = {}
        prior = load_state(self.paths)
        self.prior = prior
        state = TuningState(APPLYING, engine.profile.name, os.getpid(), list(prior.originals) if prior else [],
                            [list(r) for r in prior.refused] if prior else [])
        for row in todo:
            if row.knob is None or row.knob.process_held:
                continue
            snap = row.knob.snapshot(row.target)
            self.before[(row.tunable, row.target)] = snap
            # The first run's original is the host's own value; keep it across re-applies.
            if not state.has(row.tunable, row.target):
                self.added.add((row.tunable, row.target))
                state.originals.append(Original(row.tunable, row.target, snap, row.knob.persistent))
        self.state = state
        save_state(self.paths, state)

    def step(self, row: Row) -> None:
        assert row.knob is not None and row.want is not None
        # Recorded before the write: a write that fails halfway is undone too.
        self.done.append(row)
        self.where = f"{row.tunable} {row.target}"
        value = row.want.value_to_write(row.current)
        row.knob.write(row.target, value)
        now = row.knob.read(row.target)
        if not row.want.matches(now):
            raise TunableError(f"wrote {value!r}, the kernel reports {now!r}")

    def refuse(self, row: Row, error: Refused) -> None:
        """The kernel will never take this target: nothing changed there, so nothing to
        undo; recorded so that plan shows it as refused rather than as drift."""
        self.done.remove(row)
        row.action, row.note = REFUSED, str(error)
        self.state.refused = [r for r in self.state.refused if (r[0], r[1]) != (row.tunable, row.target)]
        self.state.refused.append([row.tunable, row.target, str(error)])
        self.state.originals = [o for o in self.state.originals
                                if (o.tunable, o.target) != (row.tunable, row.target)
                                or (o.tunable, o.target) not in self.added]
        self.added.discard((row.tunable, row.target))

    def finish(self) -> None:
        """The work queued by the writes (update-grub once for every boot parameter)."""
        self.where = "after the writes"
        self.engine.ctx.finish()

    def commit(self) -> None:
        self.state.status = APPLIED
        save_state(self.paths, self.state)

    def abort(self, error: Exception) -> None:
        failures = []
        for r in reversed(self.done):
            assert r.knob is not None
            original = self.before.get((r.tunable, r.target), "")
            try:
                # The knob whose write failed is usually unchanged: nothing to undo.
                if not r.knob.process_held and r.knob.snapshot(r.target) == original:
                    continue
                r.knob.restore(r.target, original)
            except Exception as e:  # noqa: BLE001 - report every knob that stayed changed
                failures.append(f"{r.tunable} {r.target}: {e}")
        try:
            self.engine.ctx.finish()  # the boot loader regenerated from the restored files
        except Exception as e:  # noqa: BLE001
            failures.append(f"after restoring: {e}")
        if failures:
            # Keep the record so `tune rollback` can retry what could not be restored.
            self.state.status = APPLIED
            save_state(self.paths, self.state)
        elif self.prior is not None:
            save_state(self.paths, self.prior)
        else:
            clear_state(self.paths)
        restored = f"restored {len(self.done) - len(failures)} changed knob(s)"
        tail = f"; could NOT restore: {'; '.join(failures)}" if failures else ""
        raise EngineError(f"{self.where}: {error}; {restored}{tail}") from error


def _restore_all(ctx: TuneContext, engine: Engine, state: TuningState) -> tuple[list[Original], list[str]]:
    """Restore in reverse order of saving; returns (restored in that order, failures)."""
    failures: list[str] = []
    remaining: list[Original] = []
    restored: list[Original] = []
    for o in reversed(state.originals):
        try:
            engine.knob(o.tunable).restore(o.target, o.original)
            restored.append(o)
        except Exception as e:  # noqa: BLE001
            failures.append(f"{o.tunable} {o.target}: {e}")
            remaining.insert(0, o)
    try:
        ctx.finish()
    except Exception as e:  # noqa: BLE001 - the boot loader's files are restored; its config is not
        failures.append(f"after restoring: {e}")
        # Kept so that `tune rollback` writes them again and retries the boot loader.
        remaining = [o for o in state.originals if o in remaining or o.persistent]
    if failures:
        state.status = APPLIED
        state.originals = remaining
        save_state(ctx.paths, state)
    else:
        clear_state(ctx.paths)
    return restored, failures


def _recover(ctx: TuneContext, engine: Engine) -> list[Original]:
    state = _record(ctx.paths)
    if state is None or state.status != APPLYING:
        return []
    restored, failures = _restore_all(ctx, engine, state)
    if failures:
        raise EngineError("an unfinished tuning run could not be undone: " + "; ".join(failures))
    return restored


def recover(engine: Engine) -> list[Original]:
    """Undo what an unfinished (crashed) run left; [] when there was none."""
    with _Lock(engine.ctx.paths):
        return _recover(engine.ctx, engine)


def rollback(engine: Engine) -> list[Original]:
    """Restore every saved original in reverse order; idempotent. Returns the
    originals in the order they were restored."""
    with _Lock(engine.ctx.paths):
        if engine.ctx.holder is not None:
            engine.ctx.holder.release()
        state = _record(engine.ctx.paths)
        if state is None:
            return []
        restored, failures = _restore_all(engine.ctx, engine, state)
        if failures:
            raise EngineError("could not restore: " + "; ".join(failures))
        return restored


def build_engine(
    paths: Paths,
    settings: TuningSettings,
    profile: str | None = None,
    holder: LatencyCap | None = None,
    source: str = "config",
) -> Engine:
    """Load the profile (raises ProfileError) and bind it to the host under `paths`."""
    # Profile directories are configuration, read where the config file is read
    # (not under the host root that --root moves).
    prof = load_profile(
        profile or settings.profile,
        [Path(d) for d in settings.profile_dirs],
        overrides=settings.overrides,
        overrides_source=source,
    )
    return Engine(TuneContext(paths, settings, holder=holder), prof)
