"""XID classification: NVIDIA's recommended action for each XID that matters.

From NVIDIA's Xid catalog (docs.nvidia.com/deploy/xid-errors). The action is what
an operator should do: restart the application, reset the GPU, reboot the node,
or nothing (informational). XIDs not in the table are reported as informational
with `known` false, so an alert can still key on the number.
"""

from __future__ import annotations

from dataclasses import dataclass

RESTART_APP = "restart_app"
RESET_GPU = "reset_gpu"
REBOOT_NODE = "reboot_node"
INFORMATIONAL = "informational"


@dataclass(frozen=True)
class XidInfo:
    xid: int
    action: str
    description: str
    known: bool = True
    # NVIDIA's k8s device plugin treats these as the application's fault, not the device's.
    application_error: bool = False


_TABLE = {
    13: (RESTART_APP, "Graphics engine exception (application fault)", True),
    31: (RESTART_APP, "GPU memory page fault (application fault)", True),
    43: (RESTART_APP, "GPU stopped processing (application fault, GPU healthy)", True),
    45: (INFORMATIONAL, "Preemptive cleanup due to a previous error (often secondary)", True),
    48: (RESET_GPU, "Double-bit ECC error", False),
    63: (INFORMATIONAL, "ECC page retirement or row remap recorded", False),
    64: (RESET_GPU, "ECC page retirement or row remap failure", False),
    68: (RESTART_APP, "NVDEC0 exception (application fault)", True),
    74: (RESET_GPU, "NVLink error", False),
    79: (REBOOT_NODE, "GPU has fallen off the bus", False),
    92: (INFORMATIONAL, "High single-bit ECC error rate", False),
    94: (RESTART_APP, "Contained ECC error", False),
    95: (RESET_GPU, "Uncontained ECC error", False),
    109: (RESTART_APP, "Context switch timeout", True),
    119: (RESET_GPU, "GSP RPC timeout", False),
    120: (RESET_GPU, "GSP error", False),
    154: (INFORMATIONAL, "GPU recovery action changed", False),
}


def classify(xid: int) -> XidInfo:
    entry = _TABLE.get(xid)
    if entry is None:
        return XidInfo(xid, INFORMATIONAL, "XID not in infernode's table; see NVIDIA's Xid catalog", known=False)
    action, description, app = entry
    return XidInfo(xid, action, description, True, app)
