"""Heap trims after refused payloads: coalesced in a burst, and never starved by one."""

import asyncio

from agent import heap
from agent.heap import HeapTrimmer


def test_a_burst_of_requests_is_one_trim():
    calls = []

    async def main():
        t = HeapTrimmer(trim=lambda: calls.append(1))
        for _ in range(100):
            t.request()
        await asyncio.sleep(heap.COALESCE_S + 0.2)
        return t.trims

    assert asyncio.run(main()) == 1 and calls == [1]


def test_a_sustained_flood_still_trims_at_least_every_max_delay():
    calls = []

    async def main():
        t = HeapTrimmer(trim=lambda: calls.append(1))
        for _ in range(int(3 * heap.MAX_DELAY_S / 0.05)):
            t.request()
            await asyncio.sleep(0.05)
        t.cancel()

    asyncio.run(main())
    assert len(calls) >= 2


def test_the_real_trim_runs_where_the_c_library_has_it():
    async def main():
        t = HeapTrimmer()
        t.request()
        await asyncio.sleep(heap.COALESCE_S + 0.2)
        return t.trims

    # Debian's glibc has malloc_trim; on a libc without it the trimmer does nothing.
    expected = 1 if heap._load_trim() is not None else 0
    assert asyncio.run(main()) == expected


def test_a_request_outside_an_event_loop_is_ignored():
    t = HeapTrimmer(trim=lambda: None)
    t.request()
    assert t.trims == 0
