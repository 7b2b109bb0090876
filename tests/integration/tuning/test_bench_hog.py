"""`infernode tune bench --profile inference-isolated` against the vLLM stand-in,
with CPU hogs that share the worker's CPU, on the real kernel.

Inside a new PID namespace (its own /proc, so `processes.cpu_affinity` sees only
this test's processes and moves nothing else of the host): the stand-in pinned to
the last CPU (an inference CPU; the first is housekeeping on this host), as the
worker unit's CPUAffinity= pins a worker, burning CPU for every token as vLLM's
host-side decode loop does; and two busy loops per CPU, unpinned, started before
the bench, as backup jobs or log shippers would be (with one a CPU, the balancer
sometimes left the worker's CPU to it alone for a whole round). The profile moves the loops
to the housekeeping CPU; the worker keeps its CPU to itself.

The report must call TPOT and e2e better, by a clear margin; afterwards the hogs
run where they ran before, every knob of the profile reads what it read before,
and no tuning record is left.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from agent.cpulist import format_cpulist, parse_cpulist
from tests.conftest import need_root
from tests.harness.prometheus import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
STANDIN = REPO / "tests" / "doubles" / "vllm_standin.py"
INFERNODE = Path(sys.executable).parent / "infernode"

# Runs as PID 1 of the namespace. Prints one JSON line: the plan before, the bench
# report, the plan after, the hogs' affinities before and after.
DRIVER = r"""
set -eu
cpus=$(nproc)
worker_cpu=$((cpus - 1))
taskset -c "$worker_cpu" "$PYTHON" "$STANDIN" serve bench-model --host 127.0.0.1 --port "$PORT" \
    --ttft 0.01 --itl 0 --cpu-per-token 0.004 >"$WORK/standin.log" 2>&1 &
standin=$!
hogs=""
for i in $(seq $((2 * cpus))); do "$PYTHON" -c 'while True: pass' & hogs="$hogs $!"; done
for i in $(seq 100); do
  if "$PYTHON" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/health', timeout=1)" 2>/dev/null; then break; fi
  sleep 0.1
done
affinity() { for p in $hogs; do taskset -cp "$p" | sed 's/.*: //'; done | paste -sd ' '; }
hogs_before=$(affinity)
"$INFERNODE" tune plan --json --config "$CONFIG" --profile inference-isolated >"$WORK/plan-before.json"
"$INFERNODE" tune bench --json --force --config "$CONFIG" --profile inference-isolated --rounds 3 \
    --requests 10 --concurrency 1 --prompt-tokens 32 --output-tokens 16 >"$WORK/report.json" 2>"$WORK/bench.err" \
    || { cat "$WORK/bench.err" >&2; exit 3; }
hogs_after=$(affinity)
"$INFERNODE" tune plan --json --config "$CONFIG" --profile inference-isolated >"$WORK/plan-after.json"
kill $hogs $standin
printf '{"hogs_before": "%s", "hogs_after": "%s", "worker_cpu": %s}\n' "$hogs_before" "$hogs_after" "$worker_cpu"
"""


def test_bench_reports_the_hog_moved_away_and_puts_the_host_back(tmp_path):
    need_root()
    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs a housekeeping CPU and an inference CPU")
    port = free_port()
    config = tmp_path / "infernode.yaml"
    config.write_text(yaml.safe_dump({
        "server": {"listen": f"127.0.0.1:{free_port()}"},
        "workers": [{"name": "w0", "port": port, "command": ["true"]}],
        "tuning": {"profile_dirs": []},
    }))
    env = {**os.environ, "PYTHON": sys.executable, "STANDIN": str(STANDIN), "PORT": str(port),
           "CONFIG": str(config), "WORK": str(tmp_path), "INFERNODE": str(INFERNODE)}
    res = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "bash", "-c", DRIVER],
                         capture_output=True, text=True, env=env, timeout=240)
    assert res.returncode == 0, res.stderr[-3000:] + (tmp_path / "standin.log").read_text()[-2000:]
    hogs = json.loads(res.stdout.strip().splitlines()[-1])
    report = json.loads((tmp_path / "report.json").read_text())

    assert "processes.cpu_affinity" in report["changed"]
    by = {(c["metric"], c["percentile"]): c for c in report["comparisons"]}
    for key in (("tpot", 50), ("e2e", 50)):
        c = by[key]
        assert c["verdict"] == "better", c
        # Alone on its CPU instead of sharing it with a busy loop: well under the time.
        assert c["difference_pct"] < -25, c
    assert report["kept"] is False

    # The host as it was: the hogs may run everywhere again, every knob reads as before.
    cpus = format_cpulist(frozenset(range(hogs["worker_cpu"] + 1)))
    assert [format_cpulist(parse_cpulist(a)) for a in hogs["hogs_before"].split()] == [cpus] * 2 * os.cpu_count()
    assert hogs["hogs_after"] == hogs["hogs_before"]
    current = {(r["tunable"], r["target"]): r["current"] for r in
               json.loads((tmp_path / "plan-before.json").read_text())["rows"]}
    after = {(r["tunable"], r["target"]): r["current"] for r in
             json.loads((tmp_path / "plan-after.json").read_text())["rows"]}
    assert after == current
    assert current[("processes.cpu_affinity", "running")] == cpus  # the hogs were there to be moved


MOVER = r"""
set -eu
last=$(($(nproc) - 1))
sleep 60 & loose=$!
taskset -c "$last" sleep 60 & pinned=$!
bash -c 'exec -a vllm-serve-by-hand sleep 60' & engine=$!
aff() { taskset -cp "$1" | sed 's/.*: //'; }
echo "before $(aff $loose) $(aff $pinned) $(aff $engine)"
"$INFERNODE" tune apply --config "$CONFIG" --profile processes-only >/dev/null
echo "applied $(aff $loose) $(aff $pinned) $(aff $engine)"
"$INFERNODE" tune verify --config "$CONFIG" --profile processes-only >/dev/null && echo "verify 0"
"$INFERNODE" tune rollback --config "$CONFIG" >/dev/null
echo "rolled-back $(aff $loose) $(aff $pinned) $(aff $engine)"
kill $loose $pinned $engine
"""


def test_processes_are_moved_off_the_inference_cpus_and_back(tmp_path):
    """processes.cpu_affinity through apply, verify and rollback (its originals go
    through the state file): a thread free to run anywhere is narrowed to the
    housekeeping CPU, one pinned to an inference CPU stays, so does an unpinned
    process whose command line names vLLM, and rollback gives the first its CPUs
    back."""
    need_root()
    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs a housekeeping CPU and an inference CPU")
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "processes-only.yaml").write_text("description: t\ntunables:\n  processes.cpu_affinity: housekeeping\n")
    config = tmp_path / "infernode.yaml"
    config.write_text(yaml.safe_dump({"tuning": {"profile_dirs": [str(profiles)], "housekeeping_cpus": "0"}}))
    env = {**os.environ, "CONFIG": str(config), "INFERNODE": str(INFERNODE)}
    # From a file: a `bash -c` command line would carry the script's text, vllm included.
    (tmp_path / "mover.sh").write_text(MOVER)
    res = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "bash", str(tmp_path / "mover.sh")],
                         capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 0, res.stderr
    lines = {line.split()[0]: [format_cpulist(parse_cpulist(w)) for w in line.split()[1:]]
             for line in res.stdout.splitlines()}
    last = os.cpu_count() - 1
    everywhere, inference = format_cpulist(frozenset(range(last + 1))), str(last)
    assert lines["before"] == [everywhere, inference, everywhere]
    assert lines["applied"] == ["0", inference, everywhere]
    assert "verify" in lines
    assert lines["rolled-back"] == [everywhere, inference, everywhere]
