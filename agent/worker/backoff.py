"""Restart backoff: exponential with a cap, reset after a healthy stretch.

Pure: the caller passes the clock, so the policy is tested without sleeping.
systemd 252 has no exponential RestartSec (RestartSteps= arrived in 254), hence
the agent owns restarts and the worker template says Restart=no.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BackoffPolicy:
    initial: float
    factor: float
    max: float
    reset_after: float

    def delay(self, attempt: int) -> float:
        """Delay before restart number `attempt` (1 for the first)."""
        if attempt < 1:
            raise ValueError("attempt counts from 1")
        # Computed by repeated multiplication with an early cap, so a long outage
        # cannot overflow a float.
        d = self.initial
        for _ in range(attempt - 1):
            d *= self.factor
            if d >= self.max:
                return self.max
        return min(d, self.max)


@dataclass
class BackoffState:
    """Restarts so far in the current failure streak, and when the worker last became healthy."""

    policy: BackoffPolicy
    attempts: int = 0
    healthy_since: float | None = None

    def on_healthy(self, now: float) -> None:
        if self.healthy_since is None:
            self.healthy_since = now
        if self.attempts and now - self.healthy_since >= self.policy.reset_after:
            self.attempts = 0

    def on_unhealthy(self) -> None:
        self.healthy_since = None

    def next_delay(self) -> float:
        """Record one more restart and return how long to wait before it."""
        self.attempts += 1
        self.healthy_since = None
        return self.policy.delay(self.attempts)
