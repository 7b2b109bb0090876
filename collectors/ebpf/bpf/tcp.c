/* TCP retransmissions from tcp:tcp_retransmit_skb, counted per configured local
 * port range (index 0: none of them). TCP_PORT_RANGE(p) is generated from config. */
BPF_ARRAY(tcp_retrans, u64, TCP_PORT_RANGES + 1);

#if TCP_CA_STATE
/* Each socket's congestion-avoidance state (tcp:tcp_cong_state_set, its own
 * argument): a retransmit sent in TCP_CA_Loss (4) follows a retransmission
 * timeout, one in Recovery (3) is a fast retransmit, one in Open (0) a tail-loss
 * probe. What each cost the receiver differs a hundredfold, so the event says which. */
BPF_TABLE("lru_hash", u64, u8, tcp_ca_state, 65536);

TRACEPOINT_PROBE(tcp, tcp_cong_state_set)
{
    u64 sk = (u64)args->skaddr;
    u8 st = args->cong_state;
    tcp_ca_state.update(&sk, &st);
    return 0;
}
#endif

TRACEPOINT_PROBE(tcp, tcp_retransmit_skb)
{
    u16 sport = args->sport;
    int idx = TCP_PORT_RANGE(sport);
    tcp_retrans.atomic_increment(idx);
    struct event e = {};
    e.program = PROG_TCP;
    e.tid = (u32)bpf_get_current_pid_tgid();
    e.cpu = bpf_get_smp_processor_id();
    e.end_ns = bpf_ktime_get_ns();
    e.flags = args->family;
    /* a: saddr (4 bytes) | daddr (4 bytes); b: sport | dport << 16 (host order) |
     * the socket's TCP state << 32 (1 established, 4 FIN_WAIT1, 8 CLOSE_WAIT, ...). */
    u32 saddr = 0, daddr = 0;
    __builtin_memcpy(&saddr, args->saddr, 4);
    __builtin_memcpy(&daddr, args->daddr, 4);
    e.a = ((u64)daddr << 32) | saddr;
    e.b = ((u64)(args->state & 0xff) << 32) | ((u64)args->dport << 16) | args->sport;
#if TCP_CA_STATE
    u64 sk = (u64)args->skaddr;
    u8 *st = tcp_ca_state.lookup(&sk);
    e.other_pid = st ? (u32)*st + 1 : 0;  /* 0: not known (no transition seen yet) */
#endif
    emit(&e);
    return 0;
}
