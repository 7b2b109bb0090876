"""Where boot parameters are written and how the boot loader picks them up.

GRUB as Debian and Ubuntu ship it: grub-mkconfig sources /etc/default/grub, then
every /etc/default/grub.d/*.cfg in order (grub-mkconfig lines 160-166 in
grub-common 2.06-13), and puts "$GRUB_CMDLINE_LINUX $GRUB_CMDLINE_LINUX_DEFAULT"
on the kernel line of each normal entry (/etc/grub.d/10_linux). infernode writes
/etc/default/grub.d/99-infernode.cfg (sourced last) and runs update-grub.

What the boot loader will pass is read the way grub-mkconfig reads it: by sourcing
the same files in a shell, so another drop-in that overrides ours shows as drift.

Hosts that boot Boot Loader Specification entries (systemd-boot, GRUB with BLS on
Fedora and RHEL 9, kernel-install) are written through tuning/bls.py instead;
`boot_loader` picks one per host. grub-mkconfig builds that do not read
/etc/default/grub.d, without BLS entries, are reported unsupported.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Protocol

from tuning.bls import Bls
from tuning.cmdline import DropInError, Param, parse_dropin, render_dropin, split_cmdline
from tuning.tunable import TunableError, TuneContext, Unsupported, restore_file, snapshot_file


class BootLoader(Protocol):
    """Where boot parameters go on one host, shared by every boot tunable."""

    def check(self) -> None:
        """Raise TunableError or Unsupported when infernode cannot write here as it is."""

    def configured(self) -> list[Param]:
        """The parameters the next boot passes."""

    def others(self) -> list[Param]:
        """The same without infernode's: what the site set itself."""

    def set_params(self, tunable: str, params: str | None, order: list[str]) -> None:
        """`tunable`'s parameters set (None: removed)."""

    def snapshot(self) -> str:
        """Every file `set_params` may change, as one string for `restore`."""

    def restore(self, snap: str) -> None: ...

    def regenerate(self) -> None:
        """Make the boot loader take the files (update-grub); once after the writes."""


def boot_loader(ctx: TuneContext) -> BootLoader:
    """This host's boot loader, once per plan (Engine.plan empties ctx.shared);
    Unsupported where there is none we write."""
    loader = ctx.shared.get("bootloader")
    if loader is None:
        bls = Bls.find(ctx)
        loader = bls if bls is not None else Grub(ctx)
        ctx.shared["bootloader"] = loader
    return loader  # type: ignore[return-value]

DROPIN = ("default", "grub.d", "99-infernode.cfg")
MKCONFIGS = (("usr", "sbin", "grub-mkconfig"), ("usr", "sbin", "grub2-mkconfig"))

# The lines of grub-mkconfig that read its configuration, nothing else of it.
_SOURCE_CONFIG = r"""set -e
sysconfdir="$1"; skip="$2"
if test -f "${sysconfdir}/default/grub" ; then
  . "${sysconfdir}/default/grub"
fi
for x in "${sysconfdir}"/default/grub.d/*.cfg ; do
  if [ -e "${x}" ] && [ "${x}" != "${skip}" ]; then
    . "${x}"
  fi
done
printf '%s %s\n' "${GRUB_CMDLINE_LINUX}" "${GRUB_CMDLINE_LINUX_DEFAULT}"
"""

# update-grub scans every disk with os-prober on some hosts: give it time.
REGENERATE_TIMEOUT = 300


class Grub:
    """The GRUB drop-in of one root (the host, or an image under --root)."""

    def __init__(self, ctx: TuneContext) -> None:
        self.ctx = ctx
        self.paths = ctx.paths
        # What sourcing GRUB's configuration printed, by the file left out: every boot
        # tunable of a plan asks, and our own writes are the only change meanwhile.
        self._sourced: dict[str, str] = {}

    @property
    def dropin(self) -> Path:
        return self.paths.etc(*DROPIN)

    def mkconfig(self) -> Path:
        """The grub-mkconfig that reads /etc/default/grub.d; Unsupported otherwise."""
        for rel in MKCONFIGS:
            path = self.paths.host("/" + "/".join(rel))
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            if "default/grub.d" in text:
                return path
            raise Unsupported(f"{path} does not read /etc/default/grub.d (set boot parameters in "
                              "/etc/default/grub, or with grubby, yourself)")
        raise Unsupported("no grub-mkconfig and no Boot Loader Specification entries here: infernode writes "
                          "boot parameters for GRUB (/etc/default/grub.d) and BLS entries only")

    # -- what the boot loader will pass -------------------------------------

    def configured(self) -> list[Param]:
        """The parameters grub-mkconfig would put on a normal entry now."""
        return split_cmdline(self._source(skip=None))

    def others(self) -> list[Param]:
        """The same without our drop-in: what the site configured itself."""
        return split_cmdline(self._source(skip=self.dropin))

    def _source(self, skip: Path | None) -> str:
        key = str(skip or "")
        if key not in self._sourced:
            self._sourced[key] = self._run_source(skip)
        return self._sourced[key]

    def _run_source(self, skip: Path | None) -> str:
        self.mkconfig()
        argv = ["sh", "-c", _SOURCE_CONFIG, "sh", str(self.paths.etc()), str(skip or "")]
        try:
            res = self.ctx.run(argv)
        except (OSError, subprocess.SubprocessError) as e:
            raise TunableError(f"cannot read GRUB's configuration: {e}") from e
        if res.returncode != 0:
            raise TunableError(f"sourcing {self.paths.etc('default', 'grub')} and grub.d failed: "
                               f"{(res.stderr or '').strip()[-200:] or f'exit {res.returncode}'}")
        return str(res.stdout)

    # -- our drop-in ----------------------------------------------------------

    def check(self) -> None:
        self.mkconfig()
        self.entries()  # a drop-in someone edited is an error in plan, not at apply

    def snapshot(self) -> str:
        return snapshot_file(self.dropin)

    def restore(self, snap: str) -> None:
        self._sourced.clear()
        restore_file(self.dropin, snap)

    def entries(self) -> dict[str, str]:
        try:
            text = self.dropin.read_text()
        except FileNotFoundError:
            return {}
        try:
            return parse_dropin(text)
        except DropInError as e:
            raise TunableError(f"{self.dropin}: {e}; move the edit to another grub.d file") from None

    def set_params(self, tunable: str, params: str | None, order: list[str]) -> None:
        """Our line for `tunable` set to `params` (None removes it), lines in `order`."""
        self._sourced.clear()
        entries = self.entries()
        if params is None:
            entries.pop(tunable, None)
        else:
            entries[tunable] = params
        ranked = {name: i for i, name in enumerate(order)}
        entries = dict(sorted(entries.items(), key=lambda kv: ranked.get(kv[0], len(ranked))))
        if not entries:
            self.dropin.unlink(missing_ok=True)
            return
        try:
            text = render_dropin(entries)
        except DropInError as e:
            raise TunableError(str(e)) from None
        self.dropin.parent.mkdir(parents=True, exist_ok=True)
        self.dropin.write_text(text)

    # -- grub.cfg ---------------------------------------------------------------

    def regenerate_argv(self) -> list[str]:
        mkconfig = self.mkconfig()
        if self.paths.host("/usr/sbin/update-grub").exists():
            argv = ["update-grub"]
        else:
            out = "/boot/grub2/grub.cfg" if mkconfig.name == "grub2-mkconfig" else "/boot/grub/grub.cfg"
            argv = [mkconfig.name, "-o", out]
        # An image (--root) regenerates its own grub.cfg, as bootstrap runs apt there.
        return argv if self.paths.is_real_root() else ["chroot", str(self.paths.root), *argv]

    def regenerate(self) -> None:
        argv = self.regenerate_argv()
        try:
            res = self.ctx.run(argv, timeout=REGENERATE_TIMEOUT)
        except (OSError, subprocess.SubprocessError) as e:
            raise TunableError(f"{' '.join(argv)}: {e}") from e
        if res.returncode != 0:
            raise TunableError(f"{' '.join(argv)} failed (exit {res.returncode}): "
                               f"{(res.stderr or res.stdout or '').strip()[-300:]}")
