/* Block I/O latency per device and operation, and the I/O time of inference threads.
 *
 * Requests are keyed by (dev, sector), which every block tracepoint carries, rather
 * than by request pointer. Whose I/O it is comes from block_bio_queue, which runs in
 * the submitting thread (submit_bio's caller); block_rq_issue may run in a kworker
 * (kblockd dispatching a busy queue, a requeue), so its current task says nothing.
 *
 * The histograms measure the device (issue -> complete, like biolatency); what a
 * thread waited is submission -> complete, which adds the time its request spent
 * queued behind others, the part an fsync storm makes long.
 */
struct bio_key {
    u32 dev;
    u32 pad;
    u64 sector;
};
struct bio_submit {
    u64 ts;
    u32 tid;
    u32 scope_id;   /* 0: not an inference thread */
};
struct bio_start {
    u64 ts;         /* issue */
    u64 queued_ts;  /* submission, 0 if block_bio_queue was not seen */
    u32 tid;
    u32 scope_id;
    u32 bytes;
    u32 pad;
};
struct bio_hist_key {
    u32 dev;
    u32 op;    /* 0 read, 1 write, 2 other (flush, discard) */
    u32 slot;
    u32 pad;
};
/* LRU: a bio merged into another's request never reaches issue under its own sector,
 * and a request whose completion we never see (attached mid-flight) ages out. */
BPF_TABLE("lru_hash", struct bio_key, struct bio_submit, bio_submit, BIO_MAX_INFLIGHT);
BPF_TABLE("lru_hash", struct bio_key, struct bio_start, bio_start, BIO_MAX_INFLIGHT);
BPF_HASH(bio_hist, struct bio_hist_key, u64, BIO_MAX_SERIES);

#if IO_PRESSURE
/* Every block request of an inference thread, summed per (scope id, device) when it
 * completes: the wait (submission -> complete) and counts. Per-CPU (the completing
 * CPU), never cleared; user space sums the CPUs and turns totals into per-window
 * deltas. A completed wait began before the window that reads it, so user space
 * also reads the requests still in flight (io_inflight) and counts their waits up
 * to each read: each window then holds the waiting done inside it. */
struct io_pressure_key {
    u32 scope_id;
    u32 dev;
};
struct io_pressure_val {
    u64 ns;
    u64 requests;
    u64 reads;
    u64 bytes;
};
BPF_PERCPU_HASH(io_pressure, struct io_pressure_key, struct io_pressure_val, IO_PRESSURE_SERIES);
struct io_inflight_val {
    u64 start;      /* submission, else issue */
    u32 scope_id;
    u32 dev;
};
BPF_TABLE("lru_hash", struct bio_key, struct io_inflight_val, io_inflight, BIO_MAX_INFLIGHT);
#endif

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

TRACEPOINT_PROBE(block, block_bio_queue)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct bio_key k = {.dev = args->dev, .sector = args->sector};
    struct bio_submit s = {.tid = tid};
    if (scope_of(tid, &s.scope_id) == SCOPE_INFERENCE) {
        s.ts = bpf_ktime_get_ns();
        bio_submit.update(&k, &s);
    } else if (bio_submit.lookup(&k)) {
        /* An entry left by an earlier bio at this sector (one merged into another
         * request) must not be taken for this one. Only inference threads' bios are
         * recorded: the rest of the node's I/O pays a lookup, not an LRU update. */
        bio_submit.delete(&k);
    }
    return 0;
}

TRACEPOINT_PROBE(block, block_rq_issue)
{
    u64 now = bpf_ktime_get_ns();
    struct bio_key k = {.dev = args->dev, .sector = args->sector};
    struct bio_start s = {.ts = now, .bytes = args->bytes};
    struct bio_submit *sub = bio_submit.lookup(&k);
    struct bio_start *again = sub ? 0 : bio_start.lookup(&k);
    if (sub && sub->ts <= now && now - sub->ts < BIO_MAX_QUEUE_NS) {
        s.queued_ts = sub->ts;
        s.tid = sub->tid;
        s.scope_id = sub->scope_id;
    } else if (again && again->ts <= now && now - again->ts < BIO_MAX_QUEUE_NS) {
        /* Issued again after a requeue: still the same submitter's request, and its
         * wait still runs from its first submission (the in-flight entry stays). */
        s.queued_ts = again->queued_ts ? again->queued_ts : again->ts;
        s.tid = again->tid;
        s.scope_id = again->scope_id;
    } else {
        /* Not an inference thread's bio, submitted before we attached, or a request
         * without a bio (a flush the block layer makes itself): the issuing task. */
        s.tid = (u32)bpf_get_current_pid_tgid();
        scope_of(s.tid, &s.scope_id);
    }
    if (sub)
        bio_submit.delete(&k);
    bio_start.update(&k, &s);
#if IO_PRESSURE
    if (s.scope_id != 0) {
        struct io_inflight_val f = {.start = s.queued_ts ? s.queued_ts : now, .scope_id = s.scope_id,
                                    .dev = args->dev};
        io_inflight.update(&k, &f);
    }
#endif
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
    u64 waited = s.queued_ts && s.queued_ts <= s.ts ? now - s.queued_ts : delta;
    char rwbs[8];
    __builtin_memcpy(rwbs, args->rwbs, sizeof(rwbs));
    struct bio_hist_key hk = {.dev = args->dev, .op = rwbs_op(rwbs), .slot = log2_slot(delta)};
    bio_hist.atomic_increment(hk);
    /* The sum rides in slot SLOTS of the same series. */
    hk.slot = SLOTS;
    bio_hist.atomic_increment(hk, delta);
#if IO_PRESSURE
    if (s.scope_id != 0) {
        io_inflight.delete(&k);
        struct io_pressure_key pk = {.scope_id = s.scope_id, .dev = args->dev};
        struct io_pressure_val zero = {};
        struct io_pressure_val *pv = io_pressure.lookup_or_try_init(&pk, &zero);
        if (pv) {
            pv->ns += waited;
            pv->requests += 1;
            pv->reads += hk.op == 0;
            pv->bytes += s.bytes;
        }
    }
#endif
    if (waited >= BIO_THRESHOLD_NS) {
        struct event e = {};
        e.program = PROG_BLOCKIO;
        e.tid = s.tid;
        e.cpu = bpf_get_smp_processor_id();
        e.scope_id = s.scope_id;
        e.end_ns = now;
        e.duration_ns = waited;
        e.a = args->dev;
        e.b = s.bytes;
        u64 queued_us = (waited - delta) / 1000;
        e.other_pid = queued_us > 0xffffffffULL ? 0xffffffff : queued_us;
        e.flags = hk.op;
        emit(&e);
    }
    return 0;
}
