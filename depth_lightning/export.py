"""``python -m depth_lightning.export ckpt_path=... output=model.onnx [uncertainty=true]``: the model as
an ONNX graph with the soft-weighted-sum inside (:mod:`depth_lightning.inference.onnx`);
``format=hub output=<folder>``: the model as a folder to share (:mod:`depth_lightning.inference.pretrained`:
safetensors weights, ``config.json``, a model card with the run's test numbers), loadable with
``DepthEstimator.from_pretrained`` and uploadable to the Hugging Face Hub as it is."""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from depth_lightning.config import CONF_DIR, check_choice
from depth_lightning.inference.model_card import model_card
from depth_lightning.inference.onnx import export_onnx
from depth_lightning.inference.pretrained import load_model, model_config, save_pretrained
from depth_lightning.run.errors import one_line_errors
from depth_lightning.run.files import check_writable

FORMATS = ("onnx", "hub")


def export(cfg: DictConfig) -> Path:
    """The model ``cfg.ckpt_path`` as ``cfg.format`` at ``cfg.output`` (checked writable first)."""
    fmt = cfg.get("format", "onnx")
    check_choice(fmt, "format", FORMATS)
    check_writable(cfg.output, "output", folder=fmt == "hub")
    module = load_model(cfg.ckpt_path)
    if fmt == "hub":
        card = model_card(model_config(module), Path(cfg.ckpt_path))
        folder = save_pretrained(module, cfg.output, card)
        print(
            f"wrote {folder} (model.safetensors, config.json, README.md); load it with "
            f"DepthEstimator.from_pretrained({str(folder)!r})"
        )
        return folder
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
