from pathlib import Path

import pytest

from agent.bootstrap.detect import Detection, OsInfo, PciDevice
from agent.bootstrap.manifest import load_manifest
from agent.bootstrap.packages import Installed
from agent.bootstrap.plan import compute_plan, decide, format_plan
from agent.bootstrap.repo import APT_SOURCE, apt_source_line, dnf_repo_text, install_repo, keyring_name, restore
from agent.bootstrap.verify import Observations, evaluate, normalise_bus_id, nvml_count, parse_nvcc_version, parse_smi_csv
from agent.bootstrap.versions import compare_debian
from agent.paths import Paths
from tests.doubles.bootstrap_nvml import FakePynvml, NVMLError_DriverNotLoaded

REPO = Path(__file__).resolve().parents[3]
OUT = REPO / "tests/fixtures/bootstrap-outputs"
M = load_manifest(REPO / "examples/manifest.yaml")
DEBIAN = OsInfo("debian", "12", "debian")


def det(gpus=8, switches=4, module=None, open_km=True, nouveau=False) -> Detection:
    pci = [PciDevice(f"0000:{i:02x}:00.0", "gpu", 0x2330) for i in range(gpus)]
    pci += [PciDevice(f"0000:{0x80 + i:02x}:00.0", "nvswitch", 0x22a3) for i in range(switches)]
    return Detection(DEBIAN, "6.1.0-26-amd64", True, pci, module, open_km if module else None, nouveau)


def test_decide_each_action():
    assert decide(None, "1.0-1", compare_debian) == "install"
    assert decide(Installed("0.9-1", True), "1.0-1", compare_debian) == "upgrade"
    assert decide(Installed("1:0.1-1", True), "1.0-1", compare_debian) == "downgrade"
    assert decide(Installed("1.0-1", False), "1.0-1", compare_debian) == "hold"
    assert decide(Installed("1.0-1", True), "1.0-1", compare_debian) == "nothing"


def test_plan_reboot_only_when_module_in_use_or_nouveau():
    fresh = compute_plan(M, det(), {})
    assert not fresh.reboot_reasons and not any(r.reboot for r in fresh.rows)
    assert "fabric_manager" in [r.component for r in fresh.rows]
    old = compute_plan(M, det(module="570.172.08"), {})
    assert old.reboot_reasons == ["loaded nvidia module is 570.172.08, pinned driver is 580.95.05"]
    assert [r.component for r in old.rows if r.reboot] == ["driver", "kernel_modules"]
    nouveau = compute_plan(M, det(nouveau=True), {})
    assert any("nouveau" in r for r in nouveau.reboot_reasons)
    flavour = compute_plan(M, det(module="580.95.05", open_km=False), {})
    assert flavour.reboot_reasons == ["loaded nvidia module is proprietary, manifest wants open"]


def test_plan_converged_and_table():
    installed = {p.package: Installed(p.version, True) for p in compute_plan(M, det(switches=0), {}).pins}
    plan = compute_plan(M, det(switches=0, module="580.95.05"), installed)
    assert plan.converged and "fabric_manager" not in [r.component for r in plan.rows]
    text = format_plan(plan)
    assert "converged: nothing to do" in text and "fabric manager skipped: no NVSwitches" in text


def test_apt_source_signed_by_keyring(tmp_path):
    key = tmp_path / "etc/infernode/keys/cuda-archive-keyring.gpg"
    key.parent.mkdir(parents=True)
    key.write_bytes(b"\x99\x01\x0dbinary-openpgp-keyring")
    changed, snap = install_repo(M.repository, Paths(tmp_path), "debian")
    assert changed
    src = (tmp_path / APT_SOURCE.lstrip("/")).read_text()
    assert ("deb [signed-by=/etc/apt/keyrings/infernode-nvidia.gpg] "
            "https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/ /") in src
    assert (tmp_path / "etc/apt/keyrings/infernode-nvidia.gpg").read_bytes() == key.read_bytes()
    assert install_repo(M.repository, Paths(tmp_path), "debian")[0] is False
    restore(snap)
    assert not (tmp_path / APT_SOURCE.lstrip("/")).exists()
    assert keyring_name(b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n").endswith(".asc")
    # The line apt itself accepts: apt-get parses it without complaint.
    assert apt_source_line(M.repository, "/k.gpg").splitlines()[-1].startswith("deb [signed-by=/k.gpg] https://")


def test_missing_key_is_a_manifest_error(tmp_path):
    from agent.bootstrap.repo import RepoError
    with pytest.raises(RepoError, match="repository.key: cannot read /etc/infernode/keys/cuda-archive-keyring.gpg"):
        install_repo(M.repository, Paths(tmp_path), "debian")


def test_dnf_repo_text():
    text = dnf_repo_text(M.repository, "/etc/pki/rpm-gpg/RPM-GPG-KEY-infernode-nvidia")
    assert "gpgcheck=1" in text and "gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-infernode-nvidia" in text
    assert text.startswith("[infernode-nvidia]")


def test_nvidia_smi_and_nvcc_parsers():
    rows = parse_smi_csv((OUT / "nvidia-smi-h100x8.csv").read_text())
    assert len(rows) == 8 and {r.driver_version for r in rows} == {"580.95.05"}
    assert [normalise_bus_id(r.bus_id) for r in rows if not r.persistence] == ["0000:ba:00.0"]
    assert parse_nvcc_version((OUT / "nvcc-13.0.txt").read_text()) == ("13.0", "13.0.88")
    assert parse_nvcc_version((OUT / "nvcc-12.4.txt").read_text()) == ("12.4", "12.4.131")
    assert parse_nvcc_version("bash: nvcc: command not found") is None


def _obs(smi=(0, (OUT / "nvidia-smi-h100x8.csv").read_text()), nvcc="nvcc-12.4.txt", nvml=(7, "NVML initialised")):
    return Observations(smi, ("/usr/local/cuda/bin/nvcc", (OUT / nvcc).read_text()) if nvcc else None, nvml,
                        {"nvidia-persistenced.service": (True, "active"),
                         "nvidia-fabricmanager.service": (False, "failed")})


def test_evaluate_on_fixture_outputs():
    checks = {c.name: c for c in evaluate(M, det(module="580.95.05"), _obs())}
    assert checks["driver_loaded"].ok
    assert checks["nvidia_smi"].ok
    assert not checks["persistence_mode"].ok and "0000:ba:00.0" in checks["persistence_mode"].detail
    assert not checks["nvml"].ok and checks["nvml"].detail == "NVML sees 7 GPU(s), PCI has 8"
    assert not checks["nvcc"].ok and "release 12.4" in checks["nvcc"].detail
    assert checks["service:nvidia-persistenced.service"].ok
    assert not checks["service:nvidia-fabricmanager.service"].ok
    good = {c.name: c.ok for c in evaluate(M, det(module="580.95.05"), _obs(nvcc="nvcc-13.0.txt", nvml=(8, "")))}
    assert good["nvcc"] and good["nvml"]


def test_evaluate_without_driver():
    checks = {c.name: c for c in evaluate(M, det(), _obs(smi=(127, "nvidia-smi: not found"), nvcc=None,
                                                            nvml=(None, "NVML init failed: Driver Not Loaded")))}
    assert not checks["driver_loaded"].ok and not checks["nvidia_smi"].ok and not checks["persistence_mode"].ok
    assert "not found" in checks["nvcc"].detail
    # The wrong driver version loaded fails even though the module is there.
    wrong = {c.name: c for c in evaluate(M, det(module="570.172.08"), _obs())}
    assert not wrong["driver_loaded"].ok and "pinned 580.95.05" in wrong["driver_loaded"].detail


def test_nvml_count_through_the_nvml_double():
    nvml = FakePynvml(count=8)
    assert nvml_count(nvml) == (8, "NVML initialised")
    assert nvml.refs == 0  # shut down again
    count, why = nvml_count(FakePynvml(init_error=NVMLError_DriverNotLoaded()))
    assert count is None and "Driver Not Loaded" in why
