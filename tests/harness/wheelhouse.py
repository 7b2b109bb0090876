"""The agent as a fleet installs it: a wheel built from this repository (optionally
with another version string) and a wheelhouse archive of its dependencies for
hosts without network access.

Building the wheelhouse needs the package index (PyPI or the mirror pip is set
up for); it is cached under the test cache, keyed by the dependency list and the
Python tag, so later runs only pay for the wheel build.
"""

from __future__ import annotations

import fcntl
import hashlib
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from pathlib import Path

from tests.harness.rootfs import CACHE

_SKIP = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                               "node_modules", ".bench", ".whl")


def build_wheel(repo: Path, dist: Path, version: str | None = None) -> Path:
    """Build the agent wheel from a scratch copy of `repo` (the build writes build/
    and *.egg-info next to the sources); with `version`, the copy says so."""
    with tempfile.TemporaryDirectory(prefix="fleet-src-") as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(repo, src, ignore=_SKIP)
        if version is not None:
            _set_version(src, version)
        res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                              "--disable-pip-version-check", "-q", "-w", str(dist), str(src)],
                             capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"pip wheel failed: {res.stdout[-2000:]}{res.stderr[-2000:]}")
    want = version or project_version(repo)
    wheel = dist / f"infernode-{want}-py3-none-any.whl"
    if not wheel.exists():
        raise RuntimeError(f"expected {wheel.name} in {dist}, found {sorted(p.name for p in dist.iterdir())}")
    return wheel


def project_version(repo: Path) -> str:
    return tomllib.loads((repo / "pyproject.toml").read_text())["project"]["version"]


def _set_version(src: Path, version: str) -> None:
    pyproject = src / "pyproject.toml"
    text, n = re.subn(r'(?m)^version = "[^"]+"$', f'version = "{version}"', pyproject.read_text(), count=1)
    init = src / "agent" / "__init__.py"
    itext, m = re.subn(r'(?m)^__version__ = "[^"]+"$', f'__version__ = "{version}"', init.read_text(), count=1)
    if n != 1 or m != 1:
        raise RuntimeError("version string not found in pyproject.toml or agent/__init__.py")
    pyproject.write_text(text)
    init.write_text(itext)


def wheelhouse_archive(repo: Path, wheel: Path) -> Path:
    """A tar archive of binary wheels for every dependency of `wheel` (not the
    wheel itself), for this interpreter's Python and platform; cached."""
    deps = tomllib.loads((repo / "pyproject.toml").read_text())["project"]["dependencies"]
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    key = hashlib.sha256("\n".join([tag, *sorted(deps)]).encode()).hexdigest()[:12]
    archive = CACHE / f"wheelhouse-{tag}-{key}.tar"
    if archive.exists():
        return archive
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"wheelhouse-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if archive.exists():
            return archive
        with tempfile.TemporaryDirectory(prefix="wheelhouse-", dir=CACHE) as tmp:
            house = Path(tmp) / "wheels"
            res = subprocess.run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q",
                                  "--only-binary=:all:", "-d", str(house), str(wheel)],
                                 capture_output=True, text=True)
            if res.returncode != 0:
                raise RuntimeError(f"pip download failed (needs the package index): {res.stderr[-2000:]}")
            partial = Path(tmp) / "wheelhouse.tar"
            with tarfile.open(partial, "w") as tar:
                for whl in sorted(house.glob("*.whl")):
                    if not whl.name.startswith("infernode-"):
                        tar.add(whl, arcname=whl.name)
            partial.rename(archive)
    return archive
