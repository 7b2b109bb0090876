import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli import main
from tuning.tunable import selected

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "tuning-2s8g"

# Selector files render the kernel's choice list around the selection; a plain
# fixture file holds what was written, so these compare by selection. The real
# kernel THP test checks them byte-for-byte.
SELECTOR_SUFFIXES = ("transparent_hugepage/enabled", "transparent_hugepage/defrag", "queue/scheduler")


@pytest.fixture
def root(tmp_path) -> Path:
    dst = tmp_path / "root"
    shutil.copytree(FIXTURE, dst, symlinks=True)
    return dst


def tree(root: Path) -> dict[str, bytes | str]:
    """Every host file under root (not the engine's own /run state), by path."""
    out: dict[str, bytes | str] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if rel.startswith("run/") or rel == "run" or p.is_symlink() or not p.is_file():
            continue
        data = p.read_bytes()
        out[rel] = "selected:" + selected(data.decode()) if rel.endswith(SELECTOR_SUFFIXES) else data
    return out


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)
