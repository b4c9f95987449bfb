"""A submitit SLURM launcher whose resources follow each job's own trainer settings.

hydra-submitit-launcher submits one job array with one set of resources. Here the jobs of a sweep
are grouped by their resolved ``trainer.devices`` / ``trainer.num_nodes`` / ``trainer.accelerator``,
and each group is its own array with ``tasks_per_node = devices``, ``nodes = num_nodes`` and one GPU
per task on GPU accelerators (Lightning's SLURMEnvironment needs that layout), so a sweep over
``trainer.devices=1,2`` runs a 1-task job and a 2-task DDP job side by side. A job that fails makes
the sweep fail with submitit's error, which names the job's log files.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as _SlurmLauncher
from omegaconf import OmegaConf

from depth_lightning.core.config import gpus_per_node, register_resolvers

log = logging.getLogger(__name__)


class SlurmLauncher(_SlurmLauncher):
    def __call__(self, *args: Any, **kwargs: Any) -> JobReturn:
        register_resolvers()  # in the job's process: its folder (${job_key:...}) is resolved before the task runs
        return super().__call__(*args, **kwargs)

    def _resources(self, overrides: Sequence[str]) -> tuple[int, int, int | None]:
        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        devices, nodes = cfg.trainer.devices, cfg.trainer.num_nodes
        if not str(devices).isdigit():
            raise ValueError(f"trainer.devices={devices!r}: SLURM jobs need a number (tasks per node)")
        return int(devices), int(nodes), gpus_per_node(cfg.trainer.accelerator, devices)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import submitit

        assert self.config is not None and len(job_overrides) > 0
        init_keys = {"submitit_folder", "max_num_timeout"}
        baseparams = set(OmegaConf.structured(BaseQueueConf).keys())
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info(f"Submitit 'slurm' sweep output dir : {sweep_dir}")
        groups: dict[tuple[int, int, int | None], list[int]] = {}
        for i, overrides in enumerate(job_overrides):
            groups.setdefault(self._resources(overrides), []).append(i)
        jobs: dict[int, Any] = {}
        for (devices, nodes, gpus), members in groups.items():
            executor = submitit.AutoExecutor(
                cluster="slurm",
                folder=self.params["submitit_folder"],
                slurm_max_num_timeout=self.params.get("max_num_timeout", 0),
            )
            params = {**self.params, "tasks_per_node": devices, "nodes": nodes, "gpus_per_node": gpus}
            executor.update_parameters(
                **{k if k in baseparams else f"slurm_{k}": v for k, v in params.items() if k not in init_keys}
            )
            job_params = []
            for i in members:
                idx = initial_job_idx + i
                log.info(
                    f"\t#{idx} : {' '.join(filter_overrides(job_overrides[i]))} ({nodes} node(s) x {devices} task(s))"
                )
                job_params.append(
                    (list(job_overrides[i]), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state())
                )
            for i, job in zip(members, executor.map_array(self, *zip(*job_params)), strict=True):
                jobs[i] = job
        returns = []
        for i in range(len(job_overrides)):
            ret = jobs[i].results()[0]  # raises, naming the job's logs, if it died before returning
            if ret.status == JobStatus.FAILED:
                log.error(
                    f"job #{initial_job_idx + i} failed; its log: {jobs[i].paths.stderr} (and {jobs[i].paths.stdout})"
                )
            returns.append(ret)
        return returns
