"""Boot parameters on hosts whose boot loader reads Boot Loader Specification entries
(systemd-boot; GRUB with BLS on Fedora and RHEL 9; kernel-install): each entry's
`options` lines are the kernel command line, and /etc/kernel/cmdline (when it
exists) is what kernel-install writes into the entries of kernels installed later
(systemd 252 90-loaderentry.install; without the file it takes /proc/cmdline).

infernode appends its parameters to the options of every entry and to
/etc/kernel/cmdline, and records what it appended in
/var/lib/infernode/tuning/bls-params.json, so that it can tell its own parameters
from the site's and take them out again. What the next boot passes is read from
the newest entry (highest version): the one a boot loader picks by default after a
kernel update. Entries whose options come from grubenv (`$kernelopts`, RHEL 8)
are refused: grubby manages those.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tuning.cmdline import Param, shell_safe, split_cmdline
from tuning.tunable import TunableError, TuneContext, Unsupported

ENTRY_DIRS = ("/boot/loader/entries", "/efi/loader/entries", "/boot/efi/loader/entries")
OWNED = "/var/lib/infernode/tuning/bls-params.json"
ABSENT = None


def _version_key(text: str) -> list[tuple[int, int | str]]:
    """Natural order: 6.1.0-28 < 6.1.0-100."""
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"(\d+)", text) if p]


def entry_options(text: str) -> str:
    """The kernel command line of a BLS entry: its `options` lines, joined."""
    return " ".join(line.split(None, 1)[1].strip() for line in text.splitlines()
                    if line.split(None, 1)[:1] == ["options"] and len(line.split(None, 1)) == 2)


def entry_version(text: str) -> str:
    for line in text.splitlines():
        parts = line.split(None, 1)
        if parts[:1] == ["version"] and len(parts) == 2:
            return parts[1].strip()
    return ""


def without_words(options: str, words: list[str]) -> str:
    """`options` with one occurrence of each word removed."""
    out = options.split()
    for w in words:
        if w in out:
            out.remove(w)
    return " ".join(out)


def with_options(text: str, options: str) -> str:
    """A BLS entry with its options set to `options` (one line, where the first was)."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    placed = False
    for line in lines:
        if line.split(None, 1)[:1] == ["options"]:
            if not placed:
                out.append(f"options {options}\n")
                placed = True
            continue
        out.append(line)
    if not placed:
        if out and not out[-1].endswith("\n"):
            out[-1] += "\n"
        out.append(f"options {options}\n")
    return "".join(out)


class Bls:
    """The BLS entries and /etc/kernel/cmdline of one root."""

    def __init__(self, ctx: TuneContext, entries: Path) -> None:
        self.ctx = ctx
        self.paths = ctx.paths
        self.entries_dir = entries

    @classmethod
    def find(cls, ctx: TuneContext) -> Bls | None:
        for d in ENTRY_DIRS:
            path = ctx.paths.host(d)
            if path.is_dir() and any(path.glob("*.conf")):
                return cls(ctx, path)
        return None

    # -- files ------------------------------------------------------------------

    def _entries(self) -> list[Path]:
        return sorted(self.entries_dir.glob("*.conf"))

    def _kernel_cmdline(self) -> Path:
        return self.paths.etc("kernel", "cmdline")

    def _owned_path(self) -> Path:
        return self.paths.host(OWNED)

    def owned(self) -> dict[str, str]:
        try:
            data = json.loads(self._owned_path().read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            raise TunableError(f"{self._owned_path()}: unreadable ({e}); inspect it, then remove it") from None
        if not isinstance(data, dict) or not all(isinstance(v, str) and shell_safe(v) for v in data.values()):
            raise TunableError(f"{self._owned_path()}: not a record infernode wrote")
        return {str(k): v for k, v in data.items()}

    def _files(self) -> list[Path]:
        files = self._entries()
        if self._kernel_cmdline().exists():
            files.append(self._kernel_cmdline())
        return [*files, self._owned_path()]

    # -- BootLoader -------------------------------------------------------------------

    def check(self) -> None:
        self.owned()
        for entry in self._entries():
            if "$kernelopts" in entry_options(entry.read_text()):
                raise Unsupported(f"{entry} takes its options from grubenv ($kernelopts): set boot parameters "
                                  "with grubby on this host")

    def _next_options(self) -> str:
        """The options of the entry the next boot takes: the newest (highest version)."""
        entries = [(entry_version(p.read_text()) or p.stem, p) for p in self._entries()]
        if not entries:
            raise Unsupported(f"{self.entries_dir} holds no entries")
        return entry_options(max(entries, key=lambda e: _version_key(e[0]))[1].read_text())

    def _owned_words(self) -> list[str]:
        return [w for params in self.owned().values() for w in params.split()]

    def configured(self) -> list[Param]:
        return split_cmdline(self._next_options())

    def others(self) -> list[Param]:
        return split_cmdline(without_words(self._next_options(), self._owned_words()))

    def set_params(self, tunable: str, params: str | None, order: list[str]) -> None:
        owned = self.owned()
        old = owned.get(tunable, "").split()
        new = params.split() if params else []
        for path in self._entries():
            text = path.read_text()
            path.write_text(with_options(text, " ".join([*without_words(entry_options(text), old).split(), *new])))
        cmdline = self._kernel_cmdline()
        if cmdline.exists():
            base = without_words(" ".join(cmdline.read_text().split()), old)
            cmdline.write_text(" ".join([*base.split(), *new]) + "\n")
        if params is None:
            owned.pop(tunable, None)
        else:
            owned[tunable] = params
        ranked = {n: i for i, n in enumerate(order)}
        path = self._owned_path()
        if owned:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(dict(sorted(owned.items(), key=lambda kv: ranked.get(kv[0], 99))),
                                       indent=2) + "\n")
        else:
            path.unlink(missing_ok=True)

    def snapshot(self) -> str:
        return json.dumps({str(p): (p.read_text() if p.exists() else ABSENT) for p in self._files()})

    def restore(self, snap: str) -> None:
        files: dict[str, str | None] = json.loads(snap)
        # Entries of kernels installed since the apply are not in the record: take
        # our parameters out of them before the record of what we own goes back.
        words = self._owned_words()
        for path in self._entries():
            if str(path) not in files:
                text = path.read_text()
                path.write_text(with_options(text, without_words(entry_options(text), words)))
        for name, content in files.items():
            path = Path(name)
            if content is ABSENT:
                path.unlink(missing_ok=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(content)

    def regenerate(self) -> None:
        """Nothing to regenerate: boot loaders read BLS entries as they are."""
