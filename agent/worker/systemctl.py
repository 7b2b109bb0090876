"""Units started, stopped and inspected through systemctl (no D-Bus bindings needed)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass


class SystemctlError(RuntimeError):
    pass


def parse_show(text: str) -> dict[str, str]:
    """`systemctl show -p A -p B UNIT` output ("A=x" lines) as a dict."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key] = value
    return out


@dataclass
class Systemctl:
    binary: str = "systemctl"
    timeout: float = 30.0

    async def _run(self, *args: str, timeout: float | None = None) -> str:
        proc = await asyncio.create_subprocess_exec(
            self.binary, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout or self.timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise SystemctlError(f"systemctl {' '.join(args)}: no answer within {timeout or self.timeout:g}s") from None
        if proc.returncode != 0:
            raise SystemctlError(f"systemctl {' '.join(args)} failed ({proc.returncode}): {err.decode().strip()}")
        return out.decode()

    async def daemon_reload(self) -> None:
        await self._run("daemon-reload")

    async def start(self, unit: str) -> None:
        await self._run("start", "--no-block", unit)

    async def restart(self, unit: str) -> None:
        await self._run("restart", "--no-block", unit)

    async def stop(self, unit: str, block: bool = False, timeout: float | None = None) -> None:
        await self._run("stop", *(() if block else ("--no-block",)), unit, timeout=timeout)

    async def reset_failed(self, unit: str) -> None:
        await self._run("reset-failed", unit)

    async def kill(self, unit: str, signal: str = "SIGTERM", who: str = "main") -> None:
        await self._run("kill", f"--kill-who={who}", f"--signal={signal}", unit)

    async def show(self, unit: str, *props: str) -> dict[str, str]:
        return parse_show(await self._run("show", *(f"--property={p}" for p in props), unit))
