import pytest

from collectors.host.loadavg import parse_loadavg


def test_three_windows():
    assert parse_loadavg("0.71 0.91 0.46 2/160 4242\n") == {"1m": 0.71, "5m": 0.91, "15m": 0.46}


@pytest.mark.parametrize("text", ["", "0.71 0.91", "a b c d"])
def test_garbage_raises(text):
    with pytest.raises(ValueError):
        parse_loadavg(text)
