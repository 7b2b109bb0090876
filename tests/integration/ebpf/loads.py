"""Generated loads for the eBPF tests, run as separate processes:

  python loads.py spin CPU SECONDS                 busy loop pinned to CPU
  python loads.py timed_wait CPU TASKS_FILE N MS   a thread made to wait MS on the run queue N times

timed_wait: the child (SCHED_OTHER, moved into TASKS_FILE) blocks on a pipe; the
parent (SCHED_FIFO on the same CPU) writes the pipe, which wakes the child onto
that CPU's run queue, then spins MS before sleeping, so the child waits ~MS to run.
Both print "ready <tid>" and wait for a line on stdin before the measured part.
"""

import os
import sys
import time


def spin(cpu: int, seconds: float) -> None:
    os.sched_setaffinity(0, {cpu})
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def timed_wait(cpu: int, tasks_file: str, n: int, ms: float) -> None:
    os.sched_setaffinity(0, {cpu})
    r, w = os.pipe()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(w)
        with open(tasks_file, "w") as f:
            f.write(str(os.getpid()))
        os.write(ready_w, b"x")
        for _ in range(n):
            os.read(r, 1)
        os._exit(0)
    os.close(r)
    os.read(ready_r, 1)
    print(f"ready {pid}", flush=True)
    sys.stdin.readline()
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    for _ in range(n):
        time.sleep(0.05)
        # Wake the child only once it sleeps in read(): on a loaded host it may not
        # have got back there yet, and a write then wakes nothing and makes no wait.
        # (Polling with sleeps: this process is SCHED_FIFO on the child's CPU.)
        deadline = time.monotonic() + 5
        while _state(pid) != "S" and time.monotonic() < deadline:
            time.sleep(0.005)
        os.write(w, b"x")
        end = time.monotonic() + ms / 1000
        while time.monotonic() < end:
            pass
    os.waitpid(pid, 0)


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "spin":
        spin(int(sys.argv[2]), float(sys.argv[3]))
    elif what == "timed_wait":
        timed_wait(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
    else:
        raise SystemExit(f"unknown load {what}")
