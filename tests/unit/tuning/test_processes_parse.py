"""/proc/PID/task/TID/stat as processes.cpu_affinity reads it: a command name may
hold spaces and parentheses."""

from hypothesis import given
from hypothesis import strategies as st

from tuning.tunables.processes import PF_KTHREAD, parse_stat

# A kernel thread's line from this VM (kthreadd), fields 1-22 and a few more.
KTHREADD = "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0 18446744073709551615 0 0 0"


def test_flags_and_start_time():
    flags, start = parse_stat(KTHREADD)
    assert flags & PF_KTHREAD and start == 5
    assert parse_stat("77 (a) b) (c) R 1 77 77 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 9001 0") == (4194560, 9001)


@given(st.text(alphabet=st.characters(blacklist_characters="\x00"), max_size=16))
def test_any_command_name(comm):
    line = f"123 ({comm}) S 1 123 123 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 777 0"
    assert parse_stat(line) == (4194560, 777)


@given(st.text(max_size=80))
def test_garbage_is_a_value_error(text):
    try:
        flags, start = parse_stat(text)
    except ValueError:
        return
    assert isinstance(flags, int) and isinstance(start, int)
