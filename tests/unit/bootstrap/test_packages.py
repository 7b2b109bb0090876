from pathlib import Path

from agent.bootstrap.packages import (
    Apt,
    Dnf,
    Installed,
    Runner,
    driver_module_stream,
    parse_dnf_list,
    parse_dpkg_query,
    parse_madison,
    parse_rpm_query,
    parse_versionlock_list,
)


def test_dpkg_query_status_and_holds():
    text = ("libnccl2\t2.28.3-1+cuda13.0\thold ok installed\n"
            "cuda-drivers-580\t580.95.05-1\tinstall ok installed\n"
            "old-pkg\t1.0-1\tdeinstall ok config-files\n"
            "cuda-toolkit-13-0\t\tunknown ok not-installed\n")
    assert parse_dpkg_query(text) == {
        "libnccl2": Installed("2.28.3-1+cuda13.0", True),
        "cuda-drivers-580": Installed("580.95.05-1", False),
    }


def test_madison():
    text = (" libnccl2 | 2.28.3-1+cuda13.0 | file:/srv/repo ./ Packages\n"
            " libnccl2 | 2.27.7-1+cuda13.0 | file:/srv/repo ./ Packages\n")
    assert parse_madison(text) == ["2.28.3-1+cuda13.0", "2.27.7-1+cuda13.0"]
    assert parse_madison("") == []


def test_apt_commands():
    argv = Apt.install_argv([("libnccl2", "2.28.3-1+cuda13.0"), ("datacenter-gpu-manager-4-core", "1:4.4.1-1")],
                            progress=True)
    assert argv[:2] == ["apt-get", "install"]
    assert "--allow-downgrades" in argv and "--allow-change-held-packages" in argv
    assert "Dpkg::Progress-Fancy=1" in argv
    assert argv[-2:] == ["libnccl2=2.28.3-1+cuda13.0", "datacenter-gpu-manager-4-core=1:4.4.1-1"]
    assert "-s" in Apt.install_argv([("a", "1")], simulate=True)
    assert "Dir::Etc::sourceparts=-" in Apt.refresh_argv("sources.list.d/x.list")


def test_runner_prefixes_chroot_and_uses_systemctl_root():
    r = Runner(Path("/mnt/target"))
    assert r.argv(["dpkg-query", "-W"]) == ["chroot", "/mnt/target", "dpkg-query", "-W"]
    assert r.systemctl_argv(["enable", "x.service"]) == ["systemctl", "--root=/mnt/target", "enable", "x.service"]
    live = Runner()
    assert live.argv(["true"]) == ["true"] and live.live


def test_rpm_and_dnf_parsers():
    assert parse_rpm_query("cuda-drivers\t0:580.95.05-1.el9\ndatacenter-gpu-manager-4-core\t1:4.4.1-1\n"
                           "package libnccl is not installed\n") == {
        "cuda-drivers": "580.95.05-1.el9", "datacenter-gpu-manager-4-core": "1:4.4.1-1"}
    assert parse_versionlock_list("Last metadata expiration check: 0:01:02 ago.\n"
                                  "cuda-drivers-580-0:580.95.05-1.el9.*\nlibnccl-0:2.28.3-1+cuda13.0.*\n") == {
        "cuda-drivers-580", "libnccl"}
    listing = ("Available Packages\n"
               "libnccl.x86_64      2.28.3-1+cuda13.0     cuda-rhel9-x86_64\n"
               "libnccl.x86_64      2.27.7-1+cuda12.9     cuda-rhel9-x86_64\n"
               "libnccl-devel.x86_64 2.28.3-1+cuda13.0    cuda-rhel9-x86_64\n")
    assert parse_dnf_list(listing, "libnccl") == ["2.28.3-1+cuda13.0", "2.27.7-1+cuda12.9"]


def test_dnf_commands():
    assert Dnf.install_argv([("cuda-toolkit-13-0", "13.0.2-1")]) == [
        "dnf", "-y", "install", "--allowerasing", "cuda-toolkit-13-0-13.0.2-1"]
    assert "--assumeno" in Dnf.install_argv([("a", "1")], simulate=True)
    assert Dnf.module_argv(580, "open") == ["dnf", "-y", "module", "enable", "nvidia-driver:580-open"]
    assert driver_module_stream(550, "proprietary") == "nvidia-driver:550-dkms"
    assert Dnf.refresh_argv("infernode-nvidia")[-2:] == ["--disablerepo=*", "--enablerepo=infernode-nvidia"]
