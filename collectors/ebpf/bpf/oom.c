/* OOM kills from oom:mark_victim (the victim the OOM killer chose). */
BPF_ARRAY(oom_kills, u64, 1);

TRACEPOINT_PROBE(oom, mark_victim)
{
    int zero = 0;
    oom_kills.atomic_increment(zero);
    struct event e = {};
    e.program = PROG_OOM;
    e.tid = (u32)bpf_get_current_pid_tgid();
    e.cpu = bpf_get_smp_processor_id();
    e.end_ns = bpf_ktime_get_ns();
    e.other_pid = args->pid;
    e.a = args->anon_rss;  /* pages */
    TP_DATA_LOC_READ_STR(e.comm, comm, sizeof(e.comm));
    emit(&e);
    return 0;
}
