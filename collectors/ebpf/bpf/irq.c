/* Hard and soft IRQ time per CPU from irq:* tracepoints. Handlers do not nest
 * within their kind on one CPU, so one start slot per kind per CPU suffices. */
BPF_PERCPU_ARRAY(irq_start, u64, 2);   /* [kind] 0 hard, 1 soft */
BPF_PERCPU_ARRAY(irq_ns, u64, 2);      /* [kind] */

static __always_inline void irq_enter(int kind)
{
    u64 now = bpf_ktime_get_ns();
    irq_start.update(&kind, &now);
}

static __always_inline void irq_exit(int kind)
{
    u64 *start = irq_start.lookup(&kind);
    if (!start || *start == 0)
        return;
    u64 now = bpf_ktime_get_ns();
    u64 begun = *start;
    *start = 0;
    if (now < begun)
        return;
    u64 *total = irq_ns.lookup(&kind);
    if (total)
        *total += now - begun;  /* per-CPU slot: no other CPU writes it */
}

TRACEPOINT_PROBE(irq, irq_handler_entry) { irq_enter(0); return 0; }
TRACEPOINT_PROBE(irq, irq_handler_exit) { irq_exit(0); return 0; }
TRACEPOINT_PROBE(irq, softirq_entry) { irq_enter(1); return 0; }
TRACEPOINT_PROBE(irq, softirq_exit) { irq_exit(1); return 0; }
