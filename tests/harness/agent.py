"""The infernode daemon as a real subprocess (`infernode run`) for tests.

    from tests.harness.agent import Agent

    with Agent.start(tmp_path, {"collectors": {"loadavg": {"enabled": True}}}) as agent:
        status, headers, body = agent.get("/metrics")
        agent.send(signal.SIGHUP)
        rc = agent.stop()            # SIGTERM, returns the exit code

`Agent.start(workdir, config, ...)` writes `config` (a dict) to workdir/infernode.yaml
with `server.listen` set to a free loopback port unless the dict sets it, starts
the installed `infernode` console script and waits for /readyz. stderr (JSON log
lines, since it is not a terminal) goes to workdir/agent-<port>.log: `log_lines()`
and `json_logs()` read it.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.harness.prometheus import free_port


class AgentError(RuntimeError):
    pass


def infernode_command() -> list[str]:
    """The installed console script next to this interpreter (the venv's)."""
    script = Path(sys.executable).parent / "infernode"
    if script.exists():
        return [str(script)]
    found = shutil.which("infernode")
    if found:
        return [found]
    return [sys.executable, "-c", "from agent.cli import main; main()"]


def run_cli(*args: str, timeout: float = 60.0, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`infernode ARGS...` to completion: (returncode, stdout, stderr)."""
    return subprocess.run([*infernode_command(), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)


class Agent:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, config_path: Path, log_path: Path) -> None:
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.config_path = config_path
        self.log_path = log_path

    @classmethod
    def start(
        cls,
        workdir: Path,
        config: Mapping[str, Any] | None = None,
        root: Path | None = None,
        env: Mapping[str, str] | None = None,
        ready_timeout: float = 30.0,
    ) -> Agent:
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        cfg = copy.deepcopy(dict(config or {}))
        server = cfg.setdefault("server", {})
        port = free_port()
        server.setdefault("listen", f"127.0.0.1:{port}")
        port = int(str(server["listen"]).rpartition(":")[2])
        config_path = workdir / "infernode.yaml"
        config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        agent = cls.spawn(config_path, port, workdir, root=root, env=env)
        agent.wait_ready(ready_timeout)
        return agent

    @classmethod
    def spawn(cls, config_path: Path, port: int, workdir: Path, root: Path | None = None,
              env: Mapping[str, str] | None = None) -> Agent:
        """Start without waiting (for tests of start-up failures)."""
        log_path = Path(workdir) / f"agent-{port}.log"
        args = [*infernode_command(), "run", "--config", str(config_path)]
        if root is not None:
            args += ["--root", str(root)]
        full_env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
        full_env.update(env or {})
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=full_env)
        return cls(proc, port, config_path, log_path)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AgentError(f"infernode exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                status, _, _ = self.get("/readyz", timeout=2)
                if status == 200:
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        raise AgentError(f"infernode not ready within {timeout:g}s:\n{self.log_text()}")

    def get(self, path: str, headers: Mapping[str, str] | None = None,
            timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(self.url + path, headers=dict(headers or {}))
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def metrics(self, openmetrics: bool = False) -> str:
        accept = {"Accept": "application/openmetrics-text; version=1.0.0"} if openmetrics else {}
        status, _, body = self.get("/metrics", accept)
        if status != 200:
            raise AgentError(f"/metrics answered {status}: {body[:500]!r}")
        return body.decode()

    def send(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Signal and wait; kill (and raise) if it does not exit within `timeout`."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AgentError(f"infernode ignored signal {sig} for {timeout:g}s:\n{self.log_text()}") from None
        return self.proc.returncode

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_lines(self) -> list[str]:
        return [line for line in self.log_text().splitlines() if line.strip()]

    def json_logs(self) -> list[dict[str, Any]]:
        """Every log line parsed as JSON (raises on a line that is not)."""
        return [json.loads(line) for line in self.log_lines()]

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def only_collectors(*names: str) -> dict[str, dict[str, bool]]:
    """A `collectors:` config section enabling `names` and disabling every other
    registered collector, so a test sees a known set of series however many
    collectors the registry holds."""
    from agent.plugins import COLLECTORS

    return {cls.name: {"enabled": cls.name in names} for cls in COLLECTORS}


def parse_exposition(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """{(sample name, labels): value} from a Prometheus text exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float | None:
    """One sample's value from a text exposition, None when absent."""
    return parse_exposition(text).get((name, frozenset(labels.items())))
