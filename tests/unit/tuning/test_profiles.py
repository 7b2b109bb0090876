"""Profiles: shipped ones load, includes and overrides compose, and every bad
profile is refused with the file and key named, exit 2, nothing changed."""

from pathlib import Path

import pytest
import yaml

from agent.paths import Paths
from tuning.profiles import ProfileError, load_profile, shipped_profiles
from tuning.state import state_path

from .conftest import invoke, tree


def write_config(tmp_path: Path, **tuning) -> Path:
    path = tmp_path / "infernode.yaml"
    path.write_text(yaml.safe_dump({"tuning": tuning}))
    return path


def test_shipped_profiles_load_and_throughput_inherits_latency():
    assert {"inference-latency", "inference-throughput"} <= set(shipped_profiles())
    latency = load_profile("inference-latency")
    throughput = load_profile("inference-throughput")
    assert throughput.desired["cpu.governor"][0].text == latency.desired["cpu.governor"][0].text == "performance"
    assert throughput.desired["vm.dirty_ratio"][0].text == "40"
    assert latency.desired["vm.dirty_ratio"][0].text == "10"
    assert "nic.rings" in throughput.desired and "nic.rings" not in latency.desired
    assert throughput.desired["vm.dirty_ratio"][1].endswith("inference-throughput.yaml: tunables.vm.dirty_ratio")
    assert [p.stem for p in throughput.files] == ["inference-latency", "inference-throughput"]


def test_operator_profile_overrides_and_null_drops(tmp_path):
    (tmp_path / "site.yaml").write_text(
        "include: inference-latency\ntunables:\n  nic.mtu: 9000\n  nic.irq_affinity: null\n")
    prof = load_profile("site", [tmp_path], overrides={"vm.swappiness": 1, "block.scheduler": None})
    assert prof.desired["nic.mtu"][0].text == "9000"
    assert "nic.irq_affinity" not in prof.desired and "block.scheduler" not in prof.desired
    assert prof.desired["vm.swappiness"] == (prof.desired["vm.swappiness"][0], "config: tuning.overrides.vm.swappiness")
    assert prof.desired["vm.swappiness"][0].text == "1"
    names = list(prof.desired)
    assert names.index("vm.swappiness") < names.index("nic.mtu")  # registry order, not file order


BAD = {
    "unknown-tunable": ("tunables:\n  cpu.turbo: on\n", "tunables.cpu.turbo: unknown tunable"),
    "bad-value": ("tunables:\n  vm.swappiness: 500\n", "tunables.vm.swappiness: expected an integer in [0, 200]"),
    "bad-choice": ("tunables:\n  cpu.governor: fast\n", "tunables.cpu.governor: expected one of performance"),
    "bad-triple": ("tunables:\n  net.ipv4.tcp_rmem: 4096\n", "tunables.net.ipv4.tcp_rmem: expected three fields"),
    "missing-include": ("include: nope\n", "include: profile 'nope' not found"),
    "cycle-a": ("include: cycle-b\n", "include: cycle cycle-a -> cycle-b -> cycle-a"),
    "bad-top": ("tunable:\n  vm.swappiness: 1\n", "tunable: unknown key"),
    "not-yaml": ("tunables: [\n", "invalid YAML"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_profile_exit_2_names_file_and_key_and_changes_nothing(tmp_path, root, name):
    pdir = tmp_path / "profiles"
    pdir.mkdir()
    for n, (text, _) in BAD.items():
        (pdir / f"{n}.yaml").write_text(text)
    (pdir / "cycle-b.yaml").write_text("include: cycle-a\n")
    cfg = write_config(tmp_path, profile_dirs=[str(pdir)])
    before = tree(root)
    for cmd in ("plan", "apply"):
        result = invoke("tune", cmd, "--root", str(root), "--config", str(cfg), "--profile", name)
        assert result.exit_code == 2, result.output
        assert BAD[name][1] in result.output
        file_named = pdir / ("cycle-b.yaml" if name == "cycle-a" else f"{name}.yaml")
        assert str(file_named) in result.output
    assert tree(root) == before
    assert not state_path(Paths(root)).exists()


def test_bad_override_names_config_key(tmp_path, root):
    cfg = write_config(tmp_path, overrides={"vm.swappiness": "high"})
    before = tree(root)
    result = invoke("tune", "apply", "--root", str(root), "--config", str(cfg))
    assert result.exit_code == 2
    assert f"{cfg}: tuning.overrides.vm.swappiness: expected an integer" in result.output
    assert tree(root) == before


def test_unknown_profile_name(tmp_path, root):
    cfg = write_config(tmp_path)
    result = invoke("tune", "plan", "--root", str(root), "--config", str(cfg), "--profile", "nonesuch")
    assert result.exit_code == 2 and "profile 'nonesuch' not found" in result.output


def test_load_profile_raises_profile_error_directly(tmp_path):
    (tmp_path / "x.yaml").write_text("tunables:\n  thp.enabled: sometimes\n")
    with pytest.raises(ProfileError, match=r"x.yaml: tunables.thp.enabled: expected one of always\|madvise\|never"):
        load_profile("x", [tmp_path])
