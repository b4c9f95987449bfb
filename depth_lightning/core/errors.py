"""The suite's error types, and how an entry point ends on one.

A leaf module: everything may raise these, and this module imports nothing of the package, so no
error type drags in the code that raises it. A user error (a setting, a file, a folder the user can
fix from the message alone) ends an entry point with one line on stderr and exit code 2; a traceback
is for bugs.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf.errors import MissingMandatoryValue


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names the key."""


class DataError(ValueError):
    """A dataset file that is missing, corrupt or of the wrong format; the message names it."""


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, or not a depth_lightning checkpoint."""


class RunFolderBusy(RuntimeError):
    """Another process is running in this folder."""


class RunFolderUsed(RuntimeError):
    """The folder holds a run already (its record); a new run would overwrite it."""


class NoValidPixels(ValueError):
    """An evaluation in which no image holds a valid ground-truth pixel: there is no number to report."""


class RunInterrupted(RuntimeError):
    """The run stopped on a signal after writing ``last.ckpt``; the message says how to resume it."""


class NonFiniteError(RuntimeError):
    """A NaN or inf loss, gradient, weight or statistic; the message names the step and the samples."""


USER_ERRORS = (ConfigError, DataError, CheckpointError, FileNotFoundError, RunFolderBusy, RunFolderUsed, NoValidPixels)
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
            exit_with_one_line(err)
        except MissingMandatoryValue as err:  # a ??? setting the command line did not give
            if _in_multirun():
                raise
            key = err.full_key or "a setting"
            exit_with_one_line(ConfigError(f"config error: {key}: required; give {key}=<value> on the command line"))

    return wrapper  # type: ignore[return-value]


def exit_with_one_line(err: Exception) -> None:
    """End the process as every entry point ends on a user error: ``error: <message>``, exit code 2."""
    print(f"error: {' '.join(str(err).split())}", file=sys.stderr)  # one line, whatever the message held
    sys.exit(USAGE_EXIT)


def _in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
