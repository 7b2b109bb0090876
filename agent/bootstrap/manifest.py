"""The bring-up manifest: which NVIDIA driver and libraries a node runs, pinned to
exact package versions, and the repository they come from.

A shipped manifest (examples/manifest.yaml) is the fleet default; an operator
override is deep-merged over it (mappings merge, scalars and lists replace), then the
result is validated once, so an error names the key path in the merged document.
Versions are the package manager's own spelling (Debian `[epoch:]upstream-revision`),
because `apt-get install pkg=version` needs exactly that string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agent.validation import describe
from agent.yamlfile import YamlFileError, read_yaml_file

_VERSION_RE = re.compile(r"^(\d+:)?[0-9][A-Za-z0-9.+~-]*$")


class ManifestError(Exception):
    """A manifest that cannot be used; each line names the source, key path and value."""

    def __init__(self, source: str, lines: list[str]) -> None:
        self.source = source
        self.lines = lines
        super().__init__("\n".join(f"{source}: {line}" for line in lines))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_version(v: str) -> str:
    if not _VERSION_RE.match(v):
        raise ValueError("expected a package version like 580.95.05-1 or 1:4.4.1-1")
    return v


class Repository(_Section):
    """The NVIDIA package repository or an internal mirror of it (air-gapped fleets)."""

    url: str
    # NVIDIA's CUDA repositories are flat ("deb URL /"); a mirror may use a suite.
    suite: str = "/"
    components: list[str] = Field(default_factory=list)
    # Keyring file on the node (binary .gpg or ASCII-armoured .asc) that signs the repo.
    key: Path | None = None
    # Only for local test mirrors: accept the repository unsigned.
    trusted: bool = False
    # RHEL family: the .repo baseurl and gpgkey default to url and key.
    dnf_baseurl: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^(https?|file|ftp):", v):
            raise ValueError("expected an http(s)://, ftp:// or file: URL")
        return v

    @model_validator(mode="after")
    def _signed(self) -> Repository:
        if self.key is None and not self.trusted:
            raise ValueError("key is required (the repository's signing keyring) unless trusted: true")
        if self.key is not None and "\x00" in str(self.key):
            raise ValueError("key: a path cannot hold a NUL byte")
        if self.key is not None and not self.key.is_absolute():
            raise ValueError(f"key must be an absolute path (got {str(self.key)!r})")
        return self


class Driver(_Section):
    branch: int = Field(gt=0)
    # The package version of the driver metapackage, e.g. 580.95.05-1.
    version: str
    kernel_modules: Literal["open", "proprietary"] = "open"
    package: str | None = None  # default cuda-drivers-<branch>
    dnf_version: str | None = None
    # RHEL family: enable NVIDIA's driver module stream (nvidia-driver:580-open)
    # before installing, for repositories that still ship the driver as a module.
    dnf_module_stream: bool = False

    @field_validator("version")
    @classmethod
    def _version(cls, v: str) -> str:
        return _check_version(v)

    @model_validator(mode="after")
    def _branch_matches(self) -> Driver:
        upstream = self.version.split(":", 1)[-1]
        if not upstream.startswith(f"{self.branch}."):
            raise ValueError(f"version {self.version!r} is not on branch {self.branch}")
        return self

    @property
    def upstream(self) -> str:
        """The kernel module's version (580.95.05), as /proc/driver/nvidia/version shows it."""
        return self.version.split(":", 1)[-1].rsplit("-", 1)[0]


class Component(_Section):
    package: str
    version: str
    dnf_version: str | None = None
    enabled: bool = True

    @field_validator("version")
    @classmethod
    def _version(cls, v: str) -> str:
        return _check_version(v)


class Toolkit(Component):
    """The CUDA toolkit; `nvcc --version` reports `release <major.minor>`."""

    @property
    def release(self) -> str:
        upstream = self.version.split(":", 1)[-1]
        return ".".join(upstream.split(".")[:2])


class FabricManager(Component):
    # auto: only when NVSwitches are on PCI (HGX/DGX); the service fails without them.
    when: Literal["auto", "always", "never"] = "auto"


class Manifest(_Section):
    repository: Repository
    driver: Driver
    cuda_toolkit: Toolkit
    cudnn: Component
    nccl: Component
    dcgm: Component
    container_toolkit: Component | None = None
    fabric_manager: FabricManager | None = None


@dataclass(frozen=True)
class Pin:
    """One package the manifest pins: what the plan compares and apply installs."""

    component: str
    package: str
    version: str
    dnf_version: str | None
    # A change to this package replaces the kernel module: it may need a reboot.
    kernel: bool = False


def pins(m: Manifest, nvswitches: int) -> list[Pin]:
    """The packages this node needs; fabric manager only with NVSwitches (when auto)."""
    d = m.driver
    out = [
        Pin("driver", d.package or f"cuda-drivers-{d.branch}", d.version, d.dnf_version, kernel=True),
        Pin("kernel_modules",
            "nvidia-kernel-open-dkms" if d.kernel_modules == "open" else "nvidia-kernel-dkms",
            d.version, d.dnf_version, kernel=True),
    ]
    for name in ("cuda_toolkit", "cudnn", "nccl", "dcgm", "container_toolkit"):
        c: Component | None = getattr(m, name)
        if c is not None and c.enabled:
            out.append(Pin(name, c.package, c.version, c.dnf_version))
    fm = m.fabric_manager
    if fm is not None and fm.enabled and (fm.when == "always" or (fm.when == "auto" and nvswitches > 0)):
        out.append(Pin("fabric_manager", fm.package, fm.version, fm.dnf_version))
    return out


def merge(base: object, override: object) -> object:
    """Deep merge: mappings merge key by key, anything else in the override replaces."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for k, v in override.items():
            out[k] = merge(base[k], v) if k in base else v
        return out
    return override


def _read_yaml(path: Path) -> object:
    try:
        # Not limited to regular files: the daemon reads the manifest in a thread its
        # shutdown abandons, so a read that blocks (a FIFO, a hung network mount)
        # cannot hold the agent, as the shutdown tests show with a FIFO.
        return read_yaml_file(path, regular_only=False)
    except YamlFileError as e:
        raise ManifestError(str(path), [str(e)]) from None


def parse_manifest(data: object, source: str = "<manifest>") -> Manifest:
    if not isinstance(data, dict):
        raise ManifestError(source, [f"top level: expected a mapping, got {type(data).__name__}"])
    try:
        return Manifest.model_validate(data)
    except ValidationError as e:
        raise ManifestError(source, [describe(err) for err in e.errors()]) from None


def load_manifest(path: Path, overrides: tuple[Path, ...] = ()) -> Manifest:
    data = _read_yaml(path)
    source = str(path)
    for o in overrides:
        extra = _read_yaml(o)
        if extra is None:
            continue
        if not isinstance(extra, dict):
            raise ManifestError(str(o), [f"top level: expected a mapping, got {type(extra).__name__}"])
        data = merge(data, extra)
        source += f" + {o}"
    return parse_manifest(data, source)
