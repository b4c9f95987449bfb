"""``python -m depth_lightning.predict ckpt_path=... input=<image or folder> output=<folder>``.

For each image ``<name>.<ext>`` (the extension is kept, so ``scene.jpg`` and ``scene.png`` never
collide): ``<name>.<ext>_depth.png`` (16-bit, millimetres), ``_depth_color.png``,
``_uncertainty.png`` (colourised), ``_uncertainty.npy`` (std of log depth) and, with
``pointcloud=true``, ``_points.ply``. Built on :class:`depth_lightning.inference.DepthEstimator`.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from omegaconf import DictConfig
from tqdm import tqdm

from depth_lightning.core.errors import DataError
from depth_lightning.core.files import check_writable
from depth_lightning.data.io import read_rgb
from depth_lightning.inference import DepthEstimator
from depth_lightning.inference.outputs import write_prediction
from depth_lightning.inference.pointcloud import intrinsics_for, write_ply
from depth_lightning.run.command import command

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".webp"}
log = logging.getLogger(__name__)


def list_images(path: Path) -> tuple[list[Path], list[Path]]:
    """The images of ``path`` (a file or a folder) and the other files of the folder (skipped)."""
    if path.is_file():
        return [path], []
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
        if not images:
            raise FileNotFoundError(f"input={str(path)!r}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in it")
        return images, [p for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
    raise FileNotFoundError(f"input={str(path)!r}: no such file or folder")


def predict(cfg: DictConfig) -> tuple[int, list[str]]:
    """Write predictions for every readable image; return (written count, error messages)."""
    images, others = list_images(Path(cfg.input))
    for other in others:
        log.warning("skipped %s: not an image (%s)", other, ", ".join(sorted(IMAGE_SUFFIXES)))
    precision = str(cfg.get("precision", "32"))
    out_dir = check_writable(cfg.output, "output", folder=True)
    estimator = DepthEstimator.from_pretrained(cfg.ckpt_path, device=cfg.get("device", "auto"), precision=precision)
    errors: list[str] = []
    written = 0
    bins = estimator.bins
    for path in tqdm(images, desc="predict", unit="img"):
        try:
            rgb = read_rgb(path)
        except DataError as err:
            errors.append(str(err))
            log.error("%s", err)
            continue
        pred = estimator.predict(rgb, flip=cfg.get("flip", False), resize=cfg.resize)
        write_prediction(out_dir, path.name, pred, bins.d_min, bins.d_max)
        if cfg.get("pointcloud", False):
            k = intrinsics_for(rgb.shape[:2], cfg.get("intrinsics"), cfg.get("fov_deg"))
            write_ply(out_dir / f"{path.name}_points.ply", pred["depth"], rgb, k)
        written += 1
    print(f"wrote {written} prediction(s) to {out_dir.resolve()}")
    if others:
        print(f"skipped {len(others)} file(s) that are not images: {', '.join(p.name for p in others)}")
    if errors:
        print(f"{len(errors)} image(s) could not be used:", *errors, sep="\n  ", file=sys.stderr)
    return written, errors


def run_predict(cfg: DictConfig) -> None:
    """Predict every image; exit 1 when any could not be read (each is named)."""
    _, errors = predict(cfg)
    if errors:
        sys.exit(1)


main = command("predict", run_predict)

if __name__ == "__main__":
    main()
