"""Profiles are data: YAML files with `include:` inheritance.

    description: one line
    include: inference-latency        # or a list; later files override earlier ones
    tunables:
      cpu.governor: performance
      net.ipv4.tcp_rmem: 4096 131072 >=16777216
      nic.rings: null                 # drop a key inherited from an include

Profiles are looked up by name in the operator's directories (tuning.profile_dirs),
then in the shipped directory. Every problem names the file and the key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.yamlfile import YamlFileError, quote, read_yaml_file
from tuning.desired import Desired, DesiredValueError, parse_desired

if TYPE_CHECKING:
    from tuning.tunable import Tunable

SHIPPED_DIR = Path(__file__).resolve().parent / "profiles"


class ProfileError(Exception):
    """A profile that cannot be used; the CLI exits 2 with it."""


@dataclass
class Profile:
    name: str
    description: str
    # tunable name -> (desired, where it was set: "file: key")
    desired: dict[str, tuple[Desired, str]] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)


_PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def find_profile(name: str, dirs: Iterable[Path]) -> Path | None:
    # A profile name is a file stem: anything else (a path, a 300-character name the
    # file system refuses) names no profile.
    if not _PROFILE_NAME.match(name):
        return None
    for d in [*dirs, SHIPPED_DIR]:
        p = Path(d) / f"{name}.yaml"
        if p.is_file():
            return p
    return None


def shipped_profiles() -> list[str]:
    return sorted(p.stem for p in SHIPPED_DIR.glob("*.yaml"))


def load_profile(
    name: str,
    dirs: Iterable[Path] = (),
    known: Mapping[str, type[Tunable]] | None = None,
    overrides: Mapping[str, Any] | None = None,
    overrides_source: str = "config",
) -> Profile:
    """Resolve `name` with its includes, validate every key against the tunables
    (`known`: name -> class with `validate`), then apply config overrides."""
    from tuning.registry import tunables_by_name

    known = tunables_by_name() if known is None else known
    dirs = [Path(d) for d in dirs]
    path = find_profile(name, dirs)
    if path is None:
        raise ProfileError(f"profile {name!r} not found (looked in {', '.join(map(str, [*dirs, SHIPPED_DIR]))})")
    profile = Profile(name=name, description="")
    _load_into(profile, path, dirs, known, stack=[])
    for key, value in (overrides or {}).items():
        where = f"{overrides_source}: tuning.overrides.{key}"
        if value is None:
            profile.desired.pop(key, None)
            continue
        profile.desired[key] = (_validated(key, value, where, known), where)
    from tuning.conflicts import find_conflicts

    problems = find_conflicts(profile.desired)
    if problems:
        raise ProfileError("\n".join(problems))
    # Plan in the registry's order, whatever order the files used.
    order = {n: i for i, n in enumerate(known)}
    profile.desired = dict(sorted(profile.desired.items(), key=lambda kv: order[kv[0]]))
    return profile


def _load_into(profile: Profile, path: Path, dirs: list[Path], known: Mapping[str, Any], stack: list[Path]) -> None:
    if path in stack:
        chain = " -> ".join(p.stem for p in [*stack, path])
        raise ProfileError(f"{stack[-1]}: include: cycle {chain}")
    data = _read_yaml(path)
    unknown_top = set(data) - {"description", "include", "tunables"}
    if unknown_top:
        first = sorted(map(str, unknown_top))[0]
        raise ProfileError(f"{path}: {quote(first)[1:-1]}: unknown key (expected description, include, tunables)")
    includes = data.get("include") or []
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise ProfileError(f"{path}: include: expected a profile name or a list of names, got {quote(includes)}")
    for inc in includes:
        inc_path = find_profile(inc, dirs)
        if inc_path is None:
            raise ProfileError(f"{path}: include: profile {quote(inc)} not found")
        _load_into(profile, inc_path, dirs, known, [*stack, path])
    tunables = data.get("tunables") or {}
    if not isinstance(tunables, dict):
        raise ProfileError(f"{path}: tunables: expected a mapping of tunable to value, got {type(tunables).__name__}")
    for key, value in tunables.items():
        where = f"{path}: tunables.{key}"
        if value is None:
            profile.desired.pop(str(key), None)
            continue
        profile.desired[str(key)] = (_validated(str(key), value, where, known), where)
    profile.files.append(path)
    if not stack:
        profile.description = str(data.get("description", ""))


def _validated(key: str, value: object, where: str, known: Mapping[str, type[Tunable]]) -> Desired:
    if key not in known:
        raise ProfileError(f"{where}: unknown tunable (known: {', '.join(known)})")
    try:
        desired = parse_desired(value)
    except DesiredValueError as e:
        raise ProfileError(f"{where}: {e}") from None
    problem = known[key].validate(desired)
    if problem:
        raise ProfileError(f"{where}: expected {problem}")
    return desired


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = read_yaml_file(path)
    except YamlFileError as e:
        raise ProfileError(f"{path}: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: expected a mapping (description, include, tunables), got {type(data).__name__}")
    return data
