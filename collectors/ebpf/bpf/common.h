/* Shared by every infernode BPF program; compiled once with the enabled ones.
 *
 * Only tracepoint arguments and BPF helpers are read, never kernel structs: bcc
 * may compile against headers that do not match the running kernel.
 *
 * Histograms are log2 (bcc's bpf_log2l: slot i holds [2^(i-1), 2^i - 1] ns),
 * live in arrays and are never cleared, so the exported buckets stay monotonic.
 */
#include <uapi/linux/ptrace.h>

#define SLOTS 64
#define SCOPE_OTHER 0
#define SCOPE_INFERENCE 1

/* Program ids: index of lost-event counters and the `program` field of events. */
#define PROG_RUNQUEUE 0
#define PROG_OFFCPU 1
#define PROG_BLOCKIO 2
#define PROG_TCP 3
#define PROG_OOM 4
#define PROG_RECLAIM 5
#define PROG_IRQ 6
#define NPROGS 7

/* Outlier events, one layout for all programs (decoded in collectors/ebpf/decode.py). */
struct event {
    u32 program;
    u32 tid;
    u32 cpu;
    u32 scope_id;      /* 0: not an inference thread */
    u64 end_ns;        /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
    u64 duration_ns;
    u64 a;             /* program-specific: see decode.py */
    u64 b;
    u32 other_pid;     /* run-queue: the thread switched out; OOM: victim pid;
                          block I/O: microseconds queued before issue */
    u32 flags;
    char comm[16];
};

BPF_RINGBUF_OUTPUT(events, RINGBUF_PAGES);
BPF_ARRAY(lost, u64, NPROGS);
/* tid -> scope id of the inference cgroup it belongs to; filled from user space. */
BPF_HASH(scope_tids, u32, u32, SCOPE_MAX_TIDS);

static __always_inline u32 scope_of(u32 tid, u32 *scope_id)
{
    u32 *sid = scope_tids.lookup(&tid);
    *scope_id = sid ? *sid : 0;
    return sid ? SCOPE_INFERENCE : SCOPE_OTHER;
}

static __always_inline u32 log2_slot(u64 v)
{
    u32 slot = bpf_log2l(v);
    return slot < SLOTS ? slot : SLOTS - 1;
}

static __always_inline void emit(struct event *e)
{
    if (events.ringbuf_output(e, sizeof(*e), 0) != 0) {
        int idx = e->program;
        lost.atomic_increment(idx);
    }
}
