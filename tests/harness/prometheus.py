"""A real Prometheus (Debian `prometheus`, /usr/bin/prometheus) for tests.

    from tests.harness.prometheus import Prometheus

    with Prometheus.start({"infernode": ["127.0.0.1:9480"]}, tmp_path) as prom:
        prom.wait_for_target_up("infernode", timeout=30)
        result = prom.query('infernode_build_info')          # instant vector
        series = prom.wait_for_series('up{job="infernode"} == 1')
        exemplars = prom.query_exemplars('my_bucket', start, end)

`Prometheus.start(jobs, workdir, scrape_interval="1s", extra_flags=(), scrape_configs=(), rule_files=())`
writes prometheus.yml and a TSDB dir under `workdir`, starts Prometheus on a free
loopback port and waits for /-/ready. `jobs` maps a job name to "host:port"
targets scraped at /metrics; `scrape_configs` adds raw scrape_config dicts for
anything else (another metrics_path, params). `extra_flags` go on the command line,
e.g. ["--enable-feature=exemplar-storage"]; `rule_files` are loaded and evaluated at
the scrape interval. `stop()` (or leaving the `with`) ends
the process; the files stay in `workdir` for post-mortems.

`promtool_check_metrics(body)` runs `promtool check metrics` on an exposition and
returns (exit code, its output).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"


class PrometheusError(RuntimeError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the caller binds it soon after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def available() -> bool:
    return Path(PROMETHEUS).is_file() and Path(PROMTOOL).is_file()


def promtool_check_metrics(body: bytes) -> tuple[int, str]:
    """`promtool check metrics` on an exposition: (exit code, stdout+stderr)."""
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True, timeout=60)
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace")


class Prometheus:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, workdir: Path, log_path: Path) -> None:
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.workdir = workdir
        self.log_path = log_path

    @classmethod
    def start(
        cls,
        jobs: Mapping[str, Sequence[str]],
        workdir: Path,
        scrape_interval: str = "1s",
        extra_flags: Iterable[str] = (),
        scrape_configs: Iterable[Mapping[str, Any]] = (),
        ready_timeout: float = 60.0,
        rule_files: Iterable[Path] = (),
    ) -> Prometheus:
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": scrape_interval, "scrape_timeout": scrape_interval,
                       "evaluation_interval": scrape_interval},
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": list(targets)}]} for job, targets in jobs.items()
            ] + [dict(c) for c in scrape_configs],
        }
        rules = [str(Path(r).resolve()) for r in rule_files]
        if rules:
            config["rule_files"] = rules
        config_path = workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        check = subprocess.run([PROMTOOL, "check", "config", str(config_path)], capture_output=True, text=True)
        if check.returncode != 0:
            raise PrometheusError(f"promtool rejects the test's config:\n{check.stdout}{check.stderr}")
        # The free port can be taken between probing and binding: try a few.
        last = ""
        for _ in range(3):
            port = free_port()
            tsdb = workdir / f"tsdb-{port}"
            log_path = workdir / f"prometheus-{port}.log"
            with open(log_path, "wb") as log:
                proc = subprocess.Popen(
                    [PROMETHEUS, f"--config.file={config_path}", f"--storage.tsdb.path={tsdb}",
                     f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn", *extra_flags],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                )
            prom = cls(proc, port, workdir, log_path)
            try:
                prom._wait_ready(ready_timeout)
                return prom
            except PrometheusError as e:
                last = str(e)
                prom.stop()
                if "address already in use" not in last:
                    break
        raise PrometheusError(last)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise PrometheusError(f"prometheus exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        raise PrometheusError(f"prometheus not ready within {timeout:g}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def api(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET /api/v1/<path>; returns the `data` member, raises on status != success."""
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                body = json.load(r)
        except urllib.error.HTTPError as e:
            raise PrometheusError(f"{url}: HTTP {e.code}: {e.read().decode(errors='replace')}") from None
        if body.get("status") != "success":
            raise PrometheusError(f"{url}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; the result list ([{"metric": {...}, "value": [ts, "v"]}, ...])."""
        return self.api("query", {"query": expr})["result"]

    def targets(self) -> list[dict[str, Any]]:
        """Active targets: each has labels.job, scrapeUrl, health ("up"/"down"/"unknown"), lastError."""
        return self.api("targets", {"state": "active"})["activeTargets"]

    def wait_for_target_up(self, job: str | None = None, timeout: float = 30.0) -> dict[str, Any]:
        """The first target (of `job`, when given) whose health is "up"."""
        deadline = time.monotonic() + timeout
        seen: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            seen = [t for t in self.targets() if job is None or t["labels"].get("job") == job]
            for t in seen:
                if t["health"] == "up":
                    return t
            time.sleep(0.2)
        state = [(t["scrapeUrl"], t["health"], t.get("lastError", "")) for t in seen]
        raise PrometheusError(f"no target of job {job!r} up within {timeout:g}s: {state}")

    def wait_for_series(self, expr: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Poll an instant query until it returns something; that result."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.query(expr)
            if result:
                return result
            time.sleep(0.2)
        raise PrometheusError(f"{expr!r} returned nothing within {timeout:g}s")

    def query_exemplars(self, expr: str, start: float, end: float) -> list[dict[str, Any]]:
        """/api/v1/query_exemplars (needs --enable-feature=exemplar-storage); start/end are Unix seconds.
        Each item: {"seriesLabels": {...}, "exemplars": [{"labels": {...}, "value": "..", "timestamp": ..}]}."""
        return self.api("query_exemplars", {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}"})

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cleanup(self) -> None:
        """Stop and remove the work directory's TSDBs (the config and logs stay)."""
        self.stop()
        for tsdb in self.workdir.glob("tsdb-*"):
            shutil.rmtree(tsdb, ignore_errors=True)

    def __enter__(self) -> Prometheus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
