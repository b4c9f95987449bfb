"""What a run tells about itself: its log file (library messages and the traceback of a failure
included), the config tree at its start, the ``extras`` switches, and where its outputs are."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from rich.console import Console
from rich.syntax import Syntax
from rich.tree import Tree

from depth_lightning.core.errors import ConfigError

log = logging.getLogger(__name__)

# Lightning gives these loggers a console handler of their own when it is imported before Hydra
# configures logging, and stops them propagating: their messages never reached train.log.
LIBRARY_LOGGERS = ("lightning.pytorch", "lightning.fabric", "lightning", "pytorch_lightning")
# The config tree shows these groups first, in this order.
TREE_ORDER = ("data", "model", "trainer", "budget", "callbacks", "logger", "paths", "extras")


def route_library_logs() -> None:
    """Send Lightning's messages to the handlers Hydra set up (console and the run's ``train.log``)."""
    if not logging.getLogger().handlers:
        return  # not under Hydra: leave the libraries' own handlers
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler:
                logger.removeHandler(handler)
        logger.propagate = True


def log_failure(err: BaseException) -> None:
    """The traceback of a failure into the run's log file (the console gets it from Hydra already)."""
    record = log.makeRecord(
        log.name, logging.ERROR, __file__, 0, "the run failed: %r", (err,), (type(err), err, err.__traceback__)
    )
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def config_tree(cfg: DictConfig) -> Any:
    """The composed config as a rich tree, one branch per group, values resolved where they can be."""
    tree = Tree("config", guide_style="dim")
    for key in [k for k in TREE_ORDER if k in cfg] + [k for k in cfg if k not in TREE_ORDER]:
        value = cfg[key]
        if isinstance(value, DictConfig | ListConfig):
            try:
                text = OmegaConf.to_yaml(value, resolve=True)
            except Exception:  # an interpolation only Hydra's run can resolve: shown as written
                text = OmegaConf.to_yaml(value)
            tree.add(str(key)).add(Syntax(text.rstrip(), "yaml", theme="ansi_dark", background_color="default"))
        else:
            tree.add(f"{key}: {value}")
    return tree


def print_config_tree(cfg: DictConfig, out_dir: Path) -> None:
    """Print the tree, and keep it as ``config_tree.log`` in the run folder (plain text)."""
    tree = config_tree(cfg)
    Console().print(tree)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "config_tree.log", "w") as f:
        Console(file=f, width=120, color_system=None, force_terminal=False).print(tree)


def apply_extras(cfg: DictConfig, out_dir: Path) -> None:
    """The ``extras`` switches (lightning-hydra-template's): ``ignore_warnings``, ``enforce_tags``,
    ``print_config``."""
    extras = cfg.get("extras") or {}
    if extras.get("ignore_warnings", False):
        log.info("extras.ignore_warnings=true: Python warnings are not shown")
        warnings.filterwarnings("ignore")
    if extras.get("enforce_tags", False) and not cfg.get("tags"):
        raise ConfigError(
            "config error: tags: extras.enforce_tags=true needs tags to find this run later; "
            "add e.g. tags=[baseline,nyu] (or extras.enforce_tags=false)"
        )
    if extras.get("print_config", True):
        print_config_tree(cfg, out_dir)


def where_outputs_are(out_dir: Path, best: str | None) -> str:
    """One closing line: the run folder and its checkpoints."""
    last = out_dir / "checkpoints" / "last.ckpt"
    parts = [f"run folder: {out_dir}"]
    if best:
        parts.append(f"best checkpoint: {best}")
    if last.is_file():
        parts.append(f"last checkpoint: {last}")
    return "; ".join(parts)
