"""One module per tunable family; `tuning.registry` lists them."""
