"""Reading RGB images and depth maps from the datasets' files, with errors that name the file."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from depth_lightning.core.errors import DataError
from depth_lightning.core.files import save_atomic

log = logging.getLogger(__name__)


def _decoded(path: Path, what: str) -> Image.Image:
    """Open and fully decode an image file; errors name the file."""
    if not path.is_file():
        raise DataError(f"{path}: {what} file not found")
    try:
        with Image.open(path) as im:
            im.load()
            return im
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path}: corrupt or unreadable {what} ({err})") from None


def read_rgb(path: str | Path) -> np.ndarray:
    """``(H,W,3)`` uint8. A 16-bit or float image (a depth map given for a photograph) is refused; an
    8-bit single-channel one is used as grey RGB, with a warning."""
    im = _decoded(Path(path), "image")
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        raise DataError(
            f"{path}: a {'16-bit' if im.mode.startswith('I') else 'float'} single-channel image (mode {im.mode}), "
            "not an RGB photograph: a depth map? Give the RGB image"
        )
    if im.mode in ("L", "LA", "1"):
        log.warning("%s: single-channel (grey) image; used repeated as RGB", path)
    return np.asarray(im.convert("RGB"))


def read_depth_png(path: str | Path, scale: float) -> np.ndarray:
    """A 16-bit depth PNG as float32 metres (``value / scale``; 0 stays 0 = invalid).

    NYU sync maps are millimetres (scale 1000), KITTI's annotated maps metres x 256 (scale 256).
    An 8-bit PNG cannot hold depth at that precision and is refused.
    """
    path = Path(path)
    im = _decoded(path, "depth PNG")
    arr = np.asarray(im)
    if im.mode not in ("I;16", "I;16B", "I;16L", "I") or arr.ndim != 2:
        raise DataError(
            f"{path}: expected a 16-bit single-channel depth PNG, got mode {im.mode} "
            f"({'8-bit' if im.mode in ('L', 'P', 'RGB', 'RGBA') else im.mode}); depth PNGs must be uint16"
        )
    return arr.astype(np.float32) / scale


def read_mask(path: str | Path) -> np.ndarray:
    """A mask image (1-bit, 8-bit grey, or the first channel of a colour one) as its stored values."""
    im = _decoded(Path(path), "mask")
    values = np.asarray(im if im.mode in ("1", "L", "I;16", "I") else im.convert("RGB"))
    return values if values.ndim == 2 else values[..., 0]


def write_depth_png(path: str | Path, depth: np.ndarray, scale: float) -> None:
    """Float metres -> 16-bit PNG (``round(depth * scale)``), written atomically."""
    arr = np.clip(np.round(np.nan_to_num(depth) * scale), 0, 65535).astype(np.uint16)
    save_atomic(path, lambda p: Image.fromarray(arr).save(p, format="PNG"))
