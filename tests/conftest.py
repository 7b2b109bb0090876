import os
import random
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", help="rewrite golden files instead of comparing")
    parser.addoption("--sample-tests", type=int, default=0, metavar="N",
                     help="run N tests drawn at random from those selected (with pytest-randomly's order "
                          "and seed: --randomly-seed=S draws the same sample again)")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    # After pytest-randomly has shuffled (tryfirst) and -m/-k have deselected.
    n = config.getoption("--sample-tests")
    if not n or n >= len(items):
        return
    seed = getattr(config.option, "randomly_seed", None)
    if not isinstance(seed, int):
        raise pytest.UsageError("--sample-tests needs pytest-randomly (its seed draws the sample)")
    chosen = set(random.Random(seed).sample(range(len(items)), n))
    keep = [it for i, it in enumerate(items) if i in chosen]
    config.hook.pytest_deselected(items=[it for i, it in enumerate(items) if i not in chosen])
    items[:] = keep


def pytest_report_header(config):
    if config.getoption("--sample-tests"):
        seed = getattr(config.option, "randomly_seed", None)
        return (f"sample: {config.getoption('--sample-tests')} tests drawn with seed {seed}; "
                f"again: -p randomly --randomly-seed={seed} --sample-tests {config.getoption('--sample-tests')}")
    return None


@pytest.fixture
def update_golden(request) -> bool:
    return request.config.getoption("--update-golden")


@pytest.fixture
def repo() -> Path:
    return REPO


def need_root():
    if os.geteuid() != 0:
        pytest.skip("needs root")
