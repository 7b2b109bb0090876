"""The repository's signing key, for real: apt in the root verifies the stand-in
repository's InRelease against the keyring apply installs with signed-by."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, need_root
from tests.harness.rootfs import base_rootfs, overlay_root
from tests.integration.bootstrap.standin_repo import MANIFEST, build_repo, sign_repo

pytestmark = pytest.mark.integration

KEY = "/etc/infernode/keys/standin-archive-keyring.gpg"
SIGNED = MANIFEST.replace("  trusted: true\n", f"  key: {KEY}\n")


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    need_root()
    if not shutil.which("gpg") or not shutil.which("dpkg-scanpackages"):
        pytest.skip("gpg and dpkg-dev needed")
    work = tmp_path_factory.mktemp("signed")
    repo = build_repo(work)
    good = sign_repo(repo, work / "gnupg-good")
    # A key that did not sign the repository.
    wrong_home = work / "gnupg-wrong"
    wrong_home.mkdir(mode=0o700)
    subprocess.run(["gpg", "--homedir", str(wrong_home), "--batch", "--pinentry-mode", "loopback", "--passphrase", "",
                    "--quick-gen-key", "someone else <x@infernode.invalid>", "ed25519", "sign", "never"],
                   check=True, capture_output=True)
    wrong = subprocess.run(["gpg", "--homedir", str(wrong_home), "--export"], check=True, capture_output=True).stdout
    manifest = work / "manifest.yaml"
    manifest.write_text(SIGNED)
    return repo, good, wrong, manifest


def _apply(root: Path, manifest: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REPO / ".venv/bin/infernode"), "bootstrap", "apply", "--root", str(root),
                           "--manifest", str(manifest)], capture_output=True, text=True, timeout=240)


def _root_with(root: Path, repo: Path, key: bytes) -> None:
    shutil.copytree(repo, root / "srv/infernode-standin-repo")
    k = root / KEY.lstrip("/")
    k.parent.mkdir(parents=True, exist_ok=True)
    k.write_bytes(key)


def test_repository_signed_by_another_key_is_refused_and_nothing_changes(signed):
    repo, _, wrong, manifest = signed
    with overlay_root(base_rootfs()) as root:
        _root_with(root, repo, wrong)
        status = (root / "var/lib/dpkg/status").read_bytes()
        p = _apply(root, manifest)
        assert p.returncode == 1, p.stdout + p.stderr
        assert "preflight failed; nothing was changed" in p.stderr
        assert "NO_PUBKEY" in p.stderr or "not signed" in p.stderr
        assert (root / "var/lib/dpkg/status").read_bytes() == status
        assert not (root / "etc/apt/sources.list.d/infernode-nvidia.list").exists()
        assert not (root / "etc/apt/keyrings/infernode-nvidia.gpg").exists()


def test_repository_with_its_key_installs(signed):
    repo, good, _, manifest = signed
    with overlay_root(base_rootfs()) as root:
        _root_with(root, repo, good)
        p = _apply(root, manifest)
        assert p.returncode == 0, p.stdout + p.stderr
        source = (root / "etc/apt/sources.list.d/infernode-nvidia.list").read_text()
        assert ("deb [signed-by=/etc/apt/keyrings/infernode-nvidia.gpg] file:/srv/infernode-standin-repo ./"
                in source)
        assert (root / "etc/apt/keyrings/infernode-nvidia.gpg").read_bytes() == good
        assert "changed: install libnccl2 - -> 2.28.3-1+cuda13.0" in p.stdout
