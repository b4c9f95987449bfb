"""``python -m depth_lightning.evaluate ckpt_path=...``: test-split metrics of both decoders (and the
baselines), each with its interval, per-image results and the protocol card in this run's folder."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from depth_lightning.core.config import build, compose_data, data_configs, plain
from depth_lightning.core.errors import ConfigError
from depth_lightning.core.files import check_writable, write_json
from depth_lightning.evaluation.alignment import alignment_from
from depth_lightning.evaluation.baselines import fit_baselines
from depth_lightning.evaluation.evaluator import evaluator_for
from depth_lightning.evaluation.results import record_test
from depth_lightning.inference.loading import load_with_record
from depth_lightning.models.network import DepthNet
from depth_lightning.module import EvaluationModule
from depth_lightning.run.command import command
from depth_lightning.run.ddp import run_ddp_ranks_as_this_job
from depth_lightning.run.loggers import logged_metrics
from depth_lightning.run.speed import keep_freed_memory

log = logging.getLogger(__name__)


def _given_on_command_line() -> set[str]:
    if not HydraConfig.initialized():
        return set()
    return {o.split("=", 1)[0].lstrip("+~") for o in HydraConfig.get().overrides.task}


def values_of(node: Any) -> Any:
    """A saved config's values without its ``_target_``/``_partial_`` keys: data, never code."""
    if isinstance(node, dict):
        return {k: values_of(v) for k, v in node.items() if not str(k).startswith("_")}
    if isinstance(node, list):
        return [values_of(v) for v in node]
    return node


def evaluation_data(cfg: DictConfig, model: DepthNet, saved: dict[str, Any] | None) -> dict[str, Any]:
    """The data to test on: ``data=<name>`` from the command line, else the dataset the checkpoint
    names (``saved``, its run's data config): the suite's own config of that name with the saved values
    merged in as data (what the file names as code is never used), then any ``+data.<key>=`` given.
    At the network's input size unless ``data.height`` / ``data.width`` are given explicitly."""
    chosen = plain(cfg.data) if cfg.get("data") is not None else {}
    if "_target_" in chosen:  # data=<name>: the suite's config, composed by Hydra
        data = chosen
    else:
        name = (saved or {}).get("name")
        if not isinstance(name, str):
            raise ConfigError(
                f"config error: data: {cfg.ckpt_path} names no dataset to test on (a model folder holds only the "
                f"network); give data=<name> ({', '.join(data_configs())})"
            )
        data = plain(OmegaConf.merge(plain(compose_data(name)), values_of(saved), chosen))
    given = _given_on_command_line()
    for key, value in zip(("height", "width"), model.input_size, strict=True):
        if f"data.{key}" not in given:
            data[key] = value
    return data


def precision_of(cfg: DictConfig, record: dict[str, Any]) -> str:
    """``trainer.precision``, or (null) the precision the checkpoint's run tested in, else 32-true."""
    return str(cfg.trainer.get("precision") or record.get("precision") or "32-true")


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
    model, record = load_with_record(cfg.ckpt_path)
    data = evaluation_data(cfg, model, record.get("data"))
    datamodule = build(data, "data")
    precision = precision_of(cfg, record)
    trainer = build(cfg.trainer, "trainer", precision=precision)
    if trainer.is_global_zero:
        h, w = model.input_size
        print(
            f"data={datamodule.name} at input {data['height']}x{data['width']} (trained at {h}x{w}), "
            f"precision {precision}"
        )
    maps = baseline_maps(cfg, datamodule)
    evaluator = evaluator_for(datamodule, "test", model.bins.num_bins, model.decoder, maps, alignment, precision)
    result = EvaluationModule(model).test_with(trainer, datamodule, evaluator)
    metrics = logged_metrics(trainer, "test")
    if trainer.is_global_zero:
        title = f"Test split of data={datamodule.name}, checkpoint {cfg.ckpt_path}"
        # per_image.csv & co. in the run's own folder: never overwritten by another evaluation
        found = record_test(result, Path(cfg.paths.output_dir), cfg.get("intervals"), title)
        metrics.update(found.pop("test_values"))
        write_json(
            out,
            {
                "ckpt_path": str(cfg.ckpt_path),
                "data": datamodule.name,
                "input_size": [data["height"], data["width"]],
                "precision": precision,
                "test": metrics,
                "images": result.images,
                "empty_frames": result.empty_frames,
                "frames_below_min_pixels": result.sparse_frames,
                "world_size": trainer.world_size,
                **found,
            },
        )
        print(f"written: {out}")
    return metrics


main = command("evaluate", evaluate)

if __name__ == "__main__":
    main()
