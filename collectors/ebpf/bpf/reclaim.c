/* Direct-reclaim stalls: global (direct_reclaim) and cgroup-limit (memcg_reclaim)
 * reclaim done by the allocating thread itself, begin -> end on that thread. */
struct reclaim_start {
    u64 ts;
    u32 kind;   /* 0 direct (global), 1 memcg */
    u32 pad;
};
BPF_TABLE("lru_hash", u32, struct reclaim_start, reclaim_start, SCHED_MAX_TIDS);
BPF_ARRAY(reclaim_count, u64, 4);   /* [scope][kind] */
BPF_ARRAY(reclaim_ns, u64, 4);      /* [scope][kind] */

#if RECLAIM_PRESSURE
/* Every stall of an inference thread, summed per (scope id, kind): stalls under
 * the outlier threshold are what a memory limit mostly costs, and only these sums
 * see them. Never cleared; user space turns them into deltas and adds the stalls
 * still in progress (reclaim_start) so that a long one is spread over the windows
 * it spans. Reclaim is rare next to scheduling: a shared hash with atomics. */
struct reclaim_pressure_key {
    u32 scope_id;
    u32 kind;
};
struct reclaim_pressure_val {
    u64 ns;
    u64 stalls;
};
BPF_HASH(reclaim_pressure, struct reclaim_pressure_key, struct reclaim_pressure_val, RECLAIM_PRESSURE_SERIES);
#endif

static __always_inline void reclaim_begin(u32 kind)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct reclaim_start s = {.ts = bpf_ktime_get_ns(), .kind = kind};
    reclaim_start.update(&tid, &s);
}

static __always_inline void reclaim_end(void)
{
    u64 now = bpf_ktime_get_ns();
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct reclaim_start *sp = reclaim_start.lookup(&tid);
    if (!sp)
        return;
    struct reclaim_start s = *sp;
    reclaim_start.delete(&tid);
    if (now < s.ts)
        return;
    u64 delta = now - s.ts;
    u32 scope_id;
    u32 scope = scope_of(tid, &scope_id);
    int idx = scope * 2 + (s.kind & 1);
    reclaim_count.atomic_increment(idx);
    u64 *ns = reclaim_ns.lookup(&idx);
    if (ns)
        __sync_fetch_and_add(ns, delta);
#if RECLAIM_PRESSURE
    if (scope == SCOPE_INFERENCE) {
        struct reclaim_pressure_key k = {.scope_id = scope_id, .kind = s.kind & 1};
        struct reclaim_pressure_val zero = {};
        struct reclaim_pressure_val *pv = reclaim_pressure.lookup_or_try_init(&k, &zero);
        if (pv) {
            __sync_fetch_and_add(&pv->ns, delta);
            __sync_fetch_and_add(&pv->stalls, 1);
        }
    }
#endif
    if (delta >= RECLAIM_THRESHOLD_NS) {
        struct event e = {};
        e.program = PROG_RECLAIM;
        e.tid = tid;
        e.cpu = bpf_get_smp_processor_id();
        e.scope_id = scope_id;
        e.end_ns = now;
        e.duration_ns = delta;
        e.flags = s.kind;
        bpf_get_current_comm(e.comm, sizeof(e.comm));
        emit(&e);
    }
}

TRACEPOINT_PROBE(vmscan, mm_vmscan_direct_reclaim_begin) { reclaim_begin(0); return 0; }
TRACEPOINT_PROBE(vmscan, mm_vmscan_direct_reclaim_end) { reclaim_end(); return 0; }
TRACEPOINT_PROBE(vmscan, mm_vmscan_memcg_reclaim_begin) { reclaim_begin(1); return 0; }
TRACEPOINT_PROBE(vmscan, mm_vmscan_memcg_reclaim_end) { reclaim_end(); return 0; }
