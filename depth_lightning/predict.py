"""``python -m depth_lightning.predict ckpt_path=... input=<image or folder> output=<folder>``.

For each image: ``<name>_depth.png`` (16-bit, millimetres), ``<name>_depth_color.png``,
``<name>_uncertainty.png`` (colourised) and ``<name>_uncertainty.npy`` (std of log depth).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from PIL import Image
from tqdm import tqdm

from depth_lightning.config import CONF_DIR
from depth_lightning.data.io import DataError, read_rgb, write_depth_png
from depth_lightning.files import save_atomic
from depth_lightning.visualize import colorize

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".webp"}
log = logging.getLogger(__name__)


def list_images(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise FileNotFoundError(f"input={str(path)!r}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in it")
        return files
    raise FileNotFoundError(f"input={str(path)!r}: no such file or folder")


@torch.no_grad()
def predict_array(module, rgb: np.ndarray, resize: bool = True) -> dict[str, np.ndarray]:
    """Depth (metres, the configured decoder) and uncertainty at the image's own size."""
    h, w = rgb.shape[:2]
    image = torch.from_numpy(rgb).permute(2, 0, 1)[None].float().div(255).to(module.device)
    if resize:
        size = tuple(module.hparams.input_size)
        image = F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)
    out = module.predict_step({"image": image})
    # Upsample in log depth: depth is a multiplicative quantity, and log is what the bins are linear in.
    log_depth = F.interpolate(torch.log(out["depth"])[:, None], size=(h, w), mode="bilinear", align_corners=False)
    unc = F.interpolate(out["uncertainty"][:, None], size=(h, w), mode="bilinear", align_corners=False)
    return {"depth": torch.exp(log_depth)[0, 0].cpu().numpy(), "uncertainty": unc[0, 0].cpu().numpy()}


def write_prediction(out_dir: Path, stem: str, pred: dict[str, np.ndarray], d_min: float, d_max: float) -> None:
    write_depth_png(out_dir / f"{stem}_depth.png", pred["depth"], scale=1000.0)  # 16-bit millimetres
    color = colorize(pred["depth"], d_min, d_max)
    save_atomic(out_dir / f"{stem}_depth_color.png", lambda p: Image.fromarray(color).save(p, format="PNG"))
    unc = pred["uncertainty"]
    ucol = colorize(unc, 0.0, max(float(unc.max()), 1e-6), cmap="viridis", log=False)
    save_atomic(out_dir / f"{stem}_uncertainty.png", lambda p: Image.fromarray(ucol).save(p, format="PNG"))
    save_atomic(out_dir / f"{stem}_uncertainty.npy", lambda p: np.save(p, unc.astype(np.float32)))


def predict(cfg: DictConfig) -> tuple[int, list[str]]:
    """Write predictions for every readable image; return (written count, error messages)."""
    from depth_lightning.checkpoint import load_module

    images = list_images(Path(cfg.input))
    module = load_module(cfg.ckpt_path)
    device = cfg.get("device", "auto")
    module.to("cuda" if device == "auto" and torch.cuda.is_available() else "cpu" if device == "auto" else device)
    out_dir = Path(cfg.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    written = 0
    for path in tqdm(images, desc="predict", unit="img"):
        try:
            rgb = read_rgb(path)
        except DataError as err:
            errors.append(str(err))
            log.error("%s", err)
            continue
        pred = predict_array(module, rgb, resize=cfg.resize)
        write_prediction(out_dir, path.stem, pred, module.bins.d_min, module.bins.d_max)
        written += 1
    print(f"wrote {written} prediction(s) to {out_dir}")
    if errors:
        print(f"{len(errors)} image(s) could not be read:", *errors, sep="\n  ", file=sys.stderr)
    return written, errors


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="predict")
def _hydra_main(cfg: DictConfig) -> None:
    _, errors = predict(cfg)
    if errors:
        sys.exit(1)


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
