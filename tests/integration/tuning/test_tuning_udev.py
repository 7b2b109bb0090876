"""The daemon's tuning loop verifies when a NIC appears (kernel uevent), not only
on its timer."""

import asyncio
import subprocess
import uuid

import pytest

from agent.config import parse_config
from agent.daemon import Daemon
from agent.paths import Paths
from agent.plugins import subsystem_classes
from tests.conftest import need_root
from tuning.subsystem import TuningSubsystem

pytestmark = pytest.mark.integration


def test_new_interface_triggers_a_verification(tmp_path):
    need_root()
    tag = uuid.uuid4().hex[:6]
    a, b = f"tunu{tag}", f"tunv{tag}"
    (tmp_path / "mtu.yaml").write_text('tunables:\n  nic.mtu: ">=68"\n')
    config = parse_config({"tuning": {"profile": "mtu", "profile_dirs": [str(tmp_path)], "nics": [a],
                                      "verify_interval": "1h"}})
    daemon = Daemon(config, None, Paths("/"), subsystem_classes())
    sub = next(s for s in daemon.subsystems if isinstance(s, TuningSubsystem))

    async def scenario() -> tuple[dict, dict, float, float]:
        await sub.start()
        try:
            before_state, first = dict(sub.in_state), sub.last_verify
            # Audit mode reads only; the veth is the one change, removed below.
            subprocess.run(["ip", "link", "add", a, "type", "veth", "peer", "name", b], check=True)
            try:
                for _ in range(50):
                    await asyncio.sleep(0.1)
                    if sub.last_verify != first:
                        break
            finally:
                subprocess.run(["ip", "link", "del", a], check=False)
            return before_state, dict(sub.in_state), first, sub.last_verify
        finally:
            await sub.stop()

    before_state, after_state, first, second = asyncio.run(scenario())
    assert ("nic.mtu", a) not in before_state  # the interface did not exist yet
    assert second != first, "no verification after the interface appeared"
    assert after_state[("nic.mtu", a)] == 1
