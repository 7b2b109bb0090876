/* Run-queue latency and off-CPU time, from sched tracepoints only.
 *
 * One sched_switch handler serves both programs (a tracepoint function name can
 * be defined once per module); each part is compiled in only when enabled.
 *
 * sched_switch's prev_state is TASK_REPORT_MAX (0x100) when the task was
 * preempted, 0 when it switched out while still TASK_RUNNING (yield), otherwise
 * one bit of the reported state: (prev_state & 0xff) == 0 means "still runnable";
 * 0x10 (X, EXIT_DEAD) and 0x20 (Z, EXIT_ZOMBIE) mark a thread's final switch-out.
 *
 * This is the hottest path on the node: histograms are per-CPU arrays (no atomic
 * read-modify-write on shared cache lines; summed when read) and each thread's
 * scope is looked up once per switch.
 */
#define TASK_STATE_MASK 0xff
#define TASK_EXITING 0x30

static __always_inline void percpu_add(u64 *slot, u64 v)
{
    if (slot)
        *slot += v;
}

#ifdef ENABLE_RUNQUEUE
/* A runnable thread always runs again before it can exit, so entries are consumed. */
BPF_HASH(runq_start, u32, u64, SCHED_MAX_TIDS);
BPF_PERCPU_ARRAY(runq_hist, u64, 2 * SLOTS);   /* [scope][slot] */
BPF_PERCPU_ARRAY(runq_sum, u64, 2);            /* [scope] ns */

/* Every run-queue wait of an inference thread, summed per scope id (and, being
 * per-CPU, per CPU the wait ended on). Under EEVDF contention is mostly waits of a
 * few ms, below any outlier threshold: these sums are what measures it. Never
 * cleared (no read-then-delete race); user space turns them into deltas. */
struct runq_pressure_val {
    u64 ns;
    u64 waits;
};
BPF_PERCPU_HASH(runq_pressure, u32, struct runq_pressure_val, RUNQ_PRESSURE_SCOPES);

static __always_inline void runq_enqueued(u32 tid, u64 ts)
{
    if (tid == 0)  /* the idle task never waits */
        return;
    runq_start.update(&tid, &ts);
}

TRACEPOINT_PROBE(sched, sched_wakeup)
{
    runq_enqueued(args->pid, bpf_ktime_get_ns());
    return 0;
}

TRACEPOINT_PROBE(sched, sched_wakeup_new)
{
    runq_enqueued(args->pid, bpf_ktime_get_ns());
    return 0;
}
#endif

#ifdef ENABLE_OFFCPU
struct offcpu_start {
    u64 ts;
    u32 voluntary;
    u32 pad;
};
/* Final switch-outs (exiting threads) are not recorded, so entries are consumed. */
BPF_HASH(offcpu_start, u32, struct offcpu_start, SCHED_MAX_TIDS);
BPF_PERCPU_ARRAY(offcpu_hist, u64, 4 * SLOTS); /* [scope][voluntary][slot] */
BPF_PERCPU_ARRAY(offcpu_sum, u64, 4);          /* [scope][voluntary] ns */
#endif

#if defined(ENABLE_RUNQUEUE) || defined(ENABLE_OFFCPU)
/* A thread created by an inference thread is one from its first wakeup (an HTTP
 * server's thread per connection, a worker's new pool thread), not only from the
 * next scope refresh. User space's refresh keeps the map right either way. */
TRACEPOINT_PROBE(sched, sched_process_fork)
{
    u32 parent = args->parent_pid;
    u32 *sid = scope_tids.lookup(&parent);
    if (sid) {
        u32 child = args->child_pid;
        u32 v = *sid;
        scope_tids.update(&child, &v);
    }
    return 0;
}

TRACEPOINT_PROBE(sched, sched_switch)
{
    u64 now = bpf_ktime_get_ns();
    u32 prev = args->prev_pid;
    u32 next = args->next_pid;
    long prev_state = args->prev_state;
    u32 runnable = (prev_state & TASK_STATE_MASK) == 0;
    u32 next_sid = 0;
    u32 next_scope = 0;
    if (next != 0)
        next_scope = scope_of(next, &next_sid);
    if (prev_state & TASK_EXITING)  /* its final switch-out: the tid is free for reuse */
        scope_tids.delete(&prev);

#ifdef ENABLE_RUNQUEUE
    /* A preempted thread goes straight back onto the run queue. */
    if (runnable)
        runq_enqueued(prev, now);
    if (next != 0) {
        u64 *tsp = runq_start.lookup(&next);
        if (tsp) {
            u64 start = *tsp;
            runq_start.delete(&next);
            if (now >= start) {  /* clocks of different CPUs may disagree slightly */
                u64 delta = now - start;
                int idx = next_scope * SLOTS + log2_slot(delta);
                percpu_add(runq_hist.lookup(&idx), 1);
                int sidx = next_scope;
                percpu_add(runq_sum.lookup(&sidx), delta);
#if RUNQ_PRESSURE
                if (next_scope == SCOPE_INFERENCE) {
                    struct runq_pressure_val zero = {};
                    struct runq_pressure_val *pv = runq_pressure.lookup_or_try_init(&next_sid, &zero);
                    if (pv) {
                        pv->ns += delta;
                        pv->waits += 1;
                    }
                }
#endif
                if (next_scope == SCOPE_INFERENCE && delta >= RUNQ_THRESHOLD_NS) {
                    struct event e = {};
                    e.program = PROG_RUNQUEUE;
                    e.tid = next;
                    e.cpu = bpf_get_smp_processor_id();
                    e.scope_id = next_sid;
                    e.end_ns = now;
                    e.duration_ns = delta;
                    e.other_pid = prev;  /* the thread that held this CPU until now */
                    __builtin_memcpy(e.comm, args->prev_comm, sizeof(e.comm));
                    emit(&e);
                }
            }
        }
    }
#endif

#ifdef ENABLE_OFFCPU
    if (prev != 0 && !(prev_state & TASK_EXITING)) {
        u32 sid;
        if (OFFCPU_ALL_THREADS || scope_of(prev, &sid) == SCOPE_INFERENCE) {
            struct offcpu_start st = {.ts = now, .voluntary = !runnable};
            offcpu_start.update(&prev, &st);
        }
    }
    if (next != 0 && (OFFCPU_ALL_THREADS || next_scope == SCOPE_INFERENCE)) {
        struct offcpu_start *stp = offcpu_start.lookup(&next);
        if (stp) {
            struct offcpu_start st = *stp;
            offcpu_start.delete(&next);
            if (now >= st.ts) {
                u64 delta = now - st.ts;
                int key = next_scope * 2 + (st.voluntary ? 1 : 0);
                int idx = key * SLOTS + log2_slot(delta);
                percpu_add(offcpu_hist.lookup(&idx), 1);
                percpu_add(offcpu_sum.lookup(&key), delta);
            }
        }
    }
#endif
    return 0;
}
#endif
