"""Run INSIDE the test container (python3 -m tests.integration.worker.inside_gpu_fault):
the real supervisor, real systemctl, and a GPU XID event in its EventStore, as the
GPU collector would add it. Prints one JSON line of what it saw."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from agent.config import load_config
from agent.daemon import Daemon
from agent.events import Event, now_ns
from agent.paths import Paths
from agent.plugins import subsystem_classes
from agent.worker.subsystem import WorkerSupervisor


async def main() -> None:
    daemon = Daemon(load_config(Path("/etc/infernode/infernode.yaml")), None, Paths("/"), subsystem_classes())
    sup = next(s for s in daemon.subsystems if isinstance(s, WorkerSupervisor))
    await sup.start()
    w = sup.workers["w0"]
    deadline = time.monotonic() + 30
    while not w.up and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    was_up = w.up
    t = now_ns()
    daemon.events.add(Event(t, t, "gpu_xid", "gpu:GPU-6f1c0000-test", 1.0,
                            {"xid": 79, "action": "reboot_node"}))
    deadline = time.monotonic() + 20
    while w.active_state not in ("inactive", "failed") and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    await asyncio.sleep(4)  # longer than the backoff: a restart would have happened by now
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in sup.samples()
               if s.name.startswith("infernode_")}
    print(json.dumps({
        "was_up": was_up, "phase": w.policy.phase.value, "active_state": w.active_state,
        "problem": w.last_problem, "restarts": w.restarts,
        "schedulable": samples.get(("infernode_node_schedulable", (("reason", "xid_79"),))),
        "worker_up": samples.get(("infernode_worker_up", (("worker", "w0"),))),
        "events": [e.kind + ":" + str(e.attributes.get("reason", "")) for e in daemon.events.recent(10)],
    }))
    await sup.stop()


if __name__ == "__main__":
    asyncio.run(main())
