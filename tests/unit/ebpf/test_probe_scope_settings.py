import pytest

from agent.cgroups import parse_ids
from agent.config import ConfigError, parse_config
from agent.paths import Paths
from collectors.ebpf.probe import check_tracepoints, has_bpf_caps, parse_cap_eff
from collectors.ebpf.programs import BY_NAME, PROGRAMS, build_source
from collectors.ebpf.scope import read_scopes


def test_capabilities_from_status():
    root_caps = "Name:\tx\nCapEff:\t000001ffffffffff\n"
    assert has_bpf_caps(parse_cap_eff(root_caps))
    assert not has_bpf_caps(parse_cap_eff("CapEff:\t0000000000000000\n"))
    bpf_and_perfmon = (1 << 39) | (1 << 38)
    assert has_bpf_caps(bpf_and_perfmon)
    assert not has_bpf_caps(1 << 39)
    with pytest.raises(ValueError):
        parse_cap_eff("Name: x\n")


def test_missing_tracepoint_is_named(tmp_path):
    ev = tmp_path / "sys/kernel/tracing/events/sched/sched_switch"
    ev.mkdir(parents=True)
    (ev / "format").write_text("name: sched_switch\n")
    fork = ev.with_name("sched_process_fork")
    fork.mkdir()
    (fork / "format").write_text("name: sched_process_fork\n")
    v = check_tracepoints(Paths(tmp_path), BY_NAME["runqueue"])
    assert not v.ok and "sched:sched_wakeup" in v.reason and "sched_switch" not in v.reason
    assert check_tracepoints(Paths(tmp_path), BY_NAME["offcpu"]).ok
    no_tracefs = check_tracepoints(Paths(tmp_path / "nothing"), BY_NAME["oom"])
    assert "tracefs" in no_tracefs.reason
    assert "nsenter --net" in no_tracefs.fix and "ip netns exec" in no_tracefs.fix


def test_source_holds_each_enabled_program_once():
    src = build_source([BY_NAME["runqueue"], BY_NAME["offcpu"]], {"RINGBUF_PAGES": 8})
    assert src.count("TRACEPOINT_PROBE(sched, sched_switch)") == 1
    assert "#define ENABLE_RUNQUEUE 1" in src and "#define ENABLE_OFFCPU 1" in src
    assert "#define ENABLE_OOM" not in src and "mark_victim" not in src
    assert "#define RINGBUF_PAGES 8" in src
    assert len({p.prog_id for p in PROGRAMS}) == len(PROGRAMS)


def test_tids_of_v2_and_v1_cgroups(tmp_path):
    assert parse_ids("12\n13\n\n") == [12, 13]
    # hybrid host: an inference.slice in the v1 cpu hierarchy and in unified
    cg = tmp_path / "sys/fs/cgroup"
    for ctrl in ("cpu", "unified"):
        (cg / ctrl).mkdir(parents=True)
        (cg / ctrl / "cgroup.procs").write_text("")
    unit = cg / "cpu/inference.slice/vllm.service"
    unit.mkdir(parents=True)
    (unit / "tasks").write_text("101\n102\n")
    v2unit = cg / "unified/inference.slice/other.service"
    v2unit.mkdir(parents=True)
    (v2unit / "cgroup.threads").write_text("201\n")
    table = read_scopes(Paths(tmp_path), ["inference.slice"])
    assert set(table.tids) == {101, 102, 201}
    # no /proc in the fixture: the scope is named by its path in the hierarchy
    assert table.names[table.tids[101]] == "/inference.slice/vllm.service"
    assert table.names[table.tids[201]] == "/inference.slice/other.service"
    again = read_scopes(Paths(tmp_path), ["/sys/fs/cgroup/cpu/inference.slice"], table)
    assert again.tids == {101: table.tids[101], 102: table.tids[101]}  # ids stay stable


def test_settings_reject_bad_values_with_the_key_path():
    cfg = parse_config({"collectors": {"ebpf": {"programs": {"oom": False}, "runqueue_threshold": "2ms"}}})
    assert cfg.collectors.ebpf.programs.oom is False
    assert cfg.collectors.ebpf.runqueue_threshold == pytest.approx(0.002)
    with pytest.raises(ConfigError, match="ringbuf_pages.*power of two"):
        parse_config({"collectors": {"ebpf": {"ringbuf_pages": 3}}})
    with pytest.raises(ConfigError, match="programs.*kprobe"):
        parse_config({"collectors": {"ebpf": {"programs": {"kprobe": True}}}})


def test_port_ranges_parse_and_compile_to_a_first_match_expression():
    from collectors.ebpf.programs import port_range_macro
    from collectors.ebpf.settings import parse_port_range

    assert parse_port_range("8000-8099") == (8000, 8099)
    assert parse_port_range("443") == (443, 443)
    assert port_range_macro([]) == "0"
    assert port_range_macro([(1, 2), (5, 9)]) == "((p) >= 1 && (p) <= 2 ? 1 : ((p) >= 5 && (p) <= 9 ? 2 : 0))"
    for bad in ("9000-8000", "0-10", "x-y", "70000"):
        with pytest.raises(ConfigError, match="tcp_local_port_ranges"):
            parse_config({"collectors": {"ebpf": {"tcp_local_port_ranges": {"api": bad}}}})
    with pytest.raises(ConfigError, match="other"):
        parse_config({"collectors": {"ebpf": {"tcp_local_port_ranges": {"other": "1-2"}}}})


def test_missing_headers_and_privileges_turn_every_program_off(tmp_path):
    import os

    from collectors.ebpf.probe import check_headers, probe

    v = check_headers(Paths(tmp_path))
    assert not v.ok and os.uname().release in v.reason and "linux-headers-" in v.fix
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/status").write_text("CapEff:\t0000000000000000\n")
    verdicts = probe(Paths(tmp_path), list(PROGRAMS))
    assert set(verdicts) == {p.name for p in PROGRAMS}
    assert all(not v.ok and "CAP_BPF" in v.reason for v in verdicts.values())
