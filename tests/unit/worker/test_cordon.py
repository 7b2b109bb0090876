"""The cordon's record and the readiness it overrides."""

import pytest

from agent.paths import Paths
from agent.worker.cordon import CORDON, CordonError, check_reason, clear_cordon, read_cordon, write_cordon
from agent.worker.subsystem import doctor_rows


@pytest.mark.parametrize("reason,message", [
    ("", "needs a reason"), ("   ", "needs a reason"), ("x" * 201, "at most 200"), ("a\nb", "one line"),
])
def test_bad_reasons(reason, message):
    with pytest.raises(CordonError, match=message):
        check_reason(reason)


def test_record_round_trip_and_an_unreadable_record_stays_cordoned(tmp_path):
    paths = Paths(tmp_path)
    assert read_cordon(paths) is None
    write_cordon(paths, check_reason("  reboot for boot parameters "))
    assert read_cordon(paths) == "reboot for boot parameters"
    clear_cordon(paths)
    assert read_cordon(paths) is None
    clear_cordon(paths)  # idempotent
    record = paths.host(CORDON)
    record.write_bytes(b"\xff\xfe")
    assert read_cordon(paths).startswith("(record unreadable")
    record.write_text("\n")
    assert read_cordon(paths) == "(no reason recorded)"


def test_doctor_says_a_cordoned_worker_serves_out_of_rotation():
    rows = doctor_rows([{"worker": "w0", "ready": False, "ready_reason": "node cordoned: tune bench",
                         "phase": "running", "unit": "infernode-worker@w0.service"}])
    assert [(r.status, r.detail, r.fix) for r in rows] == [
        ("warn", "serving, out of rotation: node cordoned: tune bench", "`infernode uncordon` puts it back")]
