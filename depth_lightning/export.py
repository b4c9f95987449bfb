"""``python -m depth_lightning.export ckpt_path=... output=model.onnx [uncertainty=true]``: the model as
an ONNX graph with the soft-weighted-sum inside (:mod:`depth_lightning.inference.onnx`)."""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from depth_lightning.config import CONF_DIR
from depth_lightning.inference.checkpoint import load_module
from depth_lightning.inference.onnx import export_onnx
from depth_lightning.run.errors import one_line_errors
from depth_lightning.run.files import check_writable


def export(cfg: DictConfig) -> Path:
    """The checkpoint ``cfg.ckpt_path`` as an ONNX file at ``cfg.output`` (checked writable first)."""
    check_writable(cfg.output, "output")
    module = load_module(cfg.ckpt_path)
    path = export_onnx(module, cfg.output, uncertainty=cfg.uncertainty)
    print(
        f"wrote {path} (inputs: image (B,3,H,W) in [0,1]; outputs: depth in metres"
        f"{', uncertainty' if cfg.uncertainty else ''})"
    )
    return Path(path)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="export")
@one_line_errors
def _hydra_main(cfg: DictConfig) -> None:
    export(cfg)


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
