# Names vulture (at 60% confidence) reports as unused, each kept for a reason.
# `make lint` runs vulture over agent/, collectors/ and tuning/ with this file;
# a new unused name fails it unless it is listed here with its reason.
# (The file is only parsed, never run: `_` stands for any object.)

# Pydantic fields and dataclass fields: read through the model (model_dump,
# getattr by name, asdict), not as attributes.
_.cudnn, _.nccl, _.dcgm, _.container_toolkit  # agent/bootstrap/manifest.py components, read by name
_.loadavg, _.meminfo, _.diskstats, _.netdev  # agent/plugins.py CollectorsSettings, read by CollectorsSettings.of()
_.runqueue, _.offcpu, _.blockio, _.tcp_retransmit, _.reclaim, _.irq  # collectors/ebpf/settings.py programs, read by name
_.application_error  # collectors/gpu/xid.py: the table's third column, not exported yet (see the closing note)

# Written for a library to read: protobuf fields, ctypes structure fields, a
# callback kept alive for bcc, a logger's switch, ConfigParser's hook.
_.dropped_events_count, _.time_unix_nano  # agent/tracing/pipeline.py: OTLP span-event fields
_.bool_value, _.int_value, _.double_value, _.string_value  # agent/tracing/spans.py: AnyValue fields
_.numMetrics, _.sample1, _.sample2, _.metricId  # collectors/gpu/nvml_reader.py: nvmlGpmMetricsGet_t fields
_._callback  # collectors/ebpf/loader.py: bcc keeps only a weak reference to the perf-buffer callback
_.disabled  # collectors/ebpf/cli.py: logging.Logger.disabled
_.optionxform  # tuning/comparison.py: ConfigParser's key normaliser, replaced to keep case
_.intercept_service  # agent/tracing/receiver_grpc.py: grpc.aio.ServerInterceptor's method

# For the type checker only.
_._every_view  # agent/plugins.py: Config satisfies each plugin's view of it

# What the product offers its tests: counters and seams the tests read or drive.
_.knows  # agent/catalog.py
_.default_config  # agent/config.py: the built-in defaults
_.build_families  # agent/exposition.py: prometheus_client's families, to check our text against
_.trims  # agent/heap.py: how many malloc_trim calls ran
_.suppressed_total, _.suppressed_repeats  # agent/logs.py: the repeat filter's counts
_.published  # agent/services.py: which providers are published
_.gpus_on_node  # agent/topology.py
_.key_values, _.iter_spans  # agent/tracing/spans.py: building and walking OTLP requests
_.slot_of  # collectors/ebpf/histogram.py: the kernel's log2 slot, mirrored in Python
_.BY_NAME  # collectors/ebpf/programs.py
_.parse_tuned_conf  # tuning/comparison.py: reads the installed tuned profiles in the comparison test
_.begin  # tuning/engine.py: the crash-recovery tests drive a transaction's steps
_.split_bootloader  # tuning/comparison.py: counts tuned's boot parameters one by one in the comparison test
