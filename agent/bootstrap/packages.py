"""The distro package managers behind one interface: apt (Debian/Ubuntu) and dnf
(RHEL family). Installed versions, candidate versions, exact installs, holds.

Commands go through a Runner bound to a root: `/` on a node, a mounted target root
(chroot) when bringing up an image or in tests. The argv builders and output parsers
are pure so both families are testable on strings; apt also runs for real in tests.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class PackageError(Exception):
    """A package manager command failed; carries its output's tail."""


@dataclass(frozen=True)
class Installed:
    version: str
    held: bool


class Runner:
    """Runs commands on the host root, or inside another root through chroot."""

    ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}

    def __init__(self, root: Path = Path("/")) -> None:
        self.root = Path(root)

    def argv(self, cmd: Sequence[str]) -> list[str]:
        return list(cmd) if self.root == Path("/") else ["chroot", str(self.root), *cmd]

    @property
    def live(self) -> bool:
        """True when the root is the running system (its systemd can start units)."""
        return self.root == Path("/")

    def systemctl_argv(self, args: Sequence[str]) -> list[str]:
        # systemctl inside a chroot cannot tell it is one without /proc and then
        # tries the host's bus; --root= edits the target's unit links offline.
        return ["systemctl", *args] if self.live else ["systemctl", f"--root={self.root}", *args]

    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self._exec(self.systemctl_argv(args), check, False, list(args))

    def run(self, cmd: Sequence[str], check: bool = True, passthrough: bool = False) -> subprocess.CompletedProcess[str]:
        """`passthrough` lets a long step draw its own progress on the terminal."""
        return self._exec(self.argv(cmd), check, passthrough, cmd)

    def _exec(self, argv: list[str], check: bool, passthrough: bool, cmd: Sequence[str]) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **self.ENV} if self.live else dict(self.ENV)
        if passthrough:
            p = subprocess.run(argv, env=env, text=True, stdout=sys.stdout, stderr=subprocess.PIPE)
            p = subprocess.CompletedProcess(p.args, p.returncode, "", p.stderr)
        else:
            p = subprocess.run(argv, env=env, text=True, capture_output=True)
        if check and p.returncode != 0:
            tail = (p.stderr or p.stdout or "").strip().splitlines()[-8:]
            raise PackageError(f"`{' '.join(cmd)}` failed (exit {p.returncode}):\n  " + "\n  ".join(tail))
        return p


class Backend(Protocol):
    family: str

    def installed(self, packages: Sequence[str]) -> dict[str, Installed]: ...
    def refresh(self, source: str | None) -> None: ...
    def candidates(self, package: str) -> list[str]: ...
    def simulate(self, specs: Sequence[tuple[str, str]]) -> None: ...
    def install(self, specs: Sequence[tuple[str, str]], progress: bool) -> None: ...
    def hold(self, packages: Sequence[str]) -> None: ...
    def unhold(self, packages: Sequence[str]) -> None: ...


# ---- apt ---------------------------------------------------------------------------

def parse_dpkg_query(text: str) -> dict[str, Installed]:
    """Lines of `${Package}\\t${Version}\\t${Status}` ("hold ok installed")."""
    out = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) != 3:
            continue
        name, version, status = parts
        want, _, state = (status.split() + ["", "", ""])[:3]
        if state in ("installed", "half-configured", "unpacked") and version:
            out[name] = Installed(version, want == "hold")
    return out


def parse_madison(text: str) -> list[str]:
    """Versions from `apt-cache madison PKG` ("pkg | version | source"), repo order."""
    seen: list[str] = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) >= 3 and parts[1] and parts[1] not in seen:
            seen.append(parts[1])
    return seen


class Apt:
    family = "debian"
    DPKG_OPTS = ("-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold")

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    def installed(self, packages: Sequence[str]) -> dict[str, Installed]:
        # dpkg-query exits 1 when any name is unknown but still prints the known ones.
        p = self.runner.run(["dpkg-query", "-W", "-f=${Package}\\t${Version}\\t${Status}\\n", *packages], check=False)
        return parse_dpkg_query(p.stdout)

    @staticmethod
    def refresh_argv(source: str | None) -> list[str]:
        argv = ["apt-get", "update", "-q"]
        if source:
            # Only our repository: fast, and no other source's outage blocks bring-up.
            argv += ["-o", f"Dir::Etc::sourcelist={source}", "-o", "Dir::Etc::sourceparts=-",
                     "-o", "APT::Get::List-Cleanup=0"]
        return argv

    def refresh(self, source: str | None) -> None:
        self.runner.run(self.refresh_argv(source))

    def candidates(self, package: str) -> list[str]:
        return parse_madison(self.runner.run(["apt-cache", "madison", package], check=False).stdout)

    @classmethod
    def install_argv(cls, specs: Sequence[tuple[str, str]], progress: bool = False, simulate: bool = False) -> list[str]:
        argv = ["apt-get", "install", "-y", "--no-install-recommends",
                "--allow-downgrades", "--allow-change-held-packages", *cls.DPKG_OPTS]
        if simulate:
            argv.append("-s")
        # -q would also silence the download and dpkg progress a person wants to see.
        argv += ["-o", "Dpkg::Progress-Fancy=1"] if progress else ["-q"]
        return argv + [f"{name}={version}" for name, version in specs]

    def simulate(self, specs: Sequence[tuple[str, str]]) -> None:
        self.runner.run(self.install_argv(specs, simulate=True))

    def install(self, specs: Sequence[tuple[str, str]], progress: bool) -> None:
        self.runner.run(self.install_argv(specs, progress=progress), passthrough=progress)

    def hold(self, packages: Sequence[str]) -> None:
        if packages:
            self.runner.run(["apt-mark", "hold", *packages])

    def unhold(self, packages: Sequence[str]) -> None:
        if packages:
            self.runner.run(["apt-mark", "unhold", *packages])


# ---- dnf ---------------------------------------------------------------------------

def parse_rpm_query(text: str) -> dict[str, str]:
    """Lines of `%{NAME}\\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}`; epoch 0 is dropped."""
    out = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) == 2:
            evr = parts[1][2:] if parts[1].startswith("0:") else parts[1]
            out[parts[0]] = evr
    return out


def parse_versionlock_list(text: str) -> set[str]:
    """Names from `dnf versionlock list` ("cuda-drivers-580-0:580.95.05-1.el9.*")."""
    names = set()
    for line in text.splitlines():
        line = line.strip()
        m = re.match(r"^(?P<name>.+)-(?:\d+:)?(?P<v>[^-]+)-(?P<r>[^-]+)\.\*$", line)
        if m:
            names.add(m.group("name"))
    return names


def parse_dnf_list(text: str, package: str) -> list[str]:
    """Versions of `package` from `dnf list --showduplicates` ("name.arch  evr  repo")."""
    out: list[str] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].rsplit(".", 1)[0] == package:
            evr = parts[1][2:] if parts[1].startswith("0:") else parts[1]
            if evr not in out:
                out.append(evr)
    return out


def nvr(name: str, version: str) -> str:
    """dnf's package spec for an exact version: NAME-[EPOCH:]VERSION-RELEASE."""
    return f"{name}-{version}"


def driver_module_stream(branch: int, kernel_modules: str) -> str:
    """The driver's module stream in NVIDIA's RHEL repository (nvidia-driver:580-open)."""
    return f"nvidia-driver:{branch}-{'open' if kernel_modules == 'open' else 'dkms'}"


class Dnf:
    family = "rhel"

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    def installed(self, packages: Sequence[str]) -> dict[str, Installed]:
        p = self.runner.run(["rpm", "-q", "--qf", "%{NAME}\\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\\n", *packages], check=False)
        versions = parse_rpm_query(p.stdout)
        locked = parse_versionlock_list(self.runner.run(["dnf", "-q", "versionlock", "list"], check=False).stdout)
        return {n: Installed(v, n in locked) for n, v in versions.items()}

    @staticmethod
    def refresh_argv(source: str | None) -> list[str]:
        argv = ["dnf", "-q", "makecache"]
        return argv + ["--disablerepo=*", f"--enablerepo={source}"] if source else argv

    def refresh(self, source: str | None) -> None:
        self.runner.run(self.refresh_argv(source))

    def candidates(self, package: str) -> list[str]:
        p = self.runner.run(["dnf", "-q", "list", "--showduplicates", "--available", package], check=False)
        return parse_dnf_list(p.stdout, package)

    @staticmethod
    def install_argv(specs: Sequence[tuple[str, str]], simulate: bool = False) -> list[str]:
        argv = ["dnf", "-y", "install", "--allowerasing"]
        if simulate:
            argv += ["--assumeno"]
        return argv + [nvr(n, v) for n, v in specs]

    @staticmethod
    def module_argv(branch: int, kernel_modules: str) -> list[str]:
        # enable, not install: the packages are then installed by exact NVR.
        return ["dnf", "-y", "module", "enable", driver_module_stream(branch, kernel_modules)]

    def enable_module_stream(self, branch: int, kernel_modules: str) -> None:
        self.runner.run(self.module_argv(branch, kernel_modules))

    def simulate(self, specs: Sequence[tuple[str, str]]) -> None:
        # --assumeno resolves the transaction and exits 1 having changed nothing.
        p = self.runner.run(self.install_argv(specs, simulate=True), check=False)
        if "Error" in (p.stderr or "") and "Operation aborted" not in (p.stderr or ""):
            raise PackageError(p.stderr.strip())

    def install(self, specs: Sequence[tuple[str, str]], progress: bool) -> None:
        self.runner.run(self.install_argv(specs), passthrough=progress)

    def hold(self, packages: Sequence[str]) -> None:
        if packages:
            self.runner.run(["dnf", "-y", "versionlock", "add", *packages])

    def unhold(self, packages: Sequence[str]) -> None:
        if packages:
            self.runner.run(["dnf", "-y", "versionlock", "delete", *packages])


def backend_for(family: str, runner: Runner) -> Backend:
    if family == "debian":
        return Apt(runner)
    if family == "rhel":
        return Dnf(runner)
    raise PackageError(f"unsupported OS family {family!r}: infernode bootstrap supports Debian/Ubuntu (apt) and RHEL (dnf)")
