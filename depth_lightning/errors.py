"""User errors end every entry point with one line on stderr and exit code 2; a traceback is for bugs."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from depth_lightning.checkpoint import CheckpointError
from depth_lightning.config import ConfigError
from depth_lightning.data.io import DataError
from depth_lightning.metrics import NoValidPixels
from depth_lightning.run_folder import RunFolderBusy

# What a user can fix from the message alone: a setting, a file, a folder.
USER_ERRORS = (ConfigError, DataError, CheckpointError, FileNotFoundError, RunFolderBusy, NoValidPixels)
USAGE_EXIT = 2

F = TypeVar("F", bound=Callable[..., Any])


def one_line_errors(fn: F) -> F:
    """Wrap a Hydra task function: a user error prints ``error: <message>`` and exits 2. Inside a
    multirun it propagates instead, so that the sweeper records the failed job and goes on (its folder
    keeps the reason: ``metrics.json`` and ``train.log``)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as err:
            if _in_multirun():
                raise
            print(f"error: {err}", file=sys.stderr)
            sys.exit(USAGE_EXIT)

    return wrapper  # type: ignore[return-value]


def _in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
