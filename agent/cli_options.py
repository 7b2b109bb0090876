"""What every `infernode` command shares: the --config and --root options, the
config exit code, and loading the config.

Plugin commands (tuning/cli.py, agent/worker/cli.py, ...) use these. The config
model belongs to the composition root, which the plugins never import: the root
command (agent/cli.py) puts its loader in click's context object, and
`load_or_exit` calls it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

EXIT_CONFIG = 2

config_option = click.option(
    "--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
    help="Config file (default /etc/infernode/infernode.yaml; built-in defaults when absent).",
)
root_option = click.option(
    "--root", type=click.Path(path_type=Path, file_okay=False, exists=True), default=Path("/"), show_default=True,
    help="Host root that /proc, /sys, /etc and /run are read under (a fixture tree in tests).",
)

# Loads the config file or exits EXIT_CONFIG with its problems; set by the root command.
ConfigLoader = Callable[[Path | None], Any]


def load_or_exit(config_path: Path | None) -> Any:  # noqa: ANN401 - each caller annotates its plugin's view
    """The validated config of `config_path` (the default file, else defaults, when
    None), as the root command loads it; exits EXIT_CONFIG when it is invalid.

    Typed Any on purpose: the model is the root's, and each plugin command assigns
    the result to its own view (e.g. `cfg: TuningConfig = load_or_exit(...)`),
    which the root's Config is checked to satisfy."""
    ctx = click.get_current_context()
    loader = ctx.find_object(_Loader)
    if loader is None:
        raise click.UsageError("this command runs under `infernode`, which loads the config")
    return loader.load(config_path)


class _Loader:
    def __init__(self, load: ConfigLoader) -> None:
        self.load = load


def install_loader(ctx: click.Context, load: ConfigLoader) -> None:
    ctx.obj = _Loader(load)
