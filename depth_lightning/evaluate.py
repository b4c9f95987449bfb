"""``python -m depth_lightning.evaluate ckpt_path=...``: test-split metrics of both decoders."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from depth_lightning.config import CONF_DIR, build, plain
from depth_lightning.errors import one_line_errors
from depth_lightning.files import write_json
from depth_lightning.train import fix_run_time, split_metrics

log = logging.getLogger(__name__)


def _given_on_command_line() -> set[str]:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return set()
    return {o.split("=", 1)[0].lstrip("+~") for o in HydraConfig.get().overrides.task}


def evaluation_data(cfg: DictConfig, module: Any) -> dict[str, Any]:
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


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    from depth_lightning.baselines import fit_baselines
    from depth_lightning.checkpoint import load_module
    from depth_lightning.hydra_ddp import run_ddp_ranks_as_this_job
    from depth_lightning.per_image import record_test
    from depth_lightning.speed import keep_freed_memory

    run_ddp_ranks_as_this_job()
    keep_freed_memory(cfg.get("keep_freed_memory", True))
    module = load_module(cfg.ckpt_path)
    data = evaluation_data(cfg, module)
    datamodule = build(data, "data")
    trainer = build(cfg.trainer, "trainer")
    if trainer.is_global_zero:
        h, w = module.hparams.input_size
        print(f"data={datamodule.name} at input {data['height']}x{data['width']} (trained at {h}x{w})")
    if cfg.get("baselines", False):
        try:
            module.score_baselines(fit_baselines(datamodule.training_depth_sample()))
        except Exception as err:  # e.g. a copy of the dataset that holds only the test frames
            log.warning("the baselines are not scored: their training frames could not be read (%s)", err)
    trainer.test(module, datamodule=datamodule, verbose=False)
    metrics = split_metrics(trainer.callback_metrics, "test")
    if trainer.is_global_zero:
        out = Path(cfg.output) if cfg.get("output") else Path(cfg.paths.output_dir) / "eval_metrics.json"
        title = f"Test split of data={datamodule.name}, checkpoint {cfg.ckpt_path}"
        folder = Path(cfg.paths.output_dir)  # per_image.csv & co. in the run's own folder: never overwritten
        found = record_test(module, datamodule, folder, [], cfg.get("intervals"), title)
        found["per_image"] = str(folder / "per_image.csv")
        metrics.update(found.pop("test_values"))
        write_json(
            out,
            {
                "ckpt_path": str(cfg.ckpt_path),
                "data": datamodule.name,
                "input_size": [data["height"], data["width"]],
                "test": metrics,
                "images": module.images_evaluated,
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
