"""A local apt repository of stand-in NVIDIA packages, built with dpkg-deb.

Same package names and version strings as NVIDIA's repository; each package installs
a marker file naming itself and its version, and the ones whose real counterparts
ship systemd units or nvcc ship those, so apply's service steps and verify's nvcc
check run against real files.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

# (package, version) pairs; the first version of each is the pinned one in MANIFEST.
PACKAGES: dict[str, list[str]] = {
    "cuda-drivers-580": ["580.95.05-1", "580.82.07-1", "580.105.08-1"],
    "nvidia-kernel-open-dkms": ["580.95.05-1", "580.82.07-1", "580.105.08-1"],
    "cuda-toolkit-13-0": ["13.0.2-1", "13.0.1-1"],
    "libcudnn9-cuda-13": ["9.14.0.64-1"],
    "libnccl2": ["2.28.3-1+cuda13.0", "2.27.7-1+cuda13.0"],
    "datacenter-gpu-manager-4-core": ["1:4.4.1-1"],
    "nvidia-container-toolkit": ["1.18.0-1"],
    "nvidia-fabricmanager-580": ["580.95.05-1"],
}

UNIT = """[Unit]
Description=Stand-in {name} (infernode tests)

[Service]
Type=oneshot
ExecStart=/bin/true
RemainAfterExit=yes

[Install]
WantedBy=multi-user.target
"""

NVCC = """#!/bin/sh
echo "nvcc: NVIDIA (R) Cuda compiler driver"
echo "Copyright (c) 2005-2025 NVIDIA Corporation"
echo "Built on Wed_Aug_20_01:58:59_PM_PDT_2025"
echo "Cuda compilation tools, release {release}, V{release}.{patch}"
echo "Build cuda_{release}.r{release}/compiler.36424714_0"
"""


def marker(package: str) -> str:
    return f"/usr/share/infernode-standin/{package}.version"


def _files(package: str, version: str) -> dict[str, tuple[str, int]]:
    files = {marker(package): (version + "\n", 0o644)}
    if package == "cuda-drivers-580":
        files["/lib/systemd/system/nvidia-persistenced.service"] = (UNIT.format(name="nvidia-persistenced"), 0o644)
    if package == "nvidia-fabricmanager-580":
        files["/lib/systemd/system/nvidia-fabricmanager.service"] = (UNIT.format(name="nvidia-fabricmanager"), 0o644)
    if package == "cuda-toolkit-13-0":
        upstream = version.split("-")[0]
        release = ".".join(upstream.split(".")[:2])
        files["/usr/local/cuda-13.0/bin/nvcc"] = (NVCC.format(release=release, patch=88), 0o755)
    return files


def build_deb(work: Path, package: str, version: str) -> Path:
    tree = work / f"{package}_{version.replace(':', '%')}"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN/control").write_text(
        f"Package: {package}\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: infernode tests <tests@infernode.invalid>\n"
        f"Description: stand-in for NVIDIA's {package}\n")
    for path, (text, mode) in _files(package, version).items():
        f = tree / path.lstrip("/")
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
        f.chmod(mode)
    if package == "cuda-toolkit-13-0":
        # NVIDIA's toolkit points /usr/local/cuda at the installed release.
        (tree / "usr/local/cuda").symlink_to("cuda-13.0")
    out = work / "repo" / f"{package}_{version.split(':')[-1]}_all.deb"
    out.parent.mkdir(exist_ok=True)
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree), str(out)],
                   check=True, capture_output=True)
    return out


def build_repo(work: Path) -> Path:
    """A flat repository (`deb [trusted=yes] file:/... ./`) under work/repo."""
    for package, versions in PACKAGES.items():
        for v in versions:
            build_deb(work, package, v)
    repo = work / "repo"
    # -m: keep every version of a package, so older and newer ones are installable.
    packages = subprocess.run(["dpkg-scanpackages", "-m", "."], cwd=repo, check=True,
                              capture_output=True, text=True).stdout
    (repo / "Packages").write_text(packages)
    return repo


MANIFEST = """\
repository:
  url: file:/srv/infernode-standin-repo
  suite: ./
  trusted: true
driver:
  branch: 580
  version: 580.95.05-1
  kernel_modules: open
cuda_toolkit:
  package: cuda-toolkit-13-0
  version: 13.0.2-1
cudnn:
  package: libcudnn9-cuda-13
  version: 9.14.0.64-1
nccl:
  package: libnccl2
  version: 2.28.3-1+cuda13.0
dcgm:
  package: datacenter-gpu-manager-4-core
  version: 1:4.4.1-1
container_toolkit:
  package: nvidia-container-toolkit
  version: 1.18.0-1
fabric_manager:
  package: nvidia-fabricmanager-580
  version: 580.95.05-1
  when: auto
"""


def sign_repo(repo: Path, gnupghome: Path, name: str = "infernode test repository") -> bytes:
    """Write Release and a clear-signed InRelease with a fresh key; returns the
    binary public keyring apt's signed-by needs."""
    import hashlib
    from email.utils import formatdate

    gnupghome.mkdir(mode=0o700, parents=True, exist_ok=True)
    gpg = ["gpg", "--homedir", str(gnupghome), "--batch", "--yes", "--pinentry-mode", "loopback", "--passphrase", ""]
    subprocess.run([*gpg, "--quick-gen-key", f"{name} <repo@infernode.invalid>", "ed25519", "sign", "never"],
                   check=True, capture_output=True)
    lines = ["Origin: infernode-tests", "Label: infernode-tests", f"Date: {formatdate(usegmt=True)}", "SHA256:"]
    for f in ("Packages",):
        data = (repo / f).read_bytes()
        lines.append(f" {hashlib.sha256(data).hexdigest()} {len(data)} {f}")
    (repo / "Release").write_text("\n".join(lines) + "\n")
    subprocess.run([*gpg, "--clearsign", "-o", str(repo / "InRelease"), str(repo / "Release")],
                   check=True, capture_output=True)
    return subprocess.run([*gpg, "--export"], check=True, capture_output=True).stdout
