"""A message repeated under load is rate-limited, and the suppressed count is told."""

import logging

from agent.logs import RepeatFilter


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def record(msg: str = "socket.accept() out of system resource", name: str = "asyncio", args=()) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, "/x/base_events.py", 100, msg, args, None)


def test_a_burst_passes_then_repeats_are_dropped_and_counted():
    clock = Clock()
    f = RepeatFilter(window_s=10, burst=5, clock=clock)
    passed = [f.filter(record()) for _ in range(1000)]
    assert passed.count(True) == 5 and passed[:5] == [True] * 5
    assert f.suppressed_total == 995
    clock.t = 10.0
    nxt = record()
    assert f.filter(nxt)
    assert nxt.suppressed_repeats == 995


def test_different_messages_and_arguments_of_one_template():
    f = RepeatFilter(window_s=10, burst=1, clock=Clock())
    # The template is the key: the same call with other arguments is the same message.
    assert f.filter(record("worker %s failed", args=("a",)))
    assert not f.filter(record("worker %s failed", args=("b",)))
    # Another message, or the same text from another logger, is not a repeat.
    assert f.filter(record("something else"))
    assert f.filter(record("worker %s failed", name="infernode.worker", args=("a",)))


def test_messages_that_do_not_repeat_all_pass():
    clock = Clock()
    f = RepeatFilter(window_s=10, burst=5, clock=clock)
    for i in range(20):
        clock.t = i * 11.0
        assert f.filter(record())
    assert f.suppressed_total == 0


def test_the_key_table_is_bounded():
    f = RepeatFilter(window_s=10, burst=1, clock=Clock())
    for i in range(5000):
        assert f.filter(record(f"distinct message {i}"))
    assert len(f._seen) <= 1024
