from collectors.ebpf.exports import blockio_samples, offcpu_samples, runqueue_samples, tcp_samples
from collectors.ebpf.histogram import SLOTS, slot_of


def by_labels(samples):
    return {tuple(sorted(s.labels.items())): s.value for s in samples}


def test_runqueue_scopes_come_from_their_halves_of_the_array():
    hist = [0] * (2 * SLOTS)
    hist[slot_of(3_000)] = 2  # other: two 3 us waits
    hist[SLOTS + slot_of(20_000_000)] = 1  # inference: one 20 ms wait
    out = by_labels(runqueue_samples(hist, [6_000, 20_000_000]))
    other, inference = out[(("scope", "other"),)], out[(("scope", "inference"),)]
    assert (other.count, inference.count) == (2, 1)
    assert inference.sum == 0.02 and other.sum == 6e-6
    assert max(b for b, c in inference.buckets if c == 0) < 0.02


def test_offcpu_exports_only_the_tracked_scope():
    hist = [0] * (4 * SLOTS)
    hist[3 * SLOTS + 5] = 4  # inference, voluntary
    only_inference = by_labels(offcpu_samples(hist, [0, 0, 0, 40], all_threads=False))
    assert set(only_inference) == {(("kind", "involuntary"), ("scope", "inference")),
                                   (("kind", "voluntary"), ("scope", "inference"))}
    assert only_inference[(("kind", "voluntary"), ("scope", "inference"))].count == 4
    assert len(list(offcpu_samples(hist, [0] * 4, all_threads=True))) == 4


def test_block_series_per_device_and_op_with_sum_in_the_extra_slot():
    loop3 = (7 << 20) | 3
    entries = [(loop3, 1, slot_of(100_000), 5), (loop3, 1, SLOTS, 500_000), (loop3, 0, 12, 1)]
    out = by_labels(blockio_samples(entries, lambda ma, mi: f"loop{mi}"))
    write = out[(("device", "loop3"), ("op", "write"))]
    assert write.count == 5 and write.sum == 0.0005
    assert out[(("device", "loop3"), ("op", "read"))].count == 1


def test_tcp_counts_are_named_by_range_with_index_zero_other():
    out = by_labels(tcp_samples([3, 7], ["inference"]))
    assert out == {(("local_ports", "other"),): 3.0, (("local_ports", "inference"),): 7.0}
