"""BPF C sources (package data), compiled by bcc at load."""
