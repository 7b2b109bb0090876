import pytest

from agent.units import parse_duration, parse_listen, parse_size


@pytest.mark.parametrize("text,expected", [(15, 15.0), ("15s", 15.0), ("500ms", 0.5), ("5m", 300.0), ("1.5h", 5400.0)])
def test_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("bad", ["", "fast", "-1s", True, -3, "5 parsecs"])
def test_bad_durations(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


@pytest.mark.parametrize("text,expected", [("64MiB", 64 << 20), ("1G", 10**9), (4096, 4096), ("2kib", 2048)])
def test_sizes(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text,expected", [(":9480", ("", 9480)), ("127.0.0.1:1", ("127.0.0.1", 1)),
                                           ("[::1]:9480", ("::1", 9480)), ("localhost:80", ("localhost", 80))])
def test_listen(text, expected):
    assert parse_listen(text) == expected


@pytest.mark.parametrize("bad", ["9480", "1.2.3.4.5:80", "host:99999", "[::1]9480", "[zz]:80", ":port"])
def test_bad_listen(bad):
    with pytest.raises(ValueError):
        parse_listen(bad)
