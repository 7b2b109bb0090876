"""Raise the agent's open-file soft limit at start.

Each connection the agent holds is a descriptor, and the common default soft
limit of 1024 is what a flood of sockets exhausted. infernode.service sets
LimitNOFILE=; run by hand, the soft limit is raised to the hard one (at most
WANT). The listeners' connection caps keep the agent well inside either.
"""

from __future__ import annotations

import logging
import resource

log = logging.getLogger("infernode")

WANT = 65536


def raise_open_files_limit(want: int = WANT) -> int:
    """The soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(hard, want)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
        except (ValueError, OSError) as e:
            log.warning("cannot raise the open-file limit from %d to %d: %s", soft, target, e)
    return soft
