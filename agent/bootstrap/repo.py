"""The package repository's configuration on the node: the apt source (or dnf .repo)
and its signing keyring. Text builders are pure; `install_repo` writes through Paths
and returns what was there before, so a failed preflight can put it back.
"""

from __future__ import annotations

from pathlib import Path

from agent.bootstrap.manifest import Repository
from agent.hostfs import write_if_changed
from agent.paths import Paths

APT_SOURCE = "/etc/apt/sources.list.d/infernode-nvidia.list"
APT_SOURCE_REL = "sources.list.d/infernode-nvidia.list"  # relative to Dir::Etc
APT_KEYRING_DIR = "/etc/apt/keyrings"
DNF_REPO = "/etc/yum.repos.d/infernode-nvidia.repo"
DNF_REPO_ID = "infernode-nvidia"
DNF_KEY = "/etc/pki/rpm-gpg/RPM-GPG-KEY-infernode-nvidia"


class RepoError(Exception):
    pass


def keyring_name(key_bytes: bytes) -> str:
    # apt reads an armoured key only when the file ends in .asc.
    armoured = key_bytes.lstrip().startswith(b"-----BEGIN PGP")
    return f"{APT_KEYRING_DIR}/infernode-nvidia.{'asc' if armoured else 'gpg'}"


def apt_source_line(repo: Repository, keyring: str | None) -> str:
    opts = f"[signed-by={keyring}]" if keyring else "[trusted=yes]"
    parts = ["deb", opts, repo.url, repo.suite, *repo.components]
    return "# Managed by infernode bootstrap; changes are overwritten.\n" + " ".join(parts) + "\n"


def dnf_repo_text(repo: Repository, key_path: str | None) -> str:
    lines = [f"[{DNF_REPO_ID}]", "name=NVIDIA packages (managed by infernode bootstrap)",
             f"baseurl={repo.dnf_baseurl or repo.url}", "enabled=1"]
    lines += ["gpgcheck=1", f"gpgkey=file://{key_path}"] if key_path else ["gpgcheck=0"]
    return "\n".join(lines) + "\n"


def _write(path: Path, data: bytes, mode: int = 0o644) -> bool:
    return write_if_changed(path, data, mode)


Snapshot = dict[Path, bytes | None]


def install_repo(repo: Repository, paths: Paths, family: str) -> tuple[bool, Snapshot]:
    """Write the source and keyring; (changed?, previous contents for `restore`)."""
    key_bytes = None
    if repo.key is not None:
        src = paths.host(str(repo.key))
        try:
            key_bytes = src.read_bytes()
        except OSError as e:
            raise RepoError(f"repository.key: cannot read {repo.key}: {e.strerror or e}") from None
        if not key_bytes.strip():
            raise RepoError(f"repository.key: {repo.key} is empty")
    files: dict[Path, bytes] = {}
    if family == "rhel":
        key_dest = DNF_KEY if key_bytes else None
        if key_bytes and key_dest:
            files[paths.host(key_dest)] = key_bytes
        files[paths.host(DNF_REPO)] = dnf_repo_text(repo, key_dest).encode()
    else:
        keyring = keyring_name(key_bytes) if key_bytes else None
        if key_bytes and keyring:
            files[paths.host(keyring)] = key_bytes
        files[paths.host(APT_SOURCE)] = apt_source_line(repo, keyring).encode()
    snapshot: Snapshot = {p: (p.read_bytes() if p.exists() else None) for p in files}
    changed = False
    for p, data in files.items():
        changed |= _write(p, data)
    return changed, snapshot


def restore(snapshot: Snapshot) -> None:
    for p, data in snapshot.items():
        if data is None:
            p.unlink(missing_ok=True)
        else:
            _write(p, data)
