"""Every entry point's ``main()``: ``python -m depth_lightning.<name> [overrides]`` as one wrapper.

:func:`command` turns a task ``f(cfg)`` into the ``main`` of a console script: the run folder's time
stamp fixed once (DDP ranks and sweep jobs resolve the same folder), the config's resolvers registered,
the command line read as the user means it (:func:`command_line`), Hydra's ``main`` with the config
of the same name, and a user error as one line and exit 2
(:func:`~depth_lightning.core.errors.one_line_errors`).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from depth_lightning.core.config import CONF_DIR, added_groups_as_choices, compose_config, register_resolvers
from depth_lightning.core.errors import one_line_errors
from depth_lightning.run.folder import fix_run_time, newest_resumable_run

MULTIRUN_FLAGS = ("--multirun", "-m")


def command(config_name: str, task: Callable[[DictConfig], Any], resumes: bool = False) -> Callable[[], None]:
    """The ``main()`` that runs ``task`` on ``conf/<config_name>.yaml`` composed with the command line;
    ``resumes``: ``ckpt_path=last`` finds the run folder to resume (training)."""

    @functools.wraps(task)  # Hydra names the job (its log file: train.log) after the task's module
    def run_task(cfg: DictConfig) -> Any:
        register_resolvers()  # a job of a launcher's worker process unpickles no registration
        return task(cfg)

    hydra_main = hydra.main(version_base="1.3", config_path=CONF_DIR, config_name=config_name)(
        one_line_errors(run_task)
    )

    def main() -> None:
        fix_run_time()
        register_resolvers()
        sys.argv = command_line(sys.argv, config_name, resumes)
        hydra_main()

    return main


def command_line(argv: list[str], config_name: str, resumes: bool = False) -> list[str]:
    """``argv`` as Hydra must read it to do what the user means:

    - ``+group=option`` for a group the config already chooses (``+debug=tiny``) read as ``group=option``;
    - ``--multirun`` / ``-m`` after the overrides (Hydra takes overrides on one side of the flag only);
    - with ``resumes``, ``ckpt_path=last`` without ``hydra.run.dir``: the folder of the newest run of
      its task that has a ``last.ckpt`` added (printed), so that the run resumes in its own folder.
    """
    args = added_groups_as_choices(argv, config_name)[1:]
    flags = [a for a in args if a in MULTIRUN_FLAGS]
    args = [a for a in args if a not in MULTIRUN_FLAGS]
    wants_last = "ckpt_path=last" in args and not flags
    if resumes and wants_last and not any(a.startswith("hydra.run.dir=") for a in args):
        cfg = compose_config(*(a for a in args if not a.startswith("hydra.")), config_name=config_name)
        found = newest_resumable_run(Path(cfg.paths.log_dir) / cfg.task_name / "runs")
        if found is not None:
            print(f"ckpt_path=last: resuming the newest run of task {cfg.task_name!r} that has a last.ckpt: {found}")
            args.append(f"hydra.run.dir={found}")
    return [argv[0], *args, *flags]
