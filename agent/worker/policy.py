"""What the supervisor does next for one worker: a pure state machine.

Inputs are observations (unit state, probe result, GPU faults) and the clock;
output is one action. The supervisor performs it, so every decision is tested
without systemd or sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from agent.worker.backoff import BackoffPolicy, BackoffState


class WorkerPhase(str, Enum):
    STARTING = "starting"      # started, not yet healthy (model loading)
    RUNNING = "running"
    BACKOFF = "backoff"        # down, waiting to be restarted
    GPU_FAULT = "gpu_fault"    # stopped for good: its GPU is lost or has an uncontained error
    DRAINING = "draining"
    DRAINED = "drained"        # stopped by an operator (`infernode drain`)
    # stopped for good: vLLM refused its command line (exit 2 at argument parsing) or
    # is older than the agent supports. A restart would fail the same way; a config
    # change (reload) or `POST /workers/NAME/start` tries again.
    REFUSED = "refused"

    @property
    def stopped_for_good(self) -> bool:
        return self in (WorkerPhase.GPU_FAULT, WorkerPhase.DRAINING, WorkerPhase.DRAINED, WorkerPhase.REFUSED)


class Action(str, Enum):
    NONE = "none"
    STOP = "stop"              # stop now, do not restart
    STOP_FOR_RESTART = "stop_for_restart"   # unhealthy but running: stop, restart after the delay
    START = "start"            # the backoff delay is over


@dataclass
class Decision:
    action: Action
    reason: str = ""
    delay: float = 0.0


@dataclass
class WorkerPolicy:
    backoff: BackoffPolicy
    failures_before_restart: int
    startup_grace: float
    phase: WorkerPhase = WorkerPhase.STARTING
    started_at: float = 0.0
    failures: int = 0
    restart_at: float | None = None
    restart_reason: str = ""
    streak: BackoffState = field(init=False)

    def __post_init__(self) -> None:
        self.streak = BackoffState(self.backoff)

    def started(self, now: float) -> None:
        self.phase = WorkerPhase.STARTING
        self.started_at = now
        self.failures = 0
        self.restart_at = None

    def progress(self, now: float) -> None:
        """The worker finished a start-up phase: it is loading, not hung, so the grace
        counts from now."""
        if self.phase is WorkerPhase.STARTING:
            self.started_at = max(self.started_at, now)

    def observe(self, now: float, active: bool, healthy: bool | None, gpu_fault: str | None,
                failure: str = "unhealthy") -> Decision:
        """`active`: the unit is active (or activating); `healthy`: the probes' verdict,
        None when not probed; `gpu_fault`: reason when one of its GPUs is gone;
        `failure`: the restart reason should this failed probe trigger one."""
        if self.phase.stopped_for_good:
            return Decision(Action.NONE)
        if gpu_fault:
            self.phase = WorkerPhase.GPU_FAULT
            return Decision(Action.STOP, gpu_fault)
        if self.phase is WorkerPhase.BACKOFF:
            if self.restart_at is not None and now >= self.restart_at:
                self.started(now)
                return Decision(Action.START, self.restart_reason)
            return Decision(Action.NONE)
        if not active:
            return self._schedule(now, "exited", stop=False)
        if healthy is None:
            return Decision(Action.NONE)
        if healthy:
            self.failures = 0
            self.phase = WorkerPhase.RUNNING
            self.streak.on_healthy(now)
            return Decision(Action.NONE)
        self.streak.on_unhealthy()
        if self.phase is WorkerPhase.STARTING and now - self.started_at < self.startup_grace:
            return Decision(Action.NONE)  # still loading the model: vLLM refuses connections meanwhile
        self.failures += 1
        if self.failures >= self.failures_before_restart:
            return self._schedule(now, failure, stop=True)
        return Decision(Action.NONE)

    def _schedule(self, now: float, reason: str, stop: bool) -> Decision:
        delay = self.streak.next_delay()
        self.phase = WorkerPhase.BACKOFF
        self.restart_at = now + delay
        self.restart_reason = reason
        self.failures = 0
        return Decision(Action.STOP_FOR_RESTART if stop else Action.NONE, reason, delay)
