"""A real rollout: real ansible-core over real SSH to two Debian hosts, each booted
with systemd-nspawn (real systemd 252) in its own network namespace, reached over
a veth pair from the test's side.

The role installs the agent from a wheel built from this repository and a
wheelhouse archive of its dependencies (the hosts have no network), templates the
config, installs the units from systemd/ and starts them. The only double is the
vLLM stand-in the agent supervises as worker w0.

The tests share one pair of hosts, and each states the state it starts from
(`given`): the hosts are converged to it first when they are not already there.
In file order (converge, converge again with changed=0, two rollouts whose first
batch fails its gate, a rollout whose gates pass, a rollback) almost every
`given` finds its state already there; alone, with -k or in another order, each
test sets up what it needs.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, need_root
from tests.harness.ansible_output import recap, task_output
from tests.harness.netns import host_link

# Two booted hosts per test and real Ansible runs: about 2.5 minutes, in `make test-fleet`.
pytestmark = [pytest.mark.integration, pytest.mark.fleet]

ANSIBLE = REPO / "ansible"
NEW_VERSION = "0.1.1"  # the "next release" the rollouts install
STANDIN = "/usr/local/lib/fleet/vllm_standin.py"
HOSTS = ("fleet-h1", "fleet-h2")


@dataclass
class Host:
    name: str
    address: str
    netns: str
    box: object = None  # tests.harness.nspawn.Container


def _sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, capture_output=True, text=True)


def _free_subnets(n: int) -> list[str]:
    """`n` 10.233.X prefixes no interface on this machine uses."""
    used = _sh("ip", "-4", "-o", "addr", "show").stdout
    start = uuid.uuid4().int % 200 + 20
    out = [f"10.233.{x}" for x in range(start, 255) if f" 10.233.{x}." not in used][:n]
    if len(out) < n:
        raise RuntimeError("no free 10.233.X.0/24 for the test hosts")
    return out


def _prepare_root(host: str, pubkey: str):
    def setup(root: Path) -> None:
        ssh = root / "root/.ssh"
        ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
        (ssh / "authorized_keys").write_text(pubkey)
        (ssh / "authorized_keys").chmod(0o600)
        (root / "etc/hostname").write_text(host + "\n")
        standin = root / STANDIN.lstrip("/")
        standin.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "tests/doubles/vllm_standin.py", standin)
    return setup


def _wait_ssh(address: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((address, 22), timeout=2) as s:
                if s.recv(64).startswith(b"SSH-"):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"sshd on {address} did not answer within {timeout:g}s")
        time.sleep(0.3)


def _config(worker_args: list[str]) -> dict:
    return {
        "server": {"listen": "127.0.0.1:9480"},
        "tuning": {"mode": "audit", "profile": "fleet-gate"},
        "workers": [{
            "name": "w0", "gpus": [0], "port": 8000,
            "command": ["/usr/bin/python3", STANDIN, "serve", "standin/tiny"],
            "args": worker_args,
            "tracing": False,
            "shutdown_timeout": "5s", "drain_timeout": "10s", "deregister_delay": "1s",
            "health": {"interval": "1s", "timeout": "0.8s", "startup_grace": "20s"},
            "backoff": {"initial": "1s", "max": "4s"},
        }],
    }


GOOD_ARGS = ["--ttft", "0.01", "--itl", "0.01"]
# The engine dies at start: /health answers 503 and the server exits (vLLM's behaviour).
BROKEN_ARGS = [*GOOD_ARGS, "--fault", "engine_dead"]


class Fleet:
    def __init__(self, tmp: Path, hosts: list[Host], key: Path, dist: Path, wheelhouse: Path) -> None:
        self.tmp, self.hosts, self.key, self.dist, self.wheelhouse = tmp, hosts, key, dist, wheelhouse
        self.runs = 0
        # What the last test left, as (how, version), e.g. ("site.yml", "0.1.0"), or
        # ("stopped at fleet-h1", NEW_VERSION); None: unknown (fresh, or a test failed).
        self.state: tuple[str, str] | None = None

    def host(self, name: str) -> Host:
        return next(h for h in self.hosts if h.name == name)

    def inventory(self, version: str, host_configs: dict[str, dict] | None = None) -> Path:
        group_vars = {
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(self.key),
            "ansible_ssh_common_args": "-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no",
            "ansible_python_interpreter": "/usr/bin/python3",
            "infernode_install_os_packages": False,
            "infernode_version": version,
            "infernode_wheel": str(self.dist) + "/infernode-{{ infernode_version }}-py3-none-any.whl",
            "infernode_wheelhouse_archive": str(self.wheelhouse),
            "infernode_rollout_batch": 1,
            "infernode_gate_retries": 6,
            "infernode_gate_delay": 1,
            # Satisfiable inside a container: somaxconn is per network namespace (default 4096).
            "infernode_tuning_profiles": {"fleet-gate": {
                "description": "Rollout test profile: one knob every test host satisfies",
                "tunables": {"net.core.somaxconn": ">=1024"}}},
            "infernode_config": _config(GOOD_ARGS),
        }
        hosts = {h.name: {"ansible_host": h.address, **({"infernode_config": (host_configs or {})[h.name]}
                                                         if h.name in (host_configs or {}) else {})}
                 for h in self.hosts}
        inv = {"all": {"children": {"inference_nodes": {"hosts": hosts, "vars": group_vars}}}}
        self.runs += 1
        path = self.tmp / f"inventory-{self.runs}.yml"
        path.write_text(yaml.safe_dump(inv, sort_keys=False))
        return path

    def playbook(self, playbook: str, inventory: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(self.tmp), "LC_ALL": "C.UTF-8",
               "ANSIBLE_HOME": str(self.tmp / "ansible-home"), "ANSIBLE_LOCAL_TEMP": str(self.tmp / "ansible-tmp"),
               "ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.tmp / "cp"), "ANSIBLE_NOCOLOR": "1",
               "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_RETRY_FILES_ENABLED": "0"}
        t0 = time.monotonic()
        res = subprocess.run(["ansible-playbook", "-i", str(inventory), *extra, playbook], cwd=ANSIBLE, env=env,
                             capture_output=True, text=True, timeout=400)
        print(f"\nansible-playbook {playbook}: rc={res.returncode} in {time.monotonic() - t0:.1f}s")
        print(res.stdout[-1500:])
        return res


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    need_root()
    for tool in ("ansible-playbook", "ssh", "ssh-keygen"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} missing: scripts/setup-os.sh installs ansible-core and openssh-client")
    if not shutil.which("systemd-nspawn"):
        pytest.skip("systemd-nspawn missing (make setup installs systemd-container)")
    from tests.harness.nspawn import booted
    from tests.harness.wheelhouse import build_wheel, wheelhouse_archive

    tmp = tmp_path_factory.mktemp("fleet")
    key = tmp / "id_ed25519"
    _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fleet-test", "-f", str(key))
    pubkey = (tmp / "id_ed25519.pub").read_text()
    dist = tmp / "dist"
    dist.mkdir()

    with contextlib.ExitStack() as stack, concurrent.futures.ThreadPoolExecutor(4) as pool:
        # Wheels build while the hosts boot.
        builds = [pool.submit(build_wheel, REPO, dist), pool.submit(build_wheel, REPO, dist, NEW_VERSION)]
        hosts = []
        for name, subnet in zip(HOSTS, _free_subnets(len(HOSTS)), strict=False):
            ns, _, _ = stack.enter_context(host_link(name, subnet=subnet, prefix_len=24))
            hosts.append(Host(name, f"{subnet}.2", ns))
        cms = {h.name: booted(prefix=h.name, network_namespace=f"/run/netns/{h.netns}",
                              setup=_prepare_root(h.name, pubkey)) for h in hosts}
        entering = {name: pool.submit(cm.__enter__) for name, cm in cms.items()}
        errors = []
        for h in hosts:
            try:
                h.box = entering[h.name].result()
                stack.push(cms[h.name].__exit__)
            except BaseException as e:  # noqa: BLE001 - the other host still has to be cleaned up
                errors.append(e)
        if errors:
            raise errors[0]
        wheel = builds[0].result()
        builds[1].result()
        wheelhouse = wheelhouse_archive(REPO, wheel)
        for h in hosts:
            _wait_ssh(h.address)
        yield Fleet(tmp, hosts, key, dist, wheelhouse)


# ---- looking at a host ---------------------------------------------------------

def agent_version(h: Host) -> str:
    res = h.box.run("/opt/infernode/bin/infernode", "version", check=False)
    return res.stdout.strip()


def readyz(h: Host) -> dict:
    res = h.box.run("curl", "-s", "-m", "5", "-w", "\n%{http_code}", "http://127.0.0.1:9480/readyz", check=False)
    body, _, code = res.stdout.rpartition("\n")
    return {"code": code, **(json.loads(body) if body.startswith("{") else {})}


def worker(h: Host) -> dict:
    res = h.box.run("curl", "-sf", "-m", "5", "http://127.0.0.1:9480/workers", check=False)
    data = json.loads(res.stdout) if res.returncode == 0 else {}
    return next((w for w in data.get("workers", []) if w["worker"] == "w0"), {})


def unit_state(h: Host, unit: str) -> str:
    return h.box.show(unit, "ActiveState")["ActiveState"]


def agent_pid(h: Host) -> int:
    return int(h.box.show("infernode.service", "MainPID")["MainPID"])


def wait_worker_up(h: Host, timeout: float = 30) -> dict:
    return h.box.wait_for(lambda: (w := worker(h)) and w.get("up") and w, timeout, what=f"w0 up on {h.name}")


def serving(h: Host, version: str) -> bool:
    w = worker(h)
    return agent_version(h) == f"infernode {version}" and bool(w.get("up")) and w.get("phase") != "drained"


def given(fleet: Fleet, version: str, *, by: str | None = None, also: tuple[tuple[str, str], ...] = ()) -> None:
    """Start from both hosts converged to `version` (by the playbook `by`, when given)
    with the good config and w0 serving, or from one of the states in `also`. When the
    hosts are elsewhere, site.yml converges them and w0 is started through the agent."""
    if fleet.state in also:
        return
    how = fleet.state[0] if fleet.state else None
    if (fleet.state is not None and fleet.state[1] == version and by in (None, how)
            and all(serving(fleet.host(n), version) for n in HOSTS)):
        return
    fleet.state = None
    res = fleet.playbook("site.yml", fleet.inventory(version))
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    for name in HOSTS:
        h = fleet.host(name)
        # A host left drained by a stopped rollout stays drained until told (ends the drain).
        h.box.run("curl", "-sf", "-m", "10", "-X", "POST", "http://127.0.0.1:9480/workers/w0/start", check=False)
        wait_worker_up(h)
    fleet.state = ("site.yml", version)


# ---- the rollout ---------------------------------------------------------------

def test_site_converges_both_hosts(fleet):
    if fleet.runs:
        # Not fresh hosts (another test ran first): take them out of the desired state,
        # so that the run has something to converge.
        fleet.state = None
        for h in fleet.hosts:
            h.box.run("rm", "-f", "/etc/infernode/infernode.yaml")
            h.box.run("systemctl", "stop", "infernode.service")
    res = fleet.playbook("site.yml", fleet.inventory("0.1.0"))
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    rc = recap(res.stdout)
    assert set(rc) == set(HOSTS), rc
    for name in HOSTS:
        assert rc[name]["failed"] == 0 and rc[name]["unreachable"] == 0 and rc[name]["changed"] > 0, rc
        h = fleet.host(name)
        assert h.box.run("systemctl", "is-active", "infernode.service", check=False).stdout.strip() == "active"
        assert h.box.run("systemctl", "is-enabled", "infernode.service", check=False).stdout.strip() == "enabled"
        for unit in ("infernode.service", "inference.slice", "infernode-worker@.service"):
            installed = h.box.run("cat", f"/etc/systemd/system/{unit}").stdout
            assert installed == (REPO / "systemd" / unit).read_text(), unit
        assert agent_version(h) == "infernode 0.1.0"
        ready = readyz(h)
        assert ready["code"] == "200" and ready["ready"] is True, ready
        w = wait_worker_up(h)
        assert unit_state(h, "infernode-worker@w0.service") == "active", w
        # the venv sees the OS's site packages (bcc comes from python3-bpfcc)
        cfg = h.box.run("cat", "/opt/infernode/pyvenv.cfg").stdout
        assert "include-system-site-packages = true" in cfg
    fleet.state = ("site.yml", "0.1.0")


def test_second_site_run_changes_nothing(fleet):
    given(fleet, "0.1.0", by="site.yml")
    pids = {name: agent_pid(fleet.host(name)) for name in HOSTS}
    res = fleet.playbook("site.yml", fleet.inventory("0.1.0"))
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    rc = recap(res.stdout)
    assert set(rc) == set(HOSTS), rc
    for name in HOSTS:
        assert rc[name]["changed"] == 0 and rc[name]["failed"] == 0 and rc[name]["ok"] > 5, rc
        assert agent_pid(fleet.host(name)) == pids[name]  # no restart either


def _rollout_stopped_at_h1(fleet, h1_config: dict) -> str:
    """Roll NEW_VERSION out with `h1_config` on fleet-h1 (first batch), check that the
    rollout stopped there with fleet-h1 drained and fleet-h2 untouched; the output."""
    given(fleet, "0.1.0")
    h1, h2 = fleet.host("fleet-h1"), fleet.host("fleet-h2")
    h2_pid, h2_worker_pid = agent_pid(h2), worker(h2)["main_pid"]
    fleet.state = None
    res = fleet.playbook("rollout.yml", fleet.inventory(NEW_VERSION, {"fleet-h1": h1_config}))
    assert res.returncode != 0, res.stdout[-4000:]
    rc = recap(res.stdout)
    assert "fleet-h2" not in rc, rc  # the second batch never started
    assert "fleet-h2" not in res.stdout  # not a single task ran on it
    assert rc["fleet-h1"]["failed"] == 1 and rc["fleet-h1"]["rescued"] == 1, rc
    assert "health gate failed on fleet-h1; host left drained, rollout stopped" in res.stdout
    # fleet-h1: upgraded, but its worker is drained and stays down.
    assert agent_version(h1) == f"infernode {NEW_VERSION}"
    assert unit_state(h1, "infernode-worker@w0.service") in ("inactive", "failed")
    assert worker(h1)["phase"] == "drained", worker(h1)
    time.sleep(3)  # longer than the worker's backoff: the supervisor must not bring it back
    assert unit_state(h1, "infernode-worker@w0.service") in ("inactive", "failed")
    assert readyz(h1)["code"] == "200"  # the agent itself still reports
    # fleet-h2: untouched: old version, same agent process, same worker process.
    assert agent_version(h2) == "infernode 0.1.0"
    assert agent_pid(h2) == h2_pid
    assert worker(h2)["main_pid"] == h2_worker_pid and worker(h2)["up"]
    fleet.state = ("stopped at fleet-h1", NEW_VERSION)
    return res.stdout


def test_rollout_stops_when_the_first_hosts_worker_is_unhealthy(fleet):
    # The new release's worker on fleet-h1 does not come up healthy.
    out = _rollout_stopped_at_h1(fleet, _config(BROKEN_ARGS))
    gate = task_output(out, "Gate on each worker's /health")
    assert "FAILED - RETRYING: [fleet-h1]" in gate and "failed: [fleet-h1] (item=w0)" in gate, gate[-2000:]
    assert "Status code was 503" in gate


def test_rollout_stops_when_the_first_host_drifts_from_its_tuning(fleet):
    # Healthy worker, but fleet-h1's tuning asks for what the host does not have.
    config = _config(GOOD_ARGS)
    config["tuning"]["overrides"] = {"net.core.somaxconn": ">=1048576"}
    out = _rollout_stopped_at_h1(fleet, config)
    assert "ok: [fleet-h1] => (item=w0)" in task_output(out, "Gate on each worker's /health")
    gate = task_output(out, "Gate on tuning being in its desired state")
    assert "fatal: [fleet-h1]" in gate and "drift net.core.somaxconn" in gate, gate[-2000:]


def test_rollout_with_passing_gates_upgrades_every_host(fleet):
    # From the previous release, or from a rollout that stopped at its first host.
    given(fleet, "0.1.0", also=(("stopped at fleet-h1", NEW_VERSION),))
    fleet.state = None
    res = fleet.playbook("rollout.yml", fleet.inventory(NEW_VERSION))
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    rc = recap(res.stdout)
    assert set(rc) == set(HOSTS), rc
    # batches of one: fleet-h1's gate passed before fleet-h2 was touched
    first_h2 = res.stdout.index("fleet-h2")
    assert res.stdout.rfind("TASK [Gate on tuning being in its desired state]", 0, first_h2) != -1
    for name in HOSTS:
        h = fleet.host(name)
        assert rc[name]["failed"] == 0 and rc[name]["rescued"] == 0, rc
        assert agent_version(h) == f"infernode {NEW_VERSION}"
        w = wait_worker_up(h)
        assert w["phase"] != "drained" and unit_state(h, "infernode-worker@w0.service") == "active"
        assert h.box.run("/opt/infernode/bin/infernode", "tune", "verify", check=False).returncode == 0
    fleet.state = ("rollout.yml", NEW_VERSION)


def test_rollback_returns_every_host_to_the_previous_version(fleet):
    given(fleet, NEW_VERSION)
    pids = {name: worker(fleet.host(name))["main_pid"] for name in HOSTS}
    fleet.state = None
    res = fleet.playbook("rollback.yml", fleet.inventory(NEW_VERSION), "-e", "infernode_previous_version=0.1.0")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    rc = recap(res.stdout)
    assert set(rc) == set(HOSTS), rc
    for name in HOSTS:
        h = fleet.host(name)
        assert rc[name]["failed"] == 0 and rc[name]["changed"] > 0, rc
        assert agent_version(h) == "infernode 0.1.0"
        assert h.box.run("systemctl", "is-active", "infernode.service", check=False).stdout.strip() == "active"
        assert readyz(h)["code"] == "200"
        # an agent restart does not interrupt inference: the worker is its own unit
        assert worker(h)["main_pid"] == pids[name] and wait_worker_up(h)
    fleet.state = ("rollback.yml", "0.1.0")
