"""Reading ansible-playbook's default (text) output: the PLAY RECAP and one task's lines."""

from __future__ import annotations

import re


def recap(stdout: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP lines -> {host: {ok: N, changed: N, ...}}."""
    section = stdout.rsplit("PLAY RECAP", 1)[-1]
    out = {}
    for m in re.finditer(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", section, re.M):
        out[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return out


def task_output(stdout: str, task: str) -> str:
    """The lines the task printed (up to the next TASK or RUNNING HANDLER header)."""
    m = re.search(rf"^TASK \[{re.escape(task)}\][^\n]*\n(.*?)(?=^(?:TASK|RUNNING HANDLER|PLAY RECAP) )",
                  stdout, re.S | re.M)
    if not m:
        raise AssertionError(f"task {task!r} did not run")
    return m.group(1)
