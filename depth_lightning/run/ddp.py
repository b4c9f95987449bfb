"""DDP under Hydra: every rank of a job resolves the job's own folder, also inside a multirun.

Lightning starts ranks > 0 of a local DDP job by re-executing the command line with
``hydra.run.dir=<run dir>``. Inside a multirun that command line still says ``--multirun`` and
holds the whole sweep, so each rank would start the sweep again. :func:`run_ddp_ranks_as_this_job`
makes the re-executed command the single job instead: its own overrides and its own output folder.
It replaces ``lightning.fabric.strategies.launchers.subprocess_script._hydra_subprocess_cmd``, a
private function: ``pyproject.toml`` bounds ``lightning`` to the releases it was tested with, and the
call below fails loudly, not silently, if that function is gone.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_original_cwd
from lightning.fabric.strategies.launchers import subprocess_script

_PATCHED = False


def job_command(local_rank: int) -> tuple[Sequence[str], str]:
    """The command that re-creates the current Hydra job (not the sweep) as rank ``local_rank``."""
    import __main__  # the program Python runs, which the ranks must run again

    hc = HydraConfig.get()
    if __main__.__spec__ is None:
        command = [sys.executable, sys.argv[0]]
    else:
        command = [sys.executable, "-m", __main__.__spec__.name]
    command += list(hc.overrides.task)
    command += [
        f'hydra.run.dir="{hc.runtime.output_dir}"',
        f"hydra.job.name=train_ddp_process_{local_rank}",
        "hydra.output_subdir=null",
    ]
    return command, get_original_cwd()


def run_ddp_ranks_as_this_job() -> None:
    """Route Lightning's per-rank re-execution through :func:`job_command` (idempotent)."""
    global _PATCHED
    if _PATCHED:
        return
    if not hasattr(subprocess_script, "_hydra_subprocess_cmd"):
        raise RuntimeError(
            "this lightning release has no subprocess_script._hydra_subprocess_cmd: multi-process DDP under "
            "Hydra needs the release range pyproject.toml names (pip install -e .)"
        )
    subprocess_script._hydra_subprocess_cmd = job_command
    _PATCHED = True
