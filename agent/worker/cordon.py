"""The node's cordon: an operator's mark that the node takes no inference traffic
(maintenance, a reboot for boot parameters, `infernode tune bench`), while its
workers keep running. Every worker's GET /workers/NAME/ready answers 503 with the
reason, `infernode_node_schedulable` is 0 with reason "cordoned", and GET /workers
says why. Kept in /var/lib/infernode/cordon (its reason as the file's text), so it
outlives an agent restart and the reboot it is often for, until `infernode uncordon`.
"""

from __future__ import annotations

from agent.hostfs import write_atomic
from agent.paths import Paths

CORDON = "/var/lib/infernode/cordon"
MAX_REASON = 200


class CordonError(ValueError):
    pass


def check_reason(reason: str) -> str:
    """The reason as stored; CordonError for one that is empty, too long or not one line."""
    text = reason.strip()
    if not text:
        raise CordonError("a cordon needs a reason (what the node is out of rotation for)")
    if len(text) > MAX_REASON:
        raise CordonError(f"the reason is {len(text)} characters; at most {MAX_REASON}")
    if not text.isprintable():
        raise CordonError("the reason must be one line of printable text")
    return text


def read_cordon(paths: Paths) -> str | None:
    """The reason the node is cordoned, or None. A record that cannot be read keeps
    the node cordoned: out of rotation is the safe side."""
    try:
        return paths.host(CORDON).read_text().strip() or "(no reason recorded)"
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        return f"(record unreadable: {e})"


def write_cordon(paths: Paths, reason: str) -> None:
    path = paths.host(CORDON)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, reason + "\n", mode=0o644)


def clear_cordon(paths: Paths) -> None:
    paths.host(CORDON).unlink(missing_ok=True)
