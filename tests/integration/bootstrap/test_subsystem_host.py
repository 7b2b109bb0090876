"""The bootstrap subsystem on this (real) host: the PCI uevent monitor opens a real
netlink socket, and package state is read in the background, not on the scrape."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.conftest import REPO, need_root

pytestmark = pytest.mark.integration


def test_subsystem_starts_monitor_and_refreshes_in_background():
    need_root()
    from agent.config import parse_config
    from agent.daemon import Daemon
    from agent.paths import Paths
    from agent.plugins import subsystem_classes

    config = parse_config({"bootstrap": {"manifest": str(REPO / "examples/manifest.yaml")}})
    daemon = Daemon(config, None, Paths("/"), subsystem_classes())
    sub = next(s for s in daemon.subsystems if s.name == "bootstrap")

    async def run() -> None:
        await sub.start()
        try:
            assert sub._monitor is not None and sub._monitor.fileno() >= 0
            t0 = time.monotonic()
            list(sub.samples())  # the scrape path: no subprocess, returns at once
            assert time.monotonic() - t0 < 0.05
            for _ in range(100):
                if sub.last_check is not None:
                    break
                await asyncio.sleep(0.05)
        finally:
            await sub.stop()

    asyncio.run(run())
    assert sub.error is None, sub.error
    # This machine has no NVIDIA stack: every component is out of its desired state.
    states = {s.labels["component"]: s.value for s in sub.samples() if s.name == "infernode_bootstrap_in_desired_state"}
    assert states and set(states.values()) == {0.0}
    assert "driver" in states
