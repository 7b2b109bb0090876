"""Which vLLM releases the drop-in's command line works with.

The drop-in passes `--shutdown-timeout`, which vLLM has since 0.18.0 (vllm#34730;
vLLM's own drain docs, vllm#43208, and llm-d#927 name that release). An older vLLM
exits at argument parsing with "unrecognized arguments". `--otlp-traces-endpoint`,
`--host` and `--port` are older than that. The reference read of vLLM 0.33.0
mentions the flag being re-added by vllm#36666 without pinning its release, so
0.18.0 is the floor from the sources above, not one tested here.
"""

from __future__ import annotations

import re

MIN_VLLM_VERSION = (0, 18, 0)
MIN_VLLM_TEXT = ".".join(map(str, MIN_VLLM_VERSION))

_VERSION = re.compile(r"^v?(\d{1,4})\.(\d{1,4})(?:\.(\d{1,6}))?")


def parse_version(text: str) -> tuple[int, int, int] | None:
    """(major, minor, patch) of a vLLM version string such as "0.33.0",
    "0.18.1+cu128" or "0.19.0rc2.dev31+g1a2b3c"; None when it is none of these."""
    m = _VERSION.match(text.strip()) if isinstance(text, str) else None
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def too_old(text: str) -> bool:
    v = parse_version(text)
    return v is not None and v < MIN_VLLM_VERSION
