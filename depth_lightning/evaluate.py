"""``python -m depth_lightning.evaluate ckpt_path=...``: test-split metrics of both decoders (and the
baselines), each with its interval, per-image results and the protocol card in this run's folder."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from depth_lightning.config import CONF_DIR, build, plain
from depth_lightning.evaluation.alignment import alignment_from
from depth_lightning.evaluation.baselines import fit_baselines
from depth_lightning.evaluation.evaluator import evaluator_for
from depth_lightning.evaluation.results import record_test
from depth_lightning.inference.pretrained import load_model
from depth_lightning.module import DepthModule
from depth_lightning.run.ddp import run_ddp_ranks_as_this_job
from depth_lightning.run.errors import one_line_errors
from depth_lightning.run.files import check_writable, write_json
from depth_lightning.run.folder import fix_run_time
from depth_lightning.run.loggers import logged_metrics
from depth_lightning.run.speed import keep_freed_memory

log = logging.getLogger(__name__)


def _given_on_command_line() -> set[str]:
    if not HydraConfig.initialized():
        return set()
    return {o.split("=", 1)[0].lstrip("+~") for o in HydraConfig.get().overrides.task}


def evaluation_data(cfg: DictConfig, module: DepthModule) -> dict[str, Any]:
    """The data to test on: the checkpoint's own (with any ``+data.<key>=`` given merged in), or a
    dataset chosen with ``data=<name>``; at the checkpoint's input size unless ``data.height`` /
    ``data.width`` are given explicitly."""
    data = dict(module.hparams.data)
    if cfg.get("data") is not None:
        chosen = plain(cfg.data)
        data = chosen if "_target_" in chosen else plain(OmegaConf.merge(data, chosen))
    given = _given_on_command_line()
    for key, value in zip(("height", "width"), module.hparams.input_size, strict=True):
        if f"data.{key}" not in given:
            data[key] = value
    return data


def baseline_maps(cfg: DictConfig, datamodule: Any) -> dict[str, Any] | None:
    """The baselines fitted on the dataset's training frames, or None (not asked for, or unreadable)."""
    if not cfg.get("baselines", False):
        return None
    try:
        return fit_baselines(datamodule.training_depth_sample())
    except Exception as err:  # e.g. a copy of the dataset that holds only the test frames
        log.warning("the baselines are not scored: their training frames could not be read (%s)", err)
        return None


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Test the checkpoint ``cfg.ckpt_path``; returns the test's numbers (rank 0 writes the files)."""
    run_ddp_ranks_as_this_job()
    keep_freed_memory(cfg.get("keep_freed_memory", True))
    out = Path(cfg.output) if cfg.get("output") else Path(cfg.paths.output_dir) / "eval_metrics.json"
    check_writable(out, "output")
    alignment = alignment_from(cfg.get("alignment"))  # refused by name before the model is loaded
    module = load_model(cfg.ckpt_path)
    data = evaluation_data(cfg, module)
    datamodule = build(data, "data")
    trainer = build(cfg.trainer, "trainer")
    if trainer.is_global_zero:
        h, w = module.hparams.input_size
        print(f"data={datamodule.name} at input {data['height']}x{data['width']} (trained at {h}x{w})")
    maps = baseline_maps(cfg, datamodule)
    evaluator = evaluator_for(datamodule, "test", module.bins.num_bins, module.hparams.decoder, maps, alignment)
    module.evaluate_with(test=evaluator)
    trainer.test(module, datamodule=datamodule, verbose=False)
    metrics = logged_metrics(trainer, "test")
    if trainer.is_global_zero:
        title = f"Test split of data={datamodule.name}, checkpoint {cfg.ckpt_path}"
        # per_image.csv & co. in the run's own folder: never overwritten by another evaluation
        found = record_test(evaluator.result, Path(cfg.paths.output_dir), cfg.get("intervals"), title)
        metrics.update(found.pop("test_values"))
        write_json(
            out,
            {
                "ckpt_path": str(cfg.ckpt_path),
                "data": datamodule.name,
                "input_size": [data["height"], data["width"]],
                "test": metrics,
                "images": evaluator.result.images,
                "world_size": trainer.world_size,
                **found,
            },
        )
        print(f"written: {out}")
    return metrics


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="evaluate")
@one_line_errors
def _hydra_main(cfg: DictConfig) -> None:
    evaluate(cfg)


def main() -> None:
    fix_run_time()
    _hydra_main()


if __name__ == "__main__":
    main()
