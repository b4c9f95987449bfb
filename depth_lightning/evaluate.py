"""``python -m depth_lightning.evaluate ckpt_path=...``: test-split metrics of both decoders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf

from depth_lightning.metrics import METRIC_NAMES
from depth_lightning.models.bins import DECODERS
from depth_lightning.train import CONF_DIR, fix_run_time, split_metrics, write_results


def format_metrics(metrics: dict[str, float]) -> str:
    """A table with one row per decoder."""
    lines = ["decoder " + "".join(f"{k:>10s}" for k in METRIC_NAMES)]
    for dec in DECODERS:
        lines.append(f"{dec:8s}" + "".join(f"{metrics.get(f'{dec}/{k}', float('nan')):10.4f}" for k in METRIC_NAMES))
    lines.append(f"pixel accuracy of the bin labels: {metrics.get('pixel_acc', float('nan')):.4f}")
    return "\n".join(lines)


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    from depth_lightning.allocator import keep_freed_memory
    from depth_lightning.checkpoint import load_module
    from depth_lightning.config import validate
    from depth_lightning.data import DepthDataModule
    from depth_lightning.distributed import patch_lightning_for_hydra

    patch_lightning_for_hydra()
    keep_freed_memory(cfg.get("keep_freed_memory", True))
    overrides = {}
    if cfg.get("data") is not None:
        overrides["data"] = OmegaConf.to_container(cfg.data, resolve=True)
    module = load_module(cfg.ckpt_path, overrides)
    run_cfg = validate(module.cfg)
    trainer = L.Trainer(**OmegaConf.to_container(cfg.trainer), logger=False, enable_checkpointing=False)
    trainer.test(module, datamodule=DepthDataModule(run_cfg.data), verbose=False)
    metrics = split_metrics(trainer.callback_metrics, "test")
    if trainer.is_global_zero:
        print(f"\nTest split of data={run_cfg.data.name}, checkpoint {cfg.ckpt_path}:")
        print(format_metrics(metrics))
        out = Path(cfg.output) if cfg.get("output") else Path(cfg.paths.output_dir) / "eval_metrics.json"
        write_results(
            out,
            {
                "ckpt_path": str(cfg.ckpt_path),
                "data": run_cfg.data.name,
                "test": metrics,
                "images": module.images_evaluated,
                "world_size": trainer.world_size,
            },
        )
        print(f"written: {out}")
    return metrics


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="evaluate")
def _hydra_main(cfg: DictConfig) -> None:
    evaluate(cfg)


def main() -> None:
    fix_run_time()
    _hydra_main()


if __name__ == "__main__":
    main()
