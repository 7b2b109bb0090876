/* Block I/O latency per device and operation: block_rq_issue -> block_rq_complete.
 *
 * Requests are keyed by (dev, sector), which both tracepoints carry, rather than by
 * request pointer; the issuing thread is recorded at issue time.
 */
struct bio_key {
    u32 dev;
    u32 pad;
    u64 sector;
};
struct bio_start {
    u64 ts;
    u32 tid;
    u32 bytes;
};
struct bio_hist_key {
    u32 dev;
    u32 op;    /* 0 read, 1 write, 2 other (flush, discard) */
    u32 slot;
    u32 pad;
};
/* LRU: a request whose completion we never see (attached mid-flight) ages out. */
BPF_TABLE("lru_hash", struct bio_key, struct bio_start, bio_start, BIO_MAX_INFLIGHT);
BPF_HASH(bio_hist, struct bio_hist_key, u64, BIO_MAX_SERIES);

static __always_inline u32 rwbs_op(const char *rwbs)
{
    /* rwbs starts with F (flush) or the op letter: R, W, D (discard), N. */
    char c0 = rwbs[0], c1 = rwbs[1];
    if (c0 == 'F')
        c0 = c1;
    if (c0 == 'R')
        return 0;
    if (c0 == 'W')
        return 1;
    return 2;
}

TRACEPOINT_PROBE(block, block_rq_issue)
{
    struct bio_key k = {.dev = args->dev, .sector = args->sector};
    struct bio_start s = {.ts = bpf_ktime_get_ns(), .tid = (u32)bpf_get_current_pid_tgid(), .bytes = args->bytes};
    bio_start.update(&k, &s);
    return 0;
}

TRACEPOINT_PROBE(block, block_rq_complete)
{
    u64 now = bpf_ktime_get_ns();
    struct bio_key k = {.dev = args->dev, .sector = args->sector};
    struct bio_start *sp = bio_start.lookup(&k);
    if (!sp)
        return 0;
    struct bio_start s = *sp;
    bio_start.delete(&k);
    if (now < s.ts)
        return 0;
    u64 delta = now - s.ts;
    char rwbs[8];
    __builtin_memcpy(rwbs, args->rwbs, sizeof(rwbs));
    struct bio_hist_key hk = {.dev = args->dev, .op = rwbs_op(rwbs), .slot = log2_slot(delta)};
    bio_hist.atomic_increment(hk);
    /* The sum rides in slot SLOTS of the same series. */
    hk.slot = SLOTS;
    bio_hist.atomic_increment(hk, delta);
    if (delta >= BIO_THRESHOLD_NS) {
        struct event e = {};
        e.program = PROG_BLOCKIO;
        e.tid = s.tid;
        e.cpu = bpf_get_smp_processor_id();
        e.end_ns = now;
        e.duration_ns = delta;
        e.a = args->dev;
        e.b = s.bytes;
        e.flags = hk.op;
        emit(&e);
    }
    return 0;
}
