import subprocess
from pathlib import Path

import pytest

from agent.bootstrap.manifest import ManifestError, load_manifest, merge, parse_manifest, pins

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples/manifest.yaml"


def test_shipped_example_is_valid():
    m = load_manifest(EXAMPLE)
    assert m.driver.upstream == "580.95.05"
    assert m.cuda_toolkit.release == "13.0"
    assert m.dcgm.version == "1:4.4.1-1"


def test_pins_follow_nvswitches_and_kernel_module_flavour(tmp_path):
    m = load_manifest(EXAMPLE)
    no_switch = [p.package for p in pins(m, nvswitches=0)]
    assert "nvidia-fabricmanager-580" not in no_switch
    assert no_switch[:2] == ["cuda-drivers-580", "nvidia-kernel-open-dkms"]
    assert "nvidia-fabricmanager-580" in [p.package for p in pins(m, nvswitches=4)]
    o = tmp_path / "o.yaml"
    o.write_text("driver:\n  kernel_modules: proprietary\ncontainer_toolkit:\n  enabled: false\n")
    m2 = load_manifest(EXAMPLE, (o,))
    names = [p.package for p in pins(m2, 0)]
    assert "nvidia-kernel-dkms" in names and "nvidia-container-toolkit" not in names
    assert m2.driver.version == "580.95.05-1"  # untouched keys survive the merge


def test_merge_is_deep_and_override_wins():
    assert merge({"a": {"b": 1, "c": 2}, "l": [1]}, {"a": {"b": 3}, "l": [2]}) == {"a": {"b": 3, "c": 2}, "l": [2]}


@pytest.mark.parametrize("override,expected", [
    ("driver:\n  versoin: 1\n", "driver.versoin: unknown key"),
    ("driver:\n  version: 570.1-1\n", "driver: Value error, version '570.1-1' is not on branch 580"),
    ("nccl:\n  version: latest\n", "nccl.version: Value error, expected a package version"),
    ("repository:\n  key: null\n", "repository: Value error, key is required"),
    ("repository:\n  url: deb.example.com\n", "repository.url: Value error, expected an http(s)://"),
    ("driver:\n  kernel_modules: closed\n", "driver.kernel_modules: Input should be 'open' or 'proprietary'"),
])
def test_errors_name_the_key_path_and_value(tmp_path, override, expected):
    o = tmp_path / "o.yaml"
    o.write_text(override)
    with pytest.raises(ManifestError) as e:
        load_manifest(EXAMPLE, (o,))
    text = str(e.value).replace("Value error, ", "")
    assert expected.replace("Value error, ", "") in text
    assert str(EXAMPLE) in text and str(o) in text


def test_missing_section_and_bad_yaml(tmp_path):
    with pytest.raises(ManifestError, match="cudnn: Field required"):
        parse_manifest({k: v for k, v in load_manifest(EXAMPLE).model_dump(mode="json").items() if k != "cudnn"})
    bad = tmp_path / "bad.yaml"
    bad.write_text("driver: [\n")
    with pytest.raises(ManifestError, match=r"line \d+, column \d+: invalid YAML"):
        load_manifest(bad)


def test_cli_exits_2_on_invalid_manifest(tmp_path):
    o = tmp_path / "o.yaml"
    o.write_text("dcgm:\n  colour: blue\n")
    p = subprocess.run([str(REPO / ".venv/bin/infernode"), "bootstrap", "plan", "--manifest", str(EXAMPLE),
                        "--override", str(o)], capture_output=True, text=True)
    assert p.returncode == 2
    assert "dcgm.colour: unknown key" in p.stderr
