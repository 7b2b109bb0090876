"""The agent from this checkout, installed into a booted test root (nspawn) as the
real `infernode.service` with the real units from systemd/.

Test install: the checkout and the host venv's packages are bind-mounted read-only
(the same Debian bookworm python3.11 inside and out); a production node gets a
virtualenv at /opt/infernode from the Ansible role instead.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from tests.conftest import REPO

SITE = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
PYPATH = "/opt/infernode/src:/opt/infernode/venv-site:/opt/infernode/host-dist"
WRAPPER = f"""#!/bin/sh
export PYTHONPATH={PYPATH}
exec /usr/bin/python3 -c 'import sys; from agent.cli import main; sys.argv[0] = "infernode"; main()' "$@"
"""


def agent_binds() -> dict[str, str]:
    """Host path -> container path, for nspawn's --bind-ro."""
    return {str(REPO): "/opt/infernode/src", str(SITE): "/opt/infernode/venv-site",
            "/usr/lib/python3/dist-packages": "/opt/infernode/host-dist"}


def install_agent(root: Path, config_text: str) -> None:
    """Wrapper, units, config, and infernode.service enabled, before boot."""
    bindir = root / "opt/infernode/bin"
    bindir.mkdir(parents=True)
    (bindir / "infernode").write_text(WRAPPER)
    (bindir / "infernode").chmod(0o755)
    for d in ("src", "venv-site", "host-dist"):
        (root / "opt/infernode" / d).mkdir(parents=True, exist_ok=True)
    for unit in (REPO / "systemd").iterdir():
        shutil.copy(unit, root / "etc/systemd/system" / unit.name)
    (root / "etc/infernode").mkdir(parents=True, exist_ok=True)
    (root / "etc/infernode/infernode.yaml").write_text(config_text)
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    (wants / "infernode.service").symlink_to("/etc/systemd/system/infernode.service")
