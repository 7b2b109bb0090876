import pytest

from tests.unit.collector_helpers import write_tree


@pytest.fixture
def tree(tmp_path):
    """Writes {relative path: content} under a fresh root and returns the root."""
    return lambda files: write_tree(tmp_path, files)
