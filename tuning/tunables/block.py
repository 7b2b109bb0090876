"""Block device tunables: I/O scheduler and read-ahead."""

from __future__ import annotations

from pathlib import Path

from tuning.tunable import Tunable, TunableError, TuneContext, choice_validator, int_validator, read_file, selected, write_file


def nvme_disks(ctx: TuneContext) -> list[str]:
    base = ctx.paths.sys("block")
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if p.name.startswith("nvme"))


def parse_mountinfo_device(text: str, path: str) -> str | None:
    """major:minor of the mount holding `path`, from /proc/self/mountinfo text."""
    best: tuple[int, str] | None = None
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        mount_point = fields[4]
        inside = path == mount_point or path.startswith(mount_point.rstrip("/") + "/") or mount_point == "/"
        if inside and (best is None or len(mount_point) > best[0]):
            best = (len(mount_point), fields[2])
    return best[1] if best else None


def model_store_disk(ctx: TuneContext, store: str) -> str | None:
    mountinfo = ctx.paths.proc("self", "mountinfo")
    if not mountinfo.exists():
        return None
    devno = parse_mountinfo_device(mountinfo.read_text(), store)
    if devno is None:
        return None
    link = ctx.paths.sys("dev", "block", devno)
    if not link.exists():
        return None
    dev = link.resolve()
    # A partition's read-ahead is its disk's queue setting.
    if (dev / "partition").exists():
        dev = dev.parent
    return dev.name


class BlockScheduler(Tunable):
    """I/O scheduler of each NVMe namespace (`/sys/block/nvmeXnY/queue/scheduler`).

    `none`: NVMe has deep hardware queues; a software scheduler only adds latency
    to model loads and KV-cache spills."""

    name = "block.scheduler"
    family = "block"
    checker = staticmethod(choice_validator(("none", "mq-deadline", "kyber", "bfq")))

    def targets(self) -> list[str]:
        return nvme_disks(self.ctx)

    def _path(self, target: str) -> Path:
        return self.ctx.paths.sys("block", target, "queue", "scheduler")

    def read(self, target: str) -> str:
        return selected(read_file(self._path(target)))

    def write(self, target: str, value: str) -> None:
        offered = [w.strip("[]") for w in read_file(self._path(target)).split()]
        try:
            write_file(self._path(target), value)
        except OSError as e:
            # EINVAL: the scheduler is not built in or loaded (the file lists those that are).
            raise TunableError(f"{target} offers schedulers {' '.join(offered)}, not {value!r} ({e.strerror})") from e


class BlockReadAhead(Tunable):
    """Read-ahead of the model store's disk in KiB (`/sys/block/<dev>/queue/read_ahead_kb`).

    Model weights are read once, sequentially and in large files: a large
    read-ahead shortens cold starts. The disk is `tuning.block_devices`, else the
    one holding `tuning.model_store`, else every NVMe namespace."""

    name = "block.read_ahead_kb"
    family = "block"
    checker = staticmethod(int_validator(0, None))

    def targets(self) -> list[str]:
        s = self.ctx.settings
        if s.block_devices:
            return list(s.block_devices)
        if s.model_store:
            disk = model_store_disk(self.ctx, s.model_store)
            return [disk] if disk else []
        return nvme_disks(self.ctx)

    def _path(self, target: str) -> Path:
        return self.ctx.paths.sys("block", target, "queue", "read_ahead_kb")

    def read(self, target: str) -> str:
        return read_file(self._path(target)).strip()

    def write(self, target: str, value: str) -> None:
        write_file(self._path(target), value)
