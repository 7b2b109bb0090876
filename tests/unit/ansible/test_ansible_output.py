"""The parsers the rollout test reads ansible-playbook's output with."""

import pytest

from tests.harness.ansible_output import recap, task_output

OUTPUT = """
PLAY [Roll out infernode in batches with a health gate] ************************

TASK [Gate on each worker's /health] *******************************************
FAILED - RETRYING: [fleet-h1]: Gate on each worker's /health (2 retries left).
failed: [fleet-h1] (item=w0) => {"msg": "Status code was 503"}

TASK [Drain the failed host's workers] *****************************************
changed: [fleet-h1] => (item=w0)

RUNNING HANDLER [infernode : Restart infernode] ********************************
changed: [fleet-h1]

PLAY RECAP *********************************************************************
fleet-h1                   : ok=12   changed=3    unreachable=0    failed=1    skipped=2    rescued=1    ignored=0   
fleet-h2                   : ok=0    changed=0    unreachable=1    failed=0    skipped=0    rescued=0    ignored=0   
"""


def test_recap_reads_every_host_and_counter():
    assert recap(OUTPUT) == {
        "fleet-h1": {"ok": 12, "changed": 3, "unreachable": 0, "failed": 1, "skipped": 2, "rescued": 1, "ignored": 0},
        "fleet-h2": {"ok": 0, "changed": 0, "unreachable": 1, "failed": 0, "skipped": 0, "rescued": 0, "ignored": 0},
    }


def test_recap_of_output_without_one_is_empty():
    assert recap("ERROR! the playbook: site.yml could not be found\n") == {}


def test_task_output_stops_at_the_next_header():
    gate = task_output(OUTPUT, "Gate on each worker's /health")
    assert "failed: [fleet-h1] (item=w0)" in gate and "Drain" not in gate
    assert task_output(OUTPUT, "Drain the failed host's workers").strip() == "changed: [fleet-h1] => (item=w0)"


def test_task_output_of_a_task_that_did_not_run_raises():
    with pytest.raises(AssertionError, match="did not run"):
        task_output(OUTPUT, "Gate on tuning being in its desired state")
