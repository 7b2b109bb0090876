"""Host collectors: procfs and sysfs, one module per source (node_exporter style)."""
